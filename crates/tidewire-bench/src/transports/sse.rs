//! tidewire's SSE transport (docs/sse.md): downstream is one `text/event-stream`
//! response, upstream is POSTs as in polling. Every POST carries `ack=<last id>`; when
//! nothing else is queued the writer POSTs a noop `6` every `SSE_ACK_MS` (1000 ms;
//! env `TIDEWIRE_BENCH_SSE_ACK_MS`) while unconfirmed events exist, and after every
//! [`CONFIRM_AFTER_PACKETS`] packets, so the server can drop what it retains for
//! resumption: the bundled client's policy (client-js/src/transports/sse.js). Each client
//! runs its timer and counts its events at a phase of its own, as that client does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{mpsc, Notify};

/// Packets after which the writer confirms without waiting for its timer.
const CONFIRM_AFTER_PACKETS: u64 = 1024;

/// What the stream reader tells the writer: the last event id, and when to confirm early.
struct Received {
    last: AtomicU64,
    confirm: Notify,
    /// This client's phase for its confirmation timer and count.
    phase: u64,
}

use super::http::{find, get, post, Conn};
use super::{sid_of, tcp, Inbound, Reply};

pub async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    inbound: Arc<Inbound>,
    rx: mpsc::UnboundedReceiver<String>,
) -> Result<(), String> {
    let host = server.to_string();
    let mut down = Conn::new(tcp(server, source).await?);
    down.send(&get(
        "/socket.io/?EIO=4&transport=sse",
        &host,
        "Accept: text/event-stream\r\n",
    ))
    .await?;
    let head = down.head().await?;
    if head.status != 200 || !head.headers.contains("text/event-stream") {
        return Err(format!("sse handshake: status {}", head.status));
    }
    let mut events = Events {
        conn: down,
        chunked: head.chunked,
        data: Vec::new(),
        at: 0,
        chunk: None,
    };
    let first = events.next().await?;
    let open = String::from_utf8_lossy(&first[0].1).into_owned();
    let sid = sid_of(&open).ok_or_else(|| format!("no sid in {open:?}"))?;
    // Every client of a room receives the same events at the same moment: confirming at
    // the same ids (or on timers started together), they would all POST at once, and
    // the burst shows in everyone's latency. Each client confirms at its own phase.
    let phase = spread(&sid);
    // The first confirmation comes after a share of the count that differs per client.
    let mut confirm_at = 1 + phase % CONFIRM_AFTER_PACKETS;
    let received = Arc::new(Received {
        last: AtomicU64::new(1),
        confirm: Notify::new(),
        phase,
    });
    let path = format!("/socket.io/?EIO=4&transport=sse&sid={sid}");
    let up = Conn::new(tcp(server, source).await?);
    let (pong_tx, pong_rx) = mpsc::unbounded_channel::<()>();
    tokio::spawn(writer(
        up,
        host,
        path,
        rx,
        pong_rx,
        inbound.clone(),
        received.clone(),
    ));
    tokio::spawn(async move {
        let mut handle = |id: Option<u64>, p: &[u8]| {
            if let Some(id) = id {
                received.last.store(id, Relaxed);
                if id >= confirm_at {
                    confirm_at = id + CONFIRM_AFTER_PACKETS;
                    received.confirm.notify_one();
                }
            }
            match inbound.packet(p) {
                Reply::Pong => {
                    let _ = pong_tx.send(());
                    true
                }
                Reply::Close => false,
                Reply::None => true,
            }
        };
        // The open packet is handled; anything that shared its event is not.
        let mut go_on = first[1..].iter().all(|(id, p)| handle(*id, p));
        while go_on {
            go_on = matches!(events.drain(&mut handle), Ok(true)) && events.more().await.is_ok();
        }
        inbound.closed();
    });
    Ok(())
}

/// A number that differs between sessions (a hash of the server's random session id),
/// to give each client its own confirmation phase.
fn spread(sid: &str) -> u64 {
    // FNV-1a
    sid.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What [`simple_event`] makes of the bytes at the start of the unread buffer.
#[derive(Debug, PartialEq, Eq)]
enum Simple {
    /// One `data:` line (packets separated by 0x1E), `id: N` (optional), blank line:
    /// the id, where the data is, and the length of the whole event.
    Event {
        id: Option<u64>,
        data: std::ops::Range<usize>,
        len: usize,
    },
    /// The start of such an event: read more.
    Incomplete,
    /// Something else (a comment, several data lines, another field): parse in general.
    Other,
}

/// The usual event in one forward pass: its data line, then the id line's digits
/// parsed where they stand.
#[inline(always)]
fn simple_event(buf: &[u8]) -> Simple {
    const ID: &[u8] = b"id: ";
    const DATA: &[u8] = b"data: ";
    if !buf.starts_with(DATA) {
        return if DATA.starts_with(buf) {
            Simple::Incomplete
        } else {
            Simple::Other
        };
    }
    let start = DATA.len();
    let Some(eol) = memchr::memchr(b'\n', &buf[start..]).map(|i| start + i) else {
        return Simple::Incomplete;
    };
    let mut at = eol + 1;
    let rest = &buf[at..];
    let mut id = None;
    if rest.starts_with(ID) {
        at += ID.len();
        let mut n = 0u64;
        let mut digits = 0;
        loop {
            match buf.get(at) {
                Some(d @ b'0'..=b'9') => {
                    n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                    digits += 1;
                    at += 1;
                }
                Some(b'\n') if (1..=19).contains(&digits) => break,
                None => return Simple::Incomplete,
                Some(_) => return Simple::Other,
            }
        }
        at += 1;
        id = Some(n);
    } else if rest.len() < ID.len() && ID.starts_with(rest) {
        return Simple::Incomplete;
    }
    match buf.get(at) {
        None => Simple::Incomplete,
        Some(b'\n') => Simple::Event {
            id,
            data: start..eol,
            len: at + 1,
        },
        Some(_) => Simple::Other,
    }
}

/// Hands each packet of an event's data (separated by 0x1E) to `f`, the event's id
/// with the last one (the id is the last packet's). Returns false if `f` asked to stop
/// after this event.
#[inline]
fn packets(data: &[u8], id: Option<u64>, f: &mut impl FnMut(Option<u64>, &[u8]) -> bool) -> bool {
    let mut from = 0;
    let mut go_on = true;
    for sep in memchr::memchr_iter(0x1e, data) {
        go_on &= f(None, &data[from..sep]);
        from = sep + 1;
    }
    f(id, &data[from..]) && go_on
}

/// Incremental event-stream parser over a chunked (or close-delimited) body.
///
/// A chunk that begins on an event boundary (the server writes whole events per
/// chunk, so nearly all do) is parsed where it lies in the connection's buffer;
/// only an event cut by a chunk boundary is copied, into `data`, to be completed.
struct Events {
    conn: Conn,
    chunked: bool,
    /// The start of an event that a chunk boundary cut, and what follows it.
    data: Vec<u8>,
    at: usize,
    /// A chunk in `conn.buf` not yet parsed (only while `data` holds nothing unread).
    chunk: Option<std::ops::Range<usize>>,
}

impl Events {
    async fn more(&mut self) -> Result<(), String> {
        if self.at > 0 {
            self.data.drain(..self.at);
            self.at = 0;
        }
        if self.chunked {
            let Some(range) = self.conn.next_chunk().await? else {
                return Err("stream ended".into());
            };
            if self.data.is_empty() {
                self.chunk = Some(range);
            } else {
                self.data.extend_from_slice(&self.conn.buf[range]);
            }
        } else {
            if self.conn.pending().is_empty() {
                self.conn.fill().await?;
            }
            self.data.extend_from_slice(self.conn.pending());
            self.conn.pos = self.conn.buf.len();
        }
        Ok(())
    }

    /// Hands the packets of each complete event read so far to `f` as (id, packet)
    /// until `f` returns false, then finishes that event; comments (keep-alives) are
    /// skipped. Returns false if `f` stopped.
    fn drain(&mut self, mut f: impl FnMut(Option<u64>, &[u8]) -> bool) -> Result<bool, String> {
        if let Some(range) = self.chunk.take() {
            let chunk = &self.conn.buf[range];
            let (used, go_on) = parse_events(chunk, &mut f)?;
            // Kept for the next chunk (or the next call, if `f` stopped).
            self.data.extend_from_slice(&chunk[used..]);
            if !go_on {
                return Ok(false);
            }
            if self.data.is_empty() {
                return Ok(true);
            }
        }
        let (used, go_on) = parse_events(&self.data[self.at..], &mut f)?;
        self.at += used;
        Ok(go_on)
    }

    /// The packets of the next event, owned (the handshake's open packet, and
    /// whatever came with it).
    async fn next(&mut self) -> Result<Vec<(Option<u64>, Vec<u8>)>, String> {
        loop {
            let mut event = Vec::new();
            self.drain(|id, p| {
                event.push((id, p.to_vec()));
                false
            })?;
            if !event.is_empty() {
                return Ok(event);
            }
            self.more().await?;
        }
    }
}

/// Hands each packet of the complete events at the front of `buf` to `f` (see
/// [`Events::drain`]). Returns the bytes used and whether `f` wants more.
fn parse_events(
    buf: &[u8],
    f: &mut impl FnMut(Option<u64>, &[u8]) -> bool,
) -> Result<(usize, bool), String> {
    let mut at = 0;
    loop {
        let unread = &buf[at..];
        match simple_event(unread) {
            Simple::Event { id, data, len } => {
                at += len;
                if !packets(&unread[data], id, f) {
                    return Ok((at, false));
                }
                continue;
            }
            Simple::Incomplete => return Ok((at, true)),
            Simple::Other => {}
        }
        let Some(end) = find(unread, b"\n\n") else {
            return Ok((at, true));
        };
        let block = &unread[..end];
        at += end + 2;
        if !general_event(block, f)? {
            return Ok((at, false));
        }
    }
}

/// Any other event: several `data:` lines (one packet), `event: t64` (base64 of one
/// packet), comments.
fn general_event(
    block: &[u8],
    f: &mut impl FnMut(Option<u64>, &[u8]) -> bool,
) -> Result<bool, String> {
    let mut id = None;
    let mut t64 = false;
    let mut lines = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"data: ") {
            lines.push(v);
        } else if let Some(v) = line.strip_prefix(b"id: ") {
            id = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if line == b"event: t64" {
            t64 = true;
        }
    }
    if lines.is_empty() {
        return Ok(true);
    }
    let joined = lines.join(&b'\n');
    if t64 {
        let text = base64::engine::general_purpose::STANDARD
            .decode(&joined)
            .map_err(|e| e.to_string())?;
        Ok(f(id, &text))
    } else {
        Ok(packets(&joined, id, f))
    }
}

async fn writer(
    mut up: Conn,
    host: String,
    path: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    mut pongs: mpsc::UnboundedReceiver<()>,
    inbound: Arc<Inbound>,
    received: Arc<Received>,
) {
    let mut body = String::new();
    let mut acked = 1u64;
    let ack_ms: u64 = std::env::var("TIDEWIRE_BENCH_SSE_ACK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let period = ack_ms.max(10);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(received.phase % period),
        Duration::from_millis(period),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = rx.recv() => match m { Some(m) => body.push_str(&m), None => break },
            p = pongs.recv() => match p { Some(()) => body.push('3'), None => break },
            _ = tick.tick() => {
                if received.last.load(Relaxed) <= acked { continue; }
                body.push('6');
            }
            () = received.confirm.notified() => {
                if received.last.load(Relaxed) <= acked { continue; }
                body.push('6');
            }
        }
        while let Ok(m) = rx.try_recv() {
            body.push('\u{1e}');
            body.push_str(&m);
        }
        let ack = received.last.load(Relaxed);
        let req = post(&format!("{path}&ack={ack}"), &host, &body);
        body.clear();
        if up.send(&req).await.is_err() {
            break;
        }
        match up.head().await {
            Ok(h) if h.status == 200 => {
                if up.body(&h).await.is_err() {
                    break;
                }
                acked = ack;
            }
            _ => break,
        }
    }
    inbound.closed();
}

#[cfg(test)]
mod tests {
    use super::{parse_events, simple_event, Simple};

    fn parse_all(stream: &[u8]) -> (usize, bool, Vec<(Option<u64>, String)>) {
        let mut got = Vec::new();
        let (used, more) = parse_events(stream, &mut |id, p| {
            got.push((id, String::from_utf8_lossy(p).into_owned()));
            true
        })
        .unwrap();
        (used, more, got)
    }

    #[test]
    fn events_are_parsed_up_to_the_one_a_chunk_cut() {
        let stream =
            b"data: 4a\nid: 7\n\n:\n\ndata: x\ndata: y\n\ndata: 4b\x1e4c\nid: 9\n\ndata: 4";
        let (used, more, got) = parse_all(stream);
        assert!(more);
        assert_eq!(&stream[used..], b"data: 4");
        let want = [
            (Some(7), "4a"),
            (None, "x\ny"),
            (None, "4b"),
            (Some(9), "4c"),
        ];
        assert_eq!(got, want.map(|(id, p)| (id, p.to_owned())));
        // A handler that stops: the bytes after its event are left unused.
        let (used, more) = parse_events(stream, &mut |_, _| false).unwrap();
        assert!(!more);
        assert_eq!(used, b"data: 4a\nid: 7\n\n".len());
    }

    fn event(id: Option<u64>, data: std::ops::Range<usize>, len: usize) -> Simple {
        Simple::Event { id, data, len }
    }

    #[test]
    fn the_usual_event_is_parsed_in_one_pass() {
        let buf = b"data: 4hello\x1e4x\nid: 42\n\ndata: ";
        assert_eq!(simple_event(buf), event(Some(42), 6..15, 24));
        assert_eq!(simple_event(b"data: 2\n\n"), event(None, 6..7, 9));
        assert_eq!(simple_event(b"data: \n\n"), event(None, 6..6, 8));
        assert_eq!(
            simple_event(b"data: 1\nid: 1234567\n\n"),
            event(Some(1_234_567), 6..7, 21)
        );
    }

    #[test]
    fn t64_and_multi_line_events_are_one_packet() {
        let (_, _, got) =
            parse_all(b"event: t64\ndata: NGEeYg==\nid: 3\n\ndata: 4a\ndata: b\nid: 4\n\n");
        assert_eq!(
            got,
            [
                (Some(3), "4a\u{1e}b".to_owned()),
                (Some(4), "4a\nb".to_owned())
            ]
        );
    }

    #[test]
    fn every_prefix_of_an_event_is_incomplete() {
        let whole = b"data: 4[\"tick\"]\x1e4[]\nid: 1234\n\n";
        for cut in 0..whole.len() {
            assert_eq!(simple_event(&whole[..cut]), Simple::Incomplete, "cut {cut}");
        }
        assert!(matches!(simple_event(whole), Simple::Event { .. }));
    }

    #[test]
    fn anything_else_goes_to_the_general_parse() {
        for other in [
            &b":\n\n"[..],
            b"id: 5\n\n",
            b"data: 1\nid: x\n\n",
            b"data: 1\nid: 12345678901234567890\n\n",
            b"data: 1\nid: 5 \n\n",
            b"data: a\ndata: b\n\n",
            b"event: t64\ndata: AA==\n\n",
            b"retry: 10\n\n",
            b"data: 1\nevent: t64\n\n",
        ] {
            assert_eq!(
                simple_event(other),
                Simple::Other,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
