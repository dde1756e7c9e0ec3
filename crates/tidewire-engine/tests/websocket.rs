//! WebSocket sessions and the upgrade from polling, against a real tungstenite client.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tidewire_engine::{CloseReason, EngineConfig, Message as EngineMessage, TransportKind};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket handshake");
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("valid frame");
        match frame {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_first_handshake_and_echo() {
    let server = start(EngineConfig::default()).await;
    let mut ws = connect(server.addr, "").await;
    let open = next_text(&mut ws).await;
    assert!(open.starts_with('0'), "{open}");
    let json: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(json["upgrades"], serde_json::json!([]));
    let sid = json["sid"].as_str().unwrap().to_owned();
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    assert_eq!(session.transport(), TransportKind::WebSocket);

    ws.send(Message::text("4héllo")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "4héllo");
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Binary(b) => assert_eq!(&b[..], &[0, 1, 2, 255]),
        other => panic!("expected binary, got {other:?}"),
    }
    // A large message crosses the 16-bit and 64-bit length forms.
    let big = "x".repeat(70_000);
    ws.send(Message::text(format!("4{big}"))).await.unwrap();
    assert_eq!(next_text(&mut ws).await.len(), 70_001);

    ws.close(None).await.unwrap();
    let recorder = server.recorder.clone();
    eventually("close reported", || !recorder.closed.lock().is_empty()).await;
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::TransportClose
    );
}

#[tokio::test]
async fn upgrade_from_polling_loses_nothing_in_flight() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    const N: usize = 300;
    // The server keeps sending while the client upgrades.
    let sender = {
        let session = session.clone();
        tokio::spawn(async move {
            for i in 0..N {
                session.send_text(&i.to_string()).unwrap();
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let mut received = Vec::new();
    fn take_into(received: &mut Vec<usize>, text: &str) {
        for packet in text.split('\x1e') {
            if let Some(n) = packet.strip_prefix('4') {
                received.push(n.parse::<usize>().unwrap());
            }
        }
    }
    let take = |received: &mut Vec<usize>, text: &str| take_into(received, text);
    take(
        &mut received,
        get(server.addr, &poll_path(&sid)).await.text(),
    );
    let addr = server.addr;
    let path = poll_path(&sid);
    let pending = tokio::spawn(async move { get(addr, &path).await });
    let mut ws = connect(server.addr, &format!("&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    // The pending poll is released (with packets, or a noop) so the client can pause.
    let reply = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    take(&mut received, reply.text());
    ws.send(Message::text("5")).await.unwrap();
    sender.await.unwrap();
    while received.len() < N {
        let text = next_text(&mut ws).await;
        take(&mut received, &text);
    }
    assert_eq!(
        received,
        (0..N).collect::<Vec<_>>(),
        "every packet once, in order"
    );
    assert_eq!(session.transport(), TransportKind::WebSocket);
    // Polling is over for this session.
    assert_eq!(get(server.addr, &poll_path(&sid)).await.status, 400);
    // Upstream flows over the WebSocket now.
    ws.send(Message::text("4up")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "4up");
}

#[tokio::test]
async fn failed_probe_leaves_polling_working() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let mut ws = connect(server.addr, &format!("&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    drop(ws);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        post(server.addr, &poll_path(&sid), b"4still here")
            .await
            .status,
        200
    );
    assert_eq!(
        get(server.addr, &poll_path(&sid)).await.text(),
        "4still here"
    );
    // And a new probe may start.
    let mut ws = connect(server.addr, &format!("&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
}

#[tokio::test]
async fn websocket_heartbeat_times_out_silent_client() {
    let server = start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(100))
            .ping_timeout(Duration::from_millis(100))
            .build(),
    )
    .await;
    let mut ws = connect(server.addr, "").await;
    next_text(&mut ws).await;
    for _ in 0..3 {
        assert_eq!(next_text(&mut ws).await, "2");
        ws.send(Message::text("3")).await.unwrap();
    }
    assert!(
        server.recorder.closed.lock().is_empty(),
        "answered pings keep it alive"
    );
    assert_eq!(next_text(&mut ws).await, "2");
    let recorder = server.recorder.clone();
    eventually("ping timeout", || !recorder.closed.lock().is_empty()).await;
    assert_eq!(server.recorder.closed.lock()[0].1, CloseReason::PingTimeout);
}

#[tokio::test]
async fn websocket_origin_check_refuses_handshake() {
    let server = start(
        EngineConfig::builder()
            .allowed_origins(["http://good.test"])
            .build(),
    )
    .await;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let mut request = url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.test".parse().unwrap());
    let error = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://good.test".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn bad_engine_packet_closes_only_that_session() {
    let server = start(EngineConfig::default()).await;
    let mut bad = connect(server.addr, "").await;
    let mut good = connect(server.addr, "").await;
    next_text(&mut bad).await;
    next_text(&mut good).await;
    bad.send(Message::text("x-not-engine-io")).await.unwrap();
    let recorder = server.recorder.clone();
    eventually("parse error close", || !recorder.closed.lock().is_empty()).await;
    assert_eq!(server.recorder.closed.lock()[0].1, CloseReason::ParseError);
    good.send(Message::text("4fine")).await.unwrap();
    assert_eq!(next_text(&mut good).await, "4fine");
}

#[tokio::test]
async fn shutdown_sends_close_packet_over_websocket() {
    let server = start(EngineConfig::default()).await;
    let mut ws = connect(server.addr, "").await;
    next_text(&mut ws).await;
    let sid = server.recorder.opened.lock()[0].clone();
    server
        .engine
        .session(&sid.parse().unwrap())
        .unwrap()
        .send_text("last words")
        .unwrap();
    server.engine.shutdown().await;
    assert_eq!(
        next_text(&mut ws).await,
        "4last words",
        "queued packets flush first"
    );
    assert_eq!(next_text(&mut ws).await, "1");
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::ServerShutdown
    );
    assert!(matches!(
        server.recorder.messages.lock().as_slice(),
        [] | [EngineMessage::Text(_)]
    ));
}
