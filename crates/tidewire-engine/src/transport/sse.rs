//! Server-sent events: a `text/event-stream` response down, POSTs up (see `docs/sse.md`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tokio::time::{Instant, Sleep};

use super::polling::receive_post;
use super::Transport;
use crate::config::HandshakeRequest;
use crate::engine::EngineCore;
use crate::packet::EncodedPacket;
use crate::query::query_u64;
use crate::response::ProtocolError;
use crate::session::state::{Limits, PollConflict, SessionState, SseStep};
use crate::{EngineHandler, Session, TransportKind};

pub(crate) struct Sse;

impl Transport for Sse {
    const KIND: TransportKind = TransportKind::Sse;

    async fn open<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        handshake: HandshakeRequest,
        _request: Request<Body>,
    ) -> Response<Body> {
        let session = core.create_session(Self::KIND, handshake);
        let open = core.open_packet(session.id(), Self::KIND);
        // The open packet is event 1 of the stream.
        let _ = session.send(EncodedPacket::Text(open.into()));
        core.handler.on_open(&session);
        stream_response(core, session, None)
    }

    async fn serve<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        session: Session<H::Data>,
        request: Request<Body>,
    ) -> Response<Body> {
        if let Some(ack) = query_u64(request.uri().query(), "ack") {
            if session.with_state(|s| s.ack(ack)) {
                session.wake();
            }
        }
        match *request.method() {
            Method::GET => {
                let last_event_id = request
                    .headers()
                    .get("last-event-id")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .or_else(|| query_u64(request.uri().query(), "lastEventId"));
                stream_response(core, session, last_event_id)
            }
            Method::POST => receive_post(core, &session, request.into_body()).await,
            _ => ProtocolError::BadRequest
                .response_with(Some("SSE takes GET (stream) or POST (upstream)")),
        }
    }
}

fn stream_response<H: EngineHandler>(
    core: &Arc<EngineCore<H>>,
    session: Session<H::Data>,
    last_event_id: Option<u64>,
) -> Response<Body> {
    let (stream_id, replay) = match session.with_state(|s| s.begin_sse_stream(last_event_id)) {
        Ok(started) => started,
        Err(
            PollConflict::WrongTransport
            | PollConflict::ConcurrentGet
            | PollConflict::ConcurrentPost,
        ) => {
            return ProtocolError::BadRequest.response_with(Some("this session does not use SSE"));
        }
    };
    // Wake a stream this one replaces, so it ends now.
    session.wake();
    let keepalive = core.config.sse_keepalive;
    let state = StreamState {
        session,
        stream_id,
        replay: (!replay.is_empty()).then_some(replay),
        keepalive,
        timer: Box::pin(tokio::time::sleep(keepalive)),
        last_write: Instant::now(),
        quiet_since: None,
        done: false,
    };
    let body = futures_util::stream::unfold(state, next_chunk);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache, no-transform")
        .header("x-accel-buffering", HeaderValue::from_static("no"))
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

struct StreamState<D: Send + Sync + 'static> {
    session: Session<D>,
    stream_id: u32,
    replay: Option<Bytes>,
    keepalive: Duration,
    /// One timer for the stream's life, moved only when it fires: writes just
    /// note their time, so a busy stream does not touch the timer wheel.
    timer: Pin<Box<Sleep>>,
    /// When the stream last wrote something; the keep-alive goes `keepalive` after it.
    last_write: Instant,
    /// The session's wake-up count before a write that took everything there was
    /// ([`SessionState::sse_drained`]): while it stays the same, nothing new came,
    /// and the look the HTTP writer takes right after each chunk is skipped.
    quiet_since: Option<u64>,
    done: bool,
}

async fn next_chunk<D: Send + Sync + 'static>(
    mut state: StreamState<D>,
) -> Option<(Result<Bytes, std::convert::Infallible>, StreamState<D>)> {
    if state.done {
        return None;
    }
    if let Some(replay) = state.replay.take() {
        return Some((Ok(replay), state));
    }
    let session = state.session.clone();
    loop {
        let changed = session.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let wakes = session.wakes();
        if state.quiet_since.take() != Some(wakes) {
            let limits = *session.limits();
            let (step, chunk, drained) = session.with_state(|s| {
                let (step, chunk) = write_step(s, state.stream_id, &limits);
                (step, chunk, s.sse_drained(&limits))
            });
            match step {
                SseStep::Write => {
                    state.last_write = Instant::now();
                    state.quiet_since = drained.then_some(wakes);
                    session.enforce_limits();
                    return Some((Ok(chunk), state));
                }
                SseStep::Finish => {
                    state.done = true;
                    return Some((Ok(chunk), state));
                }
                SseStep::Superseded => return None,
                SseStep::Wait => {}
            }
        }
        let timer_fired = tokio::select! {
            biased;
            _ = &mut changed => false,
            _ = state.timer.as_mut() => true,
        };
        if !timer_fired {
            // One pass of the scheduler before draining, as the WebSocket
            // writer does: broadcasts already on their way join this chunk.
            tokio::task::yield_now().await;
        }
        if timer_fired {
            let due = state.last_write + state.keepalive;
            let now = Instant::now();
            if due > now {
                // Something was written since the timer was set: wait out the rest.
                state.timer.as_mut().reset(due);
                continue;
            }
            state.last_write = now;
            state.timer.as_mut().reset(now + state.keepalive);
            return Some((Ok(Bytes::from_static(b":\n\n")), state));
        }
    }
}

/// One step of stream `stream`: what it writes now, as one chunk, which the
/// session keeps until the client confirms its events.
pub(crate) fn write_step(s: &mut SessionState, stream: u32, limits: &Limits) -> (SseStep, Bytes) {
    // One allocation for the batch: payloads, a separator each, and the lines
    // around them. A backlog larger than the stream's window is written in
    // parts: size for one.
    let (packets, bytes) = s.backlog();
    let fits = packets.min(limits.max_packets);
    let bytes = if fits < packets {
        bytes / packets * fits
    } else {
        bytes
    };
    let mut events = EventWriter::new(Vec::with_capacity(bytes + fits + 40));
    let first = s.next_event_id();
    let step = s.sse_next(stream, limits, |id, packet, shared| match shared {
        Some(piece) => events.piece(id, piece),
        None => events.packet(id, packet),
    });
    if !matches!(step, SseStep::Write | SseStep::Finish) {
        return (step, Bytes::new());
    }
    let chunk = Bytes::from(events.finish());
    s.retain_sse(first, chunk.clone());
    (step, chunk)
}

/// How a packet travels in an event stream, worked out once per channel entry
/// for all its SSE subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SsePiece {
    /// Shares a `data:` line with the packets around it, separated by 0x1E as
    /// in a polling payload: a text packet without CR, LF or 0x1E, or a binary
    /// one as `b<base64>`.
    Inline(Bytes),
    /// An event of its own: these lines (several `data:` lines, or `event: t64`
    /// and a `data:` line), each ending in LF.
    Alone(Bytes),
}

impl SsePiece {
    pub(crate) fn of(packet: &EncodedPacket) -> Self {
        match packet {
            EncodedPacket::Text(text) if !needs_own_event(text) => Self::Inline(text.clone()),
            EncodedPacket::Binary(data) => Self::Inline(Bytes::from(binary_text(data))),
            EncodedPacket::Text(text) => {
                let mut lines = Vec::new();
                own_event_lines(&mut lines, text);
                Self::Alone(Bytes::from(lines))
            }
        }
    }
}

/// Writes packets as events: consecutive inline packets share one event,
/// whose `id:` line (after its data, so it is known once the event is
/// complete) is the sequence number of its last packet.
struct EventWriter {
    out: Vec<u8>,
    /// The id of the last packet in the event being written, if one is open.
    open: Option<u64>,
}

impl EventWriter {
    fn new(out: Vec<u8>) -> Self {
        Self { out, open: None }
    }

    fn piece(&mut self, id: u64, piece: &SsePiece) {
        match piece {
            SsePiece::Inline(data) => self.inline(id, data),
            SsePiece::Alone(lines) => {
                self.close();
                self.out.extend_from_slice(lines);
                self.end_event(id);
            }
        }
    }

    fn packet(&mut self, id: u64, packet: &EncodedPacket) {
        match packet {
            // An id of 0 (the noop ending an upgraded stream) has no place in a batch.
            EncodedPacket::Text(text) if id == 0 => {
                self.close();
                own_event_lines(&mut self.out, text);
                self.end_event(id);
            }
            _ => self.piece(id, &SsePiece::of(packet)),
        }
    }

    #[inline]
    fn inline(&mut self, id: u64, data: &[u8]) {
        if self.open.is_some() {
            self.out.push(RECORD_SEPARATOR);
        } else {
            self.out.extend_from_slice(b"data: ");
        }
        self.out.extend_from_slice(data);
        self.open = Some(id);
    }

    fn close(&mut self) {
        if let Some(id) = self.open.take() {
            self.out.push(b'\n');
            self.end_event(id);
        }
    }

    /// The id line (none for id 0) and the blank line that ends an event.
    fn end_event(&mut self, id: u64) {
        if id != 0 {
            let mut digits = [0u8; 20];
            self.out.extend_from_slice(b"id: ");
            self.out.extend_from_slice(decimal(id, &mut digits));
            self.out.push(b'\n');
        }
        self.out.push(b'\n');
    }

    fn finish(mut self) -> Vec<u8> {
        self.close();
        self.out
    }
}

/// What separates packets in a batch, as in a polling payload.
const RECORD_SEPARATOR: u8 = 0x1e;

/// Where in `chunk` (events as [`write_step`] writes them) the first event with
/// an id above `confirmed` starts; the chunk's length if there is none.
pub(crate) fn event_after(chunk: &[u8], confirmed: u64) -> usize {
    let mut at = 0;
    while at < chunk.len() {
        // Events end with a blank line; their lines never hold one.
        let Some(end) = find_blank_line(&chunk[at..]) else {
            break;
        };
        // The id line, if any, is the event's last.
        let lines = &chunk[at..at + end];
        let last_line = lines
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lines, |nl| &lines[nl + 1..]);
        let id = last_line
            .strip_prefix(b"id: ")
            .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        if id > confirmed {
            return at;
        }
        at += end + 2;
    }
    chunk.len()
}

fn find_blank_line(events: &[u8]) -> Option<usize> {
    events.windows(2).position(|w| w == b"\n\n")
}

/// Encodes events as one chunk, one packet per event.
#[cfg(test)]
pub(crate) fn encode_events(events: &[(u64, EncodedPacket)]) -> Bytes {
    let mut out = EventWriter::new(Vec::new());
    for (id, packet) in events {
        out.piece(*id, &SsePiece::of(packet));
        out.close();
    }
    Bytes::from(out.finish())
}

/// Whether a text packet cannot share a `data:` line: SSE would read its CR or
/// LF as a line end, and a 0x1E as the end of the packet.
fn needs_own_event(text: &[u8]) -> bool {
    has_line_break(text) || text.contains(&RECORD_SEPARATOR)
}

fn binary_text(data: &[u8]) -> String {
    let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
    text.push('b');
    base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
    text
}

/// The lines of an event of its own for a text packet: a packet with CR or 0x1E
/// as `event: t64` and its base64, one with only LFs as one `data:` line per line.
fn own_event_lines(out: &mut Vec<u8>, text: &[u8]) {
    if text.contains(&b'\r') || text.contains(&RECORD_SEPARATOR) {
        out.extend_from_slice(b"event: t64\ndata: ");
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        out.extend_from_slice(encoded.as_bytes());
        out.push(b'\n');
    } else {
        for line in text.split(|&b| b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
}

/// Whether `text` holds a CR or an LF; eight bytes at a time (the classic
/// "word has a zero byte" test on the bytes XORed with CR and with LF).
fn has_line_break(text: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if has_zero(word ^ CRS) || has_zero(word ^ LFS) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b == b'\r' || b == b'\n')
}

/// `n` in decimal, written into `digits` without allocating.
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, packet: EncodedPacket) -> String {
        String::from_utf8(encode_events(&[(id, packet)]).to_vec()).unwrap()
    }

    /// What one write of these packets puts on the stream.
    fn batch(packets: &[(u64, EncodedPacket)], shared: bool) -> String {
        let mut out = EventWriter::new(Vec::new());
        for (id, packet) in packets {
            if shared {
                out.piece(*id, &SsePiece::of(packet));
            } else {
                out.packet(*id, packet);
            }
        }
        String::from_utf8(out.finish()).unwrap()
    }

    #[test]
    fn text_binary_and_line_breaks() {
        assert_eq!(
            event(3, EncodedPacket::message("hi")),
            "data: 4hi\nid: 3\n\n"
        );
        assert_eq!(
            event(4, EncodedPacket::message("a\nb")),
            "data: 4a\ndata: b\nid: 4\n\n"
        );
        assert_eq!(
            event(5, EncodedPacket::binary(vec![1u8, 2])),
            "data: bAQI=\nid: 5\n\n"
        );
        assert_eq!(
            event(6, EncodedPacket::message("a\rb")),
            "event: t64\ndata: NGENYg==\nid: 6\n\n"
        );
        assert_eq!(
            event(7, EncodedPacket::message("a\u{1e}b")),
            "event: t64\ndata: NGEeYg==\nid: 7\n\n"
        );
        assert_eq!(event(0, EncodedPacket::message("x")), "data: 4x\n\n");
        assert_eq!(
            event(u64::MAX, EncodedPacket::message("")),
            "data: 4\nid: 18446744073709551615\n\n"
        );
        for (text, breaks) in [
            ("", false),
            ("4abcdefghijklmnopq", false),
            ("4abcdefg\rhijklmnopq", true),
            ("4abcdefghijklmn\nopq", true),
            ("4abcdefghijklmnopq\n", true),
            ("\u{10d}\u{20a}\u{8d0a}", false),
        ] {
            assert_eq!(has_line_break(text.as_bytes()), breaks, "{text:?}");
        }
        assert_eq!(
            event(10, EncodedPacket::message("\n")),
            "data: 4\ndata: \nid: 10\n\n"
        );
    }

    #[test]
    fn packets_written_together_share_an_event_until_one_needs_its_own() {
        let packets = [
            (8, EncodedPacket::message("a")),
            (9, EncodedPacket::binary(vec![1u8, 2])),
            (10, EncodedPacket::message("b")),
            (11, EncodedPacket::message("two\nlines")),
            (12, EncodedPacket::message("c")),
            (13, EncodedPacket::message("d")),
        ];
        let want = "data: 4a\u{1e}bAQI=\u{1e}4b\nid: 10\n\n\
                    data: 4two\ndata: lines\nid: 11\n\n\
                    data: 4c\u{1e}4d\nid: 13\n\n";
        assert_eq!(batch(&packets, true), want);
        assert_eq!(batch(&packets, false), want, "shared pieces write the same");
        // The noop that ends an upgraded stream stands alone, without an id.
        let ending = [
            (14, EncodedPacket::message("e")),
            (0, EncodedPacket::control(crate::packet::PacketType::Noop)),
        ];
        assert_eq!(batch(&ending, false), "data: 4e\nid: 14\n\ndata: 6\n\n");
    }

    #[test]
    fn a_replay_starts_at_the_first_event_not_confirmed() {
        let chunk = batch(
            &[
                (2, EncodedPacket::message("a")),
                (3, EncodedPacket::message("b")),
                (4, EncodedPacket::message("x\ny")),
                (5, EncodedPacket::message("c")),
            ],
            false,
        );
        let second = "data: 4a\u{1e}4b\nid: 3\n\n".len();
        let third = second + "data: 4x\ndata: y\nid: 4\n\n".len();
        for (confirmed, at) in [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, second),
            (4, third),
            (5, chunk.len()),
            (9, chunk.len()),
        ] {
            assert_eq!(event_after(chunk.as_bytes(), confirmed), at, "{confirmed}");
        }
    }
}
