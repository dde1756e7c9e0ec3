//! The engine: owns the sessions, routes requests to transports, runs the heartbeat.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{header, Method, Request, Response, StatusCode};
use parking_lot::RwLock;

use crate::config::{EngineConfig, HandshakeRequest, StaticAsset};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::packet::Packet;
use crate::query::EngineQuery;
use crate::response::{apply_cors, origin_allowed, preflight, text_response, ProtocolError};
use crate::session::state::{Limits, Tick};
use crate::session::{Session, SessionOwner};
use crate::transport::{polling::Polling, sse::Sse, websocket::WebSocket, Transport};
use crate::{CloseReason, EngineHandler, Message, Sid, TransportKind};

/// What every session shares: limits and counters (kept apart from the
/// handler type so sessions need not know it).
#[derive(Debug)]
pub(crate) struct EngineShared {
    pub limits: Limits,
    pub metrics: Metrics,
}

pub(crate) struct EngineCore<H: EngineHandler> {
    pub config: EngineConfig,
    pub shared: Arc<EngineShared>,
    pub handler: H,
    sessions: RwLock<HashMap<Sid, Session<H::Data>>>,
    shutting_down: AtomicBool,
    heartbeat_started: AtomicBool,
    weak: Weak<Self>,
}

/// An Engine.IO v4 server: mount it in an axum app with [`Engine::router`].
///
/// ```no_run
/// use tidewire_engine::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Session};
///
/// struct Echo;
/// impl EngineHandler for Echo {
///     type Data = ();
///     fn on_open(&self, _: &Session<()>) {}
///     fn on_message(&self, session: &Session<()>, message: Message) {
///         let _ = session.send_message(message);
///     }
///     fn on_close(&self, _: &Session<()>, _: CloseReason) {}
/// }
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let engine = Engine::new(EngineConfig::default(), Echo);
/// let app = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .merge(engine.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
/// # Ok(()) }
/// ```
pub struct Engine<H: EngineHandler>(pub(crate) Arc<EngineCore<H>>);

impl<H: EngineHandler> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<H: EngineHandler> std::fmt::Debug for Engine<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.0.config)
            .field("sessions", &self.0.sessions.read().len())
            .finish()
    }
}

impl<H: EngineHandler> Engine<H> {
    /// Creates an engine that reports sessions to `handler`.
    pub fn new(config: EngineConfig, handler: H) -> Self {
        let limits = Limits {
            max_packets: config.max_buffered_packets,
            max_bytes: config.max_buffered_bytes,
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            upgrade_timeout: config.upgrade_timeout,
        };
        Self(Arc::new_cyclic(|weak| EngineCore {
            config,
            shared: Arc::new(EngineShared {
                limits,
                metrics: Metrics::default(),
            }),
            handler,
            sessions: RwLock::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            heartbeat_started: AtomicBool::new(false),
            weak: weak.clone(),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.0.config
    }

    /// The handler given to [`Engine::new`].
    pub fn handler(&self) -> &H {
        &self.0.handler
    }

    /// An axum router serving the engine at its configured path; merge it into your app.
    pub fn router(&self) -> axum::Router {
        let service = self.service();
        let path = self.0.config.path.clone();
        axum::Router::new()
            .route_service(&path, service.clone())
            .route_service(&format!("{path}{{*rest}}"), service)
    }

    /// The engine as a tower `Service` answering every request it gets.
    pub fn service(&self) -> crate::service::EngineService<H> {
        crate::service::EngineService::new(self.clone())
    }

    /// A tower `Layer` that serves the engine's path and passes every other request on.
    pub fn layer(&self) -> crate::service::EngineLayer<H> {
        crate::service::EngineLayer::new(self.clone())
    }

    /// Looks up an open session.
    pub fn session(&self, sid: &Sid) -> Option<Session<H::Data>> {
        self.0.session(sid)
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.0.sessions.read().len()
    }

    /// The engine's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.0.shared.metrics.snapshot()
    }

    /// Refuses new sessions and closes every open one with
    /// [`CloseReason::ServerShutdown`] (a close packet reaches each client that
    /// has a live transport), then waits up to two seconds for WebSocket
    /// connections to flush.
    pub async fn shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
        let sessions: Vec<_> = self.0.sessions.read().values().cloned().collect();
        for session in &sessions {
            session.close(CloseReason::ServerShutdown);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.0.shared.metrics.websocket_connections.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Serves one HTTP request addressed to the engine.
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        self.0.clone().handle(request).await
    }
}

impl<H: EngineHandler> SessionOwner<H::Data> for EngineCore<H> {
    fn session_closed(&self, session: &Session<H::Data>, reason: CloseReason) {
        let removed = {
            let mut sessions = self.sessions.write();
            match sessions.get(&session.id()) {
                Some(current) if current == session => sessions.remove(&session.id()).is_some(),
                _ => false,
            }
        };
        if removed {
            self.shared.metrics.sessions_closed.incr();
        }
        self.handler.on_close(session, reason);
    }
}

impl<H: EngineHandler> EngineCore<H> {
    async fn handle(self: Arc<Self>, request: Request<Body>) -> Response<Body> {
        let origin = request.headers().get(header::ORIGIN).cloned();
        let mut response = self.route(request).await;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            apply_cors(&self.config, origin.as_ref(), &mut response);
        }
        response
    }

    async fn route(self: &Arc<Self>, request: Request<Body>) -> Response<Body> {
        if request.method() == Method::OPTIONS {
            return preflight(&self.config, request.headers());
        }
        if let Some(asset) = self.asset_for(request.uri().path()) {
            return serve_asset(asset, &request);
        }
        let query = EngineQuery::parse(request.uri().query());
        if query.eio != Some("4") {
            return ProtocolError::UnsupportedProtocolVersion
                .response_with(Some("tidewire speaks Engine.IO v4: send EIO=4"));
        }
        let kind = match query
            .transport
            .and_then(|t| t.parse::<TransportKind>().ok())
        {
            Some(kind) if self.transport_enabled(kind) => kind,
            _ => return ProtocolError::UnknownTransport.response(),
        };
        if !origin_allowed(&self.config, request.headers()) {
            return ProtocolError::Forbidden.response_with(Some("origin not allowed"));
        }
        let Some(sid) = query.sid else {
            return self.handshake(kind, request).await;
        };
        let Some(session) = sid.parse::<Sid>().ok().and_then(|sid| self.session(&sid)) else {
            return ProtocolError::UnknownSid.response();
        };
        match kind {
            TransportKind::Polling => Polling::serve(self, session, request).await,
            TransportKind::WebSocket => WebSocket::serve(self, session, request).await,
            TransportKind::Sse => Sse::serve(self, session, request).await,
        }
    }

    fn asset_for(&self, path: &str) -> Option<&StaticAsset> {
        let name = path.strip_prefix(self.config.path.as_str())?;
        self.config.assets.iter().find(|a| a.name() == name)
    }

    fn transport_enabled(&self, kind: TransportKind) -> bool {
        match kind {
            TransportKind::Polling => self.config.allow_polling,
            TransportKind::WebSocket => self.config.allow_websocket,
            TransportKind::Sse => self.config.allow_sse,
        }
    }

    async fn handshake(
        self: &Arc<Self>,
        kind: TransportKind,
        request: Request<Body>,
    ) -> Response<Body> {
        if request.method() != Method::GET {
            return ProtocolError::BadHandshakeMethod.response();
        }
        if self.shutting_down.load(Ordering::SeqCst) {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "server shutting down");
        }
        if self.sessions.read().len() >= self.config.max_sessions {
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many sessions: the server's max_sessions limit is reached",
            );
        }
        let handshake = HandshakeRequest {
            headers: owned_headers(request.headers()),
            query: request.uri().query().map(str::to_owned),
            remote_addr: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        };
        if let Some(allow) = &self.config.allow_request {
            if let Err(message) = allow(&handshake) {
                return ProtocolError::Forbidden.response_with(Some(&message));
            }
        }
        match kind {
            TransportKind::Polling => Polling::open(self, handshake, request).await,
            TransportKind::WebSocket => WebSocket::open(self, handshake, request).await,
            TransportKind::Sse => Sse::open(self, handshake, request).await,
        }
    }

    pub(crate) fn session(&self, sid: &Sid) -> Option<Session<H::Data>> {
        self.sessions.read().get(sid).cloned()
    }

    /// Creates and registers a session; the transport queues or answers the open packet.
    pub(crate) fn create_session(
        &self,
        kind: TransportKind,
        handshake: HandshakeRequest,
    ) -> Session<H::Data> {
        self.start_heartbeat();
        let owner: Weak<dyn SessionOwner<H::Data>> = self.weak.clone();
        let sid = if self.config.sid_prefix.is_empty() {
            Sid::generate()
        } else {
            Sid::generate_with_prefix(&self.config.sid_prefix)
        };
        let session = Session::new(
            sid,
            kind,
            self.shared.clone(),
            owner,
            handshake,
            H::Data::default(),
        );
        self.sessions.write().insert(session.id(), session.clone());
        self.shared.metrics.sessions_opened.incr();
        session
    }

    /// The open packet's text for a session on `kind`.
    pub(crate) fn open_packet(&self, sid: Sid, kind: TransportKind) -> String {
        let upgrades: &[&str] =
            if kind.is_http() && self.config.allow_upgrades && self.config.allow_websocket {
                &["websocket"]
            } else {
                &[]
            };
        let body = serde_json::json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.max_payload,
        });
        format!("0{body}")
    }

    /// Applies one packet the client sent.
    pub(crate) fn on_packet(&self, session: &Session<H::Data>, packet: Packet) {
        match packet {
            Packet::Message(text) => self.handler.on_message(session, Message::Text(text)),
            Packet::Binary(data) => self.handler.on_message(session, Message::Binary(data)),
            Packet::Pong(_) => session.with_state(|s| s.on_pong(Instant::now(), session.limits())),
            Packet::Close => session.close(CloseReason::TransportClose),
            Packet::Noop | Packet::Ping(_) => {}
            Packet::Open(_) | Packet::Upgrade => {
                tracing::debug!(sid = %session.id(), "unexpected packet from client");
                session.close(CloseReason::ParseError);
            }
        }
    }

    fn start_heartbeat(&self) {
        if self.heartbeat_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = self.weak.clone();
        let limits = self.shared.limits;
        let period = (limits.ping_interval.min(limits.ping_timeout) / 8)
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut timed_out = Vec::new();
            loop {
                interval.tick().await;
                let Some(core) = weak.upgrade() else { return };
                core.sweep(&mut timed_out);
            }
        });
    }

    /// One heartbeat pass over every session: queue due pings, close the silent.
    fn sweep(&self, timed_out: &mut Vec<Session<H::Data>>) {
        let now = Instant::now();
        let limits = self.shared.limits;
        {
            let sessions = self.sessions.read();
            for session in sessions.values() {
                match session.with_state(|s| s.tick(now, &limits)) {
                    Tick::Nothing => {}
                    Tick::PingQueued | Tick::ProbeExpired => session.wake(),
                    Tick::PingTimeout => timed_out.push(session.clone()),
                }
            }
        }
        for session in timed_out.drain(..) {
            session.close(CloseReason::PingTimeout);
        }
    }
}

/// Copies headers into their own allocations. hyper's header values are
/// slices of its connection read buffer (16 KiB); keeping a clone for the
/// session's lifetime would keep that whole buffer alive per session.
fn owned_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut owned = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut copy) = http::HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            owned.append(name.clone(), copy);
        }
    }
    owned
}

/// Answers a static asset, or 304 when the client's copy is current.
fn serve_asset(asset: &StaticAsset, request: &Request<Body>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only");
    }
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == asset.etag());
    let builder = Response::builder()
        .header(header::ETAG, asset.etag().clone())
        .header(header::CACHE_CONTROL, "public, max-age=600");
    let response = if fresh {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        let body = if request.method() == Method::HEAD {
            Body::empty()
        } else {
            Body::from(asset.body().clone())
        };
        builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, asset.content_type())
            .header(header::CONTENT_LENGTH, asset.body().len())
            .body(body)
    };
    response.unwrap_or_default()
}
