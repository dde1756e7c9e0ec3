//! [`Http1Config`]: the limits and timeouts of the lean HTTP/1.1 server.

use std::time::Duration;

/// Limits and timeouts of [`serve`](super::serve), builder style.
///
/// The defaults suit an Engine.IO server: 16 KiB request heads, 64 headers,
/// 30 s to send a request head, 75 s for an idle keep-alive connection, no
/// connection limit, `TCP_NODELAY` on.
///
/// ```no_run
/// use std::time::Duration;
/// use tidewire_engine::http1::{serve, Http1Config};
///
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let config = Http1Config::new()
///     .max_head_size(8 * 1024)
///     .keep_alive_timeout(Duration::from_secs(30))
///     .max_connections(Some(10_000));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// serve(listener, app).config(config).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Http1Config {
    pub(crate) max_head_size: usize,
    pub(crate) max_headers: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_connections: Option<usize>,
    pub(crate) nodelay: bool,
}

/// Most bytes of an unread request body drained after a response so the
/// connection can be reused; a larger remainder closes the connection instead.
pub(crate) const MAX_DRAIN: u64 = 64 * 1024;

/// Most headers a head may carry, whatever the configuration says (they are parsed on the stack).
const HEADERS_CEILING: usize = 256;

impl Default for Http1Config {
    fn default() -> Self {
        Self {
            max_head_size: 16 * 1024,
            max_headers: 64,
            header_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: None,
            nodelay: true,
        }
    }
}

impl Http1Config {
    /// The defaults (same as [`Http1Config::default`]).
    ///
    /// ```
    /// let config = tidewire_engine::http1::Http1Config::new();
    /// assert_eq!(config.get_max_headers(), 64);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Most bytes of a request line plus headers (default 16 KiB, at least 1 KiB);
    /// a larger head is answered with `431 Request Header Fields Too Large` and
    /// the connection closes. The read buffer starts at 512 bytes and grows up to this.
    ///
    /// ```
    /// let config = tidewire_engine::http1::Http1Config::new().max_head_size(4096);
    /// assert_eq!(config.get_max_head_size(), 4096);
    /// ```
    pub fn max_head_size(mut self, bytes: usize) -> Self {
        self.max_head_size = bytes.max(1024);
        self
    }

    /// Most header fields in a request (default 64, at most 256); more is a `431`.
    ///
    /// ```
    /// let config = tidewire_engine::http1::Http1Config::new().max_headers(32);
    /// assert_eq!(config.get_max_headers(), 32);
    /// ```
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count.clamp(1, HEADERS_CEILING);
        self
    }

    /// How long a client may take to send a whole request head once it started
    /// (and, on a new connection, to start it); default 30 s. A slower client
    /// (slowloris) is disconnected.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = tidewire_engine::http1::Http1Config::new()
    ///     .header_read_timeout(Duration::from_secs(10));
    /// assert_eq!(config.get_header_read_timeout(), Duration::from_secs(10));
    /// ```
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a keep-alive connection may wait for its next request (default 75 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = tidewire_engine::http1::Http1Config::new()
    ///     .keep_alive_timeout(Duration::from_secs(5));
    /// assert_eq!(config.get_keep_alive_timeout(), Duration::from_secs(5));
    /// ```
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Most connections served at once (default `None`: no limit). At the limit the
    /// server stops accepting until a connection ends; WebSocket connections handed
    /// over by an upgrade no longer count.
    ///
    /// ```
    /// let config = tidewire_engine::http1::Http1Config::new().max_connections(Some(100));
    /// assert_eq!(config.get_max_connections(), Some(100));
    /// ```
    pub fn max_connections(mut self, limit: Option<usize>) -> Self {
        self.max_connections = limit.map(|n| n.max(1));
        self
    }

    /// Whether accepted sockets get `TCP_NODELAY` (default `true`).
    ///
    /// ```
    /// let config = tidewire_engine::http1::Http1Config::new().tcp_nodelay(false);
    /// assert!(!config.get_tcp_nodelay());
    /// ```
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// The request head size limit in bytes.
    ///
    /// ```
    /// assert_eq!(tidewire_engine::http1::Http1Config::new().get_max_head_size(), 16 * 1024);
    /// ```
    pub fn get_max_head_size(&self) -> usize {
        self.max_head_size
    }

    /// The header count limit.
    ///
    /// ```
    /// assert_eq!(tidewire_engine::http1::Http1Config::new().get_max_headers(), 64);
    /// ```
    pub fn get_max_headers(&self) -> usize {
        self.max_headers
    }

    /// The request head timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = tidewire_engine::http1::Http1Config::new();
    /// assert_eq!(config.get_header_read_timeout(), Duration::from_secs(30));
    /// ```
    pub fn get_header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// The keep-alive idle timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = tidewire_engine::http1::Http1Config::new();
    /// assert_eq!(config.get_keep_alive_timeout(), Duration::from_secs(75));
    /// ```
    pub fn get_keep_alive_timeout(&self) -> Duration {
        self.keep_alive_timeout
    }

    /// The connection limit, if any.
    ///
    /// ```
    /// assert_eq!(tidewire_engine::http1::Http1Config::new().get_max_connections(), None);
    /// ```
    pub fn get_max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    /// Whether `TCP_NODELAY` is set on accepted sockets.
    ///
    /// ```
    /// assert!(tidewire_engine::http1::Http1Config::new().get_tcp_nodelay());
    /// ```
    pub fn get_tcp_nodelay(&self) -> bool {
        self.nodelay
    }
}
