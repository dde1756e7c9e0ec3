//! Forwarding of Engine.IO requests to the node that owns the session.
//!
//! With the Redis adapter every node of a cluster can broadcast to every socket, but an
//! Engine.IO session (its long-polling buffers, its WebSocket) still lives in the memory of the
//! node that performed the handshake. [`ForwardLayer`] removes the need for sticky load
//! balancing: it looks at the `sid` query parameter of every request under the Engine.IO path,
//! asks a [`SessionRouter`] where the session lives and, when it lives on another node, proxies
//! the request (long-polling `GET`/`POST`, SSE streams and WebSocket upgrades) to that node over
//! plain HTTP/1.1.
//!
//! ```no_run
//! use std::{net::SocketAddr, sync::Arc};
//! use axum::ServiceExt as _;
//! use tidewire_redis::forward::{ForwardLayer, Owner, SessionRouter};
//! use tower_layer::Layer as _;
//!
//! struct Table;
//! impl SessionRouter for Table {
//!     fn owner(&self, sid: &str) -> Owner {
//!         match sid.split_once('.') {
//!             Some(("n2", _)) => Owner::Remote("10.0.0.2:3000".parse().unwrap()),
//!             Some(("n1", _)) => Owner::Local,
//!             _ => Owner::Unknown,
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = axum::Router::new().route("/socket.io/", axum::routing::any(|| async { "engine" }));
//! let app = ForwardLayer::new(Arc::new(Table)).layer(app);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```

use std::{
    borrow::Cow,
    fmt,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo};
use futures_util::future::{BoxFuture, Either};
use http::{
    header::{self, HeaderName},
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use tokio::io::AsyncWriteExt;
use tower_layer::Layer;
use tower_service::Service;

/// Default Engine.IO path watched by [`ForwardLayer`].
const DEFAULT_PATH: &str = "/socket.io/";
/// Default timeout for establishing a TCP connection to the owner node.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle pooled connection to another node is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Header marking a request that was already forwarded once (loop guard).
const FORWARDED_HEADER: HeaderName = HeaderName::from_static("x-tidewire-forwarded");
/// The `X-Forwarded-For` header.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Engine.IO's error body for an unknown session (`Server.errors.UNKNOWN_SID`).
const UNKNOWN_SID_BODY: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

/// Where a session lives, as the cluster knows it.
///
/// Returned by [`SessionRouter::owner`].
///
/// ```
/// use tidewire_redis::forward::Owner;
/// let owner = Owner::Remote("10.0.0.7:3000".parse().unwrap());
/// assert!(matches!(owner, Owner::Remote(addr) if addr.port() == 3000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The session lives on this node: the request is handled by the inner service.
    Local,
    /// The session lives on the node listening at this address: the request is forwarded there.
    Remote(SocketAddr),
    /// Nobody (alive) owns the session: the client gets Engine.IO's "Session ID unknown" error
    /// and reconnects.
    Unknown,
}

/// Maps a session id (the `sid` query parameter) to its [`Owner`].
///
/// Called once per request that carries a `sid` under the Engine.IO path, on the hot path:
/// implementations should be cheap and must not block (use a cached membership table).
///
/// ```
/// use tidewire_redis::forward::{Owner, SessionRouter};
///
/// /// Sids look like `<node>.<random>`; node `a` is us, node `b` lives at 10.0.0.2:3000.
/// struct Prefixes;
/// impl SessionRouter for Prefixes {
///     fn owner(&self, sid: &str) -> Owner {
///         match sid.split_once('.').map(|(node, _)| node) {
///             Some("a") => Owner::Local,
///             Some("b") => Owner::Remote("10.0.0.2:3000".parse().unwrap()),
///             _ => Owner::Unknown,
///         }
///     }
/// }
/// assert_eq!(Prefixes.owner("a.xyz"), Owner::Local);
/// assert_eq!(Prefixes.owner("zzz"), Owner::Unknown);
/// ```
pub trait SessionRouter: Send + Sync + 'static {
    /// Where the session `sid` lives.
    fn owner(&self, sid: &str) -> Owner;

    /// Brings the membership table up to date; the layer awaits it before
    /// answering a sid whose owner was [`Owner::Unknown`] (a node that just
    /// started may not be in the cached table yet). The default does nothing.
    fn refresh(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Internal errors of the forwarding path; all of them end up as an HTTP answer to the client.
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("cannot build the forwarded request: {0}")]
    Request(#[from] http::Error),
    #[error("cannot reach session owner {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("request to session owner {addr} failed: {source}")]
    Upstream {
        addr: SocketAddr,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the incoming connection cannot be upgraded (server not run with upgrades enabled)")]
    NoUpgrade,
}

/// Internal errors of an established WebSocket tunnel.
#[derive(Debug, thiserror::Error)]
enum TunnelError {
    #[error("upgrade failed: {0}")]
    Upgrade(#[from] hyper::Error),
    #[error("i/o error while relaying: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by a [`ForwardLayer`] and all the [`Forward`] services it creates.
#[derive(Clone)]
struct Shared {
    router: Arc<dyn SessionRouter>,
    /// Normalized Engine.IO path, with leading and trailing `/`.
    path: Box<str>,
    connect_timeout: Duration,
    client: Client<HttpConnector, Body>,
}

impl Shared {
    fn build_client(connect_timeout: Duration) -> Client<HttpConnector, Body> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector)
    }

    /// Whether `path` is the Engine.IO path or below it (same rule as the engine service).
    fn watches(&self, path: &str) -> bool {
        path.starts_with(&*self.path) || path == self.path.trim_end_matches('/')
    }
}

/// A tower [`Layer`] that lets any node of a cluster accept any Engine.IO request.
///
/// Requests under the Engine.IO path whose `sid` belongs to a session on another node (as told
/// by the [`SessionRouter`]) are forwarded to that node over HTTP/1.1 with one pooled client per
/// layer, bodies streamed both ways; WebSocket upgrades are tunneled. Everything else (other
/// paths, handshakes without `sid`, local sessions) goes to the inner service untouched.
///
/// * [`Owner::Unknown`], an unreachable owner (connection refused or connect timeout) and a
///   request that was already forwarded once (`x-tidewire-forwarded` header, loop guard) are
///   answered `400` with Engine.IO's `{"code":1,"message":"Session ID unknown"}`, so the client
///   reconnects.
/// * Forwarded requests carry `x-tidewire-forwarded: 1` and `x-forwarded-for` (with the peer
///   address when the server was run with `ConnectInfo<SocketAddr>`).
///
/// The layer must wrap the service that receives the raw requests of the server (so WebSocket
/// upgrades can be taken over), e.g. the whole axum `Router`:
///
/// ```no_run
/// use std::{net::SocketAddr, sync::Arc, time::Duration};
/// use axum::ServiceExt as _;
/// use tidewire_redis::forward::{ForwardLayer, Owner, SessionRouter};
/// use tower_layer::Layer as _;
///
/// struct AllLocal;
/// impl SessionRouter for AllLocal {
///     fn owner(&self, _sid: &str) -> Owner { Owner::Local }
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let layer = ForwardLayer::new(Arc::new(AllLocal))
///     .path("/realtime/")
///     .connect_timeout(Duration::from_millis(500));
/// let app = layer.layer(axum::Router::new());
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
/// # }
/// ```
#[derive(Clone)]
pub struct ForwardLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for ForwardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardLayer")
            .field("path", &self.shared.path)
            .field("connect_timeout", &self.shared.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl ForwardLayer {
    /// A layer asking `router` where sessions live, watching the default Engine.IO path
    /// `/socket.io/`, with a 2 s connect timeout towards other nodes.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use tidewire_redis::forward::{ForwardLayer, Owner, SessionRouter};
    ///
    /// struct Everywhere;
    /// impl SessionRouter for Everywhere {
    ///     fn owner(&self, _sid: &str) -> Owner { Owner::Local }
    /// }
    /// let layer = ForwardLayer::new(Arc::new(Everywhere));
    /// ```
    pub fn new(router: Arc<dyn SessionRouter>) -> Self {
        Self {
            shared: Arc::new(Shared {
                router,
                path: DEFAULT_PATH.into(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                client: Shared::build_client(DEFAULT_CONNECT_TIMEOUT),
            }),
        }
    }

    /// The Engine.IO path to watch (normalized to a leading and a trailing `/`, like the engine
    /// does: `"rt"` watches `/rt` and everything under `/rt/`).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use tidewire_redis::forward::{ForwardLayer, Owner, SessionRouter};
    /// # struct R;
    /// # impl SessionRouter for R { fn owner(&self, _: &str) -> Owner { Owner::Local } }
    /// let layer = ForwardLayer::new(Arc::new(R)).path("/realtime/");
    /// ```
    pub fn path(self, path: &str) -> Self {
        let mut normalized = String::with_capacity(path.len() + 2);
        if !path.starts_with('/') {
            normalized.push('/');
        }
        normalized.push_str(path);
        if !normalized.ends_with('/') {
            normalized.push('/');
        }
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.path = normalized.into_boxed_str();
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Timeout for opening a TCP connection to the owner node (default 2 s). When it expires
    /// the node is considered dead and the client is told its session is unknown.
    ///
    /// ```no_run
    /// # use std::{sync::Arc, time::Duration};
    /// # use tidewire_redis::forward::{ForwardLayer, Owner, SessionRouter};
    /// # struct R;
    /// # impl SessionRouter for R { fn owner(&self, _: &str) -> Owner { Owner::Local } }
    /// let layer = ForwardLayer::new(Arc::new(R)).connect_timeout(Duration::from_millis(300));
    /// ```
    pub fn connect_timeout(self, d: Duration) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.connect_timeout = d;
        shared.client = Shared::build_client(d);
        Self {
            shared: Arc::new(shared),
        }
    }
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Forward {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service created by [`ForwardLayer`]: forwards requests of sessions owned by other nodes,
/// hands everything else to the inner service `S`.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use tidewire_redis::forward::{Forward, ForwardLayer, Owner, SessionRouter};
/// # struct R;
/// # impl SessionRouter for R { fn owner(&self, _: &str) -> Owner { Owner::Local } }
/// use tower_layer::Layer as _;
/// let app: Forward<axum::Router> = ForwardLayer::new(Arc::new(R)).layer(axum::Router::new());
/// ```
pub struct Forward<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for Forward<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Forward<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("inner", &self.inner)
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Forward`]: the inner service's own future on the local path, a
/// boxed future when the request is answered or forwarded by the layer.
pub type ResponseFuture<F, E> = Either<F, BoxFuture<'static, Result<Response<Body>, E>>>;

impl<S> Service<Request<Body>> for Forward<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let owner = {
            let uri = request.uri();
            if !self.shared.watches(uri.path()) {
                return Either::Left(self.inner.call(request));
            }
            match uri.query().and_then(sid_param) {
                Some(sid) => match self.shared.router.owner(&sid) {
                    Owner::Unknown => Err(sid.into_owned()),
                    known => Ok(known),
                },
                None => return Either::Left(self.inner.call(request)),
            }
        };
        match owner {
            Ok(Owner::Local) => Either::Left(self.inner.call(request)),
            Ok(Owner::Remote(addr)) => Either::Right(Box::pin(forward_or_refuse(
                self.shared.clone(),
                addr,
                request,
            ))),
            Ok(Owner::Unknown) => Either::Right(Box::pin(async { Ok(unknown_sid()) })),
            Err(sid) => {
                // Maybe a node that joined after the last membership read: look again once.
                let shared = self.shared.clone();
                Either::Right(Box::pin(async move {
                    shared.router.refresh().await;
                    match shared.router.owner(&sid) {
                        Owner::Remote(addr) => forward_or_refuse(shared, addr, request).await,
                        _ => Ok(unknown_sid()),
                    }
                }))
            }
        }
    }
}

/// Forwards `request` to the owner at `addr`, unless it was forwarded already.
async fn forward_or_refuse<E>(
    shared: Arc<Shared>,
    addr: SocketAddr,
    request: Request<Body>,
) -> Result<Response<Body>, E> {
    if request.headers().contains_key(FORWARDED_HEADER) {
        tracing::warn!(
            %addr,
            uri = %request.uri(),
            "refusing to forward an already forwarded request (cluster routing loop?)"
        );
        return Ok(unknown_sid());
    }
    Ok(match forward(&shared, addr, request).await {
        Ok(response) => response,
        Err(e @ (ForwardError::Unreachable { .. } | ForwardError::NoUpgrade)) => {
            tracing::warn!(error = %e, "cannot forward engine.io request");
            unknown_sid()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot forward engine.io request");
            bad_gateway()
        }
    })
}

/// Finds the `sid` query parameter without allocating unless it is percent-encoded.
/// An empty `sid` counts as absent.
fn sid_param(query: &str) -> Option<Cow<'_, str>> {
    let raw = query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some(("sid", value)) => Some(value),
            _ => None,
        })?;
    if raw.is_empty() {
        return None;
    }
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(raw));
    }
    Some(Cow::Owned(percent_decode(raw)))
}

/// Decodes `application/x-www-form-urlencoded` text; invalid escapes are kept verbatim and
/// invalid UTF-8 is replaced, which simply yields a sid nobody owns.
fn percent_decode(raw: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi << 4) | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Engine.IO's answer for an unknown session: `400` + `{"code":1,"message":"Session ID unknown"}`.
fn unknown_sid() -> Response<Body> {
    let mut response = Response::new(Body::from(UNKNOWN_SID_BODY));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Answer when the owner was reached but the exchange failed midway.
fn bad_gateway() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Whether `name` is a hop-by-hop header that must not be forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str().starts_with("proxy-")
}

/// Whether the `Connection` header(s) list `name` as a hop-by-hop header.
fn listed_in_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Copies the end-to-end headers of `from`.
fn end_to_end_headers(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::with_capacity(from.len() + 2);
    for (name, value) in from {
        // `Expect: 100-continue` was already answered to the client by this node's server.
        if is_hop_by_hop(name) || name == header::EXPECT || listed_in_connection(from, name) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
    to
}

/// Whether the request asks for a WebSocket upgrade.
fn is_websocket_upgrade<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    request.method() == Method::GET
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Forwards `request` to the owner at `addr` and builds the answer for the client.
async fn forward(
    shared: &Shared,
    addr: SocketAddr,
    mut request: Request<Body>,
) -> Result<Response<Body>, ForwardError> {
    let upgrade = is_websocket_upgrade(&request);
    let client_upgrade = if upgrade {
        Some(ClientUpgrade::take(&mut request).ok_or(ForwardError::NoUpgrade)?)
    } else {
        None
    };

    let (parts, body) = request.into_parts();
    let mut headers = end_to_end_headers(&parts.headers);
    headers.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        append_forwarded_for(&mut headers, peer);
    }
    if upgrade {
        if let Some(protocol) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let uri = Uri::builder()
        .scheme("http")
        .authority(addr.to_string())
        .path_and_query(path_and_query)
        .build()?;
    let mut outgoing = Request::builder()
        .method(parts.method)
        .uri(uri)
        .version(Version::HTTP_11)
        .body(if upgrade { Body::empty() } else { body })?;
    *outgoing.headers_mut() = headers;

    tracing::debug!(%addr, uri = %outgoing.uri(), upgrade, "forwarding engine.io request");
    let mut response = shared.client.request(outgoing).await.map_err(|source| {
        if source.is_connect() {
            ForwardError::Unreachable { addr, source }
        } else {
            ForwardError::Upstream { addr, source }
        }
    })?;

    if let Some(client_upgrade) = client_upgrade {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let owner_upgrade = hyper::upgrade::on(&mut response);
            let (parts, _) = response.into_parts();
            tokio::spawn(async move {
                match tunnel(client_upgrade, owner_upgrade).await {
                    Ok((up, down)) => {
                        tracing::debug!(%addr, up, down, "forwarded websocket closed");
                    }
                    Err(e) => tracing::debug!(%addr, error = %e, "forwarded websocket ended"),
                }
            });
            return Ok(Response::from_parts(parts, Body::empty()));
        }
    }

    let (mut parts, body) = response.into_parts();
    parts.headers = end_to_end_headers(&parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Appends the peer address to `X-Forwarded-For` (merging earlier values into one line).
fn append_forwarded_for(headers: &mut HeaderMap, peer: &SocketAddr) {
    let mut line = String::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(value) = value.to_str() {
            line.push_str(value);
            line.push_str(", ");
        }
    }
    line.push_str(&peer.ip().to_string());
    if let Ok(value) = HeaderValue::try_from(line) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// The client's side of a tunnelled WebSocket: from `axum::serve` (hyper) or
/// from `tidewire::serve`, whichever server runs this layer.
enum ClientUpgrade {
    Hyper(hyper::upgrade::OnUpgrade),
    Lean(tidewire_engine::http1::OnUpgrade),
}

impl ClientUpgrade {
    fn take(request: &mut Request<Body>) -> Option<Self> {
        let extensions = request.extensions_mut();
        if let Some(lean) = extensions.remove::<tidewire_engine::http1::OnUpgrade>() {
            return Some(Self::Lean(lean));
        }
        extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .map(Self::Hyper)
    }
}

/// Relays bytes between the upgraded client and owner connections until one side closes.
async fn tunnel(
    client: ClientUpgrade,
    owner: hyper::upgrade::OnUpgrade,
) -> Result<(u64, u64), TunnelError> {
    let mut owner = TokioIo::new(owner.await?);
    match client {
        ClientUpgrade::Hyper(client) => {
            let mut client = TokioIo::new(client.await?);
            Ok(tokio::io::copy_bidirectional(&mut client, &mut owner).await?)
        }
        ClientUpgrade::Lean(client) => {
            let mut client = client.await?;
            // What the client sent right behind its request head goes first.
            owner.write_all(&client.read_buf).await?;
            let (up, down) = tokio::io::copy_bidirectional(&mut client.io, &mut owner).await?;
            Ok((up + client.read_buf.len() as u64, down))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_is_found_without_allocation() {
        assert_eq!(
            sid_param("EIO=4&transport=polling&sid=abc"),
            Some(Cow::Borrowed("abc"))
        );
        assert!(matches!(
            sid_param("sid=abc&EIO=4"),
            Some(Cow::Borrowed("abc"))
        ));
        assert_eq!(sid_param("EIO=4&transport=polling"), None);
        assert_eq!(sid_param("EIO=4&sid="), None);
        assert_eq!(sid_param("EIO=4&sid"), None);
        assert_eq!(sid_param("xsid=abc"), None);
        assert_eq!(sid_param(""), None);
    }

    #[test]
    fn encoded_sid_is_decoded_leniently() {
        assert_eq!(sid_param("sid=a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(sid_param("sid=a%zz%").as_deref(), Some("a%zz%"));
        assert_eq!(sid_param("sid=%ff").as_deref(), Some("\u{fffd}"));
        assert_eq!(sid_param("sid=%4").as_deref(), Some("%4"));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("proxy-authorization", HeaderValue::from_static("secret"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::COOKIE, HeaderValue::from_static("io=abc"));
        headers.append(header::ACCEPT, HeaderValue::from_static("a"));
        headers.append(header::ACCEPT, HeaderValue::from_static("b"));
        let kept = end_to_end_headers(&headers);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept.get_all(header::ACCEPT).iter().count(), 2);
        assert!(kept.contains_key(header::COOKIE));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let peer: SocketAddr = "10.1.2.3:4567".parse().unwrap();
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &peer);
        assert_eq!(headers[X_FORWARDED_FOR], "10.1.2.3");
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        append_forwarded_for(&mut headers, &"[::1]:80".parse().unwrap());
        assert_eq!(headers[X_FORWARDED_FOR], "10.1.2.3, 192.0.2.1, ::1");
    }

    #[test]
    fn path_is_normalized_and_matched() {
        struct R;
        impl SessionRouter for R {
            fn owner(&self, _: &str) -> Owner {
                Owner::Local
            }
        }
        let layer = ForwardLayer::new(Arc::new(R)).path("rt");
        assert_eq!(&*layer.shared.path, "/rt/");
        assert!(layer.shared.watches("/rt"));
        assert!(layer.shared.watches("/rt/"));
        assert!(layer.shared.watches("/rt/x"));
        assert!(!layer.shared.watches("/rtx"));
        assert!(!layer.shared.watches("/"));
        let layer = ForwardLayer::new(Arc::new(R));
        assert!(layer.shared.watches("/socket.io/"));
        assert!(!layer.shared.watches("/socket.iox"));
    }
}
