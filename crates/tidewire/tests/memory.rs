//! Memory held by an idle connection (engine session + one Socket.IO socket
//! with a few handlers and a room), measured with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::Value;
use tidewire::{Socket, SocketIo};
use tower::ServiceExt;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

async fn call(io: &SocketIo, method: Method, uri: &str, body: &'static str) -> bytes::Bytes {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    let res = io.service().oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_stays_small() {
    const N: isize = 500;
    let io = SocketIo::new();
    io.ns("/", |socket: Socket| async move {
        socket.on("a", |_s, _d: Value, _ack| async move {});
        socket.on("b", |_s, _d: Value, _ack| async move {});
        socket.on_disconnect(|_s, _r| async move {});
        socket.join("lobby").await;
    });
    // Warm up (lazily created globals, the heartbeat task, map growth).
    let mut keep = Vec::new();
    let connect = || async {
        let open = call(&io, Method::GET, "/socket.io/?EIO=4&transport=polling", "").await;
        let v: Value = serde_json::from_slice(&open[1..]).unwrap();
        let uri = format!(
            "/socket.io/?EIO=4&transport=polling&sid={}",
            v["sid"].as_str().unwrap()
        );
        call(&io, Method::POST, &uri, "40").await;
        let reply = call(&io, Method::GET, &uri, "").await;
        assert!(reply.starts_with(b"40{"));
        uri
    };
    for _ in 0..50 {
        keep.push(connect().await);
    }
    tokio::task::yield_now().await;
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..N {
        keep.push(connect().await);
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let per_connection = (LIVE.load(Ordering::Relaxed) - before) / N;
    println!("idle polling connection with one socket: {per_connection} bytes");
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} bytes per idle connection"
    );
    assert_eq!(io.root().socket_count(), keep.len());
}
