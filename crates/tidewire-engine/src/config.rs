//! Engine options.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderMap, HeaderValue};

/// What an [`EngineConfig::allow_request`] hook sees of a handshake.
#[derive(Debug, Clone)]
pub struct HandshakeRequest {
    /// Request headers.
    pub headers: HeaderMap,
    /// The raw query string.
    pub query: Option<String>,
    /// The peer's address, when the server was started with connect info.
    pub remote_addr: Option<SocketAddr>,
}

/// A hook that may refuse a handshake with a message (answered as HTTP 403).
pub type AllowRequest = Arc<dyn Fn(&HandshakeRequest) -> Result<(), String> + Send + Sync>;

/// Which origins may use the HTTP transports (CORS) and open WebSockets.
#[derive(Debug, Clone, Default)]
pub enum AllowedOrigins {
    /// Any origin; CORS answers echo the request's origin.
    #[default]
    Any,
    /// Only these exact origins (`https://example.com`).
    List(Vec<HeaderValue>),
}

impl AllowedOrigins {
    /// Whether `origin` is allowed.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// A file served under the engine's path (the bundled browser client, say),
/// with caching headers and `ETag` revalidation.
///
/// ```
/// use tidewire_engine::{EngineConfig, StaticAsset};
/// let config = EngineConfig::builder()
///     .asset(StaticAsset::new("hello.txt", "text/plain", &b"hi"[..]))
///     .build();
/// assert_eq!(config.assets[0].name(), "hello.txt");
/// ```
#[derive(Clone)]
pub struct StaticAsset {
    name: String,
    content_type: &'static str,
    body: bytes::Bytes,
    etag: HeaderValue,
}

impl StaticAsset {
    /// An asset answered at `<path><name>`.
    pub fn new(
        name: impl Into<String>,
        content_type: &'static str,
        body: impl Into<bytes::Bytes>,
    ) -> Self {
        let body = body.into();
        // FNV-1a: a stable content hash for revalidation, not a security measure.
        let hash = body.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
        let etag = HeaderValue::from_str(&format!("\"{hash:016x}-{}\"", body.len()))
            .unwrap_or(HeaderValue::from_static("\"0\""));
        Self {
            name: name.into(),
            content_type,
            body,
            etag,
        }
    }

    /// The file name under the engine's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn content_type(&self) -> &'static str {
        self.content_type
    }

    pub(crate) fn body(&self) -> &bytes::Bytes {
        &self.body
    }

    pub(crate) fn etag(&self) -> &HeaderValue {
        &self.etag
    }
}

impl std::fmt::Debug for StaticAsset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticAsset")
            .field("name", &self.name)
            .field("bytes", &self.body.len())
            .finish()
    }
}

/// Engine options. Build with [`EngineConfig::builder`]; every field has a sane default.
///
/// ```
/// use std::time::Duration;
/// use tidewire_engine::EngineConfig;
/// let config = EngineConfig::builder()
///     .ping_interval(Duration::from_secs(10))
///     .max_payload(64 * 1024)
///     .build();
/// assert_eq!(config.ping_interval, Duration::from_secs(10));
/// assert_eq!(config.path, "/socket.io/");
/// ```
#[derive(Clone)]
pub struct EngineConfig {
    /// Where the engine is mounted; default `/socket.io/`.
    pub path: String,
    /// How often the server pings; default 25 s.
    pub ping_interval: Duration,
    /// How long the server waits for a pong; default 20 s.
    pub ping_timeout: Duration,
    /// Largest accepted message or POST body, in bytes; default 1,000,000.
    pub max_payload: usize,
    /// Most packets one session may have queued for its client before it is
    /// closed as a slow consumer; default 4096. Separately, the most packets
    /// written but kept until the client confirms them (SSE, long-polling with
    /// `ack=`): an SSE stream holding that many waits for a confirmation.
    pub max_buffered_packets: usize,
    /// Most bytes one session may have queued and kept together; default 8 MiB.
    pub max_buffered_bytes: usize,
    /// How long an upgrade probe may take before it is abandoned; default 10 s.
    pub upgrade_timeout: Duration,
    /// Whether clients may use long-polling; default true.
    pub allow_polling: bool,
    /// Whether clients may use WebSocket; default true.
    pub allow_websocket: bool,
    /// Whether clients may use server-sent events (tidewire's own transport); default true.
    pub allow_sse: bool,
    /// How often an idle SSE stream gets a keep-alive comment; default 15 s.
    pub sse_keepalive: Duration,
    /// Whether sessions may upgrade from an HTTP transport to WebSocket; default true.
    pub allow_upgrades: bool,
    /// Origins allowed by CORS and the WebSocket origin check.
    pub allowed_origins: AllowedOrigins,
    /// Whether CORS answers allow credentials (cookies); default false.
    pub cors_credentials: bool,
    /// Optional hook that can refuse a handshake.
    pub allow_request: Option<AllowRequest>,
    /// Most concurrent sessions; further handshakes get 503; default 100,000.
    pub max_sessions: usize,
    /// Files answered under the engine's path (GET and HEAD).
    pub assets: Vec<StaticAsset>,
    /// Characters every session id starts with (see [`Sid::generate_with_prefix`](crate::Sid::generate_with_prefix));
    /// a cluster sets it so any node can tell which node holds a session. Empty by default.
    pub sid_prefix: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            path: "/socket.io/".into(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            max_buffered_packets: 4096,
            max_buffered_bytes: 8 << 20,
            upgrade_timeout: Duration::from_secs(10),
            allow_polling: true,
            allow_websocket: true,
            allow_sse: true,
            sse_keepalive: Duration::from_secs(15),
            allow_upgrades: true,
            allowed_origins: AllowedOrigins::Any,
            cors_credentials: false,
            allow_request: None,
            max_sessions: 100_000,
            assets: Vec::new(),
            sid_prefix: String::new(),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("path", &self.path)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("max_payload", &self.max_payload)
            .field("max_buffered_packets", &self.max_buffered_packets)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("allowed_origins", &self.allowed_origins)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Starts a builder with the defaults.
    pub fn builder() -> EngineConfigBuilder {
        EngineConfigBuilder(Self::default())
    }
}

/// Builder for [`EngineConfig`].
///
/// ```
/// use tidewire_engine::EngineConfig;
/// let config = EngineConfig::builder().path("/rt/").build();
/// assert_eq!(config.path, "/rt/");
/// ```
#[derive(Debug, Clone)]
pub struct EngineConfigBuilder(EngineConfig);

impl EngineConfigBuilder {
    /// Mount path; a trailing slash is added when missing.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        self.0.path = path;
        self
    }
    /// Heartbeat interval.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.0.ping_interval = d;
        self
    }
    /// Heartbeat answer deadline.
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.0.ping_timeout = d;
        self
    }
    /// Largest message or POST body in bytes.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.0.max_payload = bytes;
        self
    }
    /// Outgoing queue limit in packets.
    pub fn max_buffered_packets(mut self, n: usize) -> Self {
        self.0.max_buffered_packets = n.max(1);
        self
    }
    /// Outgoing queue limit in bytes.
    pub fn max_buffered_bytes(mut self, n: usize) -> Self {
        self.0.max_buffered_bytes = n.max(1);
        self
    }
    /// Upgrade probe deadline.
    pub fn upgrade_timeout(mut self, d: Duration) -> Self {
        self.0.upgrade_timeout = d;
        self
    }
    /// Enables or disables long-polling.
    pub fn polling(mut self, on: bool) -> Self {
        self.0.allow_polling = on;
        self
    }
    /// Enables or disables WebSocket.
    pub fn websocket(mut self, on: bool) -> Self {
        self.0.allow_websocket = on;
        self
    }
    /// Enables or disables server-sent events.
    pub fn sse(mut self, on: bool) -> Self {
        self.0.allow_sse = on;
        self
    }
    /// Interval of SSE keep-alive comments.
    pub fn sse_keepalive(mut self, d: Duration) -> Self {
        self.0.sse_keepalive = d;
        self
    }
    /// Enables or disables upgrades to WebSocket.
    pub fn upgrades(mut self, on: bool) -> Self {
        self.0.allow_upgrades = on;
        self
    }
    /// Restricts CORS and WebSocket origins to this list.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.0.allowed_origins = AllowedOrigins::List(
            origins
                .into_iter()
                .filter_map(|o| HeaderValue::from_str(o.as_ref()).ok())
                .collect(),
        );
        self
    }
    /// Lets CORS answers allow credentials.
    pub fn cors_credentials(mut self, on: bool) -> Self {
        self.0.cors_credentials = on;
        self
    }
    /// A hook that can refuse handshakes (answered 403 with its message).
    pub fn allow_request<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HandshakeRequest) -> Result<(), String> + Send + Sync + 'static,
    {
        self.0.allow_request = Some(Arc::new(hook));
        self
    }
    /// Most concurrent sessions.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.0.max_sessions = n;
        self
    }
    /// Serves a file under the engine's path.
    pub fn asset(mut self, asset: StaticAsset) -> Self {
        self.0.assets.retain(|a| a.name != asset.name);
        self.0.assets.push(asset);
        self
    }
    /// Characters every session id starts with (a cluster's node tag).
    pub fn sid_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.0.sid_prefix = prefix.into();
        self
    }
    /// Finishes the configuration.
    pub fn build(self) -> EngineConfig {
        self.0
    }
}
