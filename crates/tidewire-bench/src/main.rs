//! tidewire-bench: a bounded, loopback-only load generator.
//!
//! `tidewire-bench idle --url http://127.0.0.1:3000 --pid <server pid> --n 15000`
//! opens N Engine.IO WebSocket sessions spread over source addresses
//! 127.0.0.1-127.0.0.16, holds them, and prints one JSON line with the server's
//! resident memory per connection and the connect rate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

fn usage() -> ! {
    eprintln!("usage: tidewire-bench idle --url http://127.0.0.1:PORT --pid PID [--n N] [--hold-secs S] [--concurrency C] [--socketio]");
    std::process::exit(2)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn raise_nofile() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

async fn open_one(
    server: SocketAddr,
    host: &str,
    source: Ipv4Addr,
    socketio: bool,
) -> Result<(), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(server).await.map_err(|e| e.to_string())?;
    let url = format!("ws://{host}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
        other => return Err(format!("expected open packet, got {other:?}")),
    }
    if socketio {
        ws.send(Message::text("40"))
            .await
            .map_err(|e| e.to_string())?;
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with("40") => {}
            other => return Err(format!("expected Socket.IO CONNECT reply, got {other:?}")),
        }
    }
    tokio::spawn(async move {
        // Answer heartbeats so the session stays alive while held.
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                if t.as_str() == "2" && ws.send(Message::text("3")).await.is_err() {
                    break;
                }
            }
        }
    });
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("idle") {
        usage();
    }
    let url = arg(&args, "--url").unwrap_or_else(|| usage());
    let pid: u32 = arg(&args, "--pid")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| usage());
    let n: usize = arg(&args, "--n")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000);
    let hold = Duration::from_secs(
        arg(&args, "--hold-secs")
            .and_then(|p| p.parse().ok())
            .unwrap_or(3),
    );
    // Also join namespace `/` (a Socket.IO server), not just open an Engine.IO session.
    let socketio = args.iter().any(|a| a == "--socketio");
    let concurrency: usize = arg(&args, "--concurrency")
        .and_then(|p| p.parse().ok())
        .unwrap_or(64);
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let server: SocketAddr = host.parse().unwrap_or_else(|_| usage());
    if !server.ip().is_loopback() {
        eprintln!("refusing a non-loopback target: {server}");
        std::process::exit(2);
    }
    raise_nofile();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut opened = 0usize;
    let mut failed = 0usize;
    let mut next = 0usize;
    let mut inflight = futures_util::stream::FuturesUnordered::new();
    while (opened + failed) < n && Instant::now() < deadline {
        while next < n && inflight.len() < concurrency {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (next % 16) as u8);
            let host = host.clone();
            inflight.push(async move { open_one(server, &host, source, socketio).await });
            next += 1;
        }
        match inflight.next().await {
            Some(Ok(())) => opened += 1,
            Some(Err(e)) => {
                if failed < 3 {
                    eprintln!("connect failed: {e}");
                }
                failed += 1;
            }
            None => break,
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let after = rss_bytes(pid);
    let per = (after.saturating_sub(before)) as f64 / opened.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "scenario": "idle", "transport": "websocket", "socketio": socketio, "connections": opened, "failed": failed,
            "rss_before": before, "rss_after": after, "bytes_per_connection": per.round(),
            "connects_per_sec": (opened as f64 / connect_secs).round(),
        })
    );
}
