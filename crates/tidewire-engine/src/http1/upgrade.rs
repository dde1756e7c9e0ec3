//! Handing a connection over after `101 Switching Protocols`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A connection handed over by an upgrade: the socket, and the bytes the client
/// sent after the request head that were already read (the first frames of the
/// new protocol, if the client did not wait for the `101`).
#[derive(Debug)]
pub struct Upgraded {
    /// The raw connection, positioned after the `101` response.
    pub io: TcpStream,
    /// Bytes read past the request head; they come before anything read from `io`.
    pub read_buf: Bytes,
}

/// In the extensions of every request asking for an upgrade (`Connection:
/// upgrade` and an `Upgrade` header) served by [`serve`](super::serve).
/// It resolves to the [`Upgraded`] connection once the service's answer, a
/// `101 Switching Protocols`, has been written; to an error if the answer is
/// anything else or the connection failed first.
///
/// ```no_run
/// use axum::{body::Body, http::{Request, Response, StatusCode}};
/// use tidewire_engine::http1::OnUpgrade;
///
/// async fn handler(mut request: Request<Body>) -> Response<Body> {
///     let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
///         return Response::builder().status(400).body(Body::empty()).unwrap();
///     };
///     tokio::spawn(async move {
///         if let Ok(upgraded) = on_upgrade.await {
///             // speak the new protocol on `upgraded.io`, after `upgraded.read_buf`
///             drop(upgraded);
///         }
///     });
///     Response::builder()
///         .status(StatusCode::SWITCHING_PROTOCOLS)
///         .header("upgrade", "my-protocol")
///         .body(Body::empty())
///         .unwrap()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct OnUpgrade {
    // Shared because request extensions must be `Clone`; only one clone gets the connection.
    receiver: Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>,
}

/// The connection loop's side of an [`OnUpgrade`].
pub(crate) struct Pending {
    sender: oneshot::Sender<Upgraded>,
}

impl Pending {
    /// Hands the connection over.
    pub(crate) fn fulfill(self, upgraded: Upgraded) {
        // The receiver may be gone (the service dropped it): then the connection just closes.
        let _ = self.sender.send(upgraded);
    }
}

/// A linked pair: the loop keeps [`Pending`], the request carries [`OnUpgrade`].
pub(crate) fn pair() -> (Pending, OnUpgrade) {
    let (sender, receiver) = oneshot::channel();
    (
        Pending { sender },
        OnUpgrade {
            receiver: Arc::new(Mutex::new(Some(receiver))),
        },
    )
}

impl Future for OnUpgrade {
    type Output = io::Result<Upgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.receiver.lock();
        let Some(receiver) = slot.as_mut() else {
            return Poll::Ready(Err(io::Error::other("the upgrade was already taken")));
        };
        let result = match Pin::new(receiver).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        *slot = None;
        Poll::Ready(result.map_err(|_| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection was not upgraded",
            )
        }))
    }
}
