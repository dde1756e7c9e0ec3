//! tidewire's SSE transport (docs/sse.md): downstream is one `text/event-stream`
//! response, upstream is POSTs as in polling. Every POST carries `ack=<last id>`; when
//! nothing else is queued the writer POSTs a noop `6` every `SSE_ACK_MS` (1000 ms;
//! env `TIDEWIRE_BENCH_SSE_ACK_MS`) while unconfirmed events exist, and after every
//! [`CONFIRM_AFTER_EVENTS`] events, so the server can drop what it retains for
//! resumption: the bundled client's policy (client-js/src/transports/sse.js).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{mpsc, Notify};

/// Events after which the writer confirms without waiting for its timer.
const CONFIRM_AFTER_EVENTS: u64 = 512;

/// What the stream reader tells the writer: the last event id, and when to confirm early.
struct Received {
    last: AtomicU64,
    confirm: Notify,
}

use super::http::{find, get, post, Conn};
use super::{sid_of, tcp, Inbound, Reply};

pub async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    inbound: Arc<Inbound>,
    rx: mpsc::UnboundedReceiver<String>,
) -> Result<(), String> {
    let host = server.to_string();
    let mut down = Conn::new(tcp(server, source).await?);
    down.send(&get(
        "/socket.io/?EIO=4&transport=sse",
        &host,
        "Accept: text/event-stream\r\n",
    ))
    .await?;
    let head = down.head().await?;
    if head.status != 200 || !head.headers.contains("text/event-stream") {
        return Err(format!("sse handshake: status {}", head.status));
    }
    let mut events = Events {
        conn: down,
        chunked: head.chunked,
        data: Vec::new(),
        at: 0,
    };
    let (_, open) = events.next().await?;
    let sid = sid_of(&open).ok_or_else(|| format!("no sid in {open:?}"))?;
    let received = Arc::new(Received {
        last: AtomicU64::new(1),
        confirm: Notify::new(),
    });
    let path = format!("/socket.io/?EIO=4&transport=sse&sid={sid}");
    let up = Conn::new(tcp(server, source).await?);
    let (pong_tx, pong_rx) = mpsc::unbounded_channel::<()>();
    tokio::spawn(writer(
        up,
        host,
        path,
        rx,
        pong_rx,
        inbound.clone(),
        received.clone(),
    ));
    tokio::spawn(async move {
        loop {
            let handled = events.drain(|id, p| {
                if let Some(id) = id {
                    received.last.store(id, Relaxed);
                    if id % CONFIRM_AFTER_EVENTS == 0 {
                        received.confirm.notify_one();
                    }
                }
                match inbound.packet(p) {
                    Reply::Pong => {
                        let _ = pong_tx.send(());
                        true
                    }
                    Reply::Close => false,
                    Reply::None => true,
                }
            });
            if !matches!(handled, Ok(true)) || events.more().await.is_err() {
                break;
            }
        }
        inbound.closed();
    });
    Ok(())
}

/// `id: N\ndata: TEXT` (or just the data line): the id and the data.
fn simple_event(block: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let (id, rest) = match block.strip_prefix(b"id: ") {
        Some(rest) => {
            let eol = memchr::memchr(b'\n', rest)?;
            let digits = &rest[..eol];
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let id = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            (Some(id), &rest[eol + 1..])
        }
        None => (None, block),
    };
    let data = rest.strip_prefix(b"data: ")?;
    memchr::memchr(b'\n', data).is_none().then_some((id, data))
}

/// Incremental event-stream parser over a chunked (or close-delimited) body.
struct Events {
    conn: Conn,
    chunked: bool,
    data: Vec<u8>,
    at: usize,
}

impl Events {
    async fn more(&mut self) -> Result<(), String> {
        if self.at > 0 {
            self.data.drain(..self.at);
            self.at = 0;
        }
        if self.chunked {
            if !self.conn.chunk_into(&mut self.data).await? {
                return Err("stream ended".into());
            }
        } else {
            if self.conn.pending().is_empty() {
                self.conn.fill().await?;
            }
            self.data.extend_from_slice(self.conn.pending());
            self.conn.pos = self.conn.buf.len();
        }
        Ok(())
    }

    /// Hands each complete event in the buffer to `f` as (id, packet) until `f`
    /// returns false; comments (keep-alives) are skipped. The usual event (one
    /// `data:` line) is passed without copying. Returns false if `f` stopped.
    fn drain(&mut self, mut f: impl FnMut(Option<u64>, &str) -> bool) -> Result<bool, String> {
        while let Some(end) = find(&self.data[self.at..], b"\n\n") {
            let block = &self.data[self.at..self.at + end];
            self.at += end + 2;
            // The usual event, `id: N` then one `data:` line, without the general parse.
            if let Some((id, data)) = simple_event(block) {
                if !f(id, std::str::from_utf8(data).map_err(|e| e.to_string())?) {
                    return Ok(false);
                }
                continue;
            }
            let mut id = None;
            let mut t64 = false;
            let (mut data, mut data_lines) = (None, 0);
            for line in block.split(|&b| b == b'\n') {
                if let Some(v) = line.strip_prefix(b"data: ") {
                    data = data.or(Some(v));
                    data_lines += 1;
                } else if let Some(v) = line.strip_prefix(b"id: ") {
                    id = std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| v.trim().parse().ok());
                } else if line == b"event: t64" {
                    t64 = true;
                }
            }
            let go_on = match (data, data_lines, t64) {
                (None, _, _) => true,
                (Some(one), 1, false) => {
                    f(id, std::str::from_utf8(one).map_err(|e| e.to_string())?)
                }
                _ => {
                    let lines: Vec<&[u8]> = block
                        .split(|&b| b == b'\n')
                        .filter_map(|l| l.strip_prefix(b"data: "))
                        .collect();
                    let joined = lines.join(&b'\n');
                    let text = if t64 {
                        base64::engine::general_purpose::STANDARD
                            .decode(&joined)
                            .map_err(|e| e.to_string())?
                    } else {
                        joined
                    };
                    f(id, &String::from_utf8_lossy(&text))
                }
            };
            if !go_on {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next event, owned (the handshake's open packet).
    async fn next(&mut self) -> Result<(Option<u64>, String), String> {
        loop {
            let mut first = None;
            self.drain(|id, p| {
                first = Some((id, p.to_owned()));
                false
            })?;
            if let Some(event) = first {
                return Ok(event);
            }
            self.more().await?;
        }
    }
}

async fn writer(
    mut up: Conn,
    host: String,
    path: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    mut pongs: mpsc::UnboundedReceiver<()>,
    inbound: Arc<Inbound>,
    received: Arc<Received>,
) {
    let mut body = String::new();
    let mut acked = 1u64;
    let ack_ms: u64 = std::env::var("TIDEWIRE_BENCH_SSE_ACK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut tick = tokio::time::interval(Duration::from_millis(ack_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = rx.recv() => match m { Some(m) => body.push_str(&m), None => break },
            p = pongs.recv() => match p { Some(()) => body.push('3'), None => break },
            _ = tick.tick() => {
                if received.last.load(Relaxed) <= acked { continue; }
                body.push('6');
            }
            () = received.confirm.notified() => {
                if received.last.load(Relaxed) <= acked { continue; }
                body.push('6');
            }
        }
        while let Ok(m) = rx.try_recv() {
            body.push('\u{1e}');
            body.push_str(&m);
        }
        let ack = received.last.load(Relaxed);
        let req = post(&format!("{path}&ack={ack}"), &host, &body);
        body.clear();
        if up.send(&req).await.is_err() {
            break;
        }
        match up.head().await {
            Ok(h) if h.status == 200 => {
                if up.body(&h).await.is_err() {
                    break;
                }
                acked = ack;
            }
            _ => break,
        }
    }
    inbound.closed();
}
