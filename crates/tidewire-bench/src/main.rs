//! tidewire-bench: a bounded, loopback-only load generator for Engine.IO v4 /
//! Socket.IO v5 servers over WebSocket, SSE (tidewire's) and long-polling.
//!
//! Contract the server implements on namespace `/`: `echo` acks its arguments back,
//! `join` joins the room it names, `broadcast` re-emits its payload as `tick` to room
//! `bench`. Scenarios: `idle`, `fanout`, `echo` (see `--help`). Each run prints one
//! JSON line on stdout.

mod args;
mod scenarios;
mod stats;
mod transports;

use std::time::Duration;

fn main() {
    let args = args::Args::parse();
    let threads: usize = args.num("--threads", 1);
    let files = stats::raise_nofile();
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let limit: f64 = args.num("--time-limit-secs", 600.0);
    // CPU used by everything else on the machine during the run: the machine is shared,
    // and a run disturbed by other work should be recognisable as such.
    let pid: u32 = args.num("--pid", 0);
    let me = std::process::id();
    let t0 = std::time::Instant::now();
    let (busy0, srv0, me0) = (
        stats::machine_busy_ticks(),
        stats::pid_ticks(pid),
        stats::pid_ticks(me),
    );
    let result = rt.block_on(async {
        let work = async {
            match args.scenario.as_str() {
                "idle" => scenarios::idle::run(&args).await,
                "fanout" => scenarios::fanout::run(&args).await,
                "echo" => scenarios::echo::run(&args).await,
                other => args::fail(&format!("unknown scenario {other}")),
            }
        };
        match tokio::time::timeout(Duration::from_secs_f64(limit), work).await {
            Ok(v) => v,
            Err(_) => serde_json::json!({"scenario": args.scenario, "error": "time limit reached"}),
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let srv = if pid > 0 {
        stats::pid_ticks(pid).saturating_sub(srv0)
    } else {
        0
    };
    let own = stats::pid_ticks(me).saturating_sub(me0);
    let other = stats::machine_busy_ticks()
        .saturating_sub(busy0)
        .saturating_sub(srv + own);
    let mut result = result;
    if let Some(obj) = result.as_object_mut() {
        obj.insert(
            "server_cpu".into(),
            (((srv as f64 / 100.0 / wall) * 100.0).round() / 100.0).into(),
        );
        obj.insert(
            "other_cpu".into(),
            (((other as f64 / 100.0 / wall) * 100.0).round() / 100.0).into(),
        );
        obj.insert("label".into(), args.label().into());
        obj.insert("nofile".into(), files.into());
    }
    println!("{result}");
    // Do not wait for the connection tasks to wind down.
    std::process::exit(0);
}
