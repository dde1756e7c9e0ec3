//! Command-line arguments: `tidewire-bench <scenario> --flag value ...`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::transports::Kind;

pub struct Args {
    pub scenario: String,
    raw: Vec<String>,
}

pub const USAGE: &str = "\
usage: tidewire-bench <idle|fanout|echo> --url http://127.0.0.1:PORT [options]
common:  --transport websocket|sse|polling (websocket)   --threads N (1)
         --sources N  source addresses 127.0.0.1..N (16)   --label TEXT (copied into the JSON)
idle:    --pid PID --n N (1000) --hold-secs S (3) --concurrency C (64) --no-socketio
fanout:  --clients C (1000) --step-secs S (3) --max-steps K (12) --start-rate R (100)
         --max-p99-ms MS (200) --overload-secs S (5) --pid PID (server memory under overload)
         --publish-url URL (publisher on another node of a cluster; default --url)
echo:    --clients C (1000) --rate R total emits/s (50000) --secs S (10)
Prints one JSON line per run on stdout; progress and errors go to stderr.";

impl Args {
    pub fn parse() -> Args {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let scenario = raw.first().cloned().unwrap_or_default();
        if raw.iter().any(|a| a == "-h" || a == "--help") || scenario.is_empty() {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
        Args { scenario, raw }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.raw.get(i + 1))
            .map(String::as_str)
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| fail(&format!("bad value for {name}: {v}"))),
        }
    }

    pub fn secs(&self, name: &str, default: f64) -> Duration {
        Duration::from_secs_f64(self.num(name, default))
    }

    pub fn server(&self) -> SocketAddr {
        let url = self
            .get("--url")
            .unwrap_or_else(|| fail("--url is required"));
        loopback_addr(url)
    }

    /// Where the fan-out publisher connects (`--publish-url`, default `--url`):
    /// another node of a cluster measures cross-node delivery.
    pub fn publish_server(&self) -> SocketAddr {
        self.get("--publish-url")
            .map_or_else(|| self.server(), loopback_addr)
    }
}

fn loopback_addr(url: &str) -> SocketAddr {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr = host
        .parse()
        .unwrap_or_else(|_| fail("--url must be http://127.x.y.z:PORT"));
    if !addr.ip().is_loopback() {
        fail(&format!("refusing a non-loopback target: {addr}"));
    }
    addr
}

impl Args {
    pub fn transport(&self) -> Kind {
        match self.get("--transport").unwrap_or("websocket") {
            "websocket" | "ws" => Kind::WebSocket,
            "sse" => Kind::Sse,
            "polling" => Kind::Polling,
            other => fail(&format!("unknown transport {other}")),
        }
    }

    pub fn label(&self) -> String {
        self.get("--label").unwrap_or("").to_owned()
    }
}

pub fn fail(msg: &str) -> ! {
    eprintln!("tidewire-bench: {msg}\n{USAGE}");
    std::process::exit(2)
}
