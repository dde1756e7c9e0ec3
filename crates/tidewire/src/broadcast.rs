//! Broadcast operators: choose recipients, then emit or act on them.
//!
//! Start from a [`SocketIo`](crate::SocketIo), a [`Namespace`] or a
//! [`Socket`](crate::Socket) (which excludes itself), chain `to`/`within`,
//! `except`, `volatile`, `local`, `timeout`, and finish with `emit`,
//! `emit_with_ack`, `fetch_sockets`, `join`, `leave`, `disconnect` or `close`.
//!
//! ```no_run
//! # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! io.to(["red", "blue"]).except("muted").emit("news", "hi").await?;
//! let answers = io
//!     .within("voters")
//!     .timeout(Duration::from_secs(5))
//!     .emit_with_ack::<bool>("vote", "pizza?")
//!     .await?;
//! let yes = answers.iter().filter(|(_, r)| matches!(r, Ok(true))).count();
//! io.within("lobby").join("game-1").await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ack::{decode_replies, AckCollector, AckReplies};
use crate::adapter::{push_unique, BroadcastOptions, IntoRooms, RemoteSocket};
use crate::error::{AdapterError, BroadcastError};
use crate::namespace::Namespace;
use crate::packet::{encode_event, RESERVED_EVENTS};

/// Recipients and flags of a broadcast. Build one from
/// [`SocketIo::to`](crate::SocketIo::to), [`Namespace::to`],
/// [`Socket::to`](crate::Socket::to), ...
///
/// ```no_run
/// # async fn demo(ns: tidewire::Namespace) -> Result<(), tidewire::BroadcastError> {
/// ns.to("room").volatile().emit("position", (1, 2)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a broadcast operator does nothing until emit, join, ... is called"]
pub struct BroadcastOperator {
    ns: Namespace,
    opts: BroadcastOptions,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Namespace, opts: BroadcastOptions) -> Self {
        Self { ns, opts }
    }

    /// Adds target rooms (a socket in any of them receives the packet once).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.to("a").to(["b", "c"]).emit("news", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        push_unique(&mut self.opts.rooms, rooms);
        self
    }

    /// Same as [`BroadcastOperator::to`] (`in` in JavaScript).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.within("a").emit("news", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn within(self, rooms: impl IntoRooms) -> Self {
        self.to(rooms)
    }

    /// Excludes sockets in `rooms` (a socket id excludes that socket).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.to("players").except("spectators").emit("turn", 3).await?;
    /// # Ok(()) }
    /// ```
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        push_unique(&mut self.opts.except, rooms);
        self
    }

    /// Lets the packet be dropped for clients that are not ready for it.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.to("game").volatile().emit("position", (10, 20)).await?;
    /// # Ok(()) }
    /// ```
    pub fn volatile(mut self) -> Self {
        self.opts.flags.volatile = true;
        self
    }

    /// Only sockets of this node (with a cluster adapter).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.to("game").local().emit("tick", 1).await?;
    /// # Ok(()) }
    /// ```
    pub fn local(mut self) -> Self {
        self.opts.flags.local = true;
        self
    }

    /// How long [`BroadcastOperator::emit_with_ack`] waits for answers (the
    /// server's `ack_timeout` by default).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let replies = io.to("voters").timeout(Duration::from_secs(3)).emit_with_ack::<bool>("vote", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.flags.timeout = Some(timeout);
        self
    }

    /// The options this operator carries.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// assert_eq!(io.to("a").options().rooms.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    /// Emits `event` to the selected sockets. The packet is encoded once; every
    /// recipient's queue shares the same bytes.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.to("lobby").emit("news", serde_json::json!({"title": "hi"})).await?;
    /// # Ok(()) }
    /// ```
    pub fn emit(
        self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<(), BroadcastError>> + Send + 'static {
        let encoded =
            check(event).and_then(|()| Ok(encode_event(self.ns.name(), event, &data, None)?));
        async move {
            let packet = encoded?;
            let adapter = self.ns.adapter();
            match self.ns.recovery() {
                // Recorded for connection state recovery: logged once, delivered
                // in offset order (by the cluster, when the adapter sequences it).
                Some(store) if !self.opts.flags.volatile => {
                    if !adapter.record(&packet, &self.opts) {
                        store.record(&packet, &self.opts, |stamped| {
                            adapter.broadcast_local_now(stamped, &self.opts)
                        });
                    }
                }
                _ => adapter.broadcast(packet, self.opts).await?,
            }
            Ok(())
        }
    }

    /// Emits `event` and collects every recipient's answer within the
    /// timeout: one `(socket id, result)` per recipient; a socket that did
    /// not answer in time has [`AckError::Timeout`](crate::AckError::Timeout).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// for (id, answer) in io.to("lobby").emit_with_ack::<String>("name?", ()).await? {
    ///     println!("{id}: {answer:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn emit_with_ack<T: DeserializeOwned + Send + 'static>(
        self,
        event: &str,
        data: impl Serialize,
    ) -> impl Future<Output = Result<AckReplies<T>, BroadcastError>> + Send + 'static {
        let id = self.ns.next_ack_id();
        let encoded =
            check(event).and_then(|()| Ok(encode_event(self.ns.name(), event, &data, Some(id))?));
        async move {
            let packet = encoded?;
            let timeout = self
                .opts
                .flags
                .timeout
                .unwrap_or(self.ns.server().config.ack_timeout);
            let acks = AckCollector::new();
            self.ns
                .adapter()
                .broadcast_with_ack(packet, self.opts, acks.clone())
                .await?;
            Ok(decode_replies(acks.wait(timeout).await))
        }
    }

    /// The selected sockets (on every node, with a cluster adapter).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// let sockets = io.within("lobby").fetch_sockets().await?;
    /// println!("{} in the lobby", sockets.len());
    /// # Ok(()) }
    /// ```
    pub async fn fetch_sockets(self) -> Result<Vec<RemoteSocket>, AdapterError> {
        self.ns.adapter().fetch_sockets(self.opts).await
    }

    /// Makes the selected sockets join `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.within("lobby").join("game-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn join(self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        let rooms = rooms.into_rooms();
        self.ns.adapter().add_sockets(self.opts, rooms).await
    }

    /// Makes the selected sockets leave `rooms`.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.within("game-1").leave("game-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn leave(self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        let rooms = rooms.into_rooms();
        self.ns.adapter().del_sockets(self.opts, rooms).await
    }

    /// Disconnects the selected sockets from this namespace.
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.within("banned").disconnect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(self) -> Result<(), AdapterError> {
        self.ns.adapter().disconnect_sockets(self.opts, false).await
    }

    /// Closes the selected sockets' whole connections (every namespace).
    ///
    /// ```no_run
    /// # async fn demo(io: tidewire::SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    /// io.within("banned").close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(self) -> Result<(), AdapterError> {
        self.ns.adapter().disconnect_sockets(self.opts, true).await
    }
}

fn check(event: &str) -> Result<(), BroadcastError> {
    if RESERVED_EVENTS.contains(&event) {
        Err(BroadcastError::ReservedEvent(event.to_owned()))
    } else {
        Ok(())
    }
}
