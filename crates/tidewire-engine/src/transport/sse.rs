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
        ids: IdLine::default(),
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
    /// The last `id:` line written, reused for the next (ids mostly count up by one).
    ids: IdLine,
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
            let ids = &mut state.ids;
            let limits = *session.limits();
            let (step, chunk, drained) = session.with_state(|s| {
                let (step, chunk) = write_step(s, state.stream_id, &limits, ids);
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
pub(crate) fn write_step(
    s: &mut SessionState,
    stream: u32,
    limits: &Limits,
    ids: &mut IdLine,
) -> (SseStep, Bytes) {
    // One allocation for the batch: payloads plus `id:`/`data:` lines (an id
    // line of up to 11 digits; a longer one grows the buffer once). A backlog
    // larger than the stream's window is written in parts: size for one.
    let (packets, bytes) = s.backlog();
    let fits = packets.min(limits.max_packets);
    let bytes = if fits < packets {
        bytes / packets * fits
    } else {
        bytes
    };
    let mut out = Vec::with_capacity(bytes + 24 * fits);
    let first = s.next_event_id();
    let step = s.sse_next(stream, limits, |id, packet, shared| {
        if id != 0 {
            out.extend_from_slice(ids.line(id));
        }
        match shared {
            Some(data) => out.extend_from_slice(data),
            None => write_data(&mut out, packet),
        }
    });
    if !matches!(step, SseStep::Write | SseStep::Finish) {
        return (step, Bytes::new());
    }
    let chunk = Bytes::from(out);
    s.retain_sse(first, chunk.clone());
    (step, chunk)
}

/// Where in `chunk` (events as [`write_step`] writes them) the first event with
/// an id above `confirmed` starts; the chunk's length if there is none.
pub(crate) fn event_after(chunk: &[u8], confirmed: u64) -> usize {
    let mut at = 0;
    while at < chunk.len() {
        let event = &chunk[at..];
        let id = event
            .strip_prefix(b"id: ")
            .and_then(|rest| {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                std::str::from_utf8(&rest[..digits])
                    .ok()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        if id > confirmed {
            return at;
        }
        // Events end with a blank line; their data lines never hold one.
        match event.windows(2).position(|w| w == b"\n\n") {
            Some(end) => at += end + 2,
            None => break,
        }
    }
    chunk.len()
}

/// Encodes events as one chunk (one write for a whole batch).
#[cfg(test)]
pub(crate) fn encode_events(events: &[(u64, EncodedPacket)]) -> Bytes {
    let size: usize = events.iter().map(|(_, p)| p.len() * 4 / 3 + 32).sum();
    let mut out = Vec::with_capacity(size);
    let mut ids = IdLine::default();
    for (id, packet) in events {
        if *id != 0 {
            out.extend_from_slice(ids.line(*id));
        }
        write_data(&mut out, packet);
    }
    Bytes::from(out)
}

/// `packet` as the `data:` lines of an event, with the blank line that ends
/// it: what a channel entry encodes once for every SSE stream.
pub(crate) fn data_lines(packet: &EncodedPacket) -> Bytes {
    let mut out = Vec::new();
    write_data(&mut out, packet);
    Bytes::from(out)
}

/// Appends `packet`'s `data:` lines and the blank line that ends the event.
/// A plain `Vec` (reserved once per event) rather than `BytesMut`, whose
/// every `put_slice` re-checks its reserve.
fn write_data(out: &mut Vec<u8>, packet: &EncodedPacket) {
    // data and its prefix; a base64 body (4/3 larger) grows it once more.
    out.reserve(packet.len() + 16);
    match packet {
        // The usual packet, one line: no search for CR, then for each LF.
        EncodedPacket::Text(text) if !has_line_break(text) => {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        EncodedPacket::Text(text) if text.contains(&b'\r') => {
            out.extend_from_slice(b"event: t64\ndata: ");
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'\n');
        }
        EncodedPacket::Text(text) => {
            for line in text.split(|&b| b == b'\n') {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        EncodedPacket::Binary(data) => {
            out.extend_from_slice(b"data: b");
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'\n');
        }
    }
    out.push(b'\n');
}

/// An event's `id: N` line. A stream's ids count up by one, so the next line
/// is the last one with its decimal digits incremented in place, not a
/// fresh conversion per event.
pub(crate) struct IdLine {
    /// `id: `, the digits, LF; right-aligned so a carry can grow leftwards.
    text: [u8; 26],
    /// Where `id: ` starts in `text`.
    start: usize,
    last: u64,
}

impl Default for IdLine {
    fn default() -> Self {
        Self {
            text: [0; 26],
            start: 0,
            // No line rendered yet: the first `line` call renders.
            last: u64::MAX,
        }
    }
}

impl IdLine {
    const PREFIX: &'static [u8] = b"id: ";

    /// The line for `id`.
    #[inline]
    fn line(&mut self, id: u64) -> &[u8] {
        if self.last.checked_add(1) == Some(id) && self.increment() {
            self.last = id;
        } else {
            self.render(id);
        }
        &self.text[self.start..]
    }

    /// Adds one to the digits in place; false when every digit was 9 (the
    /// line grows a digit: render it afresh).
    #[inline]
    fn increment(&mut self) -> bool {
        let digits = self.start + Self::PREFIX.len()..self.text.len() - 1;
        for at in digits.rev() {
            if self.text[at] == b'9' {
                self.text[at] = b'0';
            } else {
                self.text[at] += 1;
                return true;
            }
        }
        false
    }

    fn render(&mut self, id: u64) {
        let mut digits = [0u8; 20];
        let digits = decimal(id, &mut digits);
        let end = self.text.len();
        self.text[end - 1] = b'\n';
        let digits_at = end - 1 - digits.len();
        self.text[digits_at..end - 1].copy_from_slice(digits);
        self.start = digits_at - Self::PREFIX.len();
        self.text[self.start..digits_at].copy_from_slice(Self::PREFIX);
        self.last = id;
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

    #[test]
    fn text_binary_and_line_breaks() {
        assert_eq!(
            event(3, EncodedPacket::message("hi")),
            "id: 3\ndata: 4hi\n\n"
        );
        assert_eq!(
            event(4, EncodedPacket::message("a\nb")),
            "id: 4\ndata: 4a\ndata: b\n\n"
        );
        assert_eq!(
            event(5, EncodedPacket::binary(vec![1u8, 2])),
            "id: 5\ndata: bAQI=\n\n"
        );
        assert_eq!(
            event(6, EncodedPacket::message("a\rb")),
            "id: 6\nevent: t64\ndata: NGENYg==\n\n"
        );
        assert_eq!(event(0, EncodedPacket::message("x")), "data: 4x\n\n");
        assert_eq!(
            event(u64::MAX, EncodedPacket::message("")),
            "id: 18446744073709551615\ndata: 4\n\n"
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
            "id: 10\ndata: 4\ndata: \n\n"
        );
    }

    #[test]
    fn id_lines_count_up_in_place_and_jump_anywhere() {
        let mut ids = IdLine::default();
        let mut check = |id: u64| {
            assert_eq!(ids.line(id), format!("id: {id}\n").as_bytes(), "{id}");
        };
        for id in (1..=1_100).chain(9_990..10_010).chain([5, 6, 99, 100, 101]) {
            check(id);
        }
        for id in [u64::MAX - 1, u64::MAX, 0, 1, 18_446_744_073_709_551_614] {
            check(id);
        }
    }
}
