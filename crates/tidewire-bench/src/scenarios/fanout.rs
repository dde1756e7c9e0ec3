//! fanout: C clients join room `bench`; one publisher (WebSocket) emits `broadcast`
//! with its send time as payload, and the server re-emits it as `tick` to the room.
//! The publish rate doubles each step while the step stays loss-free (every client got
//! every message within the grace period) and its p99 delivery latency stays under
//! `--max-p99-ms`; then it bisects between the last good and the first bad rate. The
//! first failing rate is tried a second time before the bisection starts: one
//! disturbance of a shared machine during a short step would otherwise cut the search
//! range in half (a rate that fails once and then passes counts as passed; both steps
//! are reported).
//! Reported: the best loss-free step's delivered messages/s and latency p50/p99.
//! A step that closed clients (a server's slow-consumer policy) counts as over; the
//! closed clients are replaced by fresh ones that join the room before the next step,
//! so the search goes on at lower rates with the same room size.
//! Then an overload phase at twice the first failing rate: what the server does past
//! saturation (lost messages, disconnected clients, memory growth).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{connect_many, round};
use crate::args::Args;
use crate::stats::{
    first_number, now_us, pid_ticks, read_at_us, rss_bytes, self_cpu_secs, Counter, Histogram,
};
use crate::transports::{connect, source_addr, Client, Kind};

struct Shared {
    hist: Histogram,
    delivered: Counter,
    joined: AtomicU64,
}

struct Step {
    rate: f64,
    sent: u64,
    expected: u64,
    delivered: u64,
    secs: f64,
    p50: f64,
    p99: f64,
    alive: usize,
    cpu: f64,
    /// The server's CPU (cores) over the same window; 0 without `--pid`.
    server_cpu: f64,
    /// Closed clients replaced by fresh ones after this step.
    replaced: usize,
}

impl Step {
    fn ok(&self, max_p99: f64, clients: usize) -> bool {
        self.delivered >= self.expected && self.p99 <= max_p99 && self.alive == clients
    }
    fn json(&self) -> Value {
        json!({"rate": self.rate, "sent": self.sent, "expected": self.expected,
               "delivered": self.delivered, "delivered_per_sec": round(self.delivered as f64 / self.secs, 0),
               "p50_ms": self.p50, "p99_ms": self.p99, "alive": self.alive, "loadgen_cpu": self.cpu,
               "server_cpu": self.server_cpu, "replaced": self.replaced})
    }
}

async fn publish(publisher: &Client, rate: f64, dur: Duration) -> u64 {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let el = start.elapsed();
        if el >= dur {
            break;
        }
        let due = (el.as_secs_f64() * rate).ceil() as u64;
        while sent < due {
            if !publisher.emit(format!("42[\"broadcast\",{}]", now_us())) {
                return sent;
            }
            sent += 1;
        }
    }
    sent
}

async fn step(
    sh: &Shared,
    publisher: &Client,
    clients: &[Client],
    rate: f64,
    dur: Duration,
    grace: Duration,
    pid: u32,
) -> Step {
    sh.hist.reset();
    let d0 = sh.delivered.get();
    let alive0 = clients.iter().filter(|c| c.alive()).count() as u64;
    let cpu0 = self_cpu_secs();
    let server0 = if pid > 0 { pid_ticks(pid) } else { 0 };
    let t0 = Instant::now();
    let sent = publish(publisher, rate, dur).await;
    let expected = sent * alive0;
    let deadline = Instant::now() + grace;
    while sh.delivered.get() - d0 < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64().max(dur.as_secs_f64());
    let cpu = round((self_cpu_secs() - cpu0) / secs, 2);
    let server_ticks = if pid > 0 {
        pid_ticks(pid).saturating_sub(server0)
    } else {
        0
    };
    Step {
        rate,
        sent,
        expected,
        delivered: sh.delivered.get() - d0,
        secs: dur.as_secs_f64(),
        p50: sh.hist.percentile_ms(0.5),
        p99: sh.hist.percentile_ms(0.99),
        alive: clients.iter().filter(|c| c.alive()).count(),
        cpu,
        server_cpu: round(server_ticks as f64 / 100.0 / secs, 2),
        replaced: 0,
    }
}

/// Wait until deliveries stop (leftovers of an overloaded step), at most `limit`.
async fn quiesce(sh: &Shared, limit: Duration) {
    let end = Instant::now() + limit;
    let mut last = sh.delivered.get();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = sh.delivered.get();
        if now == last {
            return;
        }
        last = now;
    }
}

pub async fn run(args: &Args) -> Value {
    let server = args.server();
    let kind = args.transport();
    let c: usize = args.num("--clients", 1000);
    let dur = args.secs("--step-secs", 3.0);
    let grace = args.secs("--grace-secs", 2.0);
    let max_steps: usize = args.num("--max-steps", 12);
    let max_p99: f64 = args.num("--max-p99-ms", 200.0);
    let mut rate: f64 = args.num("--start-rate", 100.0);
    let overload_secs = args.secs("--overload-secs", 5.0);
    let pid: u32 = args.num("--pid", 0);
    let sources: usize = args.num("--sources", 16);
    let sh = Arc::new(Shared {
        hist: Histogram::new(),
        delivered: Counter::new(),
        joined: AtomicU64::new(0),
    });
    let open = |count: usize| {
        let sh = sh.clone();
        async move {
            let handler_sh = sh.clone();
            let opened = connect_many(
                kind,
                server,
                count,
                sources,
                64,
                Duration::from_secs(120),
                move |_| {
                    let sh = handler_sh.clone();
                    Arc::new(move |p: &[u8]| {
                        if let Some(rest) = p.strip_prefix(b"2[\"tick\",") {
                            if let Some(t) = first_number(rest) {
                                sh.hist.record(read_at_us().saturating_sub(t));
                                sh.delivered.add_one();
                            }
                        } else if p.starts_with(b"3") {
                            sh.joined.fetch_add(1, Relaxed);
                        }
                    })
                },
            )
            .await;
            let before = sh.joined.load(Relaxed) as usize;
            for cl in &opened.clients {
                cl.emit("420[\"join\",\"bench\"]".to_owned());
            }
            let want = before + opened.clients.len();
            let end = Instant::now() + Duration::from_secs(30);
            while (sh.joined.load(Relaxed) as usize) < want && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let joined = (sh.joined.load(Relaxed) as usize).saturating_sub(before);
            (opened, joined)
        }
    };
    let (opened, joined) = open(c).await;
    let mut clients = opened.clients;
    let n = clients.len();
    let publisher = match connect(
        Kind::WebSocket,
        args.publish_server(),
        source_addr(n, sources),
        Arc::new(|_: &[u8]| {}),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            return json!({"scenario": "fanout", "transport": kind.name(), "error": format!("publisher: {e}")})
        }
    };
    if n == 0 || joined < n {
        return json!({"scenario": "fanout", "transport": kind.name(), "error": "not every client joined", "clients": n, "joined": joined, "failed": opened.failed});
    }
    // Search.
    let mut steps: Vec<Step> = Vec::new();
    let mut best: Option<usize> = None;
    let mut bad: Option<f64> = None;
    let mut retried = false;
    for _ in 0..max_steps {
        let s = step(&sh, &publisher, &clients, rate, dur, grace, pid).await;
        let ok = s.ok(max_p99, n);
        let retry = !ok && bad.is_none() && !retried;
        eprintln!(
            "fanout {}: rate {rate}/s delivered {}/{} p99 {} ms alive {} cpu {} server cpu {} -> {}",
            kind.name(),
            s.delivered,
            s.expected,
            s.p99,
            s.alive,
            s.cpu,
            s.server_cpu,
            if ok {
                "ok"
            } else if retry {
                "over (trying this rate once more)"
            } else {
                "over"
            }
        );
        let alive = s.alive;
        steps.push(s);
        if ok {
            if best.map_or(true, |b| steps[b].rate < rate) {
                best = Some(steps.len() - 1);
            }
        } else {
            if !retry {
                bad = Some(bad.map_or(rate, |b: f64| b.min(rate)));
            }
            quiesce(&sh, Duration::from_secs(15)).await;
        }
        if alive < n {
            // Clients were closed: replace them so the next step has the same room.
            clients.retain(|c| c.alive());
            let (fresh, joined) = open(n - alive).await;
            let got = fresh.clients.len();
            clients.extend(fresh.clients);
            eprintln!(
                "fanout {}: replaced {got} of {} closed clients",
                kind.name(),
                n - alive
            );
            if got < n - alive || joined < got {
                break; // could not restore the room: the next steps would not be comparable
            }
            if let Some(last) = steps.last_mut() {
                last.replaced = got;
            }
        }
        if retry {
            retried = true;
            continue;
        }
        let lo = best.map_or(0.0, |b| steps[b].rate);
        rate = match bad {
            None => rate * 2.0,
            Some(hi) => {
                if hi - lo <= hi * 0.08 {
                    break;
                }
                ((lo + hi) / 2.0).round()
            }
        };
        if rate < 1.0 {
            break;
        }
    }
    // Overload: twice the first failing rate (or the last rate tried).
    let mut overload = Value::Null;
    if overload_secs > Duration::ZERO && clients.iter().all(|c| c.alive()) {
        let over_rate = 2.0 * bad.unwrap_or(steps.last().map_or(rate, |s| s.rate));
        let rss0 = if pid > 0 { rss_bytes(pid) } else { 0 };
        let sampler = {
            let stop = Instant::now() + overload_secs + grace + Duration::from_secs(5);
            tokio::spawn(async move {
                let mut max = 0;
                while Instant::now() < stop && pid > 0 {
                    max = max.max(rss_bytes(pid));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                max
            })
        };
        let before = sh.delivered.get();
        let s = step(
            &sh,
            &publisher,
            &clients,
            over_rate,
            overload_secs,
            grace,
            pid,
        )
        .await;
        // A server that applies backpressure (reads the publisher only as fast as
        // it fans out) delivers the backlog after the grace period: wait for it.
        quiesce(&sh, Duration::from_secs(20)).await;
        let rss_max = sampler.await.unwrap_or(0);
        let rss_after = if pid > 0 { rss_bytes(pid) } else { 0 };
        let delivered_total = sh.delivered.get() - before;
        let disconnected = n - clients.iter().filter(|c| c.alive()).count();
        let lost = s.expected.saturating_sub(delivered_total);
        overload = json!({
            "rate": over_rate, "sent": s.sent, "expected": s.expected, "delivered": s.delivered,
            "late": delivered_total.saturating_sub(s.delivered),
            "lost": lost, "clients_disconnected": disconnected,
            // Losses that the closed clients cannot account for: silent drops.
            "lost_unexplained": lost.saturating_sub(s.sent * disconnected as u64),
            "rss_before": rss0, "rss_max": rss_max, "rss_after": rss_after, "p99_ms": s.p99,
        });
    }
    let b = best.map(|i| &steps[i]);
    json!({
        "scenario": "fanout", "transport": kind.name(), "clients": n, "failed": opened.failed,
        "best_rate": b.map(|s| s.rate), "delivered_per_sec": b.map(|s| round(s.delivered as f64 / s.secs, 0)),
        "p50_ms": b.map(|s| s.p50), "p99_ms": b.map(|s| s.p99), "loadgen_cpu": b.map(|s| s.cpu),
        "first_bad_rate": bad, "steps": steps.iter().map(Step::json).collect::<Vec<_>>(), "overload": overload,
    })
}
