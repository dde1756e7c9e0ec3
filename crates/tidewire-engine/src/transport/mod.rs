//! Transports: each one carries a session's packets over one kind of HTTP exchange.
//!
//! A transport only moves bytes: it opens sessions (handshake) and serves
//! requests for existing ones, feeding the session state machine and writing
//! what it queues. Session rules (heartbeat, queue limits, upgrade order,
//! close) live in [`crate::session`], so a new transport touches none of them.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, Response};

use crate::config::HandshakeRequest;
use crate::engine::EngineCore;
use crate::{EngineHandler, Session, TransportKind};

pub(crate) mod kind;
pub(crate) mod polling;
pub(crate) mod sse;
pub(crate) mod websocket;

/// One way of carrying a session.
pub(crate) trait Transport {
    /// The name clients use in `transport=`.
    const KIND: TransportKind;

    /// Starts a session on this transport (a request without `sid`).
    fn open<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        handshake: HandshakeRequest,
        request: Request<Body>,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// Serves a request for an existing session.
    fn serve<H: EngineHandler>(
        core: &Arc<EngineCore<H>>,
        session: Session<H::Data>,
        request: Request<Body>,
    ) -> impl Future<Output = Response<Body>> + Send;
}
