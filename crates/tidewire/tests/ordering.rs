//! Events from one client reach their handlers in the order they were sent,
//! over a real WebSocket on a multi-threaded runtime. Spawning a task per
//! event would break this: tokio runs the task spawned last first (its LIFO
//! slot), so the last event of a read would overtake the others.

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::ws::{client_frame, upgrade};
use tidewire::{Socket, SocketIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until `needle` has been seen (bounded by time).
async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "server closed the connection");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("timed out waiting for the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn handlers_start_in_arrival_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let io = SocketIo::new();
    let log = seen.clone();
    io.ns("/", move |socket: Socket| {
        let log = log.clone();
        async move {
            socket.on("n", move |_socket, n: u32, _ack| {
                let log = log.clone();
                async move { log.lock().unwrap().push(n) }
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, io.router()).await });

    let mut stream = upgrade(addr).await;
    let mut received = Vec::new();
    read_until(&mut stream, &mut received, b"pingInterval").await;
    let mut out = Vec::new();
    client_frame(&mut out, "40");
    stream.write_all(&out).await.unwrap();
    read_until(&mut stream, &mut received, b"40{\"sid\"").await;

    for round in 0..20u32 {
        // A few events in one write, as a client flushing its buffer sends them.
        let mut out = Vec::new();
        for n in round * 5..round * 5 + 5 {
            client_frame(&mut out, &format!(r#"42["n",{n}]"#));
        }
        stream.write_all(&out).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..200 {
        if seen.lock().unwrap().len() == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<u32>>());
}
