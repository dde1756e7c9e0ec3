//! Errors, each saying what went wrong and what to do about it.

use serde::Serialize;
use serde_json::Value;

pub use tidewire_engine::SendError;

/// A refusal from a connect middleware, sent to the client as `CONNECT_ERROR`
/// (`err.message` and `err.data` in socket.io-client's `connect_error` event).
///
/// ```
/// use tidewire::ConnectError;
/// let err = ConnectError::new("not authorized").with_data(serde_json::json!({"code": 401}));
/// assert_eq!(err.message(), "not authorized");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("connection refused: {message}")]
pub struct ConnectError {
    message: String,
    data: Option<Value>,
}

impl ConnectError {
    /// A refusal with this message.
    ///
    /// ```
    /// let err = tidewire::ConnectError::new("not allowed");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: None,
        }
    }

    /// Attaches data for the client (`err.data`). Data that does not serialize is left out.
    ///
    /// ```
    /// let err = tidewire::ConnectError::new("no").with_data(serde_json::json!({"retry": false}));
    /// assert_eq!(err.data().unwrap()["retry"], false);
    /// ```
    pub fn with_data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::to_value(data).ok();
        self
    }

    /// The message.
    ///
    /// ```
    /// assert_eq!(tidewire::ConnectError::new("no").message(), "no");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The data, if any.
    ///
    /// ```
    /// assert!(tidewire::ConnectError::new("no").data().is_none());
    /// ```
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }
}

/// Why an emit did not reach the client.
///
/// ```
/// use tidewire::EmitError;
/// let err = EmitError::Disconnected;
/// assert!(err.to_string().contains("disconnected"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The socket has disconnected; nothing was sent.
    #[error("socket disconnected: nothing was sent (check `socket.connected()` or handle the disconnect)")]
    Disconnected,
    /// The data could not be serialized to JSON.
    #[error("could not serialize the event data to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The event name is one the client reserves (`connect`, `disconnect`, ...).
    #[error("`{0}` is a reserved event name: pick another name")]
    ReservedEvent(String),
    /// The engine refused the packet (session closed, or the client is too slow and was closed).
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Why an acknowledgement did not arrive or could not be read.
///
/// ```
/// use tidewire::AckError;
/// assert!(AckError::Timeout.to_string().contains("timed out"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// No answer within the timeout.
    #[error("ack timed out: the client did not answer in time (raise the timeout, or check that the client calls its ack callback)")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("socket disconnected before acknowledging")]
    Disconnected,
    /// The answer did not deserialize into the requested type.
    #[error("the ack's arguments do not deserialize into the requested type: {0}")]
    Decode(#[source] serde_json::Error),
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

/// Why an adapter operation failed.
///
/// ```
/// use tidewire::AdapterError;
/// assert!(AdapterError::Unsupported("restore_session").to_string().contains("restore_session"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// This adapter does not implement the operation.
    #[error(
        "the adapter does not support `{0}`: use an adapter that does (e.g. a cluster adapter)"
    )]
    Unsupported(&'static str),
    /// The adapter's backend failed (network, serialization).
    #[error("adapter failure: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// Other nodes did not all answer in time; what did arrive is lost.
    #[error("timed out after {0:?} waiting for the other nodes to answer: check that every node can reach the cluster backend")]
    Timeout(std::time::Duration),
}

/// Why a broadcast failed.
///
/// ```
/// use tidewire::BroadcastError;
/// let err = BroadcastError::from(tidewire::AdapterError::Unsupported("x"));
/// assert!(matches!(err, BroadcastError::Adapter(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The data could not be serialized to JSON.
    #[error("could not serialize the broadcast data to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The event name is reserved.
    #[error("`{0}` is a reserved event name: pick another name")]
    ReservedEvent(String),
    /// The adapter failed.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
}
