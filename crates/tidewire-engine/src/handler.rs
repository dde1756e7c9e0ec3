//! What the engine tells the layer above.

use crate::{Message, Session};

/// Why a session closed.
///
/// ```
/// use tidewire_engine::CloseReason;
/// assert_eq!(CloseReason::PingTimeout.as_str(), "ping timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the transport or sent a close packet.
    TransportClose,
    /// The transport failed (I/O error, WebSocket protocol error).
    TransportError,
    /// No pong arrived within `ping_timeout` after a ping.
    PingTimeout,
    /// The client sent something that is not Engine.IO (or a second concurrent poll).
    ParseError,
    /// The server closed the session ([`Session::close`]).
    ForcedClose,
    /// The server is shutting down.
    ServerShutdown,
    /// The client did not read fast enough and the outgoing queue hit its limit.
    SlowConsumer,
    /// A request body exceeded `max_payload`.
    PayloadTooLarge,
    /// Another connection took the session over (connection state recovery).
    TakenOver,
}

impl CloseReason {
    /// The reason as Socket.IO names it (`"transport close"`, `"ping timeout"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ParseError => "parse error",
            Self::ForcedClose => "forced close",
            Self::ServerShutdown => "server shutting down",
            Self::SlowConsumer => "slow consumer",
            Self::PayloadTooLarge => "payload too large",
            Self::TakenOver => "taken over",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The layer above the engine: receives session events.
///
/// The engine calls these methods inline from the task that serves the
/// connection (a WebSocket connection task or a POST handler), in order for
/// each session. They must not block; spawn work that waits.
///
/// Pushing events into a handler (rather than giving every session a channel
/// and a stream) keeps an idle session free of preallocated buffers and extra
/// tasks.
///
/// ```
/// use tidewire_engine::{EngineHandler, Session, Message, CloseReason};
/// struct Echo;
/// impl EngineHandler for Echo {
///     type Data = ();
///     fn on_open(&self, _: &Session<()>) {}
///     fn on_message(&self, session: &Session<()>, msg: Message) {
///         let _ = session.send_message(msg);
///     }
///     fn on_close(&self, _: &Session<()>, _: CloseReason) {}
/// }
/// ```
pub trait EngineHandler: Send + Sync + 'static {
    /// Per-session state owned by the layer above, created with `Default` at handshake.
    type Data: Default + Send + Sync + 'static;

    /// A session opened (after the open packet was queued).
    fn on_open(&self, session: &Session<Self::Data>);

    /// A message arrived.
    fn on_message(&self, session: &Session<Self::Data>, message: Message);

    /// The session closed; called exactly once.
    fn on_close(&self, session: &Session<Self::Data>, reason: CloseReason);
}
