//! Transport names.

/// The transports a session can use.
///
/// ```
/// use tidewire_engine::TransportKind;
/// assert_eq!("polling".parse::<TransportKind>(), Ok(TransportKind::Polling));
/// assert_eq!(TransportKind::WebSocket.as_str(), "websocket");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling: GET waits for packets, POST carries packets up.
    Polling,
    /// One WebSocket connection both ways.
    WebSocket,
    /// Server-sent events down, POST up (tidewire's own transport).
    Sse,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Polling => "polling",
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
        }
    }

    /// Whether the downstream is an HTTP response (polling or SSE), which can upgrade to WebSocket.
    pub fn is_http(self) -> bool {
        !matches!(self, Self::WebSocket)
    }
}

/// A transport name that tidewire does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport: expected polling, websocket or sse")]
pub struct UnknownTransport;

impl std::str::FromStr for TransportKind {
    type Err = UnknownTransport;
    fn from_str(s: &str) -> Result<Self, UnknownTransport> {
        match s {
            "polling" => Ok(Self::Polling),
            "websocket" => Ok(Self::WebSocket),
            "sse" => Ok(Self::Sse),
            _ => Err(UnknownTransport),
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
