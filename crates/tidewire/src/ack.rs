//! Acknowledgements, both ways.
//!
//! - client → server: an event handler receives an [`AckSender`]; calling
//!   [`AckSender::send`] answers the client's callback once.
//! - server → client: [`Socket::emit_with_ack`](crate::Socket::emit_with_ack)
//!   returns an [`AckFuture`] that resolves with the client's answer, or with
//!   [`AckError::Timeout`]; broadcasts collect every answer with an
//!   [`AckCollector`].
//!
//! ```no_run
//! # async fn demo(socket: tidewire::Socket) -> Result<(), tidewire::AckError> {
//! use std::time::Duration;
//! let answer: String = socket
//!     .emit_with_ack("question", "ready?")
//!     .timeout(Duration::from_secs(2))
//!     .await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tidewire_engine::Sid;
use tokio::sync::{oneshot, Notify};

use crate::error::{AckError, EmitError};
use crate::packet::encode_ack;
use crate::payload::Payload;
use crate::socket::Socket;

/// Answers the client's acknowledgement callback, at most once.
///
/// When the client did not ask for an ack, [`AckSender::send`] does nothing.
///
/// ```no_run
/// # fn demo(socket: tidewire::Socket) {
/// socket.on("add", |_socket, (a, b): (i64, i64), ack| async move {
///     let _ = ack.send(a + b);
/// });
/// # }
/// ```
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: Option<u64>,
}

impl AckSender {
    pub(crate) fn new(socket: Socket, id: Option<u64>) -> Self {
        Self { socket, id }
    }

    /// Whether the client asked for an acknowledgement.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on("maybe", |_socket, _data: serde_json::Value, ack| async move {
    ///     if ack.expected() {
    ///         let _ = ack.send("thanks");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn expected(&self) -> bool {
        self.id.is_some()
    }

    /// Answers with one argument (or several with [`Args`](crate::Args)).
    /// Byte buffers travel as binary attachments.
    ///
    /// ```no_run
    /// # fn demo(socket: tidewire::Socket) {
    /// socket.on("add", |_socket, (a, b): (i64, i64), ack| async move {
    ///     let _ = ack.send(a + b); // or ack.send(tidewire::Args((a, b))) for two arguments
    /// });
    /// # }
    /// ```
    pub fn send(self, data: impl Serialize) -> Result<(), EmitError> {
        let Some(id) = self.id else { return Ok(()) };
        if !self.socket.connected() {
            return Err(EmitError::Disconnected);
        }
        let packet = encode_ack(self.socket.ns_name(), id, &data)?;
        self.socket.deliver(&packet, false)
    }
}

/// What the client answered to a server ack request.
pub(crate) enum Pending {
    One(oneshot::Sender<Payload>),
    Many(AckCollector),
}

/// A socket's pending server → client acks; allocates only when used.
// Boxed on purpose: an idle socket pays one pointer, not an empty HashMap's 48 bytes.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub(crate) struct PendingAcks(Option<Box<HashMap<u64, Pending>>>);

impl PendingAcks {
    pub fn insert(&mut self, id: u64, pending: Pending) {
        let map = self.0.get_or_insert_with(Default::default);
        if map.len() >= 64 {
            // Drop entries nobody waits for any more (timed out).
            map.retain(|_, p| match p {
                Pending::One(tx) => !tx.is_closed(),
                Pending::Many(c) => !c.is_done(),
            });
        }
        map.insert(id, pending);
    }

    pub fn remove(&mut self, id: u64) -> Option<Pending> {
        let map = self.0.as_mut()?;
        let found = map.remove(&id);
        if map.is_empty() {
            self.0 = None;
        }
        found
    }

    pub fn take_all(&mut self) -> Vec<Pending> {
        self.0
            .take()
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }
}

/// The client's answer to [`Socket::emit_with_ack`](crate::Socket::emit_with_ack):
/// await it (directly, or after [`AckFuture::timeout`]).
///
/// The answer deserializes into `T` following the [`Payload`] rule (one
/// argument: that argument; otherwise the list).
///
/// ```no_run
/// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
/// let reply: serde_json::Value = socket.emit_with_ack("ping", ()).await?;
/// # Ok(()) }
/// ```
#[must_use = "an AckFuture does nothing unless awaited"]
pub struct AckFuture<T> {
    state: Result<(oneshot::Receiver<Payload>, Socket, u64), EmitError>,
    timeout: Duration,
    _marker: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for AckFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckFuture")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<T> AckFuture<T> {
    pub(crate) fn new(
        state: Result<(oneshot::Receiver<Payload>, Socket, u64), EmitError>,
        timeout: Duration,
    ) -> Self {
        Self {
            state,
            timeout,
            _marker: PhantomData,
        }
    }

    /// How long to wait for the answer (the server's `ack_timeout` by default).
    ///
    /// ```no_run
    /// # async fn demo(socket: tidewire::Socket) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let ok: bool = socket.emit_with_ack("confirm", "sure?").timeout(Duration::from_millis(500)).await?;
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for AckFuture<T> {
    type Output = Result<T, AckError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, AckError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (rx, socket, id) = self.state?;
            match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(payload)) => payload.deserialize().map_err(AckError::Decode),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => {
                    socket.forget_ack(id);
                    Err(AckError::Timeout)
                }
            }
        })
    }
}

/// Collects the answers to a broadcast with acknowledgement.
///
/// An adapter calls [`AckCollector::expect_socket`] (or
/// [`AckCollector::expect`] for answers counted on other nodes) for every
/// recipient, and [`AckCollector::reply`] with every answer.
///
/// ```
/// use tidewire::{AckCollector, Payload};
/// let acks = AckCollector::new();
/// let sid = tidewire_engine::Sid::generate();
/// acks.expect_socket(sid);
/// acks.reply(sid, Payload::new(vec![serde_json::json!(1)]));
/// assert!(!acks.is_done());
/// ```
#[derive(Clone, Default)]
pub struct AckCollector(Arc<CollectorInner>);

#[derive(Default)]
struct CollectorInner {
    state: Mutex<CollectorState>,
    notify: Notify,
}

#[derive(Default)]
struct CollectorState {
    expected: usize,
    /// Other nodes that have not yet said how many answers they will send.
    pending_nodes: usize,
    targets: Vec<Sid>,
    replies: Vec<(Sid, Result<Payload, AckError>)>,
    done: bool,
}

impl std::fmt::Debug for AckCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.state.lock();
        f.debug_struct("AckCollector")
            .field("expected", &s.expected)
            .field("received", &s.replies.len())
            .finish()
    }
}

impl AckCollector {
    /// An empty collector.
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// assert!(!acks.is_done());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Expects `n` more answers (from sockets this node does not know).
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// acks.expect(3); // e.g. another node reported three recipients
    /// ```
    pub fn expect(&self, n: usize) {
        self.0.state.lock().expected += n;
        self.0.notify.notify_one();
    }

    /// Expects `n` other nodes to say how many answers they will send
    /// (see [`AckCollector::node_reported`]); the broadcast waits for them too.
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// acks.expect_nodes(2);
    /// acks.node_reported(3);
    /// ```
    pub fn expect_nodes(&self, n: usize) {
        self.0.state.lock().pending_nodes += n;
    }

    /// One of the nodes counted by [`AckCollector::expect_nodes`] sent the
    /// packet to `answers` sockets.
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// acks.expect_nodes(1);
    /// acks.node_reported(0);
    /// ```
    pub fn node_reported(&self, answers: usize) {
        let mut s = self.0.state.lock();
        s.pending_nodes = s.pending_nodes.saturating_sub(1);
        s.expected += answers;
        drop(s);
        self.0.notify.notify_one();
    }

    /// Expects an answer from socket `sid`.
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// acks.expect_socket(tidewire::Sid::generate());
    /// ```
    pub fn expect_socket(&self, sid: Sid) {
        let mut s = self.0.state.lock();
        s.expected += 1;
        s.targets.push(sid);
    }

    /// Records socket `sid`'s answer.
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// let sid = tidewire::Sid::generate();
    /// acks.expect_socket(sid);
    /// acks.reply(sid, tidewire::Payload::new(vec![serde_json::json!("yes")]));
    /// ```
    pub fn reply(&self, sid: Sid, payload: Payload) {
        self.push(sid, Ok(payload));
    }

    /// Records that socket `sid` will not answer (it disconnected).
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// let sid = tidewire::Sid::generate();
    /// acks.expect_socket(sid);
    /// acks.fail(sid, tidewire::AckError::Disconnected);
    /// ```
    pub fn fail(&self, sid: Sid, error: AckError) {
        self.push(sid, Err(error));
    }

    fn push(&self, sid: Sid, result: Result<Payload, AckError>) {
        let mut s = self.0.state.lock();
        if s.done {
            return;
        }
        s.replies.push((sid, result));
        drop(s);
        self.0.notify.notify_one();
    }

    /// Whether the broadcast finished (every answer arrived, or it timed out).
    ///
    /// ```
    /// assert!(!tidewire::AckCollector::new().is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.0.state.lock().done
    }

    /// How many answers are expected so far.
    ///
    /// ```
    /// let acks = tidewire::AckCollector::new();
    /// acks.expect(2);
    /// assert_eq!(acks.expected_count(), 2);
    /// ```
    pub fn expected_count(&self) -> usize {
        self.0.state.lock().expected
    }

    /// Waits for every expected answer, or until `timeout`; sockets that did
    /// not answer get [`AckError::Timeout`].
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let acks = tidewire::AckCollector::new();
    /// let sid = tidewire::Sid::generate();
    /// acks.expect_socket(sid);
    /// let replies = acks.wait(std::time::Duration::from_millis(10)).await;
    /// assert!(replies[0].1.is_err());
    /// # });
    /// ```
    pub async fn wait(self, timeout: Duration) -> Vec<(Sid, Result<Payload, AckError>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.0.notify.notified();
            {
                let s = self.0.state.lock();
                if s.replies.len() >= s.expected && s.pending_nodes == 0 {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let mut s = self.0.state.lock();
        s.done = true;
        let mut replies = std::mem::take(&mut s.replies);
        for sid in std::mem::take(&mut s.targets) {
            if !replies.iter().any(|(r, _)| *r == sid) {
                replies.push((sid, Err(AckError::Timeout)));
            }
        }
        replies
    }
}

/// The answers to a broadcast with acknowledgement: one `(socket id,
/// result)` per recipient.
///
/// ```no_run
/// # async fn demo(io: tidewire::SocketIo) -> Result<(), tidewire::BroadcastError> {
/// let replies: tidewire::AckReplies<String> = io.emit_with_ack("who", ()).await?;
/// for (id, answer) in replies {
///     println!("{id}: {answer:?}");
/// }
/// # Ok(()) }
/// ```
pub type AckReplies<T> = Vec<(Sid, Result<T, AckError>)>;

pub(crate) fn decode_replies<T: DeserializeOwned>(
    replies: Vec<(Sid, Result<Payload, AckError>)>,
) -> AckReplies<T> {
    replies
        .into_iter()
        .map(|(sid, r)| {
            (
                sid,
                r.and_then(|p| p.deserialize().map_err(AckError::Decode)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn collector_waits_for_expected_or_times_out() {
        let c = AckCollector::new();
        let (a, b) = (Sid::generate(), Sid::generate());
        c.expect_socket(a);
        c.expect_socket(b);
        let c2 = c.clone();
        tokio::spawn(async move {
            c2.reply(a, Payload::new(vec![json!(1)]));
        });
        let replies = c.clone().wait(Duration::from_millis(100)).await;
        assert_eq!(replies.len(), 2);
        assert!(replies
            .iter()
            .any(|(s, r)| *s == b && matches!(r, Err(AckError::Timeout))));
        assert!(c.is_done());
        let typed: Vec<(Sid, Result<u8, AckError>)> = decode_replies(replies);
        assert!(typed.iter().any(|(s, r)| *s == a && matches!(r, Ok(1))));
    }

    #[tokio::test]
    async fn collector_returns_early_when_complete() {
        let c = AckCollector::new();
        let a = Sid::generate();
        c.expect_socket(a);
        c.reply(a, Payload::default());
        let start = std::time::Instant::now();
        let replies = c.wait(Duration::from_secs(5)).await;
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(replies[0].1.is_ok());
    }
}
