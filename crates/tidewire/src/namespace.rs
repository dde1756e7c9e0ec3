//! Namespaces: independent channels multiplexed over one connection.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tidewire_engine::Sid;

use crate::ack::AckReplies;
use crate::adapter::{Adapter, AdapterContext, BroadcastOptions, IntoRooms, RemoteSocket};
use crate::broadcast::BroadcastOperator;
use crate::error::{AdapterError, BroadcastError, ConnectError};
use crate::handler::{self, ConnectFn, MiddlewareFn};
use crate::recovery::RecoveryStore;
use crate::server::ServerInner;
use crate::socket::Socket;

/// What a namespace does on connect: middlewares, then the connect handler.
/// Shared by the children of a dynamic namespace.
#[derive(Default)]
pub(crate) struct NsHandlers {
    connect: RwLock<Option<ConnectFn>>,
    middlewares: RwLock<Vec<MiddlewareFn>>,
}

impl NsHandlers {
    pub(crate) fn connect_slot(&self) -> &RwLock<Option<ConnectFn>> {
        &self.connect
    }

    pub(crate) fn with_connect(connect: Option<ConnectFn>) -> Arc<Self> {
        Arc::new(Self {
            connect: RwLock::new(connect),
            middlewares: RwLock::default(),
        })
    }
}

pub(crate) struct NsInner {
    name: Arc<str>,
    server: Arc<ServerInner>,
    handlers: Arc<NsHandlers>,
    pub(crate) sockets: RwLock<HashMap<Sid, Socket>>,
    pub(crate) adapter: Arc<dyn Adapter>,
    ack_ids: AtomicU64,
    pub(crate) recovery: Option<RecoveryStore>,
    server_side: RwLock<Option<ServerSideFn>>,
}

/// A handler for events other nodes send with [`Namespace::server_side_emit`].
pub(crate) type ServerSideFn = Arc<
    dyn Fn(String, crate::Payload) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// A namespace (`/`, `/chat`, or a child of a dynamic namespace). Cheap to clone.
///
/// Broadcast to its sockets, run server-wide operations on them, add
/// middlewares.
///
/// ```no_run
/// # async fn demo(io: tidewire::SocketIo) -> Result<(), tidewire::BroadcastError> {
/// let chat = io.ns("/chat", |_socket| async move {});
/// chat.to("lobby").emit("news", "hello lobby").await?;
/// chat.emit("news", "hello everyone").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Namespace(pub(crate) Arc<NsInner>);

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.0.name)
            .field("sockets", &self.0.sockets.read().len())
            .finish()
    }
}

impl Namespace {
    /// Tags the engine channels of this namespace's rooms, so a socket leaving
    /// the namespace leaves all of them at once.
    pub(crate) fn channel_group(&self) -> u64 {
        Arc::as_ptr(&self.0) as usize as u64
    }
}

impl Namespace {
    pub(crate) fn create(name: &str, server: Arc<ServerInner>, handlers: Arc<NsHandlers>) -> Self {
        let name: Arc<str> = Arc::from(name);
        let inner = Arc::new_cyclic(|weak| {
            let ctx = AdapterContext {
                ns: weak.clone(),
                name: name.clone(),
            };
            let adapter = (server.adapter_factory)(ctx);
            let recovery = server.config.recovery.clone().map(RecoveryStore::new);
            NsInner {
                recovery,
                name,
                server,
                handlers,
                sockets: RwLock::default(),
                adapter,
                ack_ids: AtomicU64::new(0),
                server_side: RwLock::new(None),
            }
        });
        let ns = Self(inner);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let init = ns.clone();
            handle.spawn(async move {
                if let Err(error) = init.adapter().init().await {
                    tracing::error!(namespace = %init.name(), %error, "adapter init failed");
                }
            });
        }
        ns
    }

    /// The name (`/`, `/chat`).
    ///
    /// ```
    /// let io = tidewire::SocketIo::new();
    /// assert_eq!(io.root().name(), "/");
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// This namespace's adapter.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// let ids = ns.adapter().sockets(vec!["lobby".into()]).await?;
    /// # Ok(()) }
    /// ```
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.0.adapter
    }

    pub(crate) fn server(&self) -> &Arc<ServerInner> {
        &self.0.server
    }

    pub(crate) fn recovery(&self) -> Option<&RecoveryStore> {
        self.0.recovery.as_ref()
    }

    pub(crate) fn next_ack_id(&self) -> u64 {
        self.0.ack_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn middlewares(&self) -> Vec<MiddlewareFn> {
        self.0.handlers.middlewares.read().clone()
    }

    pub(crate) fn handlers(&self) -> &NsHandlers {
        &self.0.handlers
    }

    pub(crate) fn connect_handler(&self) -> Option<ConnectFn> {
        self.0.handlers.connect.read().clone()
    }

    /// Adds a connect middleware: it runs (in order with the others) before
    /// a client joins, sees the handshake (auth, headers, query, address),
    /// may attach data to the socket, and refuses with a [`ConnectError`],
    /// which the client receives as a `connect_error` with its message and data.
    /// The socket is not connected yet while middlewares run: it cannot emit.
    ///
    /// ```no_run
    /// use tidewire::{ConnectError, SocketIo};
    /// let io = SocketIo::new();
    /// io.ns("/admin", |_socket| async move {}).middleware(|socket| async move {
    ///     if socket.auth()["token"] == "s3cret" {
    ///         Ok(())
    ///     } else {
    ///         Err(ConnectError::new("forbidden").with_data(serde_json::json!({"hint": "send a token"})))
    ///     }
    /// });
    /// ```
    pub fn middleware<F, Fut>(self, middleware: F) -> Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.0
            .handlers
            .middlewares
            .write()
            .push(handler::middleware_fn(middleware));
        self
    }

    /// A socket of this node by id.
    ///
    /// ```no_run
    /// # fn demo(ns: tidewire::Namespace, id: tidewire::Sid) {
    /// if let Some(socket) = ns.get_socket(&id) {
    ///     let _ = socket.emit("direct", "hi");
    /// }
    /// # }
    /// ```
    pub fn get_socket(&self, id: &Sid) -> Option<Socket> {
        self.0.sockets.read().get(id).cloned()
    }

    /// The sockets connected to this node.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// for socket in ns.local_sockets() {
    ///     let _ = socket.emit("hello", ());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn local_sockets(&self) -> Vec<Socket> {
        self.0.sockets.read().values().cloned().collect()
    }

    /// How many sockets are connected to this node.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{} connected", ns.socket_count());
    /// # Ok(()) }
    /// ```
    pub fn socket_count(&self) -> usize {
        self.0.sockets.read().len()
    }

    fn operator(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone(), BroadcastOptions::default())
    }

    /// Targets sockets in `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.to("lobby").emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Same as [`Namespace::to`].
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.within(["a", "b"]).emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn within(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Targets every socket except those in `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.except("muted").emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().except(rooms)
    }

    /// A broadcast that may be dropped for clients that are not ready.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.volatile().emit("tick", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn volatile(&self) -> BroadcastOperator {
        self.operator().volatile()
    }

    /// A broadcast to this node's sockets only.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.local().emit("tick", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn local(&self) -> BroadcastOperator {
        self.operator().local()
    }

    /// A broadcast whose acknowledgements are awaited for `timeout`.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let replies = ns.timeout(Duration::from_secs(1)).emit_with_ack::<u32>("load?", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.operator().timeout(timeout)
    }

    /// Sends `event` with `data` to the other nodes of a cluster (not to
    /// clients): their [`Namespace::on_server_side`] handler runs. A no-op on
    /// a single node.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.root().server_side_emit("cache:invalidate", "user:42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn server_side_emit(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> Result<(), AdapterError> {
        let args = crate::Payload::from_serialize(&data)
            .map_err(|e| AdapterError::Backend(Box::new(e)))?;
        self.adapter()
            .server_side_emit(event.to_owned(), args)
            .await
    }

    /// Handles the events other nodes send with [`Namespace::server_side_emit`]
    /// (replaces the previous handler).
    ///
    /// ```no_run
    /// # fn demo(io: tidewire::SocketIo) {
    /// io.root().on_server_side(|event, args| async move {
    ///     tracing::info!(%event, args = args.len(), "from another node");
    /// });
    /// # }
    /// ```
    pub fn on_server_side<F, Fut>(&self, handler: F)
    where
        F: Fn(String, crate::Payload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: ServerSideFn = Arc::new(move |event, args| Box::pin(handler(event, args)));
        *self.0.server_side.write() = Some(handler);
    }

    pub(crate) fn server_side_handler(&self) -> Option<ServerSideFn> {
        self.0.server_side.read().clone()
    }

    /// Emits to every socket of the namespace.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.emit("announcement", "maintenance at noon").await?;
    /// # Ok(()) }
    /// ```
    pub fn emit(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<(), BroadcastError>> + Send + 'static {
        self.operator().emit(event, data)
    }

    /// Emits to every socket and collects their acknowledgements.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// let replies = ns.emit_with_ack::<String>("version?", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn emit_with_ack<T: DeserializeOwned + Send + 'static>(
        &self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<AckReplies<T>, BroadcastError>> + Send + 'static {
        self.operator().emit_with_ack(event, data)
    }

    /// Every socket of the namespace.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// let everyone = ns.fetch_sockets().await?;
    /// # Ok(()) }
    /// ```
    pub async fn fetch_sockets(&self) -> Result<Vec<RemoteSocket>, AdapterError> {
        self.operator().fetch_sockets().await
    }

    /// Makes every socket join `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.sockets_join("announcements").await?;
    /// # Ok(()) }
    /// ```
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.operator().join(rooms).await
    }

    /// Makes every socket leave `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.sockets_leave("announcements").await?;
    /// # Ok(()) }
    /// ```
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.operator().leave(rooms).await
    }

    /// Disconnects every socket of the namespace.
    ///
    /// ```no_run
    /// # async fn demo(ns: tidewire::Namespace) -> Result<(), Box<dyn std::error::Error>> {
    /// ns.disconnect_sockets().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect_sockets(&self) -> Result<(), AdapterError> {
        self.operator().disconnect().await
    }
}

/// A dynamic namespace: every name its predicate accepts becomes a namespace
/// of its own (created on first connection) sharing these handlers.
///
/// ```no_run
/// let io = tidewire::SocketIo::new();
/// io.dynamic_ns(|name| name.starts_with("/room-"), |socket| async move {
///     tracing::info!(ns = socket.ns_name(), "joined a dynamic namespace");
/// })
/// .middleware(|_socket| async move { Ok(()) });
/// ```
#[derive(Clone)]
pub struct DynamicNamespace {
    pub(crate) handlers: Arc<NsHandlers>,
}

impl std::fmt::Debug for DynamicNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicNamespace").finish_non_exhaustive()
    }
}

impl DynamicNamespace {
    /// Adds a connect middleware to every namespace this matches (see
    /// [`Namespace::middleware`]).
    ///
    /// ```
    /// let io = tidewire::SocketIo::new();
    /// io.dynamic_ns(|n| n.starts_with("/t-"), |_s| async move {})
    ///     .middleware(|socket| async move {
    ///         if socket.auth().get("token").is_some() { Ok(()) } else { Err(tidewire::ConnectError::new("token needed")) }
    ///     });
    /// ```
    pub fn middleware<F, Fut>(self, middleware: F) -> Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.handlers
            .middlewares
            .write()
            .push(handler::middleware_fn(middleware));
        self
    }
}

pub(crate) type NsPredicate = Box<dyn Fn(&str) -> bool + Send + Sync>;
