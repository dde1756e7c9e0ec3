//! A lean HTTP/1.1 server for axum routers: an idle connection holds no buffers.
//!
//! [`serve`] is a drop-in for `axum::serve` on plain HTTP/1.1. It exists for
//! memory: hyper keeps an 8 KiB read buffer and an 8 KiB write buffer per
//! connection for as long as the connection lives, and an Engine.IO
//! long-polling client keeps two connections open (the pending GET and the
//! POST connection). This loop reads a request head into a buffer that starts
//! at 512 bytes, frees it once the head is parsed, and while a request is
//! pending (a long poll, an SSE stream) or the connection is idle only waits
//! for readiness. See `docs/http1.md` for what it supports and what it does not
//! (no HTTP/2, no TLS, no axum `WebSocketUpgrade`; the engine's WebSocket
//! transport works through [`OnUpgrade`]).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! tidewire_engine::http1::serve(listener, app)
//!     .with_graceful_shutdown(async { tokio::time::sleep(std::time::Duration::from_secs(60)).await })
//!     .await
//! # }
//! ```

mod body;
mod chunked;
mod config;
mod conn;
mod date;
mod head;
mod io;
mod response;
mod serve;
mod upgrade;

pub use config::Http1Config;
pub use serve::{serve, Serve};
pub use upgrade::{OnUpgrade, Upgraded};

/// The boxed error type of services and bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
