//! A client's connection to one namespace.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::HeaderMap;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tidewire_engine::{CloseReason, Session, Sid, TransportKind};
use tokio::sync::oneshot;

use crate::ack::{AckCollector, AckFuture, AckSender, Pending, PendingAcks};
use crate::adapter::{BroadcastOptions, IntoRooms, Room, SessionEnding};
use crate::broadcast::BroadcastOperator;
use crate::error::{AckError, ConnectError, EmitError};
use crate::extensions::Extensions;
use crate::handler::{self, AnyFn, DisconnectFn, EventFn};
use crate::namespace::Namespace;
use crate::packet::{self, OutgoingPacket, RESERVED_EVENTS};
use crate::payload::Payload;
use crate::recovery::{Cleanup, Persisted, Restored};
use crate::server::{ConnData, SocketIo};

/// Why a socket disconnected, as Socket.IO names it.
///
/// ```
/// use tidewire::DisconnectReason;
/// assert_eq!(DisconnectReason::ClientNamespaceDisconnect.as_str(), "client namespace disconnect");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed its connection.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The client stopped answering heartbeats.
    PingTimeout,
    /// The client sent something that is not Socket.IO.
    ParseError,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The server closed the connection ([`Socket::close`]).
    ForcedServerClose,
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientNamespaceDisconnect,
    /// The server disconnected the socket ([`Socket::disconnect`]).
    ServerNamespaceDisconnect,
    /// The client read too slowly and its outgoing queue filled up.
    SlowConsumer,
    /// The client came back (connection state recovery) while this socket still
    /// looked connected; its state moved to the new connection.
    TakenOver,
}

impl DisconnectReason {
    /// The reason as text (`"transport close"`, `"ping timeout"`, ...).
    ///
    /// ```
    /// assert_eq!(tidewire::DisconnectReason::PingTimeout.as_str(), "ping timeout");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ParseError => "parse error",
            Self::ServerShuttingDown => "server shutting down",
            Self::ForcedServerClose => "forced server close",
            Self::ClientNamespaceDisconnect => "client namespace disconnect",
            Self::ServerNamespaceDisconnect => "server namespace disconnect",
            Self::SlowConsumer => "slow consumer",
            Self::TakenOver => "taken over",
        }
    }

    /// Whether the client may come back and recover (it did not choose to leave).
    fn is_recoverable(self) -> bool {
        matches!(
            self,
            Self::TransportClose
                | Self::TransportError
                | Self::PingTimeout
                | Self::ForcedServerClose
                | Self::SlowConsumer
                | Self::TakenOver
        )
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<CloseReason> for DisconnectReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => Self::TransportClose,
            CloseReason::PingTimeout => Self::PingTimeout,
            CloseReason::ParseError => Self::ParseError,
            CloseReason::ForcedClose => Self::ForcedServerClose,
            CloseReason::ServerShutdown => Self::ServerShuttingDown,
            CloseReason::SlowConsumer => Self::SlowConsumer,
            CloseReason::TakenOver => Self::TakenOver,
            _ => Self::TransportError,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Middlewares are running.
    Connecting,
    /// Connected; the connect handler is running, events wait.
    Connected,
    /// Events are dispatched.
    Ready,
    Disconnected,
}

struct Incoming {
    event: String,
    args: Payload,
    id: Option<u64>,
}

struct State {
    phase: Phase,
    buffered: Vec<Incoming>,
}

#[derive(Default)]
struct Handlers {
    events: Vec<(Arc<str>, EventFn)>,
    any: Option<AnyFn>,
    disconnect: Option<DisconnectFn>,
}

pub(crate) struct SocketInner {
    id: Sid,
    ns: Namespace,
    session: Session<ConnData>,
    auth: Value,
    state: Mutex<State>,
    handlers: Mutex<Handlers>,
    acks: Mutex<PendingAcks>,
    extensions: Extensions,
    /// Present when the namespace records packets for connection state recovery.
    recovery: Option<Box<SocketRecovery>>,
}

/// A resume the client asked for in its CONNECT auth (`pid`, `offset`).
pub(crate) struct Resume {
    pub offset: Option<String>,
    /// The socket that still holds this session (a cut the server missed).
    pub takeover: Option<Socket>,
    /// Set when the previous socket's state is persisted.
    pub cleanup: Option<Arc<Cleanup>>,
    /// Already restored (the previous socket was persisted when the client came back).
    pub restored: Option<Restored>,
}

/// A socket's part in connection state recovery.
pub(crate) struct SocketRecovery {
    pid: Sid,
    resume: Mutex<Option<Resume>>,
    recovered: AtomicBool,
    /// Offset of the last recorded packet queued for the client.
    last_sent: AtomicU64,
    /// The log's head when the socket joined (a client with no offset resumes after it).
    connected_at: AtomicU64,
    /// While set, deliveries wait in `held`: the CONNECT reply and the replay go first.
    barrier: AtomicBool,
    held: Mutex<Vec<(OutgoingPacket, bool)>>,
    /// Set once the socket's state is persisted (or dropped) after it disconnected.
    cleanup: Arc<Cleanup>,
}

impl SocketRecovery {
    pub(crate) fn new(pid: Sid, resume: Option<Resume>) -> Box<Self> {
        Box::new(Self {
            pid,
            resume: Mutex::new(resume),
            recovered: AtomicBool::new(false),
            last_sent: AtomicU64::new(0),
            connected_at: AtomicU64::new(0),
            barrier: AtomicBool::new(true),
            held: Mutex::new(Vec::new()),
            cleanup: Arc::default(),
        })
    }
}

/// Most events a client may send while its connect handler still runs.
const MAX_BUFFERED: usize = 256;

/// One client connected to one namespace. Cheap to clone (a reference).
///
/// Register event handlers in the namespace's connect handler; emit, join
/// rooms and broadcast from anywhere.
///
/// ```no_run
/// use tidewire::{Socket, SocketIo};
/// #[derive(serde::Deserialize, serde::Serialize, Clone)]
/// struct ChatMessage { room: String, text: String }
///
/// let io = SocketIo::new();
/// io.ns("/chat", |socket: Socket| async move {
///     socket.on("message", |socket, msg: ChatMessage, ack| async move {
///         let _ = socket.to(msg.room.clone()).emit("message", &msg).await;
///         let _ = ack.send("delivered");
///     });
/// });
/// ```
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<SocketInner>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.0.id)
            .field("namespace", &self.ns_name())
            .field("connected", &self.connected())
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Socket {
    pub(crate) fn new(
        ns: Namespace,
        session: Session<ConnData>,
        auth: Value,
        id: Sid,
        recovery: Option<Box<SocketRecovery>>,
    ) -> Self {
        Self(Arc::new(SocketInner {
            recovery,
            id,
            ns,
            session,
            auth,
            state: Mutex::new(State {
                phase: Phase::Connecting,
                buffered: Vec::new(),
            }),
            handlers: Mutex::default(),
            acks: Mutex::default(),
            extensions: Extensions::default(),
        }))
    }

    // ----- identity and handshake -----

    /// The socket id (one per namespace connection, not the engine session id).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let _ = socket.emit("your-id", socket.id());
    /// # }
    /// ```
    pub fn id(&self) -> Sid {
        self.0.id
    }

    /// The namespace this socket belongs to.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// println!("{} sockets here", socket.namespace().socket_count());
    /// # }
    /// ```
    pub fn namespace(&self) -> Namespace {
        self.0.ns.clone()
    }

    /// The namespace name (`/`, `/chat`).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// if socket.ns_name() == "/admin" { /* ... */ }
    /// # }
    /// ```
    pub fn ns_name(&self) -> &str {
        self.0.ns.name()
    }

    /// Whether the socket is connected (its connection to the namespace was
    /// accepted and has not ended).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// if socket.connected() {
    ///     let _ = socket.emit("still-there?", ());
    /// }
    /// # }
    /// ```
    pub fn connected(&self) -> bool {
        matches!(self.0.state.lock().phase, Phase::Connected | Phase::Ready)
    }

    /// Whether this socket recovered a previous session (connection state
    /// recovery): same id, rooms and extensions, and the missed packets replayed.
    /// False for a fresh connection, and when a resume came too late or with an
    /// unknown or forged token.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// if !socket.recovered() {
    ///     let _ = socket.emit("welcome", "first visit or state lost");
    /// }
    /// # }
    /// ```
    pub fn recovered(&self) -> bool {
        self.0
            .recovery
            .as_ref()
            .is_some_and(|r| r.recovered.load(Ordering::Relaxed))
    }

    /// The auth payload the client sent with its connection (`{}` when none).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let token = socket.auth()["token"].as_str();
    /// # }
    /// ```
    pub fn auth(&self) -> &Value {
        &self.0.auth
    }

    /// The auth payload deserialized into `T`.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// #[derive(serde::Deserialize)]
    /// struct Auth { token: String }
    /// let auth: Result<Auth, _> = socket.auth_as();
    /// # }
    /// ```
    pub fn auth_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.0.auth)
    }

    /// The headers of the HTTP request that opened the connection.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let agent = socket.headers().get("user-agent").and_then(|v| v.to_str().ok());
    /// # }
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.0.session.handshake().headers
    }

    /// The raw query string of the handshake request.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let raw: Option<&str> = socket.query();
    /// # }
    /// ```
    pub fn query(&self) -> Option<&str> {
        self.0.session.handshake().query.as_deref()
    }

    /// One query parameter of the handshake, percent-decoded.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let room = socket.query_param("room").unwrap_or_else(|| "lobby".into());
    /// # }
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// The client's address, when the server was started with connect info
    /// (`into_make_service_with_connect_info::<SocketAddr>()`).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// if let Some(addr) = socket.remote_addr() {
    ///     tracing::info!(%addr, "connected");
    /// }
    /// # }
    /// ```
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.0.session.handshake().remote_addr
    }

    /// The transport carrying the connection now.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// tracing::info!(transport = %socket.transport(), "current transport");
    /// # }
    /// ```
    pub fn transport(&self) -> TransportKind {
        self.0.session.transport()
    }

    /// The Engine.IO session id (shared by the client's sockets on every namespace).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// tracing::debug!(engine = %socket.engine_id(), socket = %socket.id());
    /// # }
    /// ```
    pub fn engine_id(&self) -> Sid {
        self.0.session.id()
    }

    /// Typed data attached to this socket (a user id set by a middleware, ...).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// #[derive(Clone)]
    /// struct UserId(u64);
    /// socket.extensions().insert(UserId(7));
    /// let id = socket.extensions().get::<UserId>().map(|u| u.0);
    /// # }
    /// ```
    pub fn extensions(&self) -> &Extensions {
        &self.0.extensions
    }

    /// The app-wide state of type `T` given to
    /// [`SocketIoBuilder::with_state`](crate::SocketIoBuilder::with_state).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// #[derive(Clone)]
    /// struct Db;
    /// let db: Option<Db> = socket.state::<Db>();
    /// # }
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.ns.server().state.get::<T>()
    }

    /// The server this socket belongs to.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
    /// socket.io().to("admins").emit("joined", socket.id()).await?;
    /// # Ok(()) }
    /// ```
    pub fn io(&self) -> SocketIo {
        SocketIo(self.0.ns.server().clone())
    }

    // ----- handlers -----

    /// Handles event `event`. `data` receives the arguments (see
    /// [`Payload`](crate::Payload) for the one-or-many rule); `ack` answers
    /// the client's callback. Registering the same event again replaces the handler.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on("sum", |_socket, numbers: Vec<i64>, ack| async move {
    ///     let _ = ack.send(numbers.iter().sum::<i64>());
    /// });
    /// # }
    /// ```
    pub fn on<F, T, Fut>(&self, event: &str, handler: F)
    where
        F: Fn(Socket, T, AckSender) -> Fut + Send + Sync + 'static,
        T: DeserializeOwned + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name: Arc<str> = Arc::from(event);
        let f = handler::event_fn(name.clone(), handler);
        let mut handlers = self.0.handlers.lock();
        match handlers.events.iter_mut().find(|(n, _)| **n == *event) {
            Some(slot) => slot.1 = f,
            None => handlers.events.push((name, f)),
        }
    }

    /// Removes the handler of `event`.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.off("typing");
    /// # }
    /// ```
    pub fn off(&self, event: &str) {
        self.0.handlers.lock().events.retain(|(n, _)| **n != *event);
    }

    /// Handles every event that has no handler of its own.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on_any(|socket, event, args, _ack| async move {
    ///     tracing::info!(id = %socket.id(), %event, n = args.len(), "unhandled event");
    /// });
    /// # }
    /// ```
    pub fn on_any<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, String, Payload, AckSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.0.handlers.lock().any = Some(handler::any_fn(handler));
    }

    /// Runs `handler` once the socket disconnects, with the reason. Rooms are
    /// already left when it runs.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on_disconnect(|socket, reason| async move {
    ///     tracing::info!(id = %socket.id(), %reason, "disconnected");
    /// });
    /// # }
    /// ```
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.0.handlers.lock().disconnect = Some(handler::disconnect_fn(handler));
    }

    // ----- emitting -----

    /// Sends event `event` with `data` as its one argument (several with
    /// [`Args`](crate::Args); byte buffers travel as binary attachments).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) -> Result<(), tidewire::EmitError> {
    /// socket.emit("welcome", "hello")?;
    /// socket.emit("pos", tidewire::Args((10, 20)))?;
    /// socket.emit("file", bytes::Bytes::from_static(b"\x00\x01"))?;
    /// # Ok(()) }
    /// ```
    pub fn emit(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.emit_inner(event, &data, false)
    }

    /// Like [`Socket::emit`], but the packet may be dropped when the client is
    /// not ready for it (a full queue, an upgrade in progress).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let _ = socket.emit_volatile("position", (3, 4));
    /// # }
    /// ```
    pub fn emit_volatile(&self, event: &str, data: impl Serialize) -> Result<(), EmitError> {
        self.emit_inner(event, &data, true)
    }

    fn emit_inner<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        volatile: bool,
    ) -> Result<(), EmitError> {
        check_event_name(event)?;
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let packet = packet::encode_event(self.ns_name(), event, data, None)?;
        let sent = match self.0.ns.recovery() {
            // Direct emits are recoverable too: recorded for this socket's own room.
            Some(store) if !volatile => {
                let me = BroadcastOptions::default().to(Room::from(self.0.id));
                if self.0.ns.adapter().record(&packet, &me) {
                    Ok(())
                } else {
                    store.record(&packet, &me, |stamped| self.deliver(stamped, false))
                }
            }
            _ => self.deliver(&packet, volatile),
        };
        match sent {
            Err(EmitError::Send(tidewire_engine::SendError::Dropped)) if volatile => Ok(()),
            other => other,
        }
    }

    /// Sends event `event` and waits for the client's acknowledgement,
    /// deserialized into `T`; times out after the server's `ack_timeout`
    /// unless [`AckFuture::timeout`] says otherwise.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), tidewire::AckError> {
    /// use std::time::Duration;
    /// let ok: bool = socket
    ///     .emit_with_ack("confirm", "delete everything?")
    ///     .timeout(Duration::from_secs(10))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn emit_with_ack<T>(&self, event: &str, data: impl Serialize) -> AckFuture<T> {
        let timeout = self.0.ns.server().config.ack_timeout;
        AckFuture::new(self.emit_with_ack_inner(event, &data), timeout)
    }

    fn emit_with_ack_inner<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(oneshot::Receiver<Payload>, Socket, u64), EmitError> {
        check_event_name(event)?;
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let id = self.0.ns.next_ack_id();
        let packet = packet::encode_event(self.ns_name(), event, data, Some(id))?;
        let (tx, rx) = oneshot::channel();
        self.0.acks.lock().insert(id, Pending::One(tx));
        if let Err(e) = self.deliver(&packet, false) {
            self.forget_ack(id);
            return Err(e);
        }
        Ok((rx, self.clone(), id))
    }

    pub(crate) fn forget_ack(&self, id: u64) {
        self.0.acks.lock().remove(id);
    }

    /// Queues an encoded packet (and its attachments) for this socket's
    /// client; what adapters call to deliver a broadcast.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let packet = tidewire::packet::encode_event(socket.ns_name(), "raw", &1, None).unwrap();
    /// socket.deliver(&packet, false).ok();
    /// # }
    /// ```
    pub fn deliver(&self, packet: &OutgoingPacket, volatile: bool) -> Result<(), EmitError> {
        if let Some(rec) = &self.0.recovery {
            if rec.barrier.load(Ordering::Acquire) {
                let mut held = rec.held.lock();
                if rec.barrier.load(Ordering::Acquire) {
                    held.push((packet.clone(), volatile));
                    return Ok(());
                }
            }
            if let Some(offset) = packet.offset() {
                rec.last_sent.fetch_max(offset, Ordering::Relaxed);
            }
        }
        self.send_now(packet, volatile)
    }

    /// Whether room broadcasts may reach this socket through a shared channel:
    /// it is connected and has no restored state still to flush (while it
    /// has, deliveries wait behind the CONNECT reply and the replay).
    pub(crate) fn may_subscribe(&self) -> bool {
        self.connected()
            && self
                .0
                .recovery
                .as_ref()
                .map_or(true, |rec| !rec.barrier.load(Ordering::Acquire))
    }

    /// Puts this socket's connection on `channel` (see [`Socket::may_subscribe`]).
    pub(crate) fn subscribe(&self, channel: &tidewire_engine::Channel) -> bool {
        self.may_subscribe() && self.0.session.subscribe(channel)
    }

    /// Takes this socket's connection off `channel`.
    pub(crate) fn unsubscribe(&self, channel: &tidewire_engine::Channel) {
        if self.0.session.unsubscribe(channel) {
            self.left_channels();
        }
    }

    /// A channel for one of this namespace's rooms, sized by the connection's limits.
    pub(crate) fn new_channel(&self) -> tidewire_engine::Channel {
        self.0.session.new_channel(self.0.ns.channel_group())
    }

    /// Packets that went through a channel carry offsets this socket did not
    /// track one by one: count the newest recorded one as sent, which can only
    /// make a later resume more careful about a trimmed log.
    fn left_channels(&self) {
        if let (Some(rec), Some(store)) = (&self.0.recovery, self.0.ns.recovery()) {
            rec.last_sent.fetch_max(store.head(), Ordering::Relaxed);
        }
    }

    fn send_now(&self, packet: &OutgoingPacket, volatile: bool) -> Result<(), EmitError> {
        let packets = packet.engine_packets();
        let result = match packets {
            [one] if volatile => self.0.session.send_volatile(one.clone()),
            [one] => self.0.session.send(one.clone()),
            many if volatile => self.0.session.send_batch_volatile(many.iter().cloned()),
            many => self.0.session.send_batch(many.iter().cloned()),
        };
        result.map_err(EmitError::Send)
    }

    /// Delivers a packet carrying an ack id and routes this socket's answer
    /// to `acks` (for adapters implementing `broadcast_with_ack`).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// let acks = tidewire::AckCollector::new();
    /// let packet = tidewire::packet::encode_event(socket.ns_name(), "q", &1, Some(1000)).unwrap();
    /// socket.deliver_with_ack(&packet, &acks, false);
    /// # }
    /// ```
    pub fn deliver_with_ack(&self, packet: &OutgoingPacket, acks: &AckCollector, volatile: bool) {
        let Some(id) = packet.ack_id() else {
            let _ = self.deliver(packet, volatile);
            return;
        };
        if !self.connected() {
            return;
        }
        acks.expect_socket(self.0.id);
        self.0.acks.lock().insert(id, Pending::Many(acks.clone()));
        if let Err(e) = self.deliver(packet, volatile) {
            if let Some(Pending::Many(c)) = self.0.acks.lock().remove(id) {
                c.fail(self.0.id, AckError::Emit(e));
            }
        }
    }

    // ----- rooms and broadcasting -----

    /// Joins one room or several.
    ///
    /// The local adapter never fails; a cluster adapter's errors are logged.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) {
    /// socket.join("lobby").await;
    /// socket.join(["a", "b"]).await;
    /// # }
    /// ```
    pub async fn join(&self, rooms: impl IntoRooms) {
        let rooms = rooms.into_rooms();
        if let Err(error) = self.0.ns.adapter().add_all(self.0.id, rooms).await {
            tracing::error!(socket = %self.0.id, %error, "join failed");
        }
    }

    /// Leaves one room or several.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
    /// socket.leave("lobby").await;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self, rooms: impl IntoRooms) {
        for room in rooms.into_rooms() {
            if let Err(error) = self.0.ns.adapter().del(self.0.id, room).await {
                tracing::error!(socket = %self.0.id, %error, "leave failed");
            }
        }
    }

    /// The rooms this socket is in (its own id room included).
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
    /// let rooms = socket.rooms().await;
    /// let in_lobby = rooms.iter().any(|r| r == "lobby");
    /// # Ok(()) }
    /// ```
    pub async fn rooms(&self) -> Vec<Room> {
        match self.0.ns.adapter().socket_rooms(self.0.id).await {
            Ok(rooms) => rooms,
            Err(error) => {
                tracing::error!(socket = %self.0.id, %error, "listing rooms failed");
                Vec::new()
            }
        }
    }

    fn operator(&self) -> BroadcastOperator {
        BroadcastOperator::new(
            self.0.ns.clone(),
            BroadcastOptions::default().except(self.0.id),
        )
    }

    /// Broadcasts to sockets in `rooms`, except this one.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), tidewire::BroadcastError> {
    /// socket.to("lobby").emit("joined", socket.id()).await?;
    /// # Ok(()) }
    /// ```
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Same as [`Socket::to`] (`in` in JavaScript).
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
    /// socket.within("lobby").emit("typing", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn within(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Broadcasts to every socket of the namespace but this one and those in `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
    /// socket.except("muted").emit("news", "hi").await?;
    /// # Ok(()) }
    /// ```
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().except(rooms)
    }

    /// Broadcasts to every socket of the namespace but this one.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), tidewire::BroadcastError> {
    /// socket.broadcast().emit("typing", socket.id()).await?;
    /// # Ok(()) }
    /// ```
    pub fn broadcast(&self) -> BroadcastOperator {
        self.operator()
    }

    // ----- ending -----

    /// Disconnects this socket from its namespace (the client gets a
    /// `DISCONNECT`; its other namespaces stay connected).
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on("bye", |socket, (): (), _ack| async move { socket.disconnect() });
    /// # }
    /// ```
    pub fn disconnect(&self) {
        self.close_with(DisconnectReason::ServerNamespaceDisconnect, true);
    }

    /// Closes the whole connection: every namespace of this client disconnects.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on("kick", |socket, (): (), _ack| async move { socket.close() });
    /// # }
    /// ```
    pub fn close(&self) {
        let sockets = self.0.session.data().sockets();
        for socket in sockets {
            socket.close_with(DisconnectReason::ServerNamespaceDisconnect, true);
        }
        self.close_with(DisconnectReason::ServerNamespaceDisconnect, true);
        self.0.session.close(CloseReason::ForcedClose);
    }

    // ----- internals -----

    /// Runs the middlewares, accepts or refuses, runs the connect handler,
    /// then dispatches the events that arrived meanwhile.
    pub(crate) async fn run_connect(self) {
        let ns = self.0.ns.clone();
        let restored = self.resume().await;
        let skip_middlewares = restored.is_some()
            && ns
                .recovery()
                .is_some_and(|store| store.config().skip_middlewares);
        let middlewares = if skip_middlewares {
            Vec::new()
        } else {
            ns.middlewares()
        };
        for middleware in middlewares {
            let refusal = match AssertUnwindSafe(middleware(self.clone()))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => continue,
                Ok(Err(refusal)) => refusal,
                Err(_) => {
                    tracing::error!(namespace = %ns.name(), "a connect middleware panicked");
                    ConnectError::new("internal server error")
                }
            };
            {
                let mut state = self.0.state.lock();
                if state.phase == Phase::Disconnected {
                    return;
                }
                state.phase = Phase::Disconnected;
            }
            self.detach_from_connection();
            self.mark_cleaned();
            let _ = self.0.session.send(packet::encode_connect_error(
                ns.name(),
                refusal.message(),
                refusal.data(),
            ));
            return;
        }

        {
            let mut state = self.0.state.lock();
            if state.phase != Phase::Connecting {
                return;
            }
            state.phase = Phase::Connected;
            ns.0.sockets.write().insert(self.0.id, self.clone());
        }
        let adapter = ns.adapter();
        let mut rooms = vec![Room::from(self.0.id)];
        if let (Some(rec), Some(store)) = (&self.0.recovery, ns.recovery()) {
            store.register_live(rec.pid, self.0.id, rec.cleanup.clone());
            let connected_at = match &restored {
                Some(restored) => restored.from,
                None => store.head(),
            };
            rec.connected_at.store(connected_at, Ordering::Relaxed);
            adapter.session_connected(rec.pid, self.0.id, connected_at);
        }
        if let Some(restored) = &restored {
            for room in &restored.rooms {
                if !rooms.contains(room) {
                    rooms.push(room.clone());
                }
            }
        }
        if let Err(error) = adapter.add_all(self.0.id, rooms.clone()).await {
            tracing::error!(socket = %self.0.id, %error, "could not join the socket's rooms");
        }
        if !self.connected() {
            let _ = adapter.del_all(self.0.id).await;
            self.mark_cleaned();
            return;
        }
        if self.send_connect_reply(restored.as_ref(), &rooms).is_err() {
            return;
        }
        if let Some(on_connect) = ns.connect_handler() {
            if AssertUnwindSafe(on_connect(self.clone()))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(namespace = %ns.name(), socket = %self.0.id, "the connect handler panicked");
            }
        }
        let buffered = {
            let mut state = self.0.state.lock();
            if state.phase != Phase::Connected {
                return;
            }
            state.phase = Phase::Ready;
            std::mem::take(&mut state.buffered)
        };
        for incoming in buffered {
            self.dispatch(incoming);
        }
    }

    /// Settles a resume the client asked for: takes over a socket that still
    /// holds the session, then restores the persisted state.
    async fn resume(&self) -> Option<Restored> {
        let rec = self.0.recovery.as_ref()?;
        let resume = rec.resume.lock().take()?;
        let store = self.0.ns.recovery()?;
        let restored = match resume.restored {
            Some(restored) => Ok(restored),
            None => {
                if let Some(old) = resume.takeover {
                    old.take_over();
                }
                if let Some(cleanup) = resume.cleanup {
                    if !cleanup.wait(Duration::from_secs(5)).await {
                        tracing::warn!(socket = %self.0.id, "the previous socket did not finish its cleanup in 5 s");
                    }
                }
                store.restore(rec.pid, resume.offset.as_deref())
            }
        };
        match restored {
            Ok(restored) if restored.sid != self.0.id => {
                tracing::warn!(socket = %self.0.id, "recovery token now names another socket: fresh session");
                None
            }
            Ok(mut restored) => {
                self.0
                    .extensions
                    .restore(std::mem::take(&mut restored.extensions));
                rec.recovered.store(true, Ordering::Relaxed);
                Some(restored)
            }
            Err(miss) => {
                tracing::info!(socket = %self.0.id, ?miss, "connection state not recovered: fresh session");
                None
            }
        }
    }

    /// Queues the CONNECT reply, then (after a restore) every packet the
    /// client missed, then what arrived meanwhile, and opens the way for the rest.
    fn send_connect_reply(
        &self,
        restored: Option<&Restored>,
        rooms: &[Room],
    ) -> Result<(), EmitError> {
        let ns = self.ns_name();
        let Some(rec) = &self.0.recovery else {
            return self
                .0
                .session
                .send(packet::encode_connect(ns, self.0.id.as_str()))
                .map_err(EmitError::Send);
        };
        let connect =
            packet::encode_connect_with_pid(ns, self.0.id.as_str(), Some(rec.pid.as_str()));
        let flush = |missed: Vec<OutgoingPacket>, skip_through: u64| -> Result<(), EmitError> {
            let mut held = rec.held.lock();
            self.0.session.send(connect).map_err(EmitError::Send)?;
            for packet in &missed {
                self.send_now(packet, false)?;
                if let Some(offset) = packet.offset() {
                    rec.last_sent.fetch_max(offset, Ordering::Relaxed);
                }
            }
            for (packet, volatile) in held.drain(..) {
                // Recorded before the replay was taken: already in it.
                if packet.offset().is_some_and(|o| o <= skip_through) {
                    continue;
                }
                if let Some(offset) = packet.offset() {
                    rec.last_sent.fetch_max(offset, Ordering::Relaxed);
                }
                let _ = self.send_now(&packet, volatile);
            }
            *held = Vec::new();
            rec.barrier.store(false, Ordering::Release);
            Ok(())
        };
        let Some(store) = self.0.ns.recovery() else {
            return flush(Vec::new(), 0);
        };
        match restored {
            Some(restored) => {
                rec.connected_at.store(restored.from, Ordering::Relaxed);
                store.replay(restored.from, rooms, flush)
            }
            None => store.with_log_held(|_| flush(Vec::new(), 0)),
        }
    }

    fn mark_cleaned(&self) {
        if let Some(rec) = &self.0.recovery {
            rec.cleanup.mark();
        }
    }

    /// Ends this socket because its client came back on another connection.
    pub(crate) fn take_over(&self) {
        self.close_with(DisconnectReason::TakenOver, false);
        if self.0.session.data().sockets().is_empty() {
            // Nothing else uses the old connection (half-open, or a poller that left).
            self.0.session.close(CloseReason::TakenOver);
        }
    }

    /// An event from the client.
    pub(crate) fn on_event(&self, event: String, args: Payload, id: Option<u64>) {
        let incoming = Incoming { event, args, id };
        {
            let mut state = self.0.state.lock();
            match state.phase {
                Phase::Ready => {}
                Phase::Disconnected => return,
                Phase::Connecting | Phase::Connected => {
                    if state.buffered.len() >= MAX_BUFFERED {
                        drop(state);
                        tracing::warn!(socket = %self.0.id, "too many events before the connect handler finished");
                        self.0.session.close(CloseReason::ForcedClose);
                        return;
                    }
                    state.buffered.push(incoming);
                    return;
                }
            }
        }
        self.dispatch(incoming);
    }

    fn dispatch(&self, incoming: Incoming) {
        let Incoming { event, args, id } = incoming;
        let (handler, any) = {
            let handlers = self.0.handlers.lock();
            let handler = handlers
                .events
                .iter()
                .find(|(n, _)| **n == *event)
                .map(|(_, f)| f.clone());
            let any = if handler.is_none() {
                handlers.any.clone()
            } else {
                None
            };
            (handler, any)
        };
        let ack = AckSender::new(self.clone(), id);
        let socket = self.clone();
        if let Some(handler) = handler {
            handler::start(handler(socket, args, ack), &event);
        } else if let Some(any) = any {
            handler::start(any(socket, event, args, ack), "(catch-all)");
        } else {
            tracing::debug!(socket = %self.0.id, %event, "no handler for event");
        }
    }

    /// An acknowledgement from the client.
    pub(crate) fn on_ack(&self, id: u64, args: Payload) {
        let pending = self.0.acks.lock().remove(id);
        match pending {
            Some(Pending::One(tx)) => {
                let _ = tx.send(args);
            }
            Some(Pending::Many(collector)) => collector.reply(self.0.id, args),
            None => tracing::debug!(socket = %self.0.id, id, "ack for no pending request"),
        }
    }

    fn detach_from_connection(&self) {
        self.0
            .session
            .data()
            .remove_socket(|s| Arc::ptr_eq(&s.0, &self.0));
    }

    /// Ends the socket: leaves the namespace, its rooms and the connection,
    /// fails pending acks, then runs the disconnect handler with `reason`.
    pub(crate) fn close_with(&self, reason: DisconnectReason, notify_client: bool) {
        let was = {
            let mut state = self.0.state.lock();
            let was = state.phase;
            if was == Phase::Disconnected {
                return;
            }
            state.phase = Phase::Disconnected;
            state.buffered = Vec::new();
            was
        };
        // No room broadcast reaches the client for this namespace from here on.
        if self.0.session.unsubscribe_group(self.0.ns.channel_group()) > 0 {
            self.left_channels();
        }
        {
            let mut sockets = self.0.ns.0.sockets.write();
            if sockets.get(&self.0.id).is_some_and(|s| s == self) {
                sockets.remove(&self.0.id);
            }
        }
        self.detach_from_connection();
        if notify_client && was != Phase::Connecting {
            let _ = self
                .0
                .session
                .send(packet::encode_disconnect(self.ns_name()));
        }
        let pending = self.0.acks.lock().take_all();
        for p in pending {
            if let Pending::Many(collector) = p {
                collector.fail(self.0.id, AckError::Disconnected);
            }
        }
        let handlers = std::mem::take(&mut *self.0.handlers.lock());
        let socket = self.clone();
        // What the log holds when the socket leaves (recovery).
        let persist = match (&self.0.recovery, self.0.ns.recovery()) {
            (Some(_), Some(store)) if reason.is_recoverable() && was != Phase::Connecting => {
                Some(store.head())
            }
            _ => None,
        };
        let run = async move {
            let adapter = socket.0.ns.adapter().clone();
            let rooms = match persist {
                Some(_) => adapter.socket_rooms(socket.0.id).await.unwrap_or_default(),
                None => Vec::new(),
            };
            if let Err(error) = adapter.del_all(socket.0.id).await {
                tracing::error!(socket = %socket.0.id, %error, "could not leave rooms");
            }
            if was != Phase::Connecting {
                if let Some(on_disconnect) = handlers.disconnect {
                    on_disconnect(socket.clone(), reason).await;
                }
            }
            if let (Some(rec), Some(store)) = (&socket.0.recovery, socket.0.ns.recovery()) {
                let ending = match (persist, reason) {
                    (Some(_), _) => SessionEnding::Resumable(rooms.clone()),
                    (None, DisconnectReason::TakenOver) => SessionEnding::TakenOver,
                    (None, _) => SessionEnding::Final,
                };
                adapter.session_ended(rec.pid, socket.0.id, ending);
                if let Some(disconnected_head) = persist {
                    store.persist(
                        rec.pid,
                        Persisted {
                            sid: socket.0.id,
                            rooms,
                            extensions: socket.0.extensions.take(),
                            disconnected_at: Instant::now(),
                            last_sent: rec.last_sent.load(Ordering::Relaxed),
                            disconnected_head,
                            connected_at: rec.connected_at.load(Ordering::Relaxed),
                        },
                    );
                }
                store.unregister_live(rec.pid, socket.0.id);
            }
            socket.0.extensions.clear();
            socket.mark_cleaned();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(run);
            }
            Err(_) => {
                tracing::warn!(socket = %self.0.id, "disconnect outside a tokio runtime: handler not run")
            }
        }
    }
}

fn check_event_name(event: &str) -> Result<(), EmitError> {
    if RESERVED_EVENTS.contains(&event) {
        Err(EmitError::ReservedEvent(event.to_owned()))
    } else {
        Ok(())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn reasons_map_from_engine() {
        assert_eq!(
            DisconnectReason::from(CloseReason::PingTimeout).as_str(),
            "ping timeout"
        );
        assert_eq!(
            DisconnectReason::from(CloseReason::TransportClose).as_str(),
            "transport close"
        );
    }
}
