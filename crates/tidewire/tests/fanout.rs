//! Room broadcasts through the rooms' shared channels: every member gets every
//! packet once, in the order the server sent it, mixed with what was sent to
//! it directly and with other rooms' broadcasts; leaving a room keeps what was
//! sent before; a member that stops reading is closed, and the others lose nothing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ws::{client_frame, upgrade};
use common::Client;
use tidewire::{DisconnectReason, Socket, SocketIo};
use tidewire_engine::EngineConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const N: u32 = 300;

/// Every socket can `join` a room and `leave` one; `run` sends 0..N to the
/// room `r` (every 5th number directly to each socket, every 13th to room
/// `s` only), then `done` to everyone.
fn server() -> SocketIo {
    let io = SocketIo::new();
    io.ns("/", |socket: Socket| async move {
        socket.on("join", |socket, room: String, ack| async move {
            socket.join(room).await;
            let _ = ack.send("ok");
        });
        socket.on("leave", |socket, room: String, ack| async move {
            socket.leave(room).await;
            let _ = ack.send("ok");
        });
        socket.on("run", |socket, _: (), _ack| async move {
            let io = socket.io();
            let ns = io.root();
            for n in 0..N {
                if n % 5 == 0 {
                    for member in ns.local_sockets() {
                        let _ = member.emit("n", n);
                    }
                } else if n % 13 == 0 {
                    let _ = io.to("s").emit("n", n).await;
                } else {
                    let _ = io.to("r").emit("n", n).await;
                }
                if n % 50 == 0 {
                    // Let writers run in between, as real handlers do.
                    tokio::task::yield_now().await;
                }
            }
            let _ = io.emit("done", ()).await;
        });
    });
    io
}

async fn joined(io: &SocketIo, rooms: &[&str]) -> Client {
    let client = Client::open(io).await;
    client.connect("").await;
    for (i, room) in rooms.iter().enumerate() {
        client.send(&format!("2{i}[\"join\",\"{room}\"]")).await;
        assert_eq!(client.recv().await, format!("3{i}[\"ok\"]"));
    }
    client
}

/// The numbers of `n` events received until `done`.
async fn numbers_until_done(client: &Client) -> Vec<u32> {
    let mut seen = Vec::new();
    loop {
        let text = tokio::time::timeout(Duration::from_secs(10), client.recv())
            .await
            .expect("timed out before done");
        if text.starts_with("2[\"done\"") {
            return seen;
        }
        let n = text
            .strip_prefix("2[\"n\",")
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or_else(|| panic!("unexpected packet {text}"));
        seen.push(n.parse().unwrap());
    }
}

#[tokio::test]
async fn broadcasts_direct_emits_and_other_rooms_keep_their_order() {
    let io = server();
    let mut clients = Vec::new();
    for i in 0..6 {
        let rooms: &[&str] = if i < 3 { &["r", "s"] } else { &["r"] };
        clients.push(joined(&io, rooms).await);
    }
    clients[0].send("2[\"run\"]").await;
    for (i, client) in clients.iter().enumerate() {
        let in_s = i < 3;
        let expected: Vec<u32> = (0..N)
            .filter(|n| n % 5 == 0 || n % 13 != 0 || in_s)
            .collect();
        assert_eq!(numbers_until_done(client).await, expected, "client {i}");
    }
}

#[tokio::test]
async fn a_member_that_leaves_keeps_what_was_sent_before() {
    let io = server();
    let stays = joined(&io, &["r"]).await;
    let leaves = joined(&io, &["r"]).await;
    let ns = io.root();
    let _ = io.to("r").emit("n", 1).await;
    let _ = io.to("r").emit("n", 2).await;
    leaves.send("20[\"leave\",\"r\"]").await;
    assert_eq!(leaves.recv().await, "2[\"n\",1]");
    assert_eq!(leaves.recv().await, "2[\"n\",2]");
    assert_eq!(leaves.recv().await, "30[\"ok\"]");
    let _ = io.to("r").emit("n", 3).await;
    let _ = ns.emit("done", ()).await;
    assert_eq!(numbers_until_done(&leaves).await, Vec::<u32>::new());
    assert_eq!(numbers_until_done(&stays).await, vec![1, 2, 3]);
}

/// A WebSocket client on namespace `/`, joined to room `r`.
async fn ws_member(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = upgrade(addr).await;
    let mut out = Vec::new();
    client_frame(&mut out, "40");
    client_frame(&mut out, "420[\"join\",\"r\"]");
    stream.write_all(&out).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.windows(9).any(|w| w == b"430[\"ok\"]") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before joining");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("join timed out");
    stream
}

/// Bytes until `until` arrives or the server closes the connection (bounded
/// by time); the stream comes back so the connection stays open.
async fn read_to_end(mut stream: TcpStream, until: &[u8]) -> (Vec<u8>, TcpStream) {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            all.extend_from_slice(&buf[..n]);
            // Only the new bytes (and a marker cut in two by the read).
            let from = all.len().saturating_sub(n + until.len());
            if all[from..].windows(until.len()).any(|w| w == until) {
                return;
            }
        }
    })
    .await;
    (all, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_closed_and_the_others_lose_nothing() {
    let io = SocketIo::builder()
        .engine_config(EngineConfig::builder().max_buffered_packets(256).build())
        .build();
    let closed: Arc<Mutex<Vec<DisconnectReason>>> = Arc::default();
    let log = closed.clone();
    io.ns("/", move |socket: Socket| {
        let log = log.clone();
        async move {
            socket.on_disconnect(move |_socket, reason| {
                let log = log.clone();
                async move { log.lock().unwrap().push(reason) }
            });
            socket.on("join", |socket, room: String, ack| async move {
                socket.join(room).await;
                let _ = ack.send("ok");
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tidewire::serve(listener, io.router());
    tokio::spawn(async move { serving.await });

    let reader = ws_member(addr).await;
    let stalled = ws_member(addr).await;
    let reading = tokio::spawn(read_to_end(reader, b"\"last\""));
    // 8 KiB each: far more than the socket buffers and the 256-packet bound.
    let big = "x".repeat(8 * 1024);
    for n in 0..4000u32 {
        let _ = io.to("r").emit("n", (n, &big)).await;
        if n % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let _ = io.to("r").emit("last", ()).await;
    let (received, _open) = reading.await.unwrap();
    let count = received.windows(5).filter(|w| w == b"[\"n\",").count();
    assert_eq!(count, 4000, "the reading member lost nothing");
    for _ in 0..200 {
        if !closed.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *closed.lock().unwrap(),
        [DisconnectReason::SlowConsumer],
        "only the stalled member was closed"
    );
    drop(stalled);
}

/// Several tasks on several threads broadcast to the same room and send to
/// its members directly, while members join and leave another room: every
/// member gets each task's packets once and in that task's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_keep_their_own_order() {
    const TASKS: u32 = 4;
    const EACH: u32 = 150;
    let io = server();
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(joined(&io, &["r"]).await);
    }
    let mut publishers = Vec::new();
    for task in 0..TASKS {
        let io = io.clone();
        publishers.push(tokio::spawn(async move {
            let ns = io.root();
            for n in 0..EACH {
                let value = task * 1000 + n;
                if n % 4 == 0 {
                    for member in ns.local_sockets() {
                        let _ = member.emit("n", value);
                    }
                } else {
                    let _ = io.to("r").emit("n", value).await;
                }
                if n % 3 == 0 {
                    // Membership changes in between: another room's channel comes and goes.
                    let _ = io.to("r").join("other").await;
                    // Reaches whoever is in `other` now: filtered out below.
                    let _ = io.to("other").emit("n", task * 1000 + 999).await;
                    let _ = io.sockets_leave("other").await;
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let _ = io.emit("done", ()).await;
    for (i, client) in clients.iter().enumerate() {
        let seen = numbers_until_done(client).await;
        for task in 0..TASKS {
            let mine: Vec<u32> = seen
                .iter()
                .filter(|v| **v / 1000 == task && **v % 1000 != 999)
                .map(|v| v % 1000)
                .collect();
            assert_eq!(
                mine,
                (0..EACH).collect::<Vec<_>>(),
                "client {i}, task {task}"
            );
        }
    }
}
