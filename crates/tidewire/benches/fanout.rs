//! A deterministic fan-out driver for instruction counting (not a timing benchmark).
//!
//! One single-threaded runtime runs a tidewire server on loopback and `N`
//! hand-rolled clients (WebSocket or SSE) that join room `bench`. Then, `K`
//! times, the server broadcasts `B` `tick` events to the room and waits until
//! every client has read all of them. The broadcast phase runs inside
//! `measure_phase`, so callgrind can count it alone:
//!
//! ```sh
//! export CARGO_TARGET_DIR=target-perf
//! cargo bench -p tidewire --bench fanout --no-run   # prints the binary's path
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_phase*' \
//!     target-perf/release/deps/fanout-<hash> ws 1000 100 4
//! ```
//!
//! Arguments: `ws|sse` (default `ws`), clients (1000), rounds (100), broadcasts
//! per round (4). The server is `tidewire::serve`, or `axum::serve` with
//! `TIDEWIRE_HTTP=hyper`. The run prints the delivered message count; with SSE the
//! rounds times the batch must stay under the session's packet limit (4096),
//! since these clients never confirm what they read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidewire::{Socket, SocketIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    WebSocket,
    Sse,
}

/// Messages read by all clients, and who waits for a count.
struct Counter {
    delivered: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Counter {
    fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        let now = self.delivered.fetch_add(n, Ordering::Relaxed) + n;
        if now >= self.target.load(Ordering::Relaxed) {
            self.reached.notify_one();
        }
    }

    async fn wait_for(&self, target: u64) {
        self.target.store(target, Ordering::Relaxed);
        while self.delivered.load(Ordering::Relaxed) < target {
            self.reached.notified().await;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            return at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read head");
        assert!(n > 0, "connection closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses complete server frames at the front of `buf`: returns (payloads, bytes used).
fn frames(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() >= at + 2 {
        let len7 = (buf[at + 1] & 0x7f) as usize;
        let (len, head) = match len7 {
            126 if buf.len() >= at + 4 => {
                (u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize, 4)
            }
            127 if buf.len() >= at + 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[at + 2..at + 10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            126 | 127 => break,
            n => (n, 2),
        };
        if buf.len() < at + head + len {
            break;
        }
        out.push(&buf[at + head..at + head + len]);
        at += head + len;
    }
    (out, at)
}

async fn ws_client(addr: std::net::SocketAddr, counter: Arc<Counter>, ready: Arc<Counter>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: bench\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("write handshake");
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf).await;
    assert!(buf.starts_with(b"HTTP/1.1 101"), "no upgrade");
    buf.drain(..head);
    // Masked (with a zero key) text frame "40": connect to namespace `/`.
    stream
        .write_all(&[0x81, 0x82, 0, 0, 0, 0, b'4', b'0'])
        .await
        .expect("write connect");
    let mut connected = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (payloads, used) = frames(&buf);
        let mut ticks = 0;
        for p in payloads {
            if p.starts_with(b"42") {
                ticks += 1;
            } else if p.starts_with(b"40") && !connected {
                connected = true;
                ready.add(1);
            }
        }
        counter.add(ticks);
        buf.drain(..used);
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("post");
    let mut buf = Vec::new();
    read_head(&mut stream, &mut buf).await;
    assert!(buf.starts_with(b"HTTP/1.1 200"), "POST failed");
}

async fn sse_client(addr: std::net::SocketAddr, counter: Arc<Counter>, ready: Arc<Counter>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"GET /socket.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: bench\r\n\
              Accept: text/event-stream\r\n\r\n",
        )
        .await
        .expect("write request");
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf).await;
    assert!(buf.starts_with(b"HTTP/1.1 200"), "no event stream");
    buf.drain(..head);
    // Events end with "\n\n" (the chunked framing never puts two '\n' together);
    // the packets within one are separated by 0x1E.
    let mut packets = 0u64;
    let mut separators = 0u64;
    let mut last = 0u8;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pos = 0;
    loop {
        for &b in &buf[pos..] {
            if b == 0x1e {
                separators += 1;
            } else if b == b'\n' && last == b'\n' {
                let before = packets;
                packets += 1 + std::mem::take(&mut separators);
                if before == 0 {
                    // The open packet: connect to `/` with a POST.
                    let text = String::from_utf8_lossy(&buf);
                    let sid = text
                        .split("\"sid\":\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next())
                        .expect("sid")
                        .to_owned();
                    let path = format!("/socket.io/?EIO=4&transport=sse&sid={sid}");
                    tokio::spawn(async move { post(addr, &path, "40").await });
                }
                // Packet 2 is the namespace's connect reply; the rest are ticks.
                if before < 2 && packets >= 2 {
                    ready.add(1);
                }
                counter.add(packets.saturating_sub(before.max(2)));
                last = 0;
                continue;
            }
            last = b;
        }
        buf.clear();
        pos = 0;
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The broadcast phase, kept in its own (not inlined) function for callgrind's
/// `--toggle-collect`.
#[inline(never)]
fn measure_phase(
    rt: &tokio::runtime::Runtime,
    io: &SocketIo,
    counter: &Counter,
    rounds: u64,
    batch: u64,
    clients: u64,
) {
    rt.block_on(async {
        let mut expected = 0;
        for _ in 0..rounds {
            for _ in 0..batch {
                io.to("bench")
                    .emit("tick", 1_732_750_000_000.123_f64)
                    .await
                    .expect("emit");
            }
            expected += batch * clients;
            counter.wait_for(expected).await;
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let transport = match args.first().map(String::as_str) {
        Some("sse") => Transport::Sse,
        _ => Transport::WebSocket,
    };
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (clients, rounds, batch) = (num(1, 1000), num(2, 100), num(3, 4));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let io = SocketIo::builder().build();
    io.ns("/", |socket: Socket| async move {
        socket.join("bench").await;
    });
    let counter = Arc::new(Counter {
        delivered: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
    });
    let ready = Arc::new(Counter {
        delivered: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
    });
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().merge(io.router());
        // The HTTP server users get by default; `TIDEWIRE_HTTP=hyper` counts axum::serve.
        if std::env::var("TIDEWIRE_HTTP").as_deref() == Ok("hyper") {
            tokio::spawn(async move { axum::serve(listener, app).await });
        } else {
            tokio::spawn(async move { tidewire::serve(listener, app).await });
        }
        for _ in 0..clients {
            match transport {
                Transport::WebSocket => {
                    tokio::spawn(ws_client(addr, counter.clone(), ready.clone()))
                }
                Transport::Sse => tokio::spawn(sse_client(addr, counter.clone(), ready.clone())),
            };
        }
        ready.wait_for(clients).await;
        // Let the connect handlers' joins finish.
        while io.to("bench").fetch_sockets().await.expect("fetch").len() < clients as usize {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    measure_phase(&rt, &io, &counter, rounds, batch, clients);
    let delivered = counter.delivered.load(Ordering::Relaxed);
    eprintln!(
        "fanout driver: {} clients, {rounds} rounds x {batch} broadcasts, {delivered} delivered",
        clients
    );
    assert_eq!(delivered, rounds * batch * clients);
}
