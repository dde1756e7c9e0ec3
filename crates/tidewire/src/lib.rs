//! tidewire: Socket.IO v5 for axum.
//!
//! Namespaces, events with serde-typed arguments, acknowledgements both ways,
//! binary attachments, rooms and broadcasts, connect middlewares — served by
//! [`tidewire_engine`] over WebSocket or HTTP long-polling, and compatible
//! with the official `socket.io-client` (v3/v4) and other Socket.IO v5 clients.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use serde::{Deserialize, Serialize};
//! use tidewire::{ConnectError, Socket, SocketIo};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct ChatMessage { room: String, text: String }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let io = SocketIo::new();
//! io.ns("/chat", |socket: Socket| async move {
//!     socket.on("join", |socket, room: String, ack| async move {
//!         socket.join(room).await;
//!         let _ = ack.send("joined");
//!     });
//!     socket.on("message", |socket, msg: ChatMessage, ack| async move {
//!         let _ = socket.to(msg.room.clone()).emit("message", &msg).await;
//!         let _ = ack.send("delivered");
//!     });
//!     socket.on_disconnect(|socket, reason| async move {
//!         tracing::info!(id = %socket.id(), %reason, "left");
//!     });
//! })
//! .middleware(|socket| async move {
//!     match socket.auth()["token"].as_str() {
//!         Some("let-me-in") => Ok(()),
//!         _ => Err(ConnectError::new("unauthorized")),
//!     }
//! });
//!
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .merge(io.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
//! # }
//! ```
//!
//! The modules: [`packet`] (the codec), [`payload`] (arguments and binary),
//! [`adapter`] (rooms and broadcasting behind a trait), [`broadcast`]
//! (operators), [`handler`] (handler shapes), [`ack`].
#![warn(missing_docs)]

pub mod ack;
pub mod adapter;
pub mod broadcast;
mod error;
mod extensions;
pub mod handler;
mod namespace;
pub mod packet;
pub mod payload;
mod recovery;
mod server;
mod socket;

pub use ack::{AckCollector, AckFuture, AckReplies, AckSender};
pub use adapter::{Adapter, IntoRooms, LocalAdapter, RemoteSocket, Room};
pub use broadcast::BroadcastOperator;
pub use error::{AckError, AdapterError, BroadcastError, ConnectError, EmitError};
pub use extensions::Extensions;
pub use namespace::{DynamicNamespace, Namespace};
pub use payload::{Args, Payload};
pub use recovery::RecoveryConfig;
pub use server::{SocketIo, SocketIoBuilder, SocketIoConfig, SocketIoHandler};
pub use socket::{DisconnectReason, Socket};
/// The lean HTTP/1.1 server (`tidewire_engine::http1`): `axum::serve` without
/// hyper's per-connection buffers; see `docs/http1.md`.
pub use tidewire_engine::http1::{serve, Http1Config, Serve};
pub use tidewire_engine::{Sid, TransportKind};
