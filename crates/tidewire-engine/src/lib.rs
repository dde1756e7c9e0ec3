//! Engine.IO v4 for tidewire: sessions carried by WebSocket, HTTP long-polling
//! or server-sent events, with heartbeats, upgrades and bounded queues.
//!
//! This crate knows bytes and packets, nothing of events, rooms or
//! namespaces; `tidewire` builds Socket.IO on top of it through
//! [`EngineHandler`] and [`Session`].
//!
//! ```no_run
//! use tidewire_engine::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Session};
//!
//! struct Echo;
//! impl EngineHandler for Echo {
//!     type Data = ();
//!     fn on_open(&self, session: &Session<()>) {
//!         tracing::info!(sid = %session.id(), transport = %session.transport(), "open");
//!     }
//!     fn on_message(&self, session: &Session<()>, message: Message) {
//!         let _ = session.send_message(message);
//!     }
//!     fn on_close(&self, _: &Session<()>, reason: CloseReason) {
//!         tracing::info!(%reason, "closed");
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let engine = Engine::new(EngineConfig::default(), Echo);
//! let app = axum::Router::new().merge(engine.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
#![warn(missing_docs)]

mod channel;
mod config;
mod engine;
mod handler;
pub mod http1;
mod message;
mod metrics;
pub mod packet;
mod query;
mod response;
mod service;
mod session;
mod sid;
mod transport;

pub use channel::Channel;
pub use config::{
    AllowRequest, AllowedOrigins, EngineConfig, EngineConfigBuilder, HandshakeRequest, StaticAsset,
};
pub use engine::Engine;
pub use handler::{CloseReason, EngineHandler};
pub use message::{Message, Utf8Bytes};
pub use metrics::MetricsSnapshot;
pub use service::{EngineLayer, EngineMiddleware, EngineService};
pub use session::{SendError, Session, WeakSession};
pub use sid::{InvalidSid, Sid};
pub use transport::kind::{TransportKind, UnknownTransport};
