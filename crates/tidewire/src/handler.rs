//! Handler shapes.
//!
//! Every handler is a closure returning a future. An event handler's future
//! runs up to its first pending `.await` right where the event was read, in
//! the order the client sent its events; whatever is left then continues in
//! a task of its own. A panicking handler is caught and logged and never
//! kills the connection; a handler that holds the thread (CPU-heavy work not
//! moved to `spawn_blocking`) delays that connection's next events.
//!
//! | where | shape |
//! | --- | --- |
//! | [`SocketIo::ns`](crate::SocketIo::ns) (connect) | `\|socket: Socket\| async move { .. }` |
//! | [`Namespace::middleware`](crate::Namespace::middleware) | `\|socket: Socket\| async move { Ok(()) or Err(ConnectError) }` |
//! | [`Socket::on`](crate::Socket::on) | `\|socket: Socket, data: T, ack: AckSender\| async move { .. }` with `T: DeserializeOwned` |
//! | [`Socket::on_any`](crate::Socket::on_any) | `\|socket: Socket, event: String, args: Payload, ack: AckSender\| async move { .. }` |
//! | [`Socket::on_disconnect`](crate::Socket::on_disconnect) | `\|socket: Socket, reason: DisconnectReason\| async move { .. }` |
//!
//! Handlers of successive events from one client start in order and may then
//! run concurrently (one waiting on a timer does not hold up the next). The connect handler finishes before
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

/// Starts an event handler's future here and now, and moves what is left
/// of it (if anything) to a task of its own.
///
/// Running the first step in place keeps the order the client sent its
/// events in: handlers start in arrival order, as Node's do. Spawning each
/// one instead would let a multi-threaded runtime run the newest task first
/// (tokio's LIFO slot). A handler that finishes in its first step (emit,
/// join, ack) also costs no task at all. The first step is polled with a
/// no-op waker; the spawned task polls again with its own, which is what the
/// `Future` contract asks of every future (only the latest waker counts).
pub(crate) fn start(mut future: BoxFut<()>, event: &str) {
    let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
    let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        future.as_mut().poll(&mut cx)
    }));
    match step {
        Ok(std::task::Poll::Ready(())) => {}
        Ok(std::task::Poll::Pending) => {
            tokio::spawn(future);
        }
        Err(_) => {
            // The same outcome as a panic inside a spawned task: the handler
            // is gone, the connection and everyone else carry on.
            tracing::error!(%event, "event handler panicked");
        }
    }
}

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
