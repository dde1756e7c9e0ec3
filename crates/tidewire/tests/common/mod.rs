//! A hand-rolled long-polling client over the server's tower service (no network).
#![allow(dead_code)]

pub mod ws;

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tidewire::SocketIo;
use tidewire_engine::packet::{decode_payload, Packet};
use tower::ServiceExt;

pub struct Client {
    pub io: SocketIo,
    pub sid: String,
    /// Packets received by a poll but not consumed yet.
    pending: std::sync::Mutex<std::collections::VecDeque<Packet>>,
}

pub async fn request(
    io: &SocketIo,
    method: Method,
    uri: String,
    body: Vec<u8>,
) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    let res = io.service().oneshot(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

impl Client {
    pub async fn open(io: &SocketIo) -> Self {
        let (status, body) = request(
            io,
            Method::GET,
            "/socket.io/?EIO=4&transport=polling".into(),
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let open: Value = serde_json::from_slice(&body[1..]).unwrap();
        Self {
            io: io.clone(),
            sid: open["sid"].as_str().unwrap().to_owned(),
            pending: Default::default(),
        }
    }

    pub fn uri(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    /// Sends Engine.IO packets (already with their type digit), one POST.
    pub async fn post(&self, packets: &[&[u8]]) -> StatusCode {
        let body = packets.join(&b"\x1e"[..]);
        request(&self.io, Method::POST, self.uri(), body).await.0
    }

    pub async fn send(&self, text: &str) {
        assert_eq!(
            self.post(&[format!("4{text}").as_bytes()]).await,
            StatusCode::OK
        );
    }

    /// One poll: the packets the server queued (text without the `4`, binary as is).
    pub async fn poll(&self) -> Vec<Packet> {
        let fut = request(&self.io, Method::GET, self.uri(), vec![]);
        let (status, body) = tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .expect("poll timed out");
        assert_eq!(
            status,
            StatusCode::OK,
            "poll failed: {}",
            String::from_utf8_lossy(&body)
        );
        decode_payload(body).collect::<Result<_, _>>().unwrap()
    }

    /// Polls until a text message arrives; returns it without its `4`.
    pub async fn next(&self) -> Packet {
        loop {
            if let Some(p) = self.pending.lock().unwrap().pop_front() {
                return p;
            }
            let packets = self.poll().await;
            self.pending.lock().unwrap().extend(packets);
        }
    }

    /// The next text message, without its `4` (heartbeats skipped).
    pub async fn recv(&self) -> String {
        loop {
            match self.next().await {
                Packet::Message(m) => return m.as_str().to_owned(),
                Packet::Binary(b) => panic!("expected text, got binary {b:?}"),
                _ => {}
            }
        }
    }

    pub async fn recv_binary(&self) -> Bytes {
        loop {
            match self.next().await {
                Packet::Binary(b) => return b,
                Packet::Message(m) => panic!("expected binary, got {m:?}"),
                _ => {}
            }
        }
    }

    pub async fn connect(&self, ns_and_auth: &str) -> String {
        self.send(&format!("0{ns_and_auth}")).await;
        self.recv().await
    }
}
