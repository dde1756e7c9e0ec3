//! The server handle, its options, and the bridge from the engine.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tidewire_engine::{
    CloseReason, Engine, EngineConfig, EngineHandler, EngineLayer, EngineService, Message, Session,
    Sid, StaticAsset,
};

use crate::ack::AckReplies;
use crate::adapter::{Adapter, AdapterContext, IntoRooms, LocalAdapter, RemoteSocket};
use crate::broadcast::BroadcastOperator;
use crate::error::{AdapterError, BroadcastError};
use crate::extensions::Extensions;
use crate::handler;
use crate::namespace::{DynamicNamespace, Namespace, NsHandlers, NsPredicate};
use crate::packet::{self, DecodeLimits, Packet, PacketError, PacketType, PartialPacket};
use crate::payload::Payload;
use crate::recovery::{RecoveryStore, Restored};
use crate::socket::{DisconnectReason, Resume, Socket, SocketRecovery};

/// The bundled browser client (`client-js/dist/tidewire.js`), served at `<path>tidewire.js`.
const CLIENT_BUNDLE: &str = include_str!("../../../client-js/dist/tidewire.js");

type AdapterFactory = Arc<dyn Fn(AdapterContext) -> Arc<dyn Adapter> + Send + Sync>;

/// Socket.IO options (the engine's are in [`SocketIoConfig::engine`]).
///
/// ```
/// let config = tidewire::SocketIoConfig::default();
/// assert_eq!(config.max_attachments, 10);
/// assert_eq!(config.engine.path, "/socket.io/");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SocketIoConfig {
    /// Engine.IO options (path, heartbeat, payload and queue limits, CORS).
    pub engine: EngineConfig,
    /// How long `emit_with_ack` waits by default; 10 s.
    pub ack_timeout: Duration,
    /// Most binary attachments in one packet; more closes the client; 10.
    pub max_attachments: usize,
    /// How long a new connection may stay without joining any namespace
    /// before it is closed; 45 s (`connectTimeout` in Node).
    pub connect_timeout: Duration,
    /// Whether the bundled browser client is served at `<path>tidewire.js`; true.
    pub serve_client: bool,
    /// Connection state recovery; off unless set.
    pub recovery: Option<crate::RecoveryConfig>,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            ack_timeout: Duration::from_secs(10),
            max_attachments: 10,
            connect_timeout: Duration::from_secs(45),
            serve_client: true,
            recovery: None,
        }
    }
}

/// Builds a [`SocketIo`].
///
/// ```
/// use std::time::Duration;
/// #[derive(Clone)]
/// struct AppState { motd: &'static str }
/// let io = tidewire::SocketIo::builder()
///     .path("/realtime/")
///     .ping_interval(Duration::from_secs(10))
///     .ack_timeout(Duration::from_secs(3))
///     .with_state(AppState { motd: "hi" })
///     .build();
/// assert_eq!(io.state::<AppState>().unwrap().motd, "hi");
/// ```
pub struct SocketIoBuilder {
    config: SocketIoConfig,
    state: Extensions,
    adapter: AdapterFactory,
}

impl std::fmt::Debug for SocketIoBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for SocketIoBuilder {
    fn default() -> Self {
        Self {
            config: SocketIoConfig::default(),
            state: Extensions::default(),
            adapter: Arc::new(|ctx| Arc::new(LocalAdapter::new(ctx))),
        }
    }
}

impl SocketIoBuilder {
    /// Replaces every option.
    ///
    /// ```
    /// let mut config = tidewire::SocketIoConfig::default();
    /// config.max_attachments = 3;
    /// let io = tidewire::SocketIo::builder().config(config).build();
    /// assert_eq!(io.config().max_attachments, 3);
    /// ```
    pub fn config(mut self, config: SocketIoConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the engine options.
    ///
    /// ```
    /// let engine = tidewire_engine::EngineConfig::builder().max_sessions(1000).build();
    /// let io = tidewire::SocketIo::builder().engine_config(engine).build();
    /// ```
    pub fn engine_config(mut self, engine: EngineConfig) -> Self {
        self.config.engine = engine;
        self
    }

    /// Where the server is mounted; default `/socket.io/`.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().path("rt").build();
    /// assert_eq!(io.config().engine.path, "/rt/");
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.engine.path = EngineConfig::builder().path(path).build().path;
        self
    }

    /// Heartbeat interval; default 25 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let io = tidewire::SocketIo::builder().ping_interval(Duration::from_secs(10)).build();
    /// ```
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.engine.ping_interval = interval;
        self
    }

    /// Heartbeat answer deadline; default 20 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let io = tidewire::SocketIo::builder().ping_timeout(Duration::from_secs(5)).build();
    /// ```
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.config.engine.ping_timeout = timeout;
        self
    }

    /// Largest message in bytes; default 1,000,000.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().max_payload(64 * 1024).build();
    /// ```
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.config.engine.max_payload = bytes;
        self
    }

    /// Default acknowledgement timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let io = tidewire::SocketIo::builder().ack_timeout(Duration::from_secs(2)).build();
    /// assert_eq!(io.config().ack_timeout, Duration::from_secs(2));
    /// ```
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// Most binary attachments in one packet.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().max_attachments(2).build();
    /// assert_eq!(io.config().max_attachments, 2);
    /// ```
    pub fn max_attachments(mut self, n: usize) -> Self {
        self.config.max_attachments = n;
        self
    }

    /// How long a connection may stay without joining a namespace.
    ///
    /// ```
    /// use std::time::Duration;
    /// let io = tidewire::SocketIo::builder().connect_timeout(Duration::from_secs(10)).build();
    /// assert_eq!(io.config().connect_timeout, Duration::from_secs(10));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Turns on connection state recovery: a client that drops and comes back
    /// within the window gets its socket id, rooms and extensions back, and
    /// every packet it missed, in order (see `docs/recovery.md`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let io = tidewire::SocketIo::builder()
    ///     .recovery(tidewire::RecoveryConfig::default().window(Duration::from_secs(60)))
    ///     .build();
    /// assert!(io.config().recovery.is_some());
    /// ```
    pub fn recovery(mut self, config: crate::RecoveryConfig) -> Self {
        self.config.recovery = Some(config);
        self
    }

    /// Whether to serve the bundled browser client at `<path>tidewire.js`
    /// (default true), so a page needs only `<script src="/socket.io/tidewire.js">`.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().serve_client(false).build();
    /// assert!(!io.config().serve_client);
    /// ```
    pub fn serve_client(mut self, on: bool) -> Self {
        self.config.serve_client = on;
        self
    }

    /// Adds app-wide state, reachable from handlers with
    /// [`Socket::state`] and [`SocketIo::state`]; one value per type.
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct Db(std::sync::Arc<Vec<String>>);
    /// let io = tidewire::SocketIo::builder().with_state(Db(Default::default())).build();
    /// assert!(io.state::<Db>().is_some());
    /// ```
    pub fn with_state<T: Clone + Send + Sync + 'static>(self, state: T) -> Self {
        self.state.insert(state);
        self
    }

    /// Characters every Engine.IO session id starts with; a cluster adapter
    /// sets its node tag here so any node can tell where a session lives.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().sid_prefix("n1").build();
    /// assert_eq!(io.config().engine.sid_prefix, "n1");
    /// ```
    pub fn sid_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.engine.sid_prefix = prefix.into();
        self
    }

    /// Chooses the adapter: `factory` makes one per namespace.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder()
    ///     .adapter(|ctx| std::sync::Arc::new(tidewire::LocalAdapter::new(ctx)))
    ///     .build();
    /// ```
    pub fn adapter<F>(mut self, factory: F) -> Self
    where
        F: Fn(AdapterContext) -> Arc<dyn Adapter> + Send + Sync + 'static,
    {
        self.adapter = Arc::new(factory);
        self
    }

    /// Builds the server. The main namespace `/` exists from the start (with
    /// no connect handler until [`SocketIo::ns`] gives it one).
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().build();
    /// assert!(io.of("/").is_some());
    /// ```
    pub fn build(self) -> SocketIo {
        let mut engine_config = self.config.engine.clone();
        if self.config.serve_client {
            engine_config.assets.push(StaticAsset::new(
                "tidewire.js",
                "text/javascript; charset=utf-8",
                CLIENT_BUNDLE.as_bytes(),
            ));
        }
        let inner = Arc::new(ServerInner {
            config: self.config,
            state: self.state,
            adapter_factory: self.adapter,
            namespaces: RwLock::default(),
            dynamic: RwLock::default(),
            engine: OnceLock::new(),
        });
        let root = Namespace::create("/", inner.clone(), NsHandlers::with_connect(None));
        inner.namespaces.write().insert(Arc::from("/"), root);
        let engine = Engine::new(
            engine_config,
            SocketIoHandler {
                server: inner.clone(),
            },
        );
        let _ = inner.engine.set(engine);
        SocketIo(inner)
    }
}

pub(crate) struct ServerInner {
    pub(crate) config: SocketIoConfig,
    pub(crate) state: Extensions,
    pub(crate) adapter_factory: AdapterFactory,
    namespaces: RwLock<HashMap<Arc<str>, Namespace>>,
    dynamic: RwLock<Vec<(NsPredicate, DynamicNamespace)>>,
    engine: OnceLock<Engine<SocketIoHandler>>,
}

impl ServerInner {
    fn namespace(self: &Arc<Self>, name: &str) -> Option<Namespace> {
        if let Some(ns) = self.namespaces.read().get(name) {
            return Some(ns.clone());
        }
        let handlers = {
            let dynamic = self.dynamic.read();
            dynamic
                .iter()
                .find(|(matches, _)| matches(name))
                .map(|(_, d)| d.handlers.clone())?
        };
        let mut namespaces = self.namespaces.write();
        let ns = namespaces
            .entry(Arc::from(name))
            .or_insert_with(|| Namespace::create(name, self.clone(), handlers));
        Some(ns.clone())
    }
}

/// A Socket.IO server. Cheap to clone; mount it in axum with
/// [`SocketIo::router`] or [`SocketIo::layer`].
///
/// The server lives as long as the process (its engine and namespaces refer
/// to each other); [`SocketIo::shutdown`] closes every connection.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use tidewire::{Socket, SocketIo};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let io = SocketIo::new();
/// io.ns("/", |socket: Socket| async move {
///     socket.on("ping", |socket, data: serde_json::Value, ack| async move {
///         let _ = ack.send(&data);
///         let _ = socket.emit("pong", data);
///     });
/// });
/// let app = Router::new()
///     .route("/health", get(|| async { "ok" }))
///     .merge(io.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIo(pub(crate) Arc<ServerInner>);

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.0.config)
            .field("namespaces", &self.0.namespaces.read().len())
            .finish()
    }
}

impl Default for SocketIo {
    fn default() -> Self {
        Self::new()
    }
}

impl SocketIo {
    /// A server with the default options.
    ///
    /// ```
    /// let io = tidewire::SocketIo::new();
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a [`SocketIoBuilder`].
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().max_attachments(4).build();
    /// ```
    pub fn builder() -> SocketIoBuilder {
        SocketIoBuilder::default()
    }

    /// The options.
    ///
    /// ```
    /// assert_eq!(tidewire::SocketIo::new().config().engine.path, "/socket.io/");
    /// ```
    pub fn config(&self) -> &SocketIoConfig {
        &self.0.config
    }

    fn engine(&self) -> &Engine<SocketIoHandler> {
        // Set in `build`, before the handle exists.
        self.0
            .engine
            .get()
            .expect("engine is set by SocketIoBuilder::build")
    }

    /// Declares namespace `name` (or sets the connect handler of an existing
    /// one, like `/`). `on_connect` runs for every accepted socket; register
    /// its event handlers there.
    ///
    /// ```no_run
    /// let io = tidewire::SocketIo::new();
    /// io.ns("/chat", |socket| async move {
    ///     socket.on("message", |socket, text: String, _ack| async move {
    ///         let _ = socket.broadcast().emit("message", text).await;
    ///     });
    /// });
    /// ```
    pub fn ns<F, Fut>(&self, name: &str, on_connect: F) -> Namespace
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = normalize_ns(name);
        let connect = handler::connect_fn(on_connect);
        let mut namespaces = self.0.namespaces.write();
        if let Some(ns) = namespaces.get(name.as_str()) {
            ns.set_connect_handler(connect);
            return ns.clone();
        }
        let ns = Namespace::create(
            &name,
            self.0.clone(),
            NsHandlers::with_connect(Some(connect)),
        );
        namespaces.insert(Arc::from(name.as_str()), ns.clone());
        ns
    }

    /// Declares a dynamic namespace: every name `matches` accepts gets its own
    /// [`Namespace`] on first connection, sharing `on_connect` and the
    /// middlewares added to the returned [`DynamicNamespace`].
    ///
    /// ```no_run
    /// let io = tidewire::SocketIo::new();
    /// io.dynamic_ns(|name| name.starts_with("/team-"), |socket| async move {
    ///     let team = socket.ns_name().trim_start_matches("/team-").to_owned();
    ///     let _ = socket.emit("welcome", team);
    /// });
    /// ```
    pub fn dynamic_ns<P, F, Fut>(&self, matches: P, on_connect: F) -> DynamicNamespace
    where
        P: Fn(&str) -> bool + Send + Sync + 'static,
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let dynamic = DynamicNamespace {
            handlers: NsHandlers::with_connect(Some(handler::connect_fn(on_connect))),
        };
        self.0
            .dynamic
            .write()
            .push((Box::new(matches), dynamic.clone()));
        dynamic
    }

    /// An existing namespace (a static one, or a dynamic child already created).
    ///
    /// ```
    /// let io = tidewire::SocketIo::new();
    /// io.ns("/chat", |_socket| async move {});
    /// assert_eq!(io.of("chat").unwrap().name(), "/chat");
    /// assert!(io.of("/nope").is_none());
    /// ```
    pub fn of(&self, name: &str) -> Option<Namespace> {
        self.0
            .namespaces
            .read()
            .get(normalize_ns(name).as_str())
            .cloned()
    }

    /// The main namespace `/`.
    ///
    /// ```
    /// assert_eq!(tidewire::SocketIo::new().root().name(), "/");
    /// ```
    pub fn root(&self) -> Namespace {
        match self.0.namespaces.read().get("/") {
            Some(ns) => ns.clone(),
            // `/` is created in `build` and never removed.
            None => unreachable!("the main namespace always exists"),
        }
    }

    /// App-wide state given to [`SocketIoBuilder::with_state`].
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder().with_state(42u32).build();
    /// assert_eq!(io.state::<u32>(), Some(42));
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.state.get::<T>()
    }

    /// An axum router serving Socket.IO at the configured path; merge it into your app.
    ///
    /// ```
    /// let io = tidewire::SocketIo::new();
    /// let app: axum::Router = axum::Router::new().merge(io.router());
    /// ```
    pub fn router(&self) -> axum::Router {
        self.engine().router()
    }

    /// A tower layer serving Socket.IO at its path and passing other requests on.
    ///
    /// ```no_run
    /// let io = tidewire::SocketIo::new();
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "home" }))
    ///     .layer(io.layer());
    /// ```
    pub fn layer(&self) -> EngineLayer<SocketIoHandler> {
        self.engine().layer()
    }

    /// The server as a tower service answering every request it gets.
    ///
    /// ```
    /// let io = tidewire::SocketIo::new();
    /// let app: axum::Router = axum::Router::new().route_service("/socket.io/", io.service());
    /// ```
    pub fn service(&self) -> EngineService<SocketIoHandler> {
        self.engine().service()
    }

    /// Closes every connection (their sockets disconnect with "server
    /// shutting down") and refuses new ones.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        self.engine().shutdown().await;
    }

    /// Open Engine.IO connections.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{} connections", io.connection_count());
    /// # Ok(()) }
    /// ```
    pub fn connection_count(&self) -> usize {
        self.engine().session_count()
    }

    // ----- operators on the main namespace -----

    /// Targets sockets of `/` in `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.to("lobby").emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.root().to(rooms)
    }

    /// Same as [`SocketIo::to`].
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.within("lobby").emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn within(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.root().to(rooms)
    }

    /// Targets sockets of `/` not in `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.except("muted").emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.root().except(rooms)
    }

    /// A volatile broadcast on `/`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.volatile().emit("tick", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn volatile(&self) -> BroadcastOperator {
        self.root().volatile()
    }

    /// A broadcast on `/` to this node's sockets only.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.local().emit("tick", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn local(&self) -> BroadcastOperator {
        self.root().local()
    }

    /// A broadcast on `/` whose acknowledgements are awaited for `timeout`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let replies = io.timeout(Duration::from_secs(1)).emit_with_ack::<u8>("ready?", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.root().timeout(timeout)
    }

    /// Emits to every socket of `/`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.emit("announcement", "hello everyone").await?;
    /// # Ok(()) }
    /// ```
    pub fn emit(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<(), BroadcastError>> + Send + 'static {
        self.root().emit(event, data)
    }

    /// Emits to every socket of `/` and collects their acknowledgements.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// let replies = io.emit_with_ack::<String>("name?", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn emit_with_ack<T: DeserializeOwned + Send + 'static>(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<AckReplies<T>, BroadcastError>> + Send + 'static {
        self.root().emit_with_ack(event, data)
    }

    /// Every socket of `/`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{} sockets on /", io.fetch_sockets().await?.len());
    /// # Ok(()) }
    /// ```
    pub async fn fetch_sockets(&self) -> Result<Vec<RemoteSocket>, AdapterError> {
        self.root().fetch_sockets().await
    }

    /// Makes every socket of `/` join `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.sockets_join("everyone").await?;
    /// # Ok(()) }
    /// ```
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.root().sockets_join(rooms).await
    }

    /// Makes every socket of `/` leave `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.sockets_leave("everyone").await?;
    /// # Ok(()) }
    /// ```
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.root().sockets_leave(rooms).await
    }

    /// Disconnects every socket of `/`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.disconnect_sockets().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect_sockets(&self) -> Result<(), AdapterError> {
        self.root().disconnect_sockets().await
    }
}

fn normalize_ns(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

impl Namespace {
    fn set_connect_handler(&self, connect: handler::ConnectFn) {
        *self.handlers().connect_slot().write() = Some(connect);
    }
}

/// Per-connection state: the sockets this client opened (one per namespace)
/// and a binary packet waiting for its attachments.
///
/// ```
/// fn of(io: &tidewire::SocketIo) -> tidewire_engine::EngineService<tidewire::SocketIoHandler> { io.service() }
/// ```
#[derive(Default)]
pub struct ConnData(Mutex<ConnState>);

#[derive(Default)]
struct ConnState {
    sockets: Vec<Socket>,
    partial: Option<PartialPacket>,
    closed: bool,
}

impl ConnData {
    pub(crate) fn remove_socket(&self, matches: impl Fn(&Socket) -> bool) {
        self.0.lock().sockets.retain(|s| !matches(s));
    }

    pub(crate) fn sockets(&self) -> Vec<Socket> {
        self.0.lock().sockets.clone()
    }

    fn find(&self, ns: &str) -> Option<Socket> {
        self.0
            .lock()
            .sockets
            .iter()
            .find(|s| s.ns_name() == ns)
            .cloned()
    }
}

impl std::fmt::Debug for ConnData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.lock();
        f.debug_struct("ConnData")
            .field("sockets", &state.sockets.len())
            .field("partial", &state.partial.is_some())
            .finish()
    }
}

/// The engine handler behind [`SocketIo`]: turns engine messages into
/// Socket.IO packets. Appears in the types of [`SocketIo::layer`] and
/// [`SocketIo::service`]; there is nothing to do with it directly.
///
/// ```no_run
/// let io = tidewire::SocketIo::new();
/// let service: tidewire_engine::EngineService<tidewire::SocketIoHandler> = io.service();
/// ```
pub struct SocketIoHandler {
    server: Arc<ServerInner>,
}

impl std::fmt::Debug for SocketIoHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoHandler").finish_non_exhaustive()
    }
}

impl EngineHandler for SocketIoHandler {
    type Data = ConnData;

    fn on_open(&self, session: &Session<ConnData>) {
        // One short-lived timer per new connection: close it if it never joins
        // a namespace (an Engine.IO-only client holding a session for nothing).
        let weak = session.downgrade();
        let timeout = self.server.config.connect_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(session) = weak.upgrade() else {
                return;
            };
            let idle = {
                let state = session.data().0.lock();
                !state.closed && state.sockets.is_empty()
            };
            if idle {
                tracing::debug!(sid = %session.id(), "no namespace joined within connect_timeout: closing");
                session.close(CloseReason::ForcedClose);
            }
        });
    }

    fn on_message(&self, session: &Session<ConnData>, message: Message) {
        let limits = DecodeLimits {
            max_attachments: self.server.config.max_attachments,
        };
        match message {
            Message::Text(text) => {
                let packet = match Packet::decode(text.as_str(), &limits) {
                    Ok(packet) => packet,
                    Err(e) => return protocol_error(session, e),
                };
                let waiting = session
                    .data()
                    .0
                    .lock()
                    .partial
                    .as_ref()
                    .map(|p| p.missing());
                if let Some(missing) = waiting {
                    return protocol_error(session, PacketError::MissingAttachments(missing));
                }
                if packet.kind.is_binary() && packet.attachments > 0 {
                    session.data().0.lock().partial = Some(PartialPacket::new(&packet));
                    return;
                }
                let payload = Payload::with_attachments(
                    packet.data.clone().unwrap_or(Value::Null),
                    Vec::new(),
                );
                self.dispatch(
                    session,
                    packet.kind,
                    packet.namespace,
                    packet.id,
                    packet.data,
                    payload,
                );
            }
            Message::Binary(bytes) => {
                let step = {
                    let mut state = session.data().0.lock();
                    match state.partial.as_mut() {
                        None => Err(PacketError::UnexpectedBinary),
                        Some(partial) => match partial.push(bytes) {
                            Ok(true) => Ok(state.partial.take()),
                            Ok(false) => Ok(None),
                            Err(e) => Err(e),
                        },
                    }
                };
                match step {
                    Err(e) => protocol_error(session, e),
                    Ok(None) => {}
                    Ok(Some(partial)) => match partial.finish() {
                        Ok((header, payload)) => self.dispatch(
                            session,
                            header.kind,
                            &header.namespace,
                            header.id,
                            None,
                            payload,
                        ),
                        Err(e) => protocol_error(session, e),
                    },
                }
            }
        }
    }

    fn on_close(&self, session: &Session<ConnData>, reason: CloseReason) {
        let sockets = {
            let mut state = session.data().0.lock();
            state.closed = true;
            state.partial = None;
            std::mem::take(&mut state.sockets)
        };
        let reason = DisconnectReason::from(reason);
        for socket in sockets {
            socket.close_with(reason, false);
        }
    }
}

impl SocketIoHandler {
    fn dispatch(
        &self,
        session: &Session<ConnData>,
        kind: PacketType,
        namespace: &str,
        id: Option<u64>,
        data: Option<Value>,
        payload: Payload,
    ) {
        let conn = session.data();
        match kind {
            PacketType::Connect => self.connect(session, namespace, data),
            PacketType::Disconnect => {
                if let Some(socket) = conn.find(namespace) {
                    socket.close_with(DisconnectReason::ClientNamespaceDisconnect, false);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let Some(socket) = conn.find(namespace) else {
                    return not_connected(session, namespace);
                };
                match payload.split_event() {
                    Some((event, args)) => socket.on_event(event, args, id),
                    None => protocol_error(
                        session,
                        PacketError::InvalidPayload {
                            kind,
                            why: "expected an array starting with the event name",
                        },
                    ),
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(socket) = conn.find(namespace) else {
                    return not_connected(session, namespace);
                };
                if let Some(id) = id {
                    socket.on_ack(id, payload);
                }
            }
            PacketType::ConnectError => protocol_error(
                session,
                PacketError::InvalidPayload {
                    kind,
                    why: "clients do not send CONNECT_ERROR",
                },
            ),
        }
    }

    fn connect(&self, session: &Session<ConnData>, namespace: &str, auth: Option<Value>) {
        if session.data().find(namespace).is_some() {
            // socket.io-client sends a second CONNECT when `connect()` is called
            // on a socket that is already connecting: harmless, ignore it.
            tracing::debug!(sid = %session.id(), namespace, "ignoring a second CONNECT for the same namespace");
            return;
        }
        let Some(ns) = self.server.namespace(namespace) else {
            let _ = session.send(packet::encode_connect_error(
                namespace,
                "Invalid namespace",
                None,
            ));
            return;
        };
        let auth = auth.unwrap_or_else(|| Value::Object(Default::default()));
        let (id, recovery) = match ns.recovery() {
            None => (Sid::generate(), None),
            Some(store) => match resume(store, &ns, &auth) {
                Resolved::Here(id, recovery) => (id, recovery),
                Resolved::Elsewhere { pid, offset } => {
                    // Kept by another node of the cluster (or by none): ask the
                    // adapter before the socket gets its id.
                    let session = session.clone();
                    tokio::spawn(async move {
                        let (id, recovery) = resume_remote(&ns, pid, offset).await;
                        start_socket(ns, &session, auth, id, recovery);
                    });
                    return;
                }
            },
        };
        start_socket(ns, session, auth, id, recovery);
    }
}

/// Creates the socket for a CONNECT and runs its connect sequence.
fn start_socket(
    ns: Namespace,
    session: &Session<ConnData>,
    auth: Value,
    id: Sid,
    recovery: Option<Box<SocketRecovery>>,
) {
    {
        let socket = Socket::new(ns, session.clone(), auth, id, recovery);
        {
            let mut state = session.data().0.lock();
            if state.closed {
                return;
            }
            state.sockets.push(socket.clone());
        }
        tokio::spawn(socket.run_connect());
    }
}

/// Where a CONNECT's recovery state comes from.
enum Resolved {
    /// Settled on this node: a fresh pair, or a session this node knows.
    Here(Sid, Option<Box<SocketRecovery>>),
    /// A token this node does not know: another node may have kept it.
    Elsewhere { pid: Sid, offset: Option<String> },
}

fn fresh_recovery() -> (Sid, Option<Box<SocketRecovery>>) {
    (
        Sid::generate(),
        Some(SocketRecovery::new(Sid::generate(), None)),
    )
}

/// Looks a recovery token up on the other nodes (through the adapter) and
/// checks this node's log can replay what the client missed.
async fn resume_remote(
    ns: &Namespace,
    pid: Sid,
    offset: Option<String>,
) -> (Sid, Option<Box<SocketRecovery>>) {
    let kept = match ns.adapter().take_remote_session(pid).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return fresh_recovery(),
        Err(error) => {
            tracing::warn!(%error, "could not look a recovery token up in the cluster: fresh session");
            return fresh_recovery();
        }
    };
    let from = match offset.as_deref() {
        None => kept.connected_at,
        Some(text) => match text.strip_prefix('@').unwrap_or(text).parse::<u64>() {
            Ok(from) => from,
            Err(_) => return fresh_recovery(),
        },
    };
    let Some(store) = ns.recovery() else {
        return fresh_recovery();
    };
    if let Err(miss) = store.check_remote(from, Duration::from_secs(2)).await {
        tracing::info!(
            ?miss,
            "connection state not recovered across nodes: fresh session"
        );
        return fresh_recovery();
    }
    let restored = Restored {
        sid: kept.sid,
        rooms: kept.rooms,
        extensions: Extensions::default(),
        from,
    };
    let resume = Resume {
        offset,
        takeover: None,
        cleanup: None,
        restored: Some(restored),
    };
    (kept.sid, Some(SocketRecovery::new(pid, Some(resume))))
}

/// Picks the socket id and recovery state for a CONNECT: a fresh pair, or,
/// for a client coming back with a known token, its old id and session.
fn resume(store: &RecoveryStore, ns: &Namespace, auth: &Value) -> Resolved {
    let fresh = || {
        let (id, recovery) = fresh_recovery();
        Resolved::Here(id, recovery)
    };
    let Some((pid, offset)) = resume_token(auth) else {
        return fresh();
    };
    match store.sid_for(pid) {
        // The previous socket is still connected, or its state is being persisted:
        // take it over, then restore (in the new socket's connect task).
        Some((sid, Some(cleanup))) => {
            let resume = Resume {
                offset,
                takeover: ns.get_socket(&sid),
                cleanup: Some(cleanup),
                restored: None,
            };
            Resolved::Here(sid, Some(SocketRecovery::new(pid, Some(resume))))
        }
        Some((_, None)) => match store.restore(pid, offset.as_deref()) {
            Ok(restored) => {
                let sid = restored.sid;
                let resume = Resume {
                    offset,
                    takeover: None,
                    cleanup: None,
                    restored: Some(restored),
                };
                Resolved::Here(sid, Some(SocketRecovery::new(pid, Some(resume))))
            }
            Err(miss) => {
                tracing::info!(?miss, "connection state not recovered: fresh session");
                fresh()
            }
        },
        None => Resolved::Elsewhere { pid, offset },
    }
}

/// The `pid` and `offset` a recovering client puts in its CONNECT auth.
fn resume_token(auth: &Value) -> Option<(Sid, Option<String>)> {
    let pid = auth.get("pid")?.as_str()?.parse::<Sid>().ok()?;
    let offset = auth
        .get("offset")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((pid, offset))
}

fn protocol_error(session: &Session<ConnData>, error: PacketError) {
    tracing::debug!(sid = %session.id(), %error, "closing connection: malformed Socket.IO packet");
    session.close(CloseReason::ParseError);
}

fn not_connected(session: &Session<ConnData>, namespace: &str) {
    tracing::debug!(sid = %session.id(), namespace, "packet for a namespace the client has not joined: closing");
    session.close(CloseReason::ParseError);
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<SocketIo>();
    check::<Socket>();
    check::<Namespace>();
}
