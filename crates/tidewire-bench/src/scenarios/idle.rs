//! idle: open N sessions (each joined to namespace `/`), hold them, report the server's
//! resident memory per connection and the connect rate.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{connect_many, round};
use crate::args::Args;
use crate::stats::rss_bytes;

pub async fn run(args: &Args) -> serde_json::Value {
    let server = args.server();
    let kind = args.transport();
    let pid: u32 = args.num("--pid", 0);
    let n: usize = args.num("--n", 1000);
    let hold = args.secs("--hold-secs", 3.0);
    let concurrency: usize = args.num("--concurrency", 64);
    let sources: usize = args.num("--sources", 16);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = if pid > 0 { rss_bytes(pid) } else { 0 };
    let opened = connect_many(
        kind,
        server,
        n,
        sources,
        concurrency,
        Duration::from_secs(120),
        |_| Arc::new(|_: &[u8]| {}),
    )
    .await;
    tokio::time::sleep(hold).await;
    let after = if pid > 0 { rss_bytes(pid) } else { 0 };
    let ok = opened.clients.len();
    let alive = opened.clients.iter().filter(|c| c.alive()).count();
    let per = after.saturating_sub(before) as f64 / ok.max(1) as f64;
    json!({
        "scenario": "idle", "transport": kind.name(), "connections": ok, "failed": opened.failed,
        "alive_after_hold": alive, "rss_before": before, "rss_after": after,
        "bytes_per_connection": per.round(),
        "connects_per_sec": round(ok as f64 / opened.secs, 0),
    })
}
