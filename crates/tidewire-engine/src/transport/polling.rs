//! HTTP long-polling: GET waits for packets, POST carries packets up.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::Transport;
use crate::config::HandshakeRequest;
use crate::engine::EngineCore;
use crate::packet::{decode_payload, encode_payload, EncodedPacket, PacketType};
use crate::query::query_u64;
use crate::response::{text_response, ProtocolError};
use crate::session::state::{PollAnswer, PollConflict};
use crate::{CloseReason, EngineHandler, Session, TransportKind};

pub(crate) struct Polling;

/// The sequence number of the last packet in a poll answer, for clients that
/// confirm with `ack=` (tidewire's extension; see docs/engine.md).
pub(crate) const SEQ_HEADER: &str = "x-tidewire-seq";

impl Transport for Polling {
    const KIND: TransportKind = TransportKind::Polling;

    async fn open<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        handshake: HandshakeRequest,
        _request: Request<Body>,
    ) -> Response<Body> {
        let session = core.create_session(Self::KIND, handshake);
        let open = core.open_packet(session.id(), Self::KIND);
        core.handler.on_open(&session);
        text_response(StatusCode::OK, open)
    }

    async fn serve<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        session: Session<H::Data>,
        request: Request<Body>,
    ) -> Response<Body> {
        match *request.method() {
            Method::GET => poll(session, query_u64(request.uri().query(), "ack")).await,
            Method::POST => receive_post(core, &session, request.into_body()).await,
            _ => ProtocolError::BadRequest.response_with(Some("long-polling takes GET or POST")),
        }
    }
}

/// Ends the session's poll when the GET's future finishes or is dropped (client gone).
struct PollGuard<'a, D: Send + Sync + 'static>(&'a Session<D>, u32);

impl<D: Send + Sync + 'static> Drop for PollGuard<'_, D> {
    fn drop(&mut self) {
        self.0.with_state(|s| s.end_poll(self.1));
    }
}

/// A GET: wait until there is something to say, then say all of it.
async fn poll<D: Send + Sync + 'static>(session: Session<D>, ack: Option<u64>) -> Response<Body> {
    let poll = match session.with_state(|s| s.begin_poll(ack)) {
        Ok(poll) => poll,
        Err(PollConflict::ConcurrentGet) => {
            tracing::debug!(sid = %session.id(), "second concurrent poll: closing session");
            session.close(CloseReason::ParseError);
            return ProtocolError::BadRequest
                .response_with(Some("a poll is already pending for this session"));
        }
        Err(_) => {
            return ProtocolError::BadRequest
                .response_with(Some("this session no longer uses long-polling"));
        }
    };
    // A replaced GET must stop waiting.
    session.wake();
    let _guard = PollGuard(&session, poll);
    let answer = loop {
        let changed = session.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(answer) = session.with_state(|s| s.poll_answer(poll)) {
            break answer;
        }
        changed.await;
    };
    let (body, last_seq) = match answer {
        PollAnswer::Packets { packets, last_seq } => {
            if last_seq.is_some() {
                session.enforce_limits();
            }
            (encode_payload(&packets), last_seq)
        }
        PollAnswer::Noop => (
            encode_payload(&[EncodedPacket::control(PacketType::Noop)]),
            None,
        ),
        PollAnswer::Closed => (
            encode_payload(&[EncodedPacket::control(PacketType::Close)]),
            None,
        ),
    };
    let mut response = text_response(StatusCode::OK, body);
    if let Some(seq) = last_seq {
        response.headers_mut().insert(SEQ_HEADER, seq.into());
    }
    response
}

/// A POST carrying packets up (long-polling and SSE share it).
pub(crate) async fn receive_post<H: EngineHandler>(
    core: &Arc<EngineCore<H>>,
    session: &Session<H::Data>,
    body: Body,
) -> Response<Body> {
    let transport = session.transport();
    if let Err(conflict) = session.with_state(|s| s.begin_post(transport)) {
        if conflict == PollConflict::ConcurrentPost {
            session.close(CloseReason::ParseError);
        }
        return ProtocolError::BadRequest.response_with(Some(match conflict {
            PollConflict::ConcurrentPost => "a POST is already in progress for this session",
            _ => "this session no longer accepts POSTs",
        }));
    }
    let response = read_and_apply(core, session, body).await;
    session.with_state(|s| s.end_post());
    response
}

async fn read_and_apply<H: EngineHandler>(
    core: &Arc<EngineCore<H>>,
    session: &Session<H::Data>,
    body: Body,
) -> Response<Body> {
    let max = core.config.max_payload;
    let bytes: Bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            if error.is::<http_body_util::LengthLimitError>() {
                session.close(CloseReason::PayloadTooLarge);
                return text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("payload larger than maxPayload ({max} bytes); the session is closed"),
                );
            }
            session.close(CloseReason::TransportError);
            return ProtocolError::BadRequest
                .response_with(Some("could not read the request body"));
        }
    };
    for packet in decode_payload(bytes) {
        match packet {
            Ok(packet) => core.on_packet(session, packet),
            Err(error) => {
                tracing::debug!(sid = %session.id(), %error, "bad packet in POST");
                session.close(CloseReason::ParseError);
                return ProtocolError::BadRequest.response_with(Some(&error.to_string()));
            }
        }
        if session.is_closed() {
            break;
        }
        // Event handlers start inline; a POST of many packets must still let other tasks run.
        tokio::task::consume_budget().await;
    }
    text_response(StatusCode::OK, "ok")
}
