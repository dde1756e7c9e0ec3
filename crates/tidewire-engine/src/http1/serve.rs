//! [`serve`]: the accept loop, graceful shutdown and the connection limit.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower_service::Service;

use super::config::Http1Config;
use super::conn::serve_connection;
use super::BoxError;

/// Serves `service` (an [`axum::Router`] or any tower service of the same shape)
/// over HTTP/1.1 on `listener`, with the lean connection loop of this module.
///
/// Like `axum::serve`: await it to run the server; add
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown) and
/// [`config`](Serve::config) before awaiting. Every request carries the peer
/// address as `axum::extract::ConnectInfo<SocketAddr>`.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// tidewire_engine::http1::serve(listener, app).await
/// # }
/// ```
pub fn serve<S, B>(listener: TcpListener, service: S) -> Serve<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
{
    Serve {
        listener,
        service,
        config: Http1Config::default(),
        signal: std::future::pending(),
    }
}

/// A server being set up by [`serve`]; await it (it implements [`IntoFuture`]) to run it.
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// tidewire_engine::http1::serve(listener, app)
///     .config(tidewire_engine::http1::Http1Config::new().max_connections(Some(1000)))
///     .with_graceful_shutdown(async { tokio::time::sleep(std::time::Duration::from_secs(60)).await })
///     .await
/// # }
/// ```
#[must_use = "a server does nothing until awaited"]
pub struct Serve<S, F = std::future::Pending<()>> {
    listener: TcpListener,
    service: S,
    config: Http1Config,
    signal: F,
}

impl<S, F> std::fmt::Debug for Serve<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, F> Serve<S, F> {
    /// Stops accepting once `signal` resolves; requests in flight finish (each
    /// connection closes after its current response, idle ones at once) and
    /// the server's future resolves when every connection has ended.
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// tidewire_engine::http1::serve(listener, app)
    ///     .with_graceful_shutdown(async { tokio::time::sleep(std::time::Duration::from_secs(60)).await })
    ///     .await
    /// # }
    /// ```
    pub fn with_graceful_shutdown<G>(self, signal: G) -> Serve<S, G>
    where
        G: Future<Output = ()> + Send + 'static,
    {
        Serve {
            listener: self.listener,
            service: self.service,
            config: self.config,
            signal,
        }
    }

    /// Replaces the limits and timeouts ([`Http1Config`]).
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router) -> std::io::Result<()> {
    /// use tidewire_engine::http1::{serve, Http1Config};
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// serve(listener, app).config(Http1Config::new().tcp_nodelay(false)).await
    /// # }
    /// ```
    pub fn config(mut self, config: Http1Config) -> Self {
        self.config = config;
        self
    }

    /// The address the listener is bound to.
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let server = tidewire_engine::http1::serve(listener, app);
    /// println!("listening on {}", server.local_addr()?);
    /// server.await
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<S, B, F> IntoFuture for Serve<S, F>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self))
    }
}

async fn run<S, B, F>(server: Serve<S, F>) -> io::Result<()>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    let Serve {
        listener,
        service,
        config,
        signal,
    } = server;
    let config = Arc::new(config);
    let limit = config.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    // Every connection holds a receiver; `closed()` resolves once all are gone.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut signal = std::pin::pin!(signal);
    loop {
        let permit = match &limit {
            None => None,
            Some(limit) => tokio::select! {
                permit = limit.clone().acquire_owned() => permit.ok(),
                () = signal.as_mut() => break,
            },
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = signal.as_mut() => break,
        };
        if config.nodelay {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
        }
        let connection = serve_connection(
            stream,
            peer,
            service.clone(),
            config.clone(),
            shutdown_rx.clone(),
        );
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::debug!("graceful shutdown: waiting for connections to finish");
    let _ = shutdown_tx.send(true);
    drop(shutdown_rx);
    shutdown_tx.closed().await;
    Ok(())
}

/// After a failed accept: per-connection errors are skipped, anything else
/// (out of file descriptors, ...) waits a moment before trying again.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
