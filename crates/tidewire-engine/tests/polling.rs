//! Long-polling and handshake rules, over real HTTP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use tidewire_engine::{CloseReason, EngineConfig, Message};

#[tokio::test]
async fn handshake_answers_open_packet_with_config() {
    let server = start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(1234))
            .ping_timeout(Duration::from_millis(567))
            .max_payload(4321)
            .build(),
    )
    .await;
    let (sid, open) = open_polling(server.addr).await;
    assert_eq!(sid.len(), 22);
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 1234);
    assert_eq!(open["pingTimeout"], 567);
    assert_eq!(open["maxPayload"], 4321);
    let (other, _) = open_polling(server.addr).await;
    assert_ne!(sid, other, "session ids are unique");
}

#[tokio::test]
async fn protocol_errors_get_json_codes() {
    let server = start(EngineConfig::default()).await;
    let cases = [
        ("/socket.io/?EIO=3&transport=polling", 5),
        ("/socket.io/?transport=polling", 5),
        ("/socket.io/?EIO=4&transport=carrier-pigeon", 0),
        ("/socket.io/?EIO=4", 0),
        (
            "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAAAA",
            1,
        ),
        ("/socket.io/?EIO=4&transport=polling&sid=not-a-sid", 1),
    ];
    for (path, code) in cases {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, 400, "{path}");
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(json["code"], code, "{path}: {}", reply.text());
    }
    let reply = post(server.addr, "/socket.io/?EIO=4&transport=polling", b"4x").await;
    assert_eq!(reply.status, 400);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["code"], 2, "a POST cannot open a session");
}

#[tokio::test]
async fn post_delivers_separated_text_and_binary_packets_and_get_returns_them() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let reply = post(server.addr, &poll_path(&sid), b"4hello\x1ebAQID\x1e4world").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "ok");
    let got = server.recorder.messages.lock().clone();
    assert_eq!(
        got,
        vec![
            Message::Text("hello".into()),
            Message::Binary(bytes::Bytes::from_static(&[1, 2, 3])),
            Message::Text("world".into()),
        ]
    );
    // The echoes come back in one payload, in order.
    let reply = get(server.addr, &poll_path(&sid)).await;
    assert_eq!(reply.text(), "4hello\x1ebAQID\x1e4world");
}

#[tokio::test]
async fn get_waits_for_packets() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let addr = server.addr;
    let path = poll_path(&sid);
    let pending = tokio::spawn(async move { get(addr, &path).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished(), "a poll with nothing to say waits");
    server
        .engine
        .session(&sid.parse().unwrap())
        .unwrap()
        .send_text("late")
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.text(), "4late");
}

#[tokio::test]
async fn second_concurrent_get_closes_the_session() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let addr = server.addr;
    let path = poll_path(&sid);
    let first = tokio::spawn(async move { get(addr, &path).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = get(server.addr, &poll_path(&sid)).await;
    assert_eq!(second.status, 400);
    let first = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.text(),
        "1",
        "the pending poll learns the session closed"
    );
    assert_eq!(server.recorder.closed.lock()[0].1, CloseReason::ParseError);
    assert_eq!(get(server.addr, &poll_path(&sid)).await.status, 400);
}

#[tokio::test]
async fn oversized_post_is_413_and_closes_the_session() {
    let server = start(EngineConfig::builder().max_payload(16).build()).await;
    let (sid, _) = open_polling(server.addr).await;
    let reply = post(
        server.addr,
        &poll_path(&sid),
        b"4this message is longer than sixteen bytes",
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::PayloadTooLarge
    );
    assert!(server.engine.session(&sid.parse().unwrap()).is_none());
}

#[tokio::test]
async fn malformed_post_closes_only_that_session() {
    let server = start(EngineConfig::default()).await;
    let (bad, _) = open_polling(server.addr).await;
    let (good, _) = open_polling(server.addr).await;
    let reply = post(server.addr, &poll_path(&bad), b"9nonsense").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        server.recorder.closed.lock()[0],
        (bad.clone(), CloseReason::ParseError)
    );
    let reply = post(server.addr, &poll_path(&good), b"4still fine").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn heartbeat_pings_and_times_out_without_pong() {
    let server = start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(100))
            .ping_timeout(Duration::from_millis(100))
            .build(),
    )
    .await;
    let (sid, _) = open_polling(server.addr).await;
    // The held GET is answered by the ping.
    let reply = get(server.addr, &poll_path(&sid)).await;
    assert_eq!(reply.text(), "2");
    // Answering keeps the session alive through the next ping.
    assert_eq!(post(server.addr, &poll_path(&sid), b"3").await.status, 200);
    let reply = get(server.addr, &poll_path(&sid)).await;
    assert_eq!(reply.text(), "2");
    // Silence closes it.
    let recorder = server.recorder.clone();
    eventually("ping timeout", || !recorder.closed.lock().is_empty()).await;
    assert_eq!(server.recorder.closed.lock()[0].1, CloseReason::PingTimeout);
    let reply = get(server.addr, &poll_path(&sid)).await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn client_close_packet_ends_the_session() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    assert_eq!(post(server.addr, &poll_path(&sid), b"1").await.status, 200);
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::TransportClose
    );
}

#[tokio::test]
async fn origin_list_refuses_others_and_sets_cors_for_allowed() {
    let server = start(
        EngineConfig::builder()
            .allowed_origins(["http://good.test"])
            .cors_credentials(true)
            .build(),
    )
    .await;
    let path = "/socket.io/?EIO=4&transport=polling";
    let refused = request(
        server.addr,
        "GET",
        path,
        &[("origin", "http://evil.test")],
        "",
    )
    .await;
    assert_eq!(refused.status, 403);
    let ok = request(
        server.addr,
        "GET",
        path,
        &[("origin", "http://good.test")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "http://good.test"
    );
    assert_eq!(ok.headers["access-control-allow-credentials"], "true");
    let preflight = request(
        server.addr,
        "OPTIONS",
        path,
        &[("origin", "http://good.test")],
        "",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert!(preflight.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
}

#[tokio::test]
async fn allow_request_hook_can_refuse() {
    let server = start(
        EngineConfig::builder()
            .allow_request(|req| match req.query.as_deref() {
                Some(q) if q.contains("token=yes") => Ok(()),
                _ => Err("token required".into()),
            })
            .build(),
    )
    .await;
    let refused = get(server.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("token required"));
    let ok = get(server.addr, "/socket.io/?EIO=4&transport=polling&token=yes").await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn queue_limit_closes_slow_consumer_with_a_reason() {
    let server = start(EngineConfig::builder().max_buffered_packets(8).build()).await;
    let (sid, _) = open_polling(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    for i in 0..8 {
        session.send_text(&format!("m{i}")).unwrap();
    }
    assert_eq!(
        session.send_text("one too many"),
        Err(tidewire_engine::SendError::SlowConsumer)
    );
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::SlowConsumer
    );
    assert_eq!(server.engine.metrics().slow_consumer_closes, 1);
    // The client is told: its pending or next poll gets the close packet.
    let reply = get(server.addr, &poll_path(&sid)).await;
    assert_eq!(reply.status, 400, "the session is gone once closed");
}

#[tokio::test]
async fn shutdown_sends_close_packet_to_pending_poll() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let addr = server.addr;
    let path = poll_path(&sid);
    let pending = tokio::spawn(async move { get(addr, &path).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.engine.shutdown().await;
    let reply = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.text(), "1");
    assert_eq!(
        server.recorder.closed.lock()[0].1,
        CloseReason::ServerShutdown
    );
    let refused = get(server.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(refused.status, 503);
}

#[tokio::test]
async fn static_assets_are_served_with_revalidation() {
    let server = start(
        EngineConfig::builder()
            .asset(tidewire_engine::StaticAsset::new(
                "client.js",
                "text/javascript",
                &b"hello()"[..],
            ))
            .build(),
    )
    .await;
    let reply = get(server.addr, "/socket.io/client.js").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello()");
    assert_eq!(reply.headers["content-type"], "text/javascript");
    assert!(reply.headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let etag = reply.headers["etag"].to_str().unwrap().to_owned();
    let again = request(
        server.addr,
        "GET",
        "/socket.io/client.js",
        &[("if-none-match", &etag)],
        "",
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(
        get(server.addr, "/socket.io/other.js").await.status,
        400,
        "not an asset: an engine request"
    );
}

#[tokio::test]
async fn a_lost_poll_answer_is_sent_again_to_a_client_that_confirms() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let session = server.engine.session(&sid.parse().unwrap()).unwrap();
    let path = |ack: u64| format!("{}&ack={ack}", poll_path(&sid));
    session.send_text("a").unwrap();
    session.send_text("b").unwrap();
    let first = get(server.addr, &path(0)).await;
    assert_eq!(first.text(), "4a\x1e4b");
    assert_eq!(first.headers["x-tidewire-seq"], "2");
    // Suppose that answer never arrived: the next poll still confirms 0.
    session.send_text("c").unwrap();
    let again = get(server.addr, &path(0)).await;
    assert_eq!(
        again.text(),
        "4a\x1e4b\x1e4c",
        "unconfirmed packets come again, in order"
    );
    assert_eq!(again.headers["x-tidewire-seq"], "3");
    // Confirmed: nothing is sent twice.
    session.send_text("d").unwrap();
    assert_eq!(get(server.addr, &path(3)).await.text(), "4d");
    // Official clients never send ack= and get plain polling.
    session.send_text("e").unwrap();
    let plain = get(server.addr, &poll_path(&sid)).await;
    assert!(plain.text().ends_with("4e"));
}

#[tokio::test]
async fn a_confirming_clients_retry_replaces_a_stale_poll() {
    let server = start(EngineConfig::default()).await;
    let (sid, _) = open_polling(server.addr).await;
    let addr = server.addr;
    let path = format!("{}&ack=0", poll_path(&sid));
    let stale = {
        let path = path.clone();
        tokio::spawn(async move { get(addr, &path).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The client's connection died without the server noticing; it polls again.
    let retry = {
        let path = path.clone();
        tokio::spawn(async move { get(addr, &path).await })
    };
    let stale = tokio::time::timeout(Duration::from_secs(5), stale)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.text(), "6", "the replaced poll takes nothing");
    server
        .engine
        .session(&sid.parse().unwrap())
        .unwrap()
        .send_text("x")
        .unwrap();
    let retry = tokio::time::timeout(Duration::from_secs(5), retry)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retry.text(), "4x");
    assert!(
        server.recorder.closed.lock().is_empty(),
        "not a protocol error for a confirming client"
    );
}
