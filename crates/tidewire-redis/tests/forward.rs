//! Integration tests of `tidewire_redis::forward`: real servers on 127.0.0.1, no mocks.
//!
//! An "owner" server plays the node that owns remote sessions; a "front" server wraps a router
//! answering "local" in a `ForwardLayer` whose `SessionRouter` maps `remote…` sids to the owner,
//! `dead…` sids to a closed port, `gone…` sids to `Unknown` and everything else to `Local`.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::Request,
    response::Response,
    routing::{any, get},
    Router, ServiceExt as _,
};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use sha1::{Digest as _, Sha1};
use tidewire_redis::forward::{ForwardLayer, Owner, SessionRouter};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tower_layer::Layer as _;

const UNKNOWN: &str = r#"{"code":1,"message":"Session ID unknown"}"#;
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct TestRouter {
    owner: SocketAddr,
    dead: SocketAddr,
}

impl SessionRouter for TestRouter {
    fn owner(&self, sid: &str) -> Owner {
        if sid.starts_with("remote") {
            Owner::Remote(self.owner)
        } else if sid.starts_with("dead") {
            Owner::Remote(self.dead)
        } else if sid.starts_with("gone") {
            Owner::Unknown
        } else {
            Owner::Local
        }
    }
}

/// On the owner every session is local (forwarded requests must reach its inner service).
struct AllLocal;

impl SessionRouter for AllLocal {
    fn owner(&self, _sid: &str) -> Owner {
        Owner::Local
    }
}

fn ws_accept(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The owner's engine stand-in.
async fn owner_handler(request: Request) -> Response {
    let query = request.uri().query().unwrap_or("").to_owned();
    let forwarded = request
        .headers()
        .get("x-tidewire-forwarded")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let xff = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();

    // (d) WebSocket upgrade: raw handshake, then echo raw bytes.
    if let Some(key) = request.headers().get("sec-websocket-key") {
        let accept = ws_accept(key.as_bytes());
        let upgrade = hyper::upgrade::on(request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header("sec-websocket-accept", accept)
            .body(Body::empty())
            .unwrap();
    }

    // (b) POST: echo the body.
    if request.method() == http::Method::POST {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut echoed = b"posted:".to_vec();
        echoed.extend_from_slice(&body);
        return Response::new(Body::from(echoed));
    }

    // (c) SSE-like endless-ish stream: three chunks 200 ms apart.
    if query.contains("transport=sse") {
        let stream = futures_util::stream::unfold(0u32, |i| async move {
            if i == 3 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let chunk = Bytes::from(format!("data: chunk{i}\n\n"));
            Some((Ok::<_, Infallible>(chunk), i + 1))
        });
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap();
    }

    // (a) Long-polling GET held for 300 ms, echoing the query.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Response::new(Body::from(format!(
        "owner query={query} forwarded={forwarded} xff={xff}"
    )))
}

async fn local_handler(request: Request) -> String {
    format!("local {}", request.uri().query().unwrap_or(""))
}

struct Cluster {
    front: SocketAddr,
    client: Client<HttpConnector, Body>,
}

async fn start() -> Cluster {
    // Owner node, itself behind a ForwardLayer (everything local there).
    let owner_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let owner = owner_listener.local_addr().unwrap();
    let owner_app = ForwardLayer::new(Arc::new(AllLocal))
        .layer(Router::new().route("/socket.io/", any(owner_handler)));
    tokio::spawn(async move {
        axum::serve(
            owner_listener,
            owner_app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    // An address nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };

    let front_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = front_listener.local_addr().unwrap();
    let inner = Router::new()
        .route("/socket.io/", any(local_handler))
        .route("/other", get(|| async { "other" }));
    let front_app = ForwardLayer::new(Arc::new(TestRouter { owner, dead }))
        .connect_timeout(Duration::from_millis(500))
        .layer(inner);
    tokio::spawn(async move {
        axum::serve(
            front_listener,
            front_app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    Cluster {
        front,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Cluster {
    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.front, path_and_query)
    }

    async fn get(&self, path_and_query: &str) -> (StatusCode, http::HeaderMap, String) {
        let request = http::Request::get(self.url(path_and_query))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    async fn send(&self, request: http::Request<Body>) -> (StatusCode, http::HeaderMap, String) {
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }
}

fn assert_unknown(status: StatusCode, headers: &http::HeaderMap, body: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers.get(header::CONTENT_TYPE),
        Some(&HeaderValue::from_static("application/json"))
    );
    assert_eq!(body, UNKNOWN);
}

#[tokio::test]
async fn local_sessions_and_handshakes_hit_the_inner_service() {
    let cluster = start().await;
    let (status, _, body) = cluster
        .get("/socket.io/?EIO=4&transport=polling&sid=abc")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "local EIO=4&transport=polling&sid=abc");

    // No sid: a new handshake, always local.
    let (status, _, body) = cluster.get("/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "local EIO=4&transport=polling");

    // Empty sid counts as absent.
    let (status, _, body) = cluster.get("/socket.io/?EIO=4&sid=").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "local EIO=4&sid=");
}

#[tokio::test]
async fn requests_outside_the_engine_path_pass_through() {
    let cluster = start().await;
    // Even with a sid that would be forwarded / refused under the engine path.
    let (status, _, body) = cluster.get("/other?sid=remote1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "other");
    let (status, _, body) = cluster.get("/other?sid=gone1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "other");
    let (status, _, _) = cluster.get("/nowhere?sid=remote1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn remote_long_polling_get_is_forwarded() {
    let cluster = start().await;
    let started = Instant::now();
    let (status, _, body) = cluster
        .get("/socket.io/?EIO=4&transport=polling&t=x1&sid=remote1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        body,
        "owner query=EIO=4&transport=polling&t=x1&sid=remote1 forwarded=1 xff=127.0.0.1"
    );

    // A percent-encoded sid is decoded before routing.
    let (status, _, body) = cluster.get("/socket.io/?EIO=4&sid=rem%6Fte2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.starts_with("owner query=EIO=4&sid=rem%6Fte2 "),
        "{body}"
    );
}

#[tokio::test]
async fn remote_post_body_is_forwarded() {
    let cluster = start().await;
    let payload = "4hello\u{1e}4world".repeat(1000);
    let request =
        http::Request::post(cluster.url("/socket.io/?EIO=4&transport=polling&sid=remote1"))
            .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Body::from(payload.clone()))
            .unwrap();
    let (status, _, body) = cluster.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("posted:{payload}"));

    // A streamed (chunked) request body is forwarded too.
    let chunks = futures_util::stream::iter(
        ["4a", "\u{1e}", "4b"].map(|c| Ok::<_, Infallible>(Bytes::from_static(c.as_bytes()))),
    );
    let request =
        http::Request::post(cluster.url("/socket.io/?EIO=4&transport=polling&sid=remote1"))
            .body(Body::from_stream(chunks))
            .unwrap();
    let (status, _, body) = cluster.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "posted:4a\u{1e}4b");
}

#[tokio::test]
async fn remote_sse_is_streamed_not_buffered() {
    let cluster = start().await;
    let started = Instant::now();
    let request = http::Request::get(cluster.url("/socket.io/?EIO=4&transport=sse&sid=remote1"))
        .body(Body::empty())
        .unwrap();
    let response = cluster.client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE),
        Some(&HeaderValue::from_static("text/event-stream"))
    );
    let mut body = response.into_body();
    let mut received = Vec::new();
    let mut first_at = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Ok(data) = frame.into_data() {
            if first_at.is_none() && !data.is_empty() {
                first_at = Some(started.elapsed());
            }
            received.extend_from_slice(&data);
        }
    }
    let last_at = started.elapsed();
    let first_at = first_at.expect("no data received");
    assert_eq!(
        String::from_utf8(received).unwrap(),
        "data: chunk0\n\ndata: chunk1\n\ndata: chunk2\n\n"
    );
    assert!(last_at >= Duration::from_millis(400), "{last_at:?}");
    assert!(
        first_at + Duration::from_millis(250) <= last_at,
        "first chunk at {first_at:?}, stream ended at {last_at:?}: buffered"
    );
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "connection closed during the response head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn remote_websocket_upgrade_is_tunneled() {
    let cluster = start().await;
    let mut stream = TcpStream::connect(cluster.front).await.unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket&sid=remote1 HTTP/1.1\r\n\
         Host: {}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        cluster.front
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    for message in [&b"hello"[..], b"\x81\x05world", &[0u8; 4000]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("echo timed out")
            .unwrap();
        assert_eq!(echoed, message);
    }

    // Closing our side ends the tunnel and the owner's side.
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("tunnel did not close")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn local_websocket_upgrade_is_not_touched() {
    let cluster = start().await;
    let mut stream = TcpStream::connect(cluster.front).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket&sid=abc HTTP/1.1\r\n\
         Host: {}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        cluster.front
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn dead_owner_answers_unknown_sid() {
    let cluster = start().await;
    let (status, headers, body) = cluster
        .get("/socket.io/?EIO=4&transport=polling&sid=dead1")
        .await;
    assert_unknown(status, &headers, &body);

    let request = http::Request::post(cluster.url("/socket.io/?EIO=4&transport=polling&sid=dead1"))
        .body(Body::from("4x"))
        .unwrap();
    let (status, headers, body) = cluster.send(request).await;
    assert_unknown(status, &headers, &body);
}

#[tokio::test]
async fn unknown_owner_answers_unknown_sid() {
    let cluster = start().await;
    let (status, headers, body) = cluster
        .get("/socket.io/?EIO=4&transport=polling&sid=gone1")
        .await;
    assert_unknown(status, &headers, &body);
}

#[tokio::test]
async fn already_forwarded_request_is_not_forwarded_again() {
    let cluster = start().await;
    let request =
        http::Request::get(cluster.url("/socket.io/?EIO=4&transport=polling&sid=remote1"))
            .header("x-tidewire-forwarded", "1")
            .body(Body::empty())
            .unwrap();
    let started = Instant::now();
    let (status, headers, body) = cluster.send(request).await;
    assert_unknown(status, &headers, &body);
    // Answered by the front itself, not after the owner's 300 ms poll.
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn layer_fits_axum_router_layer() {
    // `Router::layer` needs `Clone + Send + Sync + 'static` services with an infallible error.
    let layer = ForwardLayer::new(Arc::new(AllLocal)).path("engine");
    let _router: Router = Router::new()
        .route("/engine/", any(|| async { "local" }))
        .layer(layer);
}

#[test]
fn websocket_accept_helper_matches_rfc6455() {
    assert_eq!(
        ws_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// Routes one settable sid to the owner node, everything else stays local.
struct OneRemote {
    owner: SocketAddr,
    sid: std::sync::Mutex<Option<String>>,
}

impl SessionRouter for OneRemote {
    fn owner(&self, sid: &str) -> Owner {
        match &*self.sid.lock().unwrap() {
            Some(remote) if remote == sid => Owner::Remote(self.owner),
            _ => Owner::Local,
        }
    }
}

async fn serve_io(io: &tidewire::SocketIo, router: Arc<dyn SessionRouter>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ForwardLayer::new(router).layer(io.router());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn handshake_sid(body: &str) -> String {
    let json = body.strip_prefix('0').expect("open packet");
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["sid"].as_str().unwrap().to_owned()
}

/// A masked client WebSocket text frame (payload < 126 bytes).
fn ws_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one unmasked server text frame (payload < 126 bytes).
async fn read_ws_text(stream: &mut TcpStream) -> String {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 0x81, "not a final text frame");
    let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
    stream.read_exact(&mut payload).await.unwrap();
    String::from_utf8(payload).unwrap()
}

#[tokio::test]
async fn tidewire_sessions_work_through_another_node() {
    let owner_io = tidewire::SocketIo::new();
    owner_io.ns("/", |_socket| async move {});
    let owner = serve_io(&owner_io, Arc::new(AllLocal)).await;

    let router = Arc::new(OneRemote {
        owner,
        sid: std::sync::Mutex::new(None),
    });
    let front_io = tidewire::SocketIo::new();
    front_io.ns("/", |_socket| async move {});
    let front = serve_io(&front_io, router.clone()).await;
    let cluster = Cluster {
        front,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };

    // Handshake on the owner, then talk to the session through the front node.
    let request = http::Request::get(format!("http://{owner}/socket.io/?EIO=4&transport=polling"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = cluster.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let sid = handshake_sid(&body);
    *router.sid.lock().unwrap() = Some(sid.clone());

    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let request = http::Request::post(cluster.url(&path))
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Body::from("40"))
        .unwrap();
    let (status, _, body) = cluster.send(request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, _, body) = cluster.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("40{\"sid\":"), "{body}");

    // A handshake on the front stays local, and so does its session.
    let (status, _, body) = cluster.get("/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, StatusCode::OK);
    let local_sid = handshake_sid(&body);
    assert_ne!(local_sid, sid);
    assert_eq!(front_io.connection_count(), 1);
    assert_eq!(owner_io.connection_count(), 1);

    // Upgrade the remote session to WebSocket through the front node (probe exchange).
    let mut stream = TcpStream::connect(front).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\n\
         Host: {front}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    stream.write_all(&ws_text_frame(b"2probe")).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_ws_text(&mut stream))
        .await
        .expect("no probe answer");
    assert_eq!(answer, "3probe");
}

/// Sends every session to one owner.
struct Fixed(Owner);

impl SessionRouter for Fixed {
    fn owner(&self, _sid: &str) -> Owner {
        self.0
    }
}

#[tokio::test]
async fn owner_connect_timeout_answers_unknown_sid() {
    // A listener that never accepts, with its backlog filled: further SYNs go unanswered.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let blackhole_listener = socket.listen(1).unwrap();
    let blackhole = blackhole_listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(blackhole)).await
        {
            Ok(Ok(stream)) if fillers.len() < 16 => fillers.push(stream),
            // This kernel does not leave connects hanging on a full backlog: nothing to test.
            Ok(Ok(_)) | Ok(Err(_)) => return,
            Err(_) => break, // the backlog is full: connects now hang
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let app = ForwardLayer::new(Arc::new(Fixed(Owner::Remote(blackhole))))
        .connect_timeout(Duration::from_millis(300))
        .layer(Router::new().route("/socket.io/", any(local_handler)));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service())
            .await
            .unwrap();
    });
    let cluster = Cluster {
        front,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let started = Instant::now();
    let (status, headers, body) = cluster
        .get("/socket.io/?EIO=4&transport=polling&sid=x")
        .await;
    assert_unknown(status, &headers, &body);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    drop(fillers);
}
