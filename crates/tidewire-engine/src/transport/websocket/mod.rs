//! WebSocket: a session on one connection both ways, opened directly or by upgrading an HTTP session.
//!
//! tidewire speaks RFC 6455 itself (see `docs/websocket.md` for why): the
//! server frames are written straight from the session's shared packet bytes,
//! and an idle connection keeps no buffers beyond a small read buffer.

mod conn;
mod frame;
mod handshake;
mod upgrade;

use std::sync::Arc;

use axum::body::Body;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use super::Transport;
use crate::config::HandshakeRequest;
use crate::engine::EngineCore;
use crate::packet::EncodedPacket;
use crate::response::ProtocolError;
use crate::session::state::ProbeRefused;
use crate::{EngineHandler, Session, TransportKind};

pub(crate) struct WebSocket;

impl Transport for WebSocket {
    const KIND: TransportKind = TransportKind::WebSocket;

    async fn open<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        handshake: HandshakeRequest,
        mut request: Request<Body>,
    ) -> Response<Body> {
        let accept = match check_upgrade(&request) {
            Ok(accept) => accept,
            Err(response) => return *response,
        };
        let on_upgrade = upgrade::PendingUpgrade::take(&mut request);
        let session = core.create_session(Self::KIND, handshake);
        let open = core.open_packet(session.id(), Self::KIND);
        // The open packet is the first thing the connection writes.
        let _ = session.send(EncodedPacket::Text(open.into()));
        core.handler.on_open(&session);
        let conn = conn::Connection::direct(core.clone(), session);
        tokio::spawn(conn.run(on_upgrade));
        switching_protocols(accept)
    }

    async fn serve<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        session: Session<H::Data>,
        mut request: Request<Body>,
    ) -> Response<Body> {
        let accept = match check_upgrade(&request) {
            Ok(accept) => accept,
            Err(response) => return *response,
        };
        if !core.config.allow_upgrades {
            return ProtocolError::BadRequest
                .response_with(Some("upgrades are disabled on this server"));
        }
        let probe =
            session.with_state(|s| s.begin_probe(std::time::Instant::now(), session.limits()));
        let conn_id = match probe {
            Ok(conn_id) => conn_id,
            Err(ProbeRefused::Closed) => return ProtocolError::UnknownSid.response(),
            Err(ProbeRefused::AlreadyUpgraded) => {
                return ProtocolError::BadRequest
                    .response_with(Some("session already uses WebSocket"))
            }
            Err(ProbeRefused::ProbeInProgress) => {
                return ProtocolError::BadRequest
                    .response_with(Some("an upgrade is already in progress"))
            }
        };
        let on_upgrade = upgrade::PendingUpgrade::take(&mut request);
        let conn = conn::Connection::probe(core.clone(), session, conn_id);
        tokio::spawn(conn.run(on_upgrade));
        switching_protocols(accept)
    }
}

/// Validates an RFC 6455 opening handshake; returns the `Sec-WebSocket-Accept` value,
/// or a 400 answer saying what is missing.
fn check_upgrade(request: &Request<Body>) -> Result<String, Box<Response<Body>>> {
    let headers = request.headers();
    let bad = |why: &str| Err(Box::new(ProtocolError::BadRequest.response_with(Some(why))));
    if request.method() != Method::GET {
        return bad("a WebSocket handshake is a GET");
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return bad("transport=websocket needs an `Upgrade: websocket` request");
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return bad("transport=websocket needs `Connection: Upgrade`");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return bad("only WebSocket version 13 is supported");
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(handshake::accept_key(key.as_bytes())),
        _ => bad("missing Sec-WebSocket-Key"),
    }
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn switching_protocols(accept: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_default()
}
