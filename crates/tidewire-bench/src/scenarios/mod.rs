//! The three scenarios. Each prints exactly one JSON line on stdout.

pub mod echo;
pub mod fanout;
pub mod idle;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::transports::{connect, source_addr, Client, Handler, Kind};

pub struct Opened {
    pub clients: Vec<Client>,
    pub failed: usize,
    pub secs: f64,
}

/// Open `n` clients, `concurrency` handshakes at a time, within `limit`.
pub async fn connect_many(
    kind: Kind,
    server: SocketAddr,
    n: usize,
    sources: usize,
    concurrency: usize,
    limit: Duration,
    handler: impl Fn(usize) -> Handler,
) -> Opened {
    let started = Instant::now();
    let deadline = started + limit;
    let mut clients = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut next = 0usize;
    let mut set = JoinSet::new();
    while clients.len() + failed < n && Instant::now() < deadline {
        while next < n && set.len() < concurrency.max(1) {
            let h = handler(next);
            let src = source_addr(next, sources);
            set.spawn(async move { connect(kind, server, src, h).await });
            next += 1;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, set.join_next()).await {
            Ok(Some(Ok(Ok(c)))) => clients.push(c),
            Ok(Some(r)) => {
                let e = match r {
                    Ok(Err(e)) => e,
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => unreachable!(),
                };
                if failed < 3 {
                    eprintln!("connect failed: {e}");
                }
                failed += 1;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    set.abort_all();
    failed += n.saturating_sub(clients.len() + failed);
    Opened {
        clients,
        failed,
        secs,
    }
}

pub fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}
