//! The loop serving one HTTP/1.1 connection: read a head, call the service,
//! write the response, and again while the connection stays alive.
//!
//! Memory: an idle connection (between requests, or while the service is
//! pending) holds no read or write buffer; readiness is awaited first and a
//! small buffer allocated only once bytes are there.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower_service::Service;

use super::body::{BodyShared, RequestBody};
use super::config::{Http1Config, MAX_DRAIN};
use super::head::{self, BodyKind, HeadError, RequestHead};
use super::io::{client_gone, close, read_some, write_all, write_all_gathered};
use super::response::{self, Framing, RequestInfo};
use super::upgrade::{self, Upgraded};
use super::BoxError;

/// First read buffer for a request head; it doubles up to the head limit.
const HEAD_CHUNK: usize = 512;
/// Response bytes gathered before they are written even if more are ready.
const MAX_BATCH: usize = 64 * 1024;

/// What became of the connection after one request.
enum Outcome {
    KeepAlive,
    Close,
    /// The connection was handed over; `Pending` gets it.
    Upgrade(upgrade::Pending),
}

enum NextHead {
    Head(Box<RequestHead>),
    Close,
    Refuse(HeadError),
}

/// Serves requests on `stream` until it closes, is upgraded, or the server shuts down.
pub(crate) async fn serve_connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    mut service: S,
    config: Arc<Http1Config>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let io = Arc::new(stream);
    let mut buf = BytesMut::new();
    let mut first = true;
    loop {
        if *shutdown.borrow() && buf.is_empty() {
            break;
        }
        let head = match next_head(&io, &mut buf, &config, first, &mut shutdown).await {
            NextHead::Head(head) => head,
            NextHead::Close => break,
            NextHead::Refuse(error) => {
                tracing::debug!(%peer, %error, "refused a request head");
                let _ = write_all(
                    &io,
                    &response::error_response(error.status(), &error.to_string()),
                )
                .await;
                break;
            }
        };
        first = false;
        let outcome = Box::pin(handle(&io, &mut buf, peer, &mut service, &config, *head)).await;
        match outcome {
            Outcome::KeepAlive if *shutdown.borrow() => break,
            Outcome::KeepAlive => {}
            Outcome::Close => break,
            Outcome::Upgrade(pending) => {
                match Arc::try_unwrap(io) {
                    Ok(io) => pending.fulfill(Upgraded {
                        io,
                        read_buf: buf.freeze(),
                    }),
                    Err(_) => {
                        tracing::debug!(%peer, "upgrade with a request body still held; closing")
                    }
                }
                return;
            }
        }
        if buf.is_empty() {
            // Idle: keep no buffer while waiting for the next request.
            buf = BytesMut::new();
        }
    }
    close(io).await;
}

/// Waits for and reads the next request head.
async fn next_head(
    io: &TcpStream,
    buf: &mut BytesMut,
    config: &Http1Config,
    first: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> NextHead {
    if buf.is_empty() {
        let idle = if first {
            config.header_read_timeout
        } else {
            config.keep_alive_timeout
        };
        let deadline = tokio::time::Instant::now() + idle;
        // Readiness can be stale (left over from the last read): wait until bytes really come.
        while buf.is_empty() {
            tokio::select! {
                biased;
                ready = io.readable() => {
                    if ready.is_err() {
                        return NextHead::Close;
                    }
                }
                _ = shutdown.changed() => return NextHead::Close,
                () = tokio::time::sleep_until(deadline) => return NextHead::Close,
            }
            buf.reserve(HEAD_CHUNK);
            match read_some(io, buf) {
                Ok(0) => return NextHead::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *buf = BytesMut::new(),
                Err(_) => return NextHead::Close,
            }
        }
    }
    match tokio::time::timeout(config.header_read_timeout, read_head(io, buf, config)).await {
        Ok(Ok(Some(head))) => NextHead::Head(Box::new(head)),
        Ok(Ok(None)) => NextHead::Close,
        Ok(Err(error)) => NextHead::Refuse(error),
        Err(_) => {
            tracing::debug!("request head timed out");
            NextHead::Close
        }
    }
}

/// Reads until `buf` holds a complete head. `Ok(None)`: the client closed (or failed) first.
async fn read_head(
    io: &TcpStream,
    buf: &mut BytesMut,
    config: &Http1Config,
) -> Result<Option<RequestHead>, HeadError> {
    loop {
        if let Some(head) = head::parse(buf, config.max_headers, config.max_head_size)? {
            if buf.is_empty() {
                *buf = BytesMut::new();
            }
            return Ok(Some(head));
        }
        if buf.capacity() == buf.len() {
            let grow = buf.capacity().clamp(HEAD_CHUNK, config.max_head_size);
            buf.reserve(grow);
        }
        if io.readable().await.is_err() {
            return Ok(None);
        }
        match read_some(io, buf) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Ok(None),
        }
    }
}

/// Serves one request: the service call, the response, the rest of the request body.
async fn handle<S, B>(
    io: &Arc<TcpStream>,
    buf: &mut BytesMut,
    peer: SocketAddr,
    service: &mut S,
    config: &Http1Config,
    head: RequestHead,
) -> Outcome
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let info = RequestInfo {
        head: response::is_head(&head.method),
        version: head.version,
        keep_alive: head.keep_alive,
    };
    let body_shared = match head.body {
        BodyKind::Length(0) => None,
        kind => Some(BodyShared::new(
            io.clone(),
            std::mem::take(buf),
            kind,
            head.expect_continue,
        )),
    };
    let body = match &body_shared {
        Some(shared) => Body::new(RequestBody::new(shared.clone(), head.body)),
        None => Body::empty(),
    };
    let mut request = Request::new(body);
    *request.method_mut() = head.method;
    *request.uri_mut() = head.uri;
    *request.version_mut() = head.version;
    *request.headers_mut() = head.headers;
    request.extensions_mut().insert(ConnectInfo(peer));
    let mut upgrade = None;
    if head.upgrade {
        let (pending, on_upgrade) = upgrade::pair();
        request.extensions_mut().insert(on_upgrade);
        upgrade = Some(pending);
    }

    if let Err(error) = poll_fn(|cx| service.poll_ready(cx)).await {
        let error: BoxError = error.into();
        tracing::debug!(%peer, %error, "service not ready");
        return Outcome::Close;
    }
    let mut call = Box::pin(service.call(request));
    let result = tokio::select! {
        biased;
        result = &mut call => result.map_err(Into::<BoxError>::into),
        () = client_gone(io, buf, body_shared.as_deref(), config.max_head_size) => {
            tracing::debug!(%peer, "client closed the connection while its request was served");
            return Outcome::Close;
        }
    };
    drop(call);
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%peer, %error, "service failed");
            let bytes =
                response::error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            let _ = write_all(io, &bytes).await;
            return Outcome::Close;
        }
    };

    let (parts, body) = response.into_parts();
    let exact = body.size_hint().exact();
    let framing = response::framing(
        parts.status,
        info,
        response::declared_length(&parts.headers),
        exact,
    );
    let upgrading = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    let mut keep_alive = response::keeps_alive(info, &parts.headers, framing) && !upgrading;
    if let Some(shared) = &body_shared {
        // The client waits for `100 Continue` we never sent: its body will not come.
        if shared.continue_unsent() && !shared.is_complete() {
            keep_alive = false;
        }
    }
    let mut out = Vec::with_capacity(256);
    response::encode_head(
        &mut out,
        parts.status,
        &parts.headers,
        info,
        framing,
        exact,
        keep_alive || upgrading,
    );
    drop(parts);

    if upgrading {
        drop(body);
        if let Err(error) = write_all(io, &out).await {
            tracing::debug!(%peer, %error, "writing a 101 failed");
            return Outcome::Close;
        }
        let Some(pending) = upgrade else {
            return Outcome::Close;
        };
        if let Some(shared) = body_shared {
            let mut leftover = shared.detach();
            leftover.extend_from_slice(buf);
            *buf = leftover;
        }
        return Outcome::Upgrade(pending);
    }
    drop(upgrade);

    let sent = match framing {
        Framing::None => {
            drop(body);
            write_all(io, &out).await.map_err(BoxError::from)
        }
        _ => {
            let body = Box::pin(body.map_err(Into::<BoxError>::into));
            stream_body(io, buf, body_shared.as_deref(), config, out, body, framing).await
        }
    };
    if let Err(error) = sent {
        tracing::debug!(%peer, %error, "response not completed");
        return Outcome::Close;
    }

    if let Some(shared) = body_shared {
        if keep_alive && !shared.is_complete() {
            let drained = tokio::time::timeout(config.header_read_timeout, shared.drain(MAX_DRAIN));
            keep_alive = matches!(drained.await, Ok(true));
        }
        let mut leftover = shared.detach();
        if keep_alive {
            leftover.extend_from_slice(buf);
            *buf = leftover;
        }
    }
    if keep_alive {
        Outcome::KeepAlive
    } else {
        Outcome::Close
    }
}

/// Why a response body could not be written completely.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("the client closed the connection")]
    Gone,
    #[error("the body produced more or fewer bytes than its content-length")]
    Length,
}

/// Writes the head in `out`, then the body frames as they come: what is ready
/// is gathered into one write, then the loop waits for the next frame while
/// watching for the client closing the connection.
///
/// A frame that is alone when the loop must wait (the usual SSE wake: one frame
/// of events) is not copied: its size line, data and CRLF go out in one `writev`.
async fn stream_body<B>(
    io: &TcpStream,
    buf: &mut BytesMut,
    request_body: Option<&BodyShared>,
    config: &Http1Config,
    mut out: Vec<u8>,
    mut body: std::pin::Pin<Box<B>>,
    framing: Framing,
) -> Result<(), BoxError>
where
    B: http_body::Body<Data = Bytes, Error = BoxError>,
{
    let mut sent: u64 = 0;
    // A frame not yet copied into `out`; only ever set while `out` is empty.
    let mut lone: Option<Bytes> = None;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if let Some(data) = lone.take() {
                    write_frame(io, &data, framing).await?;
                } else if !out.is_empty() {
                    write_all(io, &out).await?;
                    // Nothing kept while waiting (an SSE stream may wait minutes).
                    out = Vec::new();
                }
                tokio::select! {
                    biased;
                    frame = body.frame() => frame,
                    () = client_gone(io, buf, request_body, config.max_head_size) => {
                        return Err(StreamError::Gone.into());
                    }
                }
            }
        };
        match frame {
            None => break,
            Some(Err(error)) => return Err(error),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not sent
                };
                if data.is_empty() {
                    continue;
                }
                sent += data.len() as u64;
                if let Framing::Length(n) = framing {
                    if sent > n {
                        return Err(StreamError::Length.into());
                    }
                }
                if out.is_empty() && lone.is_none() {
                    lone = Some(data);
                    continue;
                }
                if let Some(first) = lone.take() {
                    append_frame(&mut out, &first, framing);
                }
                append_frame(&mut out, &data, framing);
                if out.len() >= MAX_BATCH {
                    write_all(io, &out).await?;
                    out.clear();
                }
            }
        }
    }
    if let Some(last) = lone.take() {
        append_frame(&mut out, &last, framing);
    }
    match framing {
        Framing::Length(n) if sent != n => return Err(StreamError::Length.into()),
        Framing::Chunked => out.extend_from_slice(response::LAST_CHUNK),
        _ => {}
    }
    write_all(io, &out).await?;
    Ok(())
}

/// Appends one body frame to `out`, framed as the response is.
fn append_frame(out: &mut Vec<u8>, data: &[u8], framing: Framing) {
    if framing == Framing::Chunked {
        out.extend_from_slice(response::ChunkSize::new(data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(response::CHUNK_END);
    } else {
        out.extend_from_slice(data);
    }
}

/// Writes one body frame straight from its buffer, framed as the response is.
async fn write_frame(io: &TcpStream, data: &[u8], framing: Framing) -> io::Result<()> {
    if framing == Framing::Chunked {
        let size = response::ChunkSize::new(data.len());
        write_all_gathered(io, [size.as_bytes(), data, response::CHUNK_END]).await
    } else {
        write_all(io, data).await
    }
}
