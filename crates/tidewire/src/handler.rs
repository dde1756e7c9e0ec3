//! Handler shapes.
//!
//! Every handler is a closure returning a future; it runs in its own task,
//! so a slow or panicking handler never stalls or kills the connection.
//!
//! | where | shape |
//! | --- | --- |
//! | [`SocketIo::ns`](crate::SocketIo::ns) (connect) | `\|socket: Socket\| async move { .. }` |
//! | [`Namespace::middleware`](crate::Namespace::middleware) | `\|socket: Socket\| async move { Ok(()) or Err(ConnectError) }` |
//! | [`Socket::on`](crate::Socket::on) | `\|socket: Socket, data: T, ack: AckSender\| async move { .. }` with `T: DeserializeOwned` |
//! | [`Socket::on_any`](crate::Socket::on_any) | `\|socket: Socket, event: String, args: Payload, ack: AckSender\| async move { .. }` |
//! | [`Socket::on_disconnect`](crate::Socket::on_disconnect) | `\|socket: Socket, reason: DisconnectReason\| async move { .. }` |
//!
//! Each event runs its handler in a new task: handlers of successive events
//! from one client may run concurrently. The connect handler finishes before
//! any event of that socket is dispatched (events that arrive meanwhile wait),
//! so handlers registered in it never miss an event.
//!
//! For [`Socket::on`](crate::Socket::on), `T` receives the event's arguments
//! following the [`Payload`] rule: the argument when the
//! client sent one, the list (a tuple) when it sent several. When they do not
//! deserialize into `T`, the handler is not called; the error is logged (with
//! the event name and socket id) and, if the client asked for an
//! acknowledgement, answered with `{"error": "..."}` so it does not wait in vain.
//!
//! ```no_run
//! use tidewire::{SocketIo, Socket, AckSender, ConnectError};
//! #[derive(serde::Deserialize)]
//! struct Join { room: String }
//!
//! let io = SocketIo::new();
//! io.ns("/", |socket: Socket| async move {
//!     socket.on("join", |socket, Join { room }, ack: AckSender| async move {
//!         socket.join(room).await;
//!         let _ = ack.send("joined");
//!     });
//!     socket.on_disconnect(|socket, reason| async move {
//!         tracing::info!(id = %socket.id(), %reason, "gone");
//!     });
//! })
//! .middleware(|socket| async move {
//!     match socket.auth()["token"].as_str() {
//!         Some("secret") => Ok(()),
//!         _ => Err(ConnectError::new("unauthorized")),
//!     }
//! });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::ConnectError;
use crate::payload::Payload;
use crate::socket::{DisconnectReason, Socket};
use crate::AckSender;

pub(crate) type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub(crate) type ConnectFn = Arc<dyn Fn(Socket) -> BoxFut<()> + Send + Sync>;
pub(crate) type MiddlewareFn =
    Arc<dyn Fn(Socket) -> BoxFut<Result<(), ConnectError>> + Send + Sync>;
pub(crate) type EventFn = Arc<dyn Fn(Socket, Payload, AckSender) -> BoxFut<()> + Send + Sync>;
pub(crate) type AnyFn = Arc<dyn Fn(Socket, String, Payload, AckSender) -> BoxFut<()> + Send + Sync>;
pub(crate) type DisconnectFn = Arc<dyn Fn(Socket, DisconnectReason) -> BoxFut<()> + Send + Sync>;

pub(crate) fn connect_fn<F, Fut>(f: F) -> ConnectFn
where
    F: Fn(Socket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |socket| Box::pin(f(socket)))
}

pub(crate) fn middleware_fn<F, Fut>(f: F) -> MiddlewareFn
where
    F: Fn(Socket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
{
    Arc::new(move |socket| Box::pin(f(socket)))
}

pub(crate) fn event_fn<F, T, Fut>(event: Arc<str>, f: F) -> EventFn
where
    F: Fn(Socket, T, AckSender) -> Fut + Send + Sync + 'static,
    T: serde::de::DeserializeOwned + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(
        move |socket, payload, ack| match payload.deserialize::<T>() {
            Ok(data) => Box::pin(f(socket, data, ack)),
            Err(error) => {
                tracing::warn!(
                    event = %event,
                    socket = %socket.id(),
                    namespace = %socket.ns_name(),
                    %error,
                    "event arguments do not deserialize into the handler's type; handler not called"
                );
                let message = format!("invalid arguments for `{event}`: {error}");
                let _ = ack.send(serde_json::json!({ "error": message }));
                Box::pin(async {})
            }
        },
    )
}

pub(crate) fn any_fn<F, Fut>(f: F) -> AnyFn
where
    F: Fn(Socket, String, Payload, AckSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |socket, event, payload, ack| Box::pin(f(socket, event, payload, ack)))
}

pub(crate) fn disconnect_fn<F, Fut>(f: F) -> DisconnectFn
where
    F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |socket, reason| Box::pin(f(socket, reason)))
}
