//! # tidewire-redis
//!
//! Runs several tidewire servers as one: rooms, broadcasts, acks, fetch
//! sockets, server-side emits and connection state recovery span every node
//! sharing one Redis, and no sticky sessions are needed behind a load
//! balancer.
//!
//! - **Wire-compatible with Node**: broadcasts and requests use the channels
//!   and encodings of `@socket.io/redis-adapter` (MessagePack
//!   `[uid, packet, opts]` on `socket.io#<nsp>#`, JSON requests on
//!   `socket.io-request#<nsp>#`), so Node Socket.IO servers and
//!   `@socket.io/redis-emitter` share a cluster with tidewire nodes.
//! - **Recovery across nodes**: every broadcast goes through a Redis stream
//!   per namespace whose entry ids are the packets' offsets, so every node
//!   sees the same packets in the same order and a client whose node died
//!   resumes on another one.
//! - **No sticky sessions**: session ids start with their node's tag; a
//!   request that lands on another node is forwarded to the owner over HTTP
//!   ([`RedisCluster::forward_layer`]).
//! - **Redis away**: nodes keep serving their own clients, log it, and pick
//!   up again by themselves when Redis returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tidewire_redis::{RedisCluster, RedisConfig};
//! let cluster = RedisCluster::new(RedisConfig::new("redis://127.0.0.1:6379/").node_name("web-1"))?;
//! let io = cluster
//!     .install(tidewire::SocketIo::builder().recovery(tidewire::RecoveryConfig::default()))
//!     .build();
//! io.ns("/", |socket| async move {
//!     socket.join("lobby").await;
//! });
//! let app = axum::Router::new()
//!     .merge(io.router())
//!     .layer(cluster.forward_layer());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! cluster.set_advertised_addr(listener.local_addr()?);
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/cluster.md` for the design, what each mode costs, and the limits.

#![warn(missing_docs)]

mod adapter;
mod cluster;
pub mod codec;
mod config;
pub mod forward;

pub use adapter::RedisAdapter;
pub use cluster::{NodeInfo, RedisCluster};
pub use config::RedisConfig;

/// Why the cluster could not be joined.
///
/// ```
/// let err = tidewire_redis::RedisCluster::new(tidewire_redis::RedisConfig::new("not a url")).unwrap_err();
/// assert!(err.to_string().contains("Redis"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL or options were refused by the Redis client.
    #[error("invalid Redis configuration: {0} (expected a URL like redis://127.0.0.1:6379/)")]
    Redis(#[from] redis::RedisError),
}
