//! tower integration: the engine as a `Service`, and a `Layer` that mounts it in front of an app.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};

use crate::{Engine, EngineHandler};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The engine as a tower [`Service`](tower_service::Service): every request it
/// receives is treated as an Engine.IO request.
///
/// ```
/// # use tidewire_engine::{Engine, EngineConfig};
/// # struct H; impl tidewire_engine::EngineHandler for H { type Data = ();
/// # fn on_open(&self, _: &tidewire_engine::Session<()>) {}
/// # fn on_message(&self, _: &tidewire_engine::Session<()>, _: tidewire_engine::Message) {}
/// # fn on_close(&self, _: &tidewire_engine::Session<()>, _: tidewire_engine::CloseReason) {} }
/// let engine = Engine::new(EngineConfig::default(), H);
/// let app: axum::Router = axum::Router::new().route_service("/socket.io/", engine.service());
/// ```
pub struct EngineService<H: EngineHandler>(Engine<H>);

impl<H: EngineHandler> EngineService<H> {
    pub(crate) fn new(engine: Engine<H>) -> Self {
        Self(engine)
    }
}

impl<H: EngineHandler> Clone for EngineService<H> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<H: EngineHandler, B> tower_service::Service<Request<B>> for EngineService<H>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let engine = self.0.clone();
        Box::pin(async move { Ok(engine.handle(request.map(Body::new)).await) })
    }
}

/// A tower [`Layer`](tower_layer::Layer) that answers requests under the
/// engine's path and hands every other request to the wrapped service.
///
/// ```
/// # use tidewire_engine::{Engine, EngineConfig};
/// # struct H; impl tidewire_engine::EngineHandler for H { type Data = ();
/// # fn on_open(&self, _: &tidewire_engine::Session<()>) {}
/// # fn on_message(&self, _: &tidewire_engine::Session<()>, _: tidewire_engine::Message) {}
/// # fn on_close(&self, _: &tidewire_engine::Session<()>, _: tidewire_engine::CloseReason) {} }
/// let engine = Engine::new(EngineConfig::default(), H);
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "home" }))
///     .layer(engine.layer());
/// ```
pub struct EngineLayer<H: EngineHandler>(Engine<H>);

impl<H: EngineHandler> EngineLayer<H> {
    pub(crate) fn new(engine: Engine<H>) -> Self {
        Self(engine)
    }
}

impl<H: EngineHandler> Clone for EngineLayer<H> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<H: EngineHandler, S> tower_layer::Layer<S> for EngineLayer<H> {
    type Service = EngineMiddleware<H, S>;
    fn layer(&self, inner: S) -> Self::Service {
        EngineMiddleware {
            engine: self.0.clone(),
            inner,
        }
    }
}

/// The service [`EngineLayer`] builds.
pub struct EngineMiddleware<H: EngineHandler, S> {
    engine: Engine<H>,
    inner: S,
}

impl<H: EngineHandler, S: Clone> Clone for EngineMiddleware<H, S> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<H, S, B> tower_service::Service<Request<B>> for EngineMiddleware<H, S>
where
    H: EngineHandler,
    S: tower_service::Service<Request<B>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = &self.engine.config().path;
        let path_trimmed = path.trim_end_matches('/');
        let request_path = request.uri().path();
        if request_path == path_trimmed || request_path.starts_with(path.as_str()) {
            let engine = self.engine.clone();
            Box::pin(async move { Ok(engine.handle(request.map(Body::new)).await) })
        } else {
            let future = self.inner.call(request);
            Box::pin(future)
        }
    }
}
