//! tidewire's SSE transport (docs/sse.md): downstream is one `text/event-stream`
//! response, upstream is POSTs as in polling. Every POST carries `ack=<last id>`; when
//! nothing else is queued the writer POSTs a noop `6` every `SSE_ACK_MS` (1000 ms;
//! env `TIDEWIRE_BENCH_SSE_ACK_MS`) while unconfirmed events exist, and after every
//! [`CONFIRM_AFTER_EVENTS`] events, so the server can drop what it retains for
//! resumption: the bundled client's policy (client-js/src/transports/sse.js).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{mpsc, Notify};

/// Events after which the writer confirms without waiting for its timer.
const CONFIRM_AFTER_EVENTS: u64 = 1024;

/// What the stream reader tells the writer: the last event id, and when to confirm early.
struct Received {
    last: AtomicU64,
    confirm: Notify,
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
    let (_, open) = events.next().await?;
    let sid = sid_of(&open).ok_or_else(|| format!("no sid in {open:?}"))?;
    let received = Arc::new(Received {
        last: AtomicU64::new(1),
        confirm: Notify::new(),
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
        loop {
            let handled = events.drain(|id, p| {
                if let Some(id) = id {
                    received.last.store(id, Relaxed);
                    if id % CONFIRM_AFTER_EVENTS == 0 {
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
            });
            if !matches!(handled, Ok(true)) || events.more().await.is_err() {
                break;
            }
        }
        inbound.closed();
    });
    Ok(())
}

/// What [`simple_event`] makes of the bytes at the start of the unread buffer.
#[derive(Debug, PartialEq, Eq)]
enum Simple {
    /// `id: N` (optional), one `data:` line, blank line: the id, where the data is,
    /// and the length of the whole event.
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

/// The usual event in one forward pass and one `memchr`: the id's digits are parsed
/// where they stand, and the line end after the data is also the event's end.
fn simple_event(buf: &[u8]) -> Simple {
    const ID: &[u8] = b"id: ";
    const DATA: &[u8] = b"data: ";
    let mut at = 0;
    let mut id = None;
    if buf.starts_with(ID) {
        at = ID.len();
        let mut n = 0u64;
        let digits = buf[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 && buf.len() == at {
            return Simple::Incomplete;
        }
        if digits == 0 || digits > 19 {
            return Simple::Other;
        }
        for d in &buf[at..at + digits] {
            n = n * 10 + u64::from(d - b'0');
        }
        at += digits;
        match buf.get(at) {
            None => return Simple::Incomplete,
            Some(b'\n') => at += 1,
            Some(_) => return Simple::Other,
        }
        id = Some(n);
    } else if ID.starts_with(buf) {
        return Simple::Incomplete;
    }
    let rest = &buf[at..];
    if !rest.starts_with(DATA) {
        return if DATA.starts_with(rest) {
            Simple::Incomplete
        } else {
            Simple::Other
        };
    }
    let start = at + DATA.len();
    let Some(eol) = memchr::memchr(b'\n', &buf[start..]).map(|i| start + i) else {
        return Simple::Incomplete;
    };
    match buf.get(eol + 1) {
        None => Simple::Incomplete,
        Some(b'\n') => Simple::Event {
            id,
            data: start..eol,
            len: eol + 2,
        },
        Some(_) => Simple::Other,
    }
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

    /// Hands each complete event read so far to `f` as (id, packet) until `f`
    /// returns false; comments (keep-alives) are skipped. Returns false if `f` stopped.
    fn drain(&mut self, mut f: impl FnMut(Option<u64>, &str) -> bool) -> Result<bool, String> {
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

    /// The next event, owned (the handshake's open packet).
    async fn next(&mut self) -> Result<(Option<u64>, String), String> {
        loop {
            let mut first = None;
            self.drain(|id, p| {
                first = Some((id, p.to_owned()));
                false
            })?;
            if let Some(event) = first {
                return Ok(event);
            }
            self.more().await?;
        }
    }
}

/// Hands each complete event at the front of `buf` to `f` (see [`Events::drain`]).
/// Returns the bytes used and whether `f` wants more.
fn parse_events(
    buf: &[u8],
    f: &mut impl FnMut(Option<u64>, &str) -> bool,
) -> Result<(usize, bool), String> {
    let mut at = 0;
    loop {
        let unread = &buf[at..];
        match simple_event(unread) {
            Simple::Event { id, data, len } => {
                let text = std::str::from_utf8(&unread[data]).map_err(|e| e.to_string())?;
                at += len;
                if !f(id, text) {
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

/// Any other event: several `data:` lines, `event: t64` (base64), comments.
fn general_event(
    block: &[u8],
    f: &mut impl FnMut(Option<u64>, &str) -> bool,
) -> Result<bool, String> {
    let mut id = None;
    let mut t64 = false;
    let (mut data, mut data_lines) = (None, 0);
    for line in block.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"data: ") {
            data = data.or(Some(v));
            data_lines += 1;
        } else if let Some(v) = line.strip_prefix(b"id: ") {
            id = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if line == b"event: t64" {
            t64 = true;
        }
    }
    Ok(match (data, data_lines, t64) {
        (None, _, _) => true,
        (Some(one), 1, false) => f(id, std::str::from_utf8(one).map_err(|e| e.to_string())?),
        _ => {
            let lines: Vec<&[u8]> = block
                .split(|&b| b == b'\n')
                .filter_map(|l| l.strip_prefix(b"data: "))
                .collect();
            let joined = lines.join(&b'\n');
            let text = if t64 {
                base64::engine::general_purpose::STANDARD
                    .decode(&joined)
                    .map_err(|e| e.to_string())?
            } else {
                joined
            };
            f(id, &String::from_utf8_lossy(&text))
        }
    })
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
    let mut tick = tokio::time::interval(Duration::from_millis(ack_ms.max(10)));
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

    #[test]
    fn events_are_parsed_up_to_the_one_a_chunk_cut() {
        let stream =
            b"id: 7\ndata: 4a\n\n:\n\ndata: x\ndata: y\n\nid: 8\ndata: 4b\n\nid: 9\ndata: 4";
        let mut got = Vec::new();
        let (used, more) = parse_events(stream, &mut |id, p| {
            got.push((id, p.to_owned()));
            true
        })
        .unwrap();
        assert!(more);
        assert_eq!(&stream[used..], b"id: 9\ndata: 4");
        let want = [(Some(7), "4a"), (None, "x\ny"), (Some(8), "4b")];
        assert_eq!(got, want.map(|(id, p)| (id, p.to_owned())));
        // A handler that stops: the bytes after its event are left unused.
        let (used, more) = parse_events(stream, &mut |_, _| false).unwrap();
        assert!(!more);
        assert_eq!(used, b"id: 7\ndata: 4a\n\n".len());
    }

    fn event(id: Option<u64>, data: std::ops::Range<usize>, len: usize) -> Simple {
        Simple::Event { id, data, len }
    }

    #[test]
    fn the_usual_event_is_parsed_in_one_pass() {
        let buf = b"id: 42\ndata: 4hello\n\nid: 43";
        assert_eq!(simple_event(buf), event(Some(42), 13..19, 21));
        assert_eq!(simple_event(b"data: 2\n\n"), event(None, 6..7, 9));
        assert_eq!(simple_event(b"data: \n\n"), event(None, 6..6, 8));
    }

    #[test]
    fn every_prefix_of_an_event_is_incomplete() {
        let whole = b"id: 1234\ndata: 4[\"tick\"]\n\n";
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
            b"id: x\ndata: 1\n\n",
            b"id: 12345678901234567890\ndata: 1\n\n",
            b"id: 5 \ndata: 1\n\n",
            b"data: a\ndata: b\n\n",
            b"event: t64\ndata: AA==\n\n",
            b"retry: 10\n\n",
            b"id: 5\nevent: t64\ndata: AA==\n\n",
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
