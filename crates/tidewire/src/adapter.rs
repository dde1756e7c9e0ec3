//! Rooms and broadcasting behind the [`Adapter`] trait.
//!
//! Every namespace has its own adapter instance. The default,
//! [`LocalAdapter`], keeps rooms in memory and reaches the sockets of this
//! process. A cluster adapter (Redis, ...) implements the same trait, with
//! methods named after Node's `socket.io-adapter`, so that broadcasts, rooms,
//! `fetch_sockets` and acknowledgements span every node.
//!
//! A packet is encoded once ([`OutgoingPacket`]) before it reaches the
//! adapter; every recipient's queue gets a clone of the same bytes.
//!
//! ```
//! use tidewire::adapter::{BroadcastOptions, Room};
//! let opts = BroadcastOptions::default().to(["a", "b"]).except("c");
//! assert_eq!(opts.rooms, vec![Room::from("a"), Room::from("b")]);
//! ```

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use smallvec::SmallVec;
use tidewire_engine::{Channel, Sid};

use crate::ack::AckCollector;
use crate::error::AdapterError;
use crate::namespace::{Namespace, NsInner};
use crate::packet::OutgoingPacket;
use crate::socket::Socket;

/// A boxed, sendable future (what [`Adapter`] methods return).
///
/// ```
/// let f: tidewire::adapter::BoxFuture<'static, u8> = Box::pin(async { 1 });
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A room name. Cheap to clone; compares with `&str`.
///
/// Every socket is in the room named after its own id, so `to(socket_id)`
/// reaches one socket wherever it is connected.
///
/// ```
/// use tidewire::Room;
/// let room = Room::from("lobby");
/// assert_eq!(room, "lobby");
/// assert_eq!(room.as_str(), "lobby");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Room(Arc<str>);

impl Room {
    /// The name.
    ///
    /// ```
    /// assert_eq!(tidewire::Room::from("a").as_str(), "a");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Room {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Room {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Room {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Room {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl serde::Serialize for Room {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl From<&str> for Room {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}
impl From<String> for Room {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}
impl From<&String> for Room {
    fn from(s: &String) -> Self {
        Self(Arc::from(s.as_str()))
    }
}
impl From<&Room> for Room {
    fn from(r: &Room) -> Self {
        r.clone()
    }
}
impl From<Sid> for Room {
    fn from(s: Sid) -> Self {
        Self(Arc::from(s.as_str()))
    }
}
impl From<&Sid> for Room {
    fn from(s: &Sid) -> Self {
        Self(Arc::from(s.as_str()))
    }
}

/// One room or many: `"a"`, `String`, a socket id, `["a", "b"]`, `vec![...]`, `&[...]`.
///
/// ```
/// use tidewire::{IntoRooms, Room};
/// assert_eq!("a".into_rooms(), vec![Room::from("a")]);
/// assert_eq!(["a", "b"].into_rooms().len(), 2);
/// assert_eq!(vec![String::from("x")].into_rooms(), vec![Room::from("x")]);
/// ```
pub trait IntoRooms {
    /// The rooms.
    fn into_rooms(self) -> Vec<Room>;
}

macro_rules! single_room {
    ($($t:ty),*) => {$(
        impl IntoRooms for $t {
            fn into_rooms(self) -> Vec<Room> { vec![Room::from(self)] }
        }
    )*};
}
single_room!(&str, String, &String, Room, &Room, Sid, &Sid);

impl<T: Into<Room>> IntoRooms for Vec<T> {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<T: Into<Room>, const N: usize> IntoRooms for [T; N] {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<T: Into<Room> + Clone> IntoRooms for &[T] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter().cloned().map(Into::into).collect()
    }
}

/// Flags of a broadcast.
///
/// ```
/// let flags = tidewire::adapter::BroadcastFlags { volatile: true, ..Default::default() };
/// assert!(!flags.local);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// Packets may be dropped for clients that are not ready.
    pub volatile: bool,
    /// Only sockets of this node (a cluster adapter does not forward).
    pub local: bool,
    /// How long to wait for acknowledgements.
    pub timeout: Option<Duration>,
}

/// Whom a broadcast (or a `fetch_sockets`, `join`, ...) is for: sockets in any
/// of `rooms` (every socket when empty), minus sockets in any of `except`.
///
/// ```
/// use tidewire::adapter::BroadcastOptions;
/// let opts = BroadcastOptions::default().to("room").except(["a", "b"]);
/// assert_eq!(opts.except.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Target rooms (union); empty means every socket of the namespace.
    pub rooms: Vec<Room>,
    /// Rooms whose sockets are excluded.
    pub except: Vec<Room>,
    /// Flags.
    pub flags: BroadcastFlags,
}

impl BroadcastOptions {
    /// Adds target rooms.
    ///
    /// ```
    /// let opts = tidewire::adapter::BroadcastOptions::default().to(["a", "b"]);
    /// assert_eq!(opts.rooms.len(), 2);
    /// ```
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        push_unique(&mut self.rooms, rooms);
        self
    }

    /// Adds excluded rooms.
    ///
    /// ```
    /// let opts = tidewire::adapter::BroadcastOptions::default().except("muted");
    /// assert_eq!(opts.except, vec![tidewire::Room::from("muted")]);
    /// ```
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        push_unique(&mut self.except, rooms);
        self
    }
}

pub(crate) fn push_unique(list: &mut Vec<Room>, rooms: impl IntoRooms) {
    for room in rooms.into_rooms() {
        if !list.contains(&room) {
            list.push(room);
        }
    }
}

/// A socket found by [`Adapter::fetch_sockets`]: on this node or, with a
/// cluster adapter, on another one. Its methods work the same either way.
///
/// ```no_run
/// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
/// for remote in io.within("lobby").fetch_sockets().await? {
///     remote.emit("hello", "you are in the lobby").await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteSocket {
    id: Sid,
    rooms: Vec<Room>,
    ns: Namespace,
    local: Option<Socket>,
}

impl RemoteSocket {
    /// A socket of this node.
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) {
    /// let remote = tidewire::RemoteSocket::from_local(&socket, socket.rooms().await);
    /// assert_eq!(remote.id(), socket.id());
    /// # }
    /// ```
    pub fn from_local(socket: &Socket, rooms: Vec<Room>) -> Self {
        Self {
            id: socket.id(),
            rooms,
            ns: socket.namespace(),
            local: Some(socket.clone()),
        }
    }

    /// A socket another node reported (for cluster adapters).
    ///
    /// ```no_run
    /// # fn demo(ns: tidewire::Namespace, id: tidewire::Sid) {
    /// let remote = tidewire::RemoteSocket::from_remote(ns, id, vec!["lobby".into()]);
    /// assert!(remote.as_local().is_none());
    /// # }
    /// ```
    pub fn from_remote(ns: Namespace, id: Sid, rooms: Vec<Room>) -> Self {
        Self {
            id,
            rooms,
            ns,
            local: None,
        }
    }

    /// The socket id.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{}", remote.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> Sid {
        self.id
    }

    /// Its rooms when it was fetched.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// let in_lobby = remote.rooms().iter().any(|r| r == "lobby");
    /// # Ok(()) }
    /// ```
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    /// The socket itself, when it is connected to this node.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(socket) = remote.as_local() {
    ///     println!("local socket on {}", socket.ns_name());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn as_local(&self) -> Option<&Socket> {
        self.local.as_ref()
    }

    /// Emits to this socket.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// remote.emit("hello", "from the server").await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit(
        &self,
        event: &str,
        data: impl serde::Serialize,
    ) -> Result<(), crate::BroadcastError> {
        self.ns.to(self.id).emit(event, data).await
    }

    /// Makes the socket join rooms.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// remote.join("vip").await?;
    /// # Ok(()) }
    /// ```
    pub async fn join(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.ns.to(self.id).join(rooms).await
    }

    /// Makes the socket leave rooms.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// remote.leave("vip").await?;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.ns.to(self.id).leave(rooms).await
    }

    /// Disconnects the socket from its namespace.
    ///
    /// ```no_run
    /// # async fn demo(remote: tidewire::RemoteSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// remote.disconnect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self) -> Result<(), AdapterError> {
        self.ns.to(self.id).disconnect().await
    }
}

/// What an adapter knows of its namespace: its name and its local sockets.
///
/// ```
/// fn make(ctx: tidewire::adapter::AdapterContext) -> std::sync::Arc<dyn tidewire::Adapter> {
///     std::sync::Arc::new(tidewire::LocalAdapter::new(ctx))
/// }
/// ```
#[derive(Clone)]
pub struct AdapterContext {
    pub(crate) ns: Weak<NsInner>,
    pub(crate) name: Arc<str>,
}

impl std::fmt::Debug for AdapterContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterContext")
            .field("namespace", &self.name)
            .finish()
    }
}

impl AdapterContext {
    /// The namespace name (`/`, `/chat`).
    ///
    /// ```
    /// let ctx_name = |ctx: &tidewire::adapter::AdapterContext| ctx.namespace_name().to_owned();
    /// ```
    pub fn namespace_name(&self) -> &str {
        &self.name
    }

    /// The namespace, while it exists.
    ///
    /// ```
    /// let count = |ctx: &tidewire::adapter::AdapterContext| ctx.namespace().map(|ns| ns.socket_count());
    /// ```
    pub fn namespace(&self) -> Option<Namespace> {
        self.ns.upgrade().map(Namespace)
    }

    /// A socket connected to this node.
    ///
    /// ```
    /// let find = |ctx: &tidewire::adapter::AdapterContext, id: tidewire::Sid| ctx.local_socket(&id);
    /// ```
    pub fn local_socket(&self, sid: &Sid) -> Option<Socket> {
        self.ns.upgrade()?.sockets.read().get(sid).cloned()
    }

    /// Connection state recovery's options, when it is on.
    ///
    /// ```
    /// let on = |ctx: &tidewire::adapter::AdapterContext| ctx.recovery_config().is_some();
    /// ```
    pub fn recovery_config(&self) -> Option<crate::RecoveryConfig> {
        self.ns
            .upgrade()?
            .recovery
            .as_ref()
            .map(|r| r.config().clone())
    }

    /// Hands a packet a cluster recorded (with its cluster-wide `offset`) to
    /// this node: it joins the namespace's recovery log and reaches the local
    /// sockets `opts` selects, in offset order. Without recovery it is simply
    /// delivered. See [`Adapter::record`].
    ///
    /// ```
    /// let deliver = |ctx: &tidewire::adapter::AdapterContext, p: tidewire::packet::OutgoingPacket| {
    ///     ctx.deliver_recorded(7, p, &tidewire::adapter::BroadcastOptions::default())
    /// };
    /// ```
    pub fn deliver_recorded(&self, offset: u64, packet: OutgoingPacket, opts: &BroadcastOptions) {
        let Some(ns) = self.ns.upgrade() else {
            return;
        };
        let adapter = ns.adapter.clone();
        match ns.recovery.as_ref() {
            Some(store) => store.record_at(offset, &packet, opts, |stamped| {
                adapter.broadcast_local_now(stamped, opts)
            }),
            None => adapter.broadcast_local_now(&packet, opts),
        }
    }

    /// Runs the namespace's [`Namespace::on_server_side`] handler for an event
    /// another node sent.
    ///
    /// ```
    /// let heard = |ctx: &tidewire::adapter::AdapterContext| {
    ///     ctx.server_side_event("ping".into(), tidewire::Payload::new(vec![]))
    /// };
    /// ```
    pub fn server_side_event(&self, event: String, args: crate::Payload) {
        let Some(handler) = self.namespace().and_then(|ns| ns.server_side_handler()) else {
            return;
        };
        tokio::spawn(handler(event, args));
    }

    /// A fresh ack id of this namespace, for a broadcast with acks another
    /// node asked for (its own id would mean nothing here).
    ///
    /// ```
    /// let id = |ctx: &tidewire::adapter::AdapterContext| ctx.next_ack_id();
    /// ```
    pub fn next_ack_id(&self) -> u64 {
        self.namespace().map_or(0, |ns| ns.next_ack_id())
    }

    /// Ends the local socket `sid` because its client resumed its session on
    /// another node (its state there must not be touched).
    ///
    /// ```
    /// let moved = |ctx: &tidewire::adapter::AdapterContext, id: tidewire::Sid| ctx.take_over(&id);
    /// ```
    pub fn take_over(&self, sid: &Sid) {
        if let Some(socket) = self.local_socket(sid) {
            socket.take_over();
        }
    }

    /// Runs `f` on the local sockets whose ids are in `sids` (or on all of them when `sids` is `None`).
    fn local_sockets(&self, sids: Option<&[Sid]>) -> Vec<Socket> {
        let Some(ns) = self.ns.upgrade() else {
            return Vec::new();
        };
        let sockets = ns.sockets.read();
        match sids {
            Some(sids) => sids
                .iter()
                .filter_map(|s| sockets.get(s).cloned())
                .collect(),
            None => sockets.values().cloned().collect(),
        }
    }
}

/// Where rooms live and how broadcasts travel. One instance per namespace.
///
/// Methods are async so a cluster implementation can do I/O; they mirror
/// Node's `socket.io-adapter` one to one (`addAll`, `del`, `delAll`,
/// `broadcast`, `broadcastWithAck`, `sockets`, `socketRooms`,
/// `fetchSockets`, `addSockets`, `delSockets`, `disconnectSockets`,
/// `serverSideEmit`, `persistSession`, `restoreSession`).
///
/// Pick an adapter with [`SocketIoBuilder::adapter`](crate::SocketIoBuilder::adapter):
///
/// ```
/// use std::sync::Arc;
/// let io = tidewire::SocketIo::builder()
///     .adapter(|ctx| Arc::new(tidewire::LocalAdapter::new(ctx)))
///     .build();
/// ```
pub trait Adapter: Send + Sync + 'static {
    /// Called once when the namespace is created.
    fn init(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Called when the server shuts down.
    fn close(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// How many nodes share this namespace.
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(std::future::ready(Ok(1)))
    }

    /// Adds socket `sid` to `rooms`.
    fn add_all(&self, sid: Sid, rooms: Vec<Room>) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Removes socket `sid` from `room`.
    fn del(&self, sid: Sid, room: Room) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Removes socket `sid` from every room.
    fn del_all(&self, sid: Sid) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Sends `packet` to the sockets `opts` selects.
    fn broadcast(
        &self,
        packet: OutgoingPacket,
        opts: BroadcastOptions,
    ) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Queues `packet` now, without waiting, for the sockets of this node that
    /// `opts` selects (never other nodes). Connection state recovery calls it
    /// while holding its log, so recorded packets reach every socket in offset order.
    fn broadcast_local_now(&self, packet: &OutgoingPacket, opts: &BroadcastOptions);

    /// Sends `packet` (which carries an ack id) to the sockets `opts` selects;
    /// tells `acks` how many answers to expect and hands it every answer.
    fn broadcast_with_ack(
        &self,
        packet: OutgoingPacket,
        opts: BroadcastOptions,
        acks: AckCollector,
    ) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Ids of the sockets in any of `rooms` (every socket when empty).
    fn sockets(&self, rooms: Vec<Room>) -> BoxFuture<'_, Result<Vec<Sid>, AdapterError>>;

    /// The rooms socket `sid` is in.
    fn socket_rooms(&self, sid: Sid) -> BoxFuture<'_, Result<Vec<Room>, AdapterError>>;

    /// The sockets `opts` selects.
    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<'_, Result<Vec<RemoteSocket>, AdapterError>>;

    /// Makes the sockets `opts` selects join `rooms`.
    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Makes the sockets `opts` selects leave `rooms`.
    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Disconnects the sockets `opts` selects; `close` also closes their connections.
    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Sends an event to the other nodes' servers (a no-op on a single node).
    fn server_side_emit(
        &self,
        _event: String,
        _args: crate::Payload,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Records `packet` for connection state recovery on a cluster. An adapter
    /// that returns `true` sequences it itself: it gives the packet a
    /// cluster-wide offset and hands it back on every node (this one
    /// included) through [`AdapterContext::deliver_recorded`], or, when it
    /// cannot (the cluster is unreachable), delivers it here without an offset.
    /// `false` (the default) lets the namespace record it in this process.
    fn record(&self, _packet: &OutgoingPacket, _opts: &BroadcastOptions) -> bool {
        false
    }

    /// A socket with private id `pid` (its recovery token) connected on this
    /// node, after `connected_at` in the log. A cluster adapter keeps this, and
    /// the socket's rooms, where another node can find them if this one dies.
    fn session_connected(&self, _pid: Sid, _sid: Sid, _connected_at: u64) {}

    /// A socket with private id `pid` left this node.
    fn session_ended(&self, _pid: Sid, _sid: Sid, _ending: SessionEnding) {}

    /// Takes (consumes) a session another node kept for connection state
    /// recovery; `None` when no node knows `pid`.
    fn take_remote_session(
        &self,
        _pid: Sid,
    ) -> BoxFuture<'_, Result<Option<RemoteSession>, AdapterError>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// How a socket left, as [`Adapter::session_ended`] hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnding {
    /// It may come back within the recovery window, to these rooms.
    Resumable(Vec<Room>),
    /// It will not come back: forget it.
    Final,
    /// Its client came back elsewhere, which now holds the session: leave it alone.
    TakenOver,
}

/// A session kept by another node of a cluster, for connection state recovery.
///
/// ```
/// use tidewire::adapter::RemoteSession;
/// let kept = RemoteSession { sid: tidewire::Sid::generate(), rooms: vec!["lobby".into()], connected_at: 0 };
/// assert_eq!(kept.rooms.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct RemoteSession {
    /// The socket id the client had.
    pub sid: Sid,
    /// The rooms it was in.
    pub rooms: Vec<Room>,
    /// The log offset when it connected (where a client with no offset resumes).
    pub connected_at: u64,
}

/// The in-memory adapter: rooms of this process only.
///
/// ```
/// # tokio_test_block(async {
/// use tidewire::{Adapter, LocalAdapter, Room};
/// use tidewire_engine::Sid;
/// let adapter = LocalAdapter::detached("/");
/// let sid = Sid::generate();
/// adapter.add_all(sid, vec![Room::from("a"), Room::from("b")]).await.unwrap();
/// assert_eq!(adapter.socket_rooms(sid).await.unwrap().len(), 2);
/// adapter.del(sid, Room::from("a")).await.unwrap();
/// assert_eq!(adapter.sockets(vec![Room::from("a")]).await.unwrap(), vec![]);
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct LocalAdapter {
    ctx: AdapterContext,
    state: RwLock<RoomState>,
}

/// Rooms with at least this many local members get a shared channel: a
/// broadcast to them is one append, whatever their size.
const FANOUT_MIN_MEMBERS: usize = 2;

#[derive(Default)]
struct RoomState {
    rooms: HashMap<Room, HashSet<Sid>>,
    sids: HashMap<Sid, SmallVec<[Room; 2]>>,
    /// How a plain `to(room)` broadcast reaches a large room's local sockets,
    /// kept up to date on every join and leave.
    fanouts: HashMap<Room, RoomFanout>,
}

/// A large room's local members: most on one engine channel, the rest
/// (restored sockets still flushing their replay) delivered one by one.
struct RoomFanout {
    channel: Channel,
    subscribed: HashMap<Sid, Socket>,
    others: Arc<[Socket]>,
}

impl RoomFanout {
    fn new(channel: Channel, sockets: Vec<Socket>) -> Self {
        let mut fanout = Self {
            channel,
            subscribed: HashMap::with_capacity(sockets.len()),
            others: Arc::from([]),
        };
        let mut others = Vec::new();
        for socket in sockets {
            if socket.subscribe(&fanout.channel) {
                fanout.subscribed.insert(socket.id(), socket);
            } else {
                others.push(socket);
            }
        }
        fanout.others = others.into();
        fanout
    }

    /// Adds `socket` (or replaces the socket that had its id: a resumed session).
    fn add(&mut self, socket: Socket) {
        self.remove(&socket.id());
        if socket.subscribe(&self.channel) {
            self.subscribed.insert(socket.id(), socket);
        } else {
            let mut others = self.others.to_vec();
            others.push(socket);
            self.others = others.into();
        }
    }

    fn remove(&mut self, sid: &Sid) {
        if let Some(socket) = self.subscribed.remove(sid) {
            socket.unsubscribe(&self.channel);
        } else if self.others.iter().any(|s| s.id() == *sid) {
            self.others = self
                .others
                .iter()
                .filter(|s| s.id() != *sid)
                .cloned()
                .collect();
        }
    }

    fn holds(&self, socket: &Socket) -> bool {
        self.subscribed
            .get(&socket.id())
            .is_some_and(|s| s == socket)
            || self.others.iter().any(|s| s == socket)
    }
}

impl Drop for RoomFanout {
    fn drop(&mut self) {
        for socket in self.subscribed.values() {
            socket.unsubscribe(&self.channel);
        }
    }
}

impl std::fmt::Debug for LocalAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.read();
        f.debug_struct("LocalAdapter")
            .field("namespace", &self.ctx.name)
            .field("rooms", &state.rooms.len())
            .field("sockets", &state.sids.len())
            .finish()
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

impl LocalAdapter {
    /// The adapter of the namespace `ctx` describes.
    ///
    /// ```
    /// let io = tidewire::SocketIo::builder()
    ///     .adapter(|ctx| std::sync::Arc::new(tidewire::LocalAdapter::new(ctx)))
    ///     .build();
    /// ```
    pub fn new(ctx: AdapterContext) -> Self {
        Self {
            ctx,
            state: RwLock::default(),
        }
    }

    /// An adapter attached to no namespace (it tracks rooms but reaches no
    /// socket); for tests.
    ///
    /// ```
    /// let adapter = tidewire::LocalAdapter::detached("/test");
    /// ```
    pub fn detached(name: &str) -> Self {
        Self::new(AdapterContext {
            ns: Weak::new(),
            name: Arc::from(name),
        })
    }

    fn add_all_now(&self, sid: Sid, rooms: Vec<Room>) {
        let mut state = self.state.write();
        let RoomState {
            rooms: by_room,
            sids,
            fanouts,
        } = &mut *state;
        let socket = if fanouts.is_empty() {
            None
        } else {
            self.ctx.local_socket(&sid)
        };
        let mine = sids.entry(sid).or_default();
        // The socket may be a new one with a known id (a resumed session):
        // the rooms it is already in reach the new one.
        if let Some(socket) = &socket {
            for room in mine.iter() {
                if let Some(fanout) = fanouts.get_mut(room) {
                    if !fanout.holds(socket) {
                        fanout.add(socket.clone());
                    }
                }
            }
        }
        for room in rooms {
            if mine.contains(&room) {
                continue;
            }
            by_room.entry(room.clone()).or_default().insert(sid);
            if let Some(fanout) = fanouts.get_mut(&room) {
                match &socket {
                    Some(socket) => fanout.add(socket.clone()),
                    // Not a socket of this namespace yet: resolved again at the next broadcast.
                    None => {
                        fanouts.remove(&room);
                    }
                }
            }
            mine.push(room);
        }
    }

    fn del_now(&self, sid: Sid, room: &str) {
        let mut state = self.state.write();
        let RoomState {
            rooms,
            sids,
            fanouts,
        } = &mut *state;
        if let Some(mine) = sids.get_mut(&sid) {
            mine.retain(|r| r.as_str() != room);
        }
        if let Some(fanout) = fanouts.get_mut(room) {
            fanout.remove(&sid);
        }
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&sid);
            if members.is_empty() {
                rooms.remove(room);
                fanouts.remove(room);
            }
        }
    }

    fn del_all_now(&self, sid: Sid) {
        let mut state = self.state.write();
        let RoomState {
            rooms,
            sids,
            fanouts,
        } = &mut *state;
        for room in sids.remove(&sid).unwrap_or_default() {
            if let Some(fanout) = fanouts.get_mut(&room) {
                fanout.remove(&sid);
            }
            if let Some(members) = rooms.get_mut(&room) {
                members.remove(&sid);
                if members.is_empty() {
                    rooms.remove(&room);
                    fanouts.remove(&room);
                }
            }
        }
    }

    /// Ids selected by `opts`.
    fn select(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let state = self.state.read();
        let excluded: HashSet<Sid> = opts
            .except
            .iter()
            .filter_map(|r| state.rooms.get(r.as_str()))
            .flatten()
            .copied()
            .collect();
        if opts.rooms.is_empty() {
            return state
                .sids
                .keys()
                .filter(|s| !excluded.contains(*s))
                .copied()
                .collect();
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for room in &opts.rooms {
            if let Some(members) = state.rooms.get(room.as_str()) {
                for sid in members {
                    if !excluded.contains(sid) && (opts.rooms.len() == 1 || seen.insert(*sid)) {
                        out.push(*sid);
                    }
                }
            }
        }
        out
    }

    /// How a broadcast reaches `room`'s local sockets when the room is large:
    /// its channel and the members not on it. Set up on the first broadcast,
    /// then kept up to date by joins and leaves.
    fn fanout(&self, room: &Room) -> Option<(Channel, Arc<[Socket]>)> {
        {
            let state = self.state.read();
            if let Some(fanout) = state.fanouts.get(room.as_str()) {
                return Some((fanout.channel.clone(), fanout.others.clone()));
            }
            if state.rooms.get(room.as_str())?.len() < FANOUT_MIN_MEMBERS {
                return None;
            }
        }
        let mut state = self.state.write();
        let state = &mut *state;
        if let Some(fanout) = state.fanouts.get(room.as_str()) {
            return Some((fanout.channel.clone(), fanout.others.clone()));
        }
        let sids: Vec<Sid> = state.rooms.get(room.as_str())?.iter().copied().collect();
        let sockets = self.ctx.local_sockets(Some(&sids));
        if sockets.len() < FANOUT_MIN_MEMBERS {
            return None;
        }
        let fanout = RoomFanout::new(sockets[0].new_channel(), sockets);
        let found = (fanout.channel.clone(), fanout.others.clone());
        state.fanouts.insert(room.clone(), fanout);
        Some(found)
    }

    fn apply(&self, opts: &BroadcastOptions) -> Vec<Socket> {
        let sids = self.select(opts);
        self.ctx.local_sockets(Some(&sids))
    }

    fn rooms_of(&self, sid: &Sid) -> Vec<Room> {
        self.state
            .read()
            .sids
            .get(sid)
            .map(|r| r.to_vec())
            .unwrap_or_default()
    }
}

impl Adapter for LocalAdapter {
    fn add_all(&self, sid: Sid, rooms: Vec<Room>) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.add_all_now(sid, rooms);
        ready(Ok(()))
    }

    fn del(&self, sid: Sid, room: Room) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.del_now(sid, &room);
        ready(Ok(()))
    }

    fn del_all(&self, sid: Sid) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.del_all_now(sid);
        ready(Ok(()))
    }

    fn broadcast(
        &self,
        packet: OutgoingPacket,
        opts: BroadcastOptions,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.broadcast_local_now(&packet, &opts);
        ready(Ok(()))
    }

    fn broadcast_local_now(&self, packet: &OutgoingPacket, opts: &BroadcastOptions) {
        if let ([room], [], false) = (
            opts.rooms.as_slice(),
            opts.except.as_slice(),
            opts.flags.volatile,
        ) {
            // One large room, nobody excluded: one append to its channel.
            if let Some((channel, others)) = self.fanout(room) {
                channel.publish(packet.engine_packets());
                for socket in others.iter() {
                    if socket.connected() {
                        let _ = socket.deliver(packet, false);
                    }
                }
                return;
            }
        }
        for socket in self.apply(opts) {
            // A full queue closes that client on its own; others are unaffected.
            let _ = socket.deliver(packet, opts.flags.volatile);
        }
    }

    fn broadcast_with_ack(
        &self,
        packet: OutgoingPacket,
        opts: BroadcastOptions,
        acks: AckCollector,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        for socket in self.apply(&opts) {
            socket.deliver_with_ack(&packet, &acks, opts.flags.volatile);
        }
        ready(Ok(()))
    }

    fn sockets(&self, rooms: Vec<Room>) -> BoxFuture<'_, Result<Vec<Sid>, AdapterError>> {
        let opts = BroadcastOptions {
            rooms,
            ..Default::default()
        };
        ready(Ok(self.select(&opts)))
    }

    fn socket_rooms(&self, sid: Sid) -> BoxFuture<'_, Result<Vec<Room>, AdapterError>> {
        ready(Ok(self.rooms_of(&sid)))
    }

    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<'_, Result<Vec<RemoteSocket>, AdapterError>> {
        let found = self
            .apply(&opts)
            .iter()
            .map(|s| RemoteSocket::from_local(s, self.rooms_of(&s.id())))
            .collect();
        ready(Ok(found))
    }

    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        for sid in self.select(&opts) {
            self.add_all_now(sid, rooms.clone());
        }
        ready(Ok(()))
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        for sid in self.select(&opts) {
            for room in &rooms {
                self.del_now(sid, room);
            }
        }
        ready(Ok(()))
    }

    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        for socket in self.apply(&opts) {
            if close {
                socket.close();
            } else {
                socket.disconnect();
            }
        }
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn rooms_select_with_except() {
        block(async {
            let a = LocalAdapter::detached("/");
            let (s1, s2, s3) = (Sid::generate(), Sid::generate(), Sid::generate());
            for s in [s1, s2, s3] {
                a.add_all(s, vec![Room::from(s)]).await.unwrap();
            }
            a.add_all(s1, vec!["r".into(), "x".into()]).await.unwrap();
            a.add_all(s2, vec!["r".into()]).await.unwrap();
            a.add_all(s3, vec!["x".into()]).await.unwrap();

            let mut r = a.select(&BroadcastOptions::default().to("r"));
            r.sort_by_key(|s| s.to_string());
            let mut want = vec![s1, s2];
            want.sort_by_key(|s| s.to_string());
            assert_eq!(r, want);
            // Union of rooms, deduplicated.
            assert_eq!(
                a.select(&BroadcastOptions::default().to(["r", "x"])).len(),
                3
            );
            // Except a room, and except a socket id.
            assert_eq!(
                a.select(&BroadcastOptions::default().to("r").except("x")),
                vec![s2]
            );
            assert_eq!(a.select(&BroadcastOptions::default().except(s1)).len(), 2);
            assert_eq!(a.select(&BroadcastOptions::default()).len(), 3);

            a.del_all(s1).await.unwrap();
            assert_eq!(a.sockets(vec!["r".into()]).await.unwrap(), vec![s2]);
            assert!(a.socket_rooms(s1).await.unwrap().is_empty());
            a.del(s2, "r".into()).await.unwrap();
            assert!(!a.state.read().rooms.contains_key("r"));
            assert!(!a.record(
                &OutgoingPacket::from_parts(bytes::Bytes::from_static(b"2[\"x\"]"), vec![], None),
                &BroadcastOptions::default()
            ));
        });
    }

    #[test]
    fn small_rooms_and_detached_adapters_have_no_fanout() {
        block(async {
            let a = LocalAdapter::detached("/");
            let r = Room::from("r");
            assert!(a.fanout(&r).is_none(), "no room");
            for _ in 0..FANOUT_MIN_MEMBERS * 2 {
                a.add_all(Sid::generate(), vec![r.clone()]).await.unwrap();
            }
            // Members without local sockets (a detached adapter reaches none).
            assert!(a.fanout(&r).is_none());
            assert!(a.state.read().fanouts.is_empty());
        });
    }
}
