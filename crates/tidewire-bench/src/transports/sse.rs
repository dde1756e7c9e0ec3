//! tidewire's SSE transport (docs/sse.md): downstream is one `text/event-stream`
//! response, upstream is POSTs as in polling. Every POST carries `ack=<last id>`; when
//! nothing else is queued the writer POSTs a noop `6` every `SSE_ACK_MS` (1000 ms;
//! env `TIDEWIRE_BENCH_SSE_ACK_MS`) while unconfirmed events exist, and after every
//! [`CONFIRM_AFTER_EVENTS`] events, so the server can drop what it retains for
//! resumption: the bundled client's policy (client-js/src/transports/sse.js). Each client
//! runs its timer and counts its events at a phase of its own, as that client does.

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
        next: NextId::default(),
    };
    let (_, open) = events.next().await?;
    let sid = sid_of(&open).ok_or_else(|| format!("no sid in {open:?}"))?;
    // Every client of a room receives the same events at the same moment: confirming at
    // the same ids (or on timers started together), they would all POST at once, and
    // the burst shows in everyone's latency. Each client confirms at its own phase.
    let phase = spread(&sid);
    let offset = phase % CONFIRM_AFTER_EVENTS;
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
        loop {
            let handled = events.drain(|id, p| {
                if let Some(id) = id {
                    received.last.store(id, Relaxed);
                    if id % CONFIRM_AFTER_EVENTS == offset {
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

/// The id the next event most likely has (the last one plus one; a stream's ids count
/// up by one) as its id line's text, so that a matching line is read with one
/// comparison instead of a parse, digit by digit, of a multiply-add chain.
struct NextId {
    value: u64,
    /// The digits and the line's `\n`.
    line: [u8; 21],
    len: usize,
}

impl Default for NextId {
    fn default() -> Self {
        let mut next = NextId {
            value: 0,
            line: [0; 21],
            len: 0,
        };
        next.set(1);
        next
    }
}

impl NextId {
    fn set(&mut self, value: u64) {
        let digits = value.to_string();
        self.value = value;
        self.len = digits.len() + 1;
        self.line[..digits.len()].copy_from_slice(digits.as_bytes());
        self.line[digits.len()] = b'\n';
    }

    /// Counts on to the id after the one just read.
    #[inline]
    fn advance(&mut self) {
        for at in (0..self.len - 1).rev() {
            if self.line[at] == b'9' {
                self.line[at] = b'0';
            } else {
                self.line[at] += 1;
                self.value += 1;
                return;
            }
        }
        self.set(self.value + 1); // all nines: one more digit
    }
}

/// The usual event in one forward pass: the id line is compared with the expected
/// one (or its digits parsed where they stand), and the line end after the data
/// (found eight bytes at a time: an event's data is a few dozen bytes, too short for
/// `memchr`'s setup to pay) is also the event's end.
#[inline(always)]
fn simple_event(buf: &[u8], next: &mut NextId) -> Simple {
    const ID: &[u8] = b"id: ";
    const DATA: &[u8] = b"data: ";
    let mut at = 0;
    let mut id = None;
    if buf.starts_with(ID) && buf[ID.len()..].starts_with(&next.line[..next.len]) {
        at = ID.len() + next.len;
        id = Some(next.value);
    } else if buf.starts_with(ID) {
        at = ID.len();
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
    let Some(eol) = line_end(&buf[start..]).map(|i| start + i) else {
        return Simple::Incomplete;
    };
    match buf.get(eol + 1) {
        None => Simple::Incomplete,
        Some(b'\n') => {
            match id {
                Some(id) if id == next.value => next.advance(),
                Some(id) => next.set(id.wrapping_add(1)),
                None => {}
            }
            Simple::Event {
                id,
                data: start..eol,
                len: eol + 2,
            }
        }
        Some(_) => Simple::Other,
    }
}

/// The index of the first `\n` in `buf`, eight bytes at a time.
#[inline]
fn line_end(buf: &[u8]) -> Option<usize> {
    const LF: u64 = u64::from_ne_bytes([b'\n'; 8]);
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let words = buf.chunks_exact(8);
    let tail = words.remainder();
    for (i, word) in words.enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let word = u64::from_le_bytes(bytes) ^ LF;
        // A zero byte of `word` (an LF of `buf`) sets its high bit here; the lowest
        // one marks the first LF (borrows only run upwards from it).
        let found = word.wrapping_sub(LOW) & !word & HIGH;
        if found != 0 {
            return Some(i * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let at = buf.len() - tail.len();
    tail.iter().position(|&b| b == b'\n').map(|i| at + i)
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
    next: NextId,
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
    fn drain(&mut self, mut f: impl FnMut(Option<u64>, &[u8]) -> bool) -> Result<bool, String> {
        if let Some(range) = self.chunk.take() {
            let chunk = &self.conn.buf[range];
            let (used, go_on) = parse_events(chunk, &mut self.next, &mut f)?;
            // Kept for the next chunk (or the next call, if `f` stopped).
            self.data.extend_from_slice(&chunk[used..]);
            if !go_on {
                return Ok(false);
            }
            if self.data.is_empty() {
                return Ok(true);
            }
        }
        let (used, go_on) = parse_events(&self.data[self.at..], &mut self.next, &mut f)?;
        self.at += used;
        Ok(go_on)
    }

    /// The next event, owned (the handshake's open packet).
    async fn next(&mut self) -> Result<(Option<u64>, String), String> {
        loop {
            let mut first = None;
            self.drain(|id, p| {
                first = Some((id, String::from_utf8_lossy(p).into_owned()));
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
    next: &mut NextId,
    f: &mut impl FnMut(Option<u64>, &[u8]) -> bool,
) -> Result<(usize, bool), String> {
    let mut at = 0;
    loop {
        let unread = &buf[at..];
        match simple_event(unread, next) {
            Simple::Event { id, data, len } => {
                at += len;
                if !f(id, &unread[data]) {
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
    f: &mut impl FnMut(Option<u64>, &[u8]) -> bool,
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
        (Some(one), 1, false) => f(id, one),
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
            f(id, &text)
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
    use super::{parse_events, simple_event, NextId, Simple};

    #[test]
    fn events_are_parsed_up_to_the_one_a_chunk_cut() {
        let stream =
            b"id: 7\ndata: 4a\n\n:\n\ndata: x\ndata: y\n\nid: 8\ndata: 4b\n\nid: 9\ndata: 4";
        let mut got = Vec::new();
        let (used, more) = parse_events(stream, &mut NextId::default(), &mut |id, p| {
            got.push((id, String::from_utf8_lossy(p).into_owned()));
            true
        })
        .unwrap();
        assert!(more);
        assert_eq!(&stream[used..], b"id: 9\ndata: 4");
        let want = [(Some(7), "4a"), (None, "x\ny"), (Some(8), "4b")];
        assert_eq!(got, want.map(|(id, p)| (id, p.to_owned())));
        // A handler that stops: the bytes after its event are left unused.
        let (used, more) = parse_events(stream, &mut NextId::default(), &mut |_, _| false).unwrap();
        assert!(!more);
        assert_eq!(used, b"id: 7\ndata: 4a\n\n".len());
    }

    fn event(id: Option<u64>, data: std::ops::Range<usize>, len: usize) -> Simple {
        Simple::Event { id, data, len }
    }

    #[test]
    fn the_usual_event_is_parsed_in_one_pass() {
        let buf = b"id: 42\ndata: 4hello\n\nid: 43";
        assert_eq!(
            simple_event(buf, &mut NextId::default()),
            event(Some(42), 13..19, 21)
        );
        assert_eq!(
            simple_event(b"data: 2\n\n", &mut NextId::default()),
            event(None, 6..7, 9)
        );
        assert_eq!(
            simple_event(b"data: \n\n", &mut NextId::default()),
            event(None, 6..6, 8)
        );
    }

    #[test]
    fn ids_are_read_whether_or_not_they_count_up_by_one() {
        let mut stream = Vec::new();
        let ids = [1u64, 2, 9, 10, 11, 99, 100, 101, 7, 8, 999_999, 1_000_000];
        for id in ids {
            stream.extend_from_slice(format!("id: {id}\ndata: 4x\n\n").as_bytes());
        }
        let mut got = Vec::new();
        let (used, _) = parse_events(&stream, &mut NextId::default(), &mut |id, _| {
            got.push(id.unwrap());
            true
        })
        .unwrap();
        assert_eq!((used, got), (stream.len(), ids.to_vec()));
        // An id that only starts like the expected one is not taken for it.
        let mut next = NextId::default();
        next.set(12);
        assert_eq!(
            simple_event(b"id: 123\ndata: 4x\n\n", &mut next),
            event(Some(123), 14..16, 18)
        );
        assert_eq!(next.value, 124);
    }

    #[test]
    fn line_ends_are_found_at_every_offset() {
        for len in 0..40 {
            for lf in 0..=len {
                let mut buf = vec![b'x'; len];
                if lf < len {
                    buf[lf] = b'\n';
                    // A byte just above LF must not be taken for one.
                    buf[..lf].fill(0x0b);
                }
                let want = (lf < len).then_some(lf);
                assert_eq!(super::line_end(&buf), want, "len {len} lf {lf}");
            }
        }
    }

    #[test]
    fn every_prefix_of_an_event_is_incomplete() {
        let whole = b"id: 1234\ndata: 4[\"tick\"]\n\n";
        for cut in 0..whole.len() {
            assert_eq!(
                simple_event(&whole[..cut], &mut NextId::default()),
                Simple::Incomplete,
                "cut {cut}"
            );
        }
        assert!(matches!(
            simple_event(whole, &mut NextId::default()),
            Simple::Event { .. }
        ));
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
                simple_event(other, &mut NextId::default()),
                Simple::Other,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
