//! echo: C clients emit `echo` with an ack at a fixed total rate; report the achieved
//! rate and the round trip (emit to ack) p50/p99/p99.9. The payload is the send time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{connect_many, round};
use crate::args::Args;
use crate::stats::{first_number, now_us, read_at_us, self_cpu_secs, Counter, Histogram};

pub async fn run(args: &Args) -> serde_json::Value {
    let server = args.server();
    let kind = args.transport();
    let c: usize = args.num("--clients", 1000);
    let rate: f64 = args.num("--rate", 50_000.0);
    let secs = args.secs("--secs", 10.0);
    let warmup = args.secs("--warmup-secs", 1.0);
    let sources: usize = args.num("--sources", 16);
    let hist = Arc::new(Histogram::new());
    let acks = Arc::new(Counter::new());
    let opened = {
        let (hist, acks) = (hist.clone(), acks.clone());
        connect_many(
            kind,
            server,
            c,
            sources,
            64,
            Duration::from_secs(120),
            move |_| {
                let (hist, acks) = (hist.clone(), acks.clone());
                Arc::new(move |p: &[u8]| {
                    // `3<id>[<send time>]`
                    if p.starts_with(b"3") {
                        if let Some(i) = p.iter().position(|&b| b == b'[') {
                            if let Some(t) = first_number(&p[i..]) {
                                hist.record(read_at_us().saturating_sub(t));
                                acks.add_one();
                            }
                        }
                    }
                })
            },
        )
        .await
    };
    let n = opened.clients.len();
    if n == 0 {
        return json!({"scenario": "echo", "transport": kind.name(), "error": "no client connected", "failed": opened.failed});
    }
    // One pacing task for all clients (one timer, not one per client): every millisecond
    // it sends what is due, round-robin over the clients, so each client emits at
    // rate / C and the total stays at `rate`.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + warmup + secs;
    let txs: Vec<_> = opened.clients.iter().map(|c| c.tx.clone()).collect();
    let pacer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut ids = vec![0u64; txs.len()];
            let mut next = 0usize;
            let mut done = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < stop {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while done < due {
                    let id = ids[next];
                    ids[next] += 1;
                    let _ = txs[next].send(format!("42{id}[\"echo\",{}]", now_us()));
                    next = (next + 1) % txs.len();
                    done += 1;
                }
                sent.store(done, Relaxed);
            }
        })
    };
    let tasks = vec![pacer];
    tokio::time::sleep(warmup).await;
    hist.reset();
    let acks0 = acks.get();
    let sent0 = sent.load(Relaxed);
    let cpu0 = self_cpu_secs();
    let t0 = Instant::now();
    tokio::time::sleep(secs).await;
    let window = t0.elapsed().as_secs_f64();
    let got = acks.get() - acks0;
    let emitted = sent.load(Relaxed) - sent0;
    let cpu = self_cpu_secs() - cpu0;
    for t in tasks {
        t.abort();
    }
    // Late acks: wait up to 2 s for the last ones.
    let deadline = Instant::now() + Duration::from_secs(2);
    while acks.get() < sent.load(Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alive = opened.clients.iter().filter(|c| c.alive()).count();
    json!({
        "scenario": "echo", "transport": kind.name(), "clients": n, "failed": opened.failed,
        "alive_at_end": alive, "target_rate": rate, "emitted_per_sec": round(emitted as f64 / window, 0),
        "achieved_rate": round(got as f64 / window, 0),
        "unanswered": sent.load(Relaxed).saturating_sub(acks.get()),
        "rtt_p50_ms": hist.percentile_ms(0.5), "rtt_p99_ms": hist.percentile_ms(0.99),
        "rtt_p999_ms": hist.percentile_ms(0.999), "loadgen_cpu": round(cpu / window, 2),
    })
}
