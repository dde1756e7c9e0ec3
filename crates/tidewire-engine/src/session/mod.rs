//! The session handle the layer above holds.

pub(crate) mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::channel::{Channel, Subscriber};
use crate::engine::EngineShared;
use crate::packet::EncodedPacket;
use crate::{CloseReason, HandshakeRequest, Message, Sid, TransportKind};
pub use state::SendError;
use state::SessionState;

/// Who learns that a session closed (the engine that owns it).
pub(crate) trait SessionOwner<D: Send + Sync + 'static>: Send + Sync {
    fn session_closed(&self, session: &Session<D>, reason: CloseReason);
}

pub(crate) struct SessionInner<D: Send + Sync + 'static> {
    id: Sid,
    pub(crate) state: Mutex<SessionState>,
    /// Wakes whoever writes downstream: a WebSocket task or a pending poll.
    /// Notified only through [`SessionInner::notify_writers`].
    notify: Notify,
    /// How many times `notify` woke its waiters: a writer that saw the same count
    /// before and after a write knows nothing changed meanwhile.
    wakes: AtomicU64,
    pub(crate) shared: Arc<EngineShared>,
    owner: Weak<dyn SessionOwner<D>>,
    handshake: HandshakeRequest,
    data: D,
}

/// One Engine.IO session, whatever transport carries it. Cheap to clone.
///
/// Sending queues an already-encoded packet; the session's transport writes
/// it out. Every queue is bounded: a client that does not keep up is closed
/// with [`CloseReason::SlowConsumer`] rather than holding memory without
/// limit, and a normal packet is never dropped silently.
///
/// ```no_run
/// # fn demo(session: tidewire_engine::Session<()>) {
/// use tidewire_engine::packet::EncodedPacket;
/// session.send_text("hello").unwrap();
/// // Encode once, queue everywhere: clones share the bytes.
/// let shared = EncodedPacket::message("news");
/// session.send(shared.clone()).unwrap();
/// # }
/// ```
pub struct Session<D: Send + Sync + 'static>(pub(crate) Arc<SessionInner<D>>);

/// A [`Session`] handle that does not keep the session alive; see [`Session::downgrade`].
pub struct WeakSession<D: Send + Sync + 'static>(Weak<SessionInner<D>>);

impl<D: Send + Sync + 'static> WeakSession<D> {
    /// The session, if anything else still holds it.
    pub fn upgrade(&self) -> Option<Session<D>> {
        self.0.upgrade().map(Session)
    }
}

impl<D: Send + Sync + 'static> Clone for WeakSession<D> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<D: Send + Sync + 'static> std::fmt::Debug for WeakSession<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakSession")
    }
}

impl<D: Send + Sync + 'static> Clone for Session<D> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<D: Send + Sync + 'static> std::fmt::Debug for Session<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.0.id)
            .field("transport", &self.transport())
            .finish_non_exhaustive()
    }
}

impl<D: Send + Sync + 'static> PartialEq for Session<D> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<D: Send + Sync + 'static> Session<D> {
    pub(crate) fn new(
        id: Sid,
        transport: TransportKind,
        shared: Arc<EngineShared>,
        owner: Weak<dyn SessionOwner<D>>,
        handshake: HandshakeRequest,
        data: D,
    ) -> Self {
        let state = SessionState::new(transport, Instant::now(), &shared.limits);
        Self(Arc::new(SessionInner {
            id,
            state: Mutex::new(state),
            notify: Notify::new(),
            wakes: AtomicU64::new(0),
            shared,
            owner,
            handshake,
            data,
        }))
    }

    /// The session id (`sid`).
    pub fn id(&self) -> Sid {
        self.0.id
    }

    /// The layer above's per-session data.
    pub fn data(&self) -> &D {
        &self.0.data
    }

    /// The handshake request that opened the session.
    pub fn handshake(&self) -> &HandshakeRequest {
        &self.0.handshake
    }

    /// The transport carrying the session now; it changes on upgrade.
    pub fn transport(&self) -> TransportKind {
        self.0.state.lock().transport()
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.0.state.lock().closed().is_some()
    }

    /// Packets waiting to be written to the client.
    pub fn queued(&self) -> usize {
        self.0.state.lock().queued()
    }

    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send(EncodedPacket::message(text))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.send(EncodedPacket::binary(data))
    }

    /// Queues a received-style [`Message`] (text or binary).
    pub fn send_message(&self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_text(text.as_str()),
            Message::Binary(data) => self.send_binary(data),
        }
    }

    /// Queues one encoded packet.
    pub fn send(&self, packet: EncodedPacket) -> Result<(), SendError> {
        let result = self.0.state.lock().push(packet, &self.0.shared.limits);
        self.after_push(result)
    }

    /// Queues several packets together, in order, with nothing in between
    /// (a Socket.IO packet and its binary attachments).
    ///
    /// Fails as a whole: either every packet is queued or none is.
    pub fn send_batch<I>(&self, packets: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = EncodedPacket>,
        I::IntoIter: ExactSizeIterator + Clone,
    {
        let result = self.0.state.lock().push_all(packets, &self.0.shared.limits);
        self.after_push(result)
    }

    /// Queues a packet that may be dropped when the client is not ready for it
    /// (its queue is half full, or an upgrade is in progress). Drops are counted
    /// in the engine's metrics.
    pub fn send_volatile(&self, packet: EncodedPacket) -> Result<(), SendError> {
        self.send_batch_volatile([packet])
    }

    /// [`Session::send_volatile`] for a packet with attachments: queued or dropped as a whole.
    pub fn send_batch_volatile<I>(&self, packets: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = EncodedPacket>,
        I::IntoIter: ExactSizeIterator + Clone,
    {
        let result = self
            .0
            .state
            .lock()
            .push_volatile_all(packets, &self.0.shared.limits);
        self.after_push(result)
    }

    /// A handle that does not keep the session alive (for timers and caches).
    ///
    /// ```no_run
    /// # fn demo(session: tidewire_engine::Session<()>) {
    /// let weak = session.downgrade();
    /// drop(session);
    /// if let Some(session) = weak.upgrade() { let _ = session.send_text("still here"); }
    /// # }
    /// ```
    pub fn downgrade(&self) -> WeakSession<D> {
        WeakSession(Arc::downgrade(&self.0))
    }

    /// A [`Channel`] sized by this session's engine limits (buffered packets
    /// and bytes), tagged `group`.
    ///
    /// ```no_run
    /// # fn demo(session: tidewire_engine::Session<()>) {
    /// let channel = session.new_channel(1);
    /// assert_eq!(channel.group(), 1);
    /// # }
    /// ```
    pub fn new_channel(&self, group: u64) -> Channel {
        let limits = &self.0.shared.limits;
        Channel::new(group, limits.max_packets, limits.max_bytes)
    }

    /// Writes out everything `channel` publishes from now on, in order with
    /// what is sent to this session directly. False if the session is closed
    /// or already subscribed.
    ///
    /// ```no_run
    /// # fn demo(session: tidewire_engine::Session<()>, channel: tidewire_engine::Channel) {
    /// if session.subscribe(&channel) {
    ///     channel.publish(&[tidewire_engine::packet::EncodedPacket::message("hi")]);
    /// }
    /// # }
    /// ```
    pub fn subscribe(&self, channel: &Channel) -> bool {
        let who: Weak<dyn Subscriber> = Arc::downgrade(&self.0) as Weak<dyn Subscriber>;
        self.0.state.lock().subscribe(&channel.0, who)
    }

    /// Stops reading `channel`; what it published before is still written.
    /// False if the session was not subscribed.
    ///
    /// ```no_run
    /// # fn demo(session: tidewire_engine::Session<()>, channel: tidewire_engine::Channel) {
    /// session.unsubscribe(&channel);
    /// # }
    /// ```
    pub fn unsubscribe(&self, channel: &Channel) -> bool {
        self.0.state.lock().unsubscribe(&channel.0)
    }

    /// Stops reading every channel tagged `group` (see [`Channel::new`]);
    /// returns how many it left.
    ///
    /// ```no_run
    /// # fn demo(session: tidewire_engine::Session<()>) {
    /// let left = session.unsubscribe_group(1);
    /// # }
    /// ```
    pub fn unsubscribe_group(&self, group: u64) -> usize {
        self.0.state.lock().unsubscribe_group(group)
    }

    fn after_push(&self, result: Result<bool, SendError>) -> Result<(), SendError> {
        match result {
            Ok(true) => {
                self.0.notify_writers();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(SendError::SlowConsumer) => {
                self.close_slow_consumer("outgoing queue full");
                Err(SendError::SlowConsumer)
            }
            Err(SendError::Dropped) => {
                self.0.shared.metrics.volatile_dropped.incr();
                Err(SendError::Dropped)
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the session as a slow consumer if it holds more than its limits
    /// allow (see `SessionState::holds_too_much`).
    pub(crate) fn enforce_limits(&self) {
        let limits = self.0.shared.limits;
        if self.0.state.lock().holds_too_much(&limits) {
            self.close_slow_consumer("too many packets waiting for the client's confirmation");
        }
    }

    fn close_slow_consumer(&self, why: &'static str) {
        self.0.shared.metrics.slow_consumer_closes.incr();
        tracing::warn!(sid = %self.0.id, why, "closing slow consumer");
        self.close(CloseReason::SlowConsumer);
    }

    /// Closes the session. The layer above's `on_close` runs once, with `reason`.
    ///
    /// Server-chosen closes ([`CloseReason::ForcedClose`], [`CloseReason::ServerShutdown`])
    /// first flush what is queued, then send the client a close packet.
    pub fn close(&self, reason: CloseReason) {
        let first = self.0.state.lock().close(reason);
        if !first {
            return;
        }
        tracing::debug!(sid = %self.0.id, %reason, "session closed");
        self.0.notify_writers();
        if let Some(owner) = self.0.owner.upgrade() {
            owner.session_closed(self, reason);
        }
    }

    /// Resolves when the session's state may have changed (packets queued,
    /// closed, upgrade progress). Enable-before-check: call `enable()` on the
    /// returned future before looking at the state, then await it.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.notify.notified()
    }

    /// Wakes every waiter without changing anything (a heartbeat or probe event).
    pub(crate) fn wake(&self) {
        self.0.notify_writers();
    }

    /// How many wake-ups the session has had. Read after enabling a
    /// [`Session::changed`] future: if a later read gives the same count, no
    /// state change that wakes writers happened in between.
    pub(crate) fn wakes(&self) -> u64 {
        self.0.wakes.load(Ordering::SeqCst)
    }

    /// Runs `f` on the locked state machine.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut SessionState) -> R) -> R {
        f(&mut self.0.state.lock())
    }

    pub(crate) fn limits(&self) -> &state::Limits {
        &self.0.shared.limits
    }
}

impl<D: Send + Sync + 'static> SessionInner<D> {
    fn notify_writers(&self) {
        // Counted first: a writer that reads the same count after enabling its
        // wait-for-change future missed no wake-up (this one will reach it).
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

impl<D: Send + Sync + 'static> Subscriber for SessionInner<D> {
    fn wake(&self) {
        self.notify_writers();
    }

    fn lagged(self: Arc<Self>) {
        Session(self).close_slow_consumer("fell behind a shared channel");
    }
}
