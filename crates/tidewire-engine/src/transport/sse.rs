//! Server-sent events: a `text/event-stream` response down, POSTs up (see `docs/sse.md`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::polling::receive_post;
use super::Transport;
use crate::config::HandshakeRequest;
use crate::engine::EngineCore;
use crate::packet::EncodedPacket;
use crate::query::query_u64;
use crate::response::ProtocolError;
use crate::session::state::{PollConflict, SseStep};
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
            session.with_state(|s| s.ack(ack));
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
    let state = StreamState {
        session,
        stream_id,
        replay: (!replay.is_empty()).then(|| encode_events(&replay)),
        keepalive: core.config.sse_keepalive,
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
        match session.with_state(|s| s.sse_next(state.stream_id)) {
            SseStep::Write(events) => return Some((Ok(encode_events(&events)), state)),
            SseStep::Finish(events) => {
                state.done = true;
                return Some((Ok(encode_events(&events)), state));
            }
            SseStep::Superseded => return None,
            SseStep::Wait => {}
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep(state.keepalive) => {
                return Some((Ok(Bytes::from_static(b":\n\n")), state));
            }
        }
    }
}

/// Encodes events as one chunk (one write for a whole batch).
fn encode_events(events: &[(u64, EncodedPacket)]) -> Bytes {
    let size: usize = events.iter().map(|(_, p)| p.len() * 4 / 3 + 32).sum();
    let mut out = BytesMut::with_capacity(size);
    for (id, packet) in events {
        write_event(&mut out, *id, packet);
    }
    out.freeze()
}

fn write_event(out: &mut BytesMut, id: u64, packet: &EncodedPacket) {
    if id != 0 {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    match packet {
        EncodedPacket::Text(text) if text.contains(&b'\r') => {
            out.put_slice(b"event: t64\ndata: ");
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            out.put_slice(encoded.as_bytes());
            out.put_u8(b'\n');
        }
        EncodedPacket::Text(text) => {
            for line in text.split(|&b| b == b'\n') {
                out.put_slice(b"data: ");
                out.put_slice(line);
                out.put_u8(b'\n');
            }
        }
        EncodedPacket::Binary(data) => {
            out.put_slice(b"data: b");
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            out.put_slice(encoded.as_bytes());
            out.put_u8(b'\n');
        }
    }
    out.put_u8(b'\n');
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
    }
}
