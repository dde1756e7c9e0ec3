//! Where a WebSocket connection comes from once the handshake is answered:
//! hyper's upgrade (`axum::serve`) or [`crate::http1`]'s, behind one I/O type.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The upgraded connection: from hyper (`axum::serve`) or from [`crate::http1`].
/// An enum rather than a trait object, so every read and write dispatches statically.
pub(super) enum Io {
    Hyper(TokioIo<Upgraded>),
    Lean(TcpStream),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Hyper(io) => Pin::new(io).poll_read(cx, buf),
            Io::Lean(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Hyper(io) => Pin::new(io).poll_write(cx, buf),
            Io::Lean(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Hyper(io) => Pin::new(io).poll_flush(cx),
            Io::Lean(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Hyper(io) => Pin::new(io).poll_shutdown(cx),
            Io::Lean(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// The upgrade a WebSocket handshake waits for, from whichever server carried the request.
pub(super) enum PendingUpgrade {
    Hyper(hyper::upgrade::OnUpgrade),
    Lean(crate::http1::OnUpgrade),
}

impl PendingUpgrade {
    /// Takes hyper's upgrade from the request when it has one (`axum::serve`),
    /// else the one [`crate::http1::serve`] inserted.
    pub(super) fn take<B>(request: &mut http::Request<B>) -> Self {
        if request
            .extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_none()
        {
            if let Some(lean) = request.extensions_mut().remove::<crate::http1::OnUpgrade>() {
                return PendingUpgrade::Lean(lean);
            }
        }
        // Without either, hyper's answers an error once awaited, as before.
        PendingUpgrade::Hyper(hyper::upgrade::on(request))
    }

    /// The connection and the bytes already read from it.
    pub(super) async fn resolve(self) -> Result<(Io, BytesMut), String> {
        match self {
            PendingUpgrade::Hyper(on) => match on.await {
                Ok(upgraded) => Ok((Io::Hyper(TokioIo::new(upgraded)), BytesMut::new())),
                Err(error) => Err(error.to_string()),
            },
            PendingUpgrade::Lean(on) => match on.await {
                Ok(upgraded) => Ok((
                    Io::Lean(upgraded.io),
                    BytesMut::from(&upgraded.read_buf[..]),
                )),
                Err(error) => Err(error.to_string()),
            },
        }
    }
}
