//! The SSE transport over real HTTP on 127.0.0.1: stream down, POST up, resume, upgrade.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tidewire_engine::{CloseReason, EngineConfig, TransportKind};
use tokio_tungstenite::tungstenite::Message;

/// A live event stream and the packets parsed from it so far.
struct EventStream {
    body: hyper::body::Incoming,
    buf: String,
    /// Packets of the last event read, not yet handed out.
    pending: std::collections::VecDeque<Event>,
    /// Whether the last event held several packets.
    batched: bool,
    headers: http::HeaderMap,
}

/// One packet as the stream carried it: its sequence number (from the id of its
/// event, which is its last packet's) and its text.
#[derive(Debug, PartialEq)]
struct Event {
    id: Option<u64>,
    data: String,
}

impl EventStream {
    async fn open(addr: std::net::SocketAddr, query: &str, last_event_id: Option<u64>) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::get(format!("/socket.io/?EIO=4&transport=sse{query}"))
            .header("host", addr.to_string())
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let res = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        Self {
            body: res.into_body(),
            buf: String::new(),
            pending: Default::default(),
            batched: false,
            headers,
        }
    }

    /// The next packet, skipping keep-alive comments; `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(packet) = self.pending.pop_front() {
                return Some(packet);
            }
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = value.parse::<u64>().ok();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push(d);
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                let data = data.join("\n");
                let packets: Vec<&str> = data.split('\u{1e}').collect();
                self.batched = packets.len() > 1;
                let first = id.map(|last| last + 1 - packets.len() as u64);
                for (i, packet) in packets.into_iter().enumerate() {
                    self.pending.push_back(Event {
                        id: first.map(|first| first + i as u64),
                        data: packet.to_owned(),
                    });
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("an event within 5 s")?
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    async fn next_data(&mut self) -> String {
        self.next().await.expect("stream open").data
    }
}

fn sse_path(sid: &str, extra: &str) -> String {
    format!("/socket.io/?EIO=4&transport=sse&sid={sid}{extra}")
}

async fn open_sse(addr: std::net::SocketAddr) -> (EventStream, String) {
    let mut stream = EventStream::open(addr, "", None).await;
    let open = stream.next().await.unwrap();
    assert_eq!(open.id, Some(1));
    let json: serde_json::Value = serde_json::from_str(&open.data[1..]).unwrap();
    assert_eq!(json["upgrades"], serde_json::json!(["websocket"]));
    (stream, json["sid"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn handshake_stream_headers_and_echo_over_post() {
    let server = start(EngineConfig::default()).await;
    let (mut stream, sid) = open_sse(server.addr).await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert!(stream.headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-cache"));
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    assert_eq!(session.transport(), TransportKind::Sse);

    let reply = post(
        server.addr,
        &sse_path(&sid, ""),
        b"4one\x1e4two\nlines\x1ebAQI=",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        stream.next().await.unwrap(),
        Event {
            id: Some(2),
            data: "4one".into()
        }
    );
    assert_eq!(
        stream.next().await.unwrap(),
        Event {
            id: Some(3),
            data: "4two\nlines".into()
        }
    );
    assert_eq!(
        stream.next().await.unwrap(),
        Event {
            id: Some(4),
            data: "bAQI=".into()
        }
    );
    // Packets queued together travel in one event, separated by 0x1E; its id is
    // the last one's.
    for text in ["x", "y", "z"] {
        session.send_text(text).unwrap();
    }
    for (id, data) in [(5, "4x"), (6, "4y"), (7, "4z")] {
        let packet = stream.next().await.unwrap();
        assert!(stream.batched, "one event for the three");
        assert_eq!((packet.id, packet.data.as_str()), (Some(id), data));
    }
}

#[tokio::test]
async fn dropped_stream_resumes_with_last_event_id_without_loss_or_doubles() {
    let server = start(EngineConfig::default()).await;
    let (mut stream, sid) = open_sse(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    // The client reads the event that carries messages 0 and 1.
    session.send_text("0").unwrap();
    session.send_text("1").unwrap();
    let mut got = Vec::new();
    let mut last = 0;
    while got.len() < 2 {
        let packet = stream.next().await.unwrap();
        last = packet.id.unwrap();
        got.push(packet.data);
    }
    assert!(stream.pending.is_empty(), "an event ends after message 1");
    // Messages 2..5 are written to the stream, which drops before the client reads them.
    for i in 2..5 {
        session.send_text(&i.to_string()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    for i in 5..8 {
        session.send_text(&i.to_string()).unwrap();
    }
    // Resumed after the last event read: what was written but not read comes again.
    let mut stream = EventStream::open(server.addr, &format!("&sid={sid}"), Some(last)).await;
    for _ in 2..8 {
        got.push(stream.next_data().await);
    }
    let expected: Vec<String> = (0..8).map(|i| format!("4{i}")).collect();
    assert_eq!(got, expected);
    assert!(!session.is_closed());
}

#[tokio::test]
async fn acks_release_retained_events_and_unconfirmed_ones_are_bounded() {
    let server = start(EngineConfig::builder().max_buffered_packets(10).build()).await;
    let (mut stream, sid) = open_sse(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    let mut last = 1;
    for round in 0..5 {
        for i in 0..5 {
            session.send_text(&format!("{round}-{i}")).unwrap();
        }
        for _ in 0..5 {
            last = stream.next().await.unwrap().id.unwrap();
        }
        // Confirming what arrived keeps the session under its limit.
        assert_eq!(
            post(server.addr, &sse_path(&sid, &format!("&ack={last}")), b"6")
                .await
                .status,
            200
        );
    }
    assert!(!session.is_closed());
    // Unconfirmed, the stream stops at its window of 10 events; the rest waits.
    for i in 0..10 {
        session.send_text(&format!("w{i}")).unwrap();
    }
    for _ in 0..10 {
        last = stream.next().await.unwrap().id.unwrap();
    }
    session.send_text("w10").unwrap();
    let held = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(held.is_err(), "the 11th event waits for a confirmation");
    assert!(!session.is_closed(), "a full window is not a slow consumer");
    // A confirmation opens the window.
    assert_eq!(
        post(server.addr, &sse_path(&sid, &format!("&ack={last}")), b"6")
            .await
            .status,
        200
    );
    assert_eq!(stream.next_data().await, "4w10");
    // A client that never confirms fills the window, then the queue (10
    // more): the session closes as a slow consumer.
    let mut sent = 0;
    while sent < 30 && session.send_text(&sent.to_string()).is_ok() {
        sent += 1;
    }
    assert!(sent <= 19, "refused only after {sent} more events");
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::SlowConsumer
    );
}

#[tokio::test]
async fn a_room_stream_with_a_full_window_waits_for_the_confirmation() {
    let server = start(EngineConfig::builder().max_buffered_packets(10).build()).await;
    let (mut stream, sid) = open_sse(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    let (addr, sid_for_acks) = (server.addr, sid.clone());
    let ack = move |id: u64| {
        let path = sse_path(&sid_for_acks, &format!("&ack={id}"));
        async move { post(addr, &path, b"6").await }
    };
    assert_eq!(ack(1).await.status, 200);
    let channel = session.new_channel(0);
    assert!(session.subscribe(&channel));
    // Four unconfirmed events leave room for six.
    for i in 0..4 {
        session.send_text(&format!("d{i}")).unwrap();
        assert_eq!(stream.next_data().await, format!("4d{i}"));
    }
    // Ten broadcasts (as many as the room's log keeps): six are written, the
    // read stops part way, four wait in the log.
    for i in 0..10 {
        channel.publish(&[tidewire_engine::packet::EncodedPacket::message(&format!(
            "r{i}"
        ))]);
    }
    for i in 0..6 {
        let event = stream.next().await.unwrap();
        assert_eq!((event.id, event.data), (Some(i + 6), format!("4r{i}")));
    }
    let held = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(held.is_err(), "the stream waits for a confirmation");
    assert_eq!(ack(11).await.status, 200);
    for i in 6..10 {
        let event = stream.next().await.unwrap();
        assert_eq!((event.id, event.data), (Some(i + 6), format!("4r{i}")));
    }
    assert!(!session.is_closed());
}

#[tokio::test]
async fn a_new_stream_replaces_the_old_one() {
    let server = start(EngineConfig::default()).await;
    let (mut first, sid) = open_sse(server.addr).await;
    let mut second = EventStream::open(server.addr, &format!("&sid={sid}"), Some(1)).await;
    assert!(first.next().await.is_none(), "the replaced stream ends");
    server
        .engine
        .session(&sid.parse().unwrap())
        .unwrap()
        .send_text("x")
        .unwrap();
    assert_eq!(second.next_data().await, "4x");
}

#[tokio::test]
async fn unknown_sid_and_wrong_transport_are_refused() {
    let server = start(EngineConfig::default()).await;
    let reply = get(server.addr, &sse_path("AAAAAAAAAAAAAAAAAAAAAA", "")).await;
    assert_eq!(reply.status, 400);
    let (polling_sid, _) = open_polling(server.addr).await;
    let reply = get(server.addr, &sse_path(&polling_sid, "")).await;
    assert_eq!(reply.status, 400, "a polling session has no event stream");
}

#[tokio::test]
async fn server_close_ends_stream_with_close_packet() {
    let server = start(EngineConfig::default()).await;
    let (mut stream, sid) = open_sse(server.addr).await;
    server
        .engine
        .session(&sid.parse().unwrap())
        .unwrap()
        .close(CloseReason::ForcedClose);
    assert_eq!(stream.next_data().await, "1");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn keepalive_comments_flow_on_idle_streams() {
    let server = start(
        EngineConfig::builder()
            .sse_keepalive(Duration::from_millis(50))
            .build(),
    )
    .await;
    let (mut stream, _) = open_sse(server.addr).await;
    let frame = tokio::time::timeout(Duration::from_secs(2), stream.body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b":\n\n"));
}

#[tokio::test]
async fn upgrade_from_sse_to_websocket_loses_nothing() {
    let server = start(EngineConfig::default()).await;
    let (mut stream, sid) = open_sse(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    const N: usize = 300;
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
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
        server.addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    let Some(Ok(Message::Text(probe))) = ws.next().await else {
        panic!("no probe answer")
    };
    assert_eq!(probe.as_str(), "3probe");
    ws.send(Message::text("5")).await.unwrap();
    // The stream's packets come first, up to its final noop.
    let mut received = Vec::new();
    loop {
        let data = stream.next_data().await;
        if data == "6" {
            break;
        }
        received.push(data[1..].parse::<usize>().unwrap());
    }
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the noop"
    );
    sender.await.unwrap();
    while received.len() < N {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("WebSocket ended early")
        };
        received.push(text[1..].parse::<usize>().unwrap());
    }
    assert_eq!(received, (0..N).collect::<Vec<_>>());
    assert_eq!(session.transport(), TransportKind::WebSocket);
}
