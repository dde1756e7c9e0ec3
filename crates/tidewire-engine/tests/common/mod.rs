//! A real server on 127.0.0.1 and small real clients (HTTP/1.1 and WebSocket) for the engine's tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tidewire_engine::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Session};

/// Echoes every message and records what happened.
#[derive(Default)]
pub struct Recorder {
    pub opened: Mutex<Vec<String>>,
    pub messages: Mutex<Vec<Message>>,
    pub closed: Mutex<Vec<(String, CloseReason)>>,
    pub echo: bool,
}

pub struct Handler(pub Arc<Recorder>);

impl EngineHandler for Handler {
    type Data = ();
    fn on_open(&self, session: &Session<()>) {
        self.0.opened.lock().push(session.id().to_string());
    }
    fn on_message(&self, session: &Session<()>, message: Message) {
        self.0.messages.lock().push(message.clone());
        if self.0.echo {
            let _ = session.send_message(message);
        }
    }
    fn on_close(&self, session: &Session<()>, reason: CloseReason) {
        self.0
            .closed
            .lock()
            .push((session.id().to_string(), reason));
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Engine<Handler>,
    pub recorder: Arc<Recorder>,
}

pub async fn start(config: EngineConfig) -> TestServer {
    let recorder = Arc::new(Recorder {
        echo: true,
        ..Default::default()
    });
    let engine = Engine::new(config, Handler(recorder.clone()));
    let app = axum::Router::new().merge(engine.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    TestServer {
        addr,
        engine,
        recorder,
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub headers: http::HeaderMap,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", addr.to_string());
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(Full::new(body.into())).unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body,
        headers,
    }
}

pub async fn get(addr: SocketAddr, pq: &str) -> Reply {
    request(addr, "GET", pq, &[], Bytes::new()).await
}

pub async fn post(addr: SocketAddr, pq: &str, body: &'static [u8]) -> Reply {
    request(addr, "POST", pq, &[], Bytes::from_static(body)).await
}

/// Opens a polling session; returns its sid and the open packet's JSON.
pub async fn open_polling(addr: SocketAddr) -> (String, serde_json::Value) {
    let reply = get(addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(reply.status, 200, "handshake failed: {}", reply.text());
    let text = reply.text();
    assert!(text.starts_with('0'), "open packet expected, got {text:?}");
    let json: serde_json::Value = serde_json::from_str(&text[1..]).unwrap();
    (json["sid"].as_str().unwrap().to_owned(), json)
}

pub fn poll_path(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
