//! What a node of a Redis cluster needs to know.

use std::net::SocketAddr;
use std::time::Duration;

/// Options of a [`RedisCluster`](crate::RedisCluster).
///
/// ```
/// use std::time::Duration;
/// let config = tidewire_redis::RedisConfig::new("redis://127.0.0.1:6379/")
///     .node_name("web-1")
///     .request_timeout(Duration::from_secs(3));
/// assert_eq!(config.key, "socket.io");
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Where Redis listens (`redis://host:port/db`).
    pub url: String,
    /// Prefix of every channel and key; `socket.io` like Node's adapter, so
    /// both share a cluster.
    pub key: String,
    /// A name for this node in [`RedisCluster::nodes`](crate::RedisCluster::nodes); default: its tag.
    pub node_name: Option<String>,
    /// Where the other nodes reach this one over HTTP to forward requests
    /// for its sessions (see [`RedisCluster::set_advertised_addr`](crate::RedisCluster::set_advertised_addr)).
    pub advertised_addr: Option<SocketAddr>,
    /// How long a request to the other nodes (fetch sockets, acks) waits; default 5 s.
    pub request_timeout: Duration,
    /// How often a node says it is alive; default 2 s.
    pub heartbeat: Duration,
    /// A node silent this long is gone; default 3 heartbeats.
    pub node_timeout: Duration,
    /// Most packets kept in a namespace's Redis stream (trimmed
    /// approximately); default 10,000. With recovery on, at least its `max_packets`.
    pub stream_max_len: usize,
    /// Also publish every broadcast in Node's format for Node servers and
    /// Node tools sharing the cluster; default true.
    pub node_compat: bool,
}

impl RedisConfig {
    /// Defaults for a Redis at `url`.
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/");
    /// assert!(c.node_compat);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: "socket.io".into(),
            node_name: None,
            advertised_addr: None,
            request_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_secs(2),
            node_timeout: Duration::from_secs(6),
            stream_max_len: 10_000,
            node_compat: true,
        }
    }

    /// Prefix of every channel and key (Node's `key` option).
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/").key("chat");
    /// assert_eq!(c.key, "chat");
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// This node's name.
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/").node_name("a");
    /// assert_eq!(c.node_name.as_deref(), Some("a"));
    /// ```
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// Where the other nodes reach this one.
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/")
    ///     .advertised_addr("10.0.0.5:3000".parse().unwrap());
    /// assert!(c.advertised_addr.is_some());
    /// ```
    pub fn advertised_addr(mut self, addr: SocketAddr) -> Self {
        self.advertised_addr = Some(addr);
        self
    }

    /// How long requests to the other nodes wait.
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/")
    ///     .request_timeout(std::time::Duration::from_secs(1));
    /// assert_eq!(c.request_timeout.as_secs(), 1);
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often this node says it is alive (a node silent three times as long is gone).
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/")
    ///     .heartbeat(std::time::Duration::from_secs(1));
    /// assert_eq!(c.node_timeout.as_secs(), 3);
    /// ```
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self.node_timeout = every * 3;
        self
    }

    /// Most packets kept per namespace in Redis.
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/").stream_max_len(500);
    /// assert_eq!(c.stream_max_len, 500);
    /// ```
    pub fn stream_max_len(mut self, n: usize) -> Self {
        self.stream_max_len = n;
        self
    }

    /// Whether to also publish broadcasts in Node's format.
    ///
    /// ```
    /// let c = tidewire_redis::RedisConfig::new("redis://127.0.0.1/").node_compat(false);
    /// assert!(!c.node_compat);
    /// ```
    pub fn node_compat(mut self, on: bool) -> Self {
        self.node_compat = on;
        self
    }
}
