//! The raw baseline: a bare tokio WebSocket server that speaks just enough of
//! Engine.IO/Socket.IO, at the byte level, for tidewire-bench's fanout, and fans out
//! pre-encoded frames. It is the practical ceiling for fan-out on a machine.
//!
//! Per connection (path ignored, any WebSocket upgrade accepted):
//! - sends the open packet `0{"sid":"raw<N>",...}` (ping interval 25 s, never pings);
//! - `40` -> `40{"sid":"raw<N>"}`;
//! - `42<id>["join",...]` -> adds the connection to the one fan-out group, acks `43<id>["ok"]`;
//! - `42<id>["broadcast",<payload>]` -> builds the frame `42["tick",<payload>]` once and
//!   hands the same bytes (reference-counted) to every group member; acks when asked;
//! - `42<id>["echo",<args>]` -> `43<id>[<args>]`; `3` (pong) and anything else: ignored.
//! No JSON parsing, no rooms, no per-socket queues beyond a tokio broadcast channel
//! (capacity 4096 frames; a member that lags further loses frames, counted on stderr).
//! Env: PORT (3000), HOST (127.0.0.1). Prints `listening on http://HOST:PORT`.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

static LAGGED: AtomicU64 = AtomicU64::new(0);

fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n < 65536 {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// A complete client frame at the start of `buf`: (opcode, unmasked payload, length).
fn parse(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let op = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let mask = if masked {
        if buf.len() < at + 4 {
            return None;
        }
        at += 4;
        [buf[at - 4], buf[at - 3], buf[at - 2], buf[at - 1]]
    } else {
        [0; 4]
    };
    if buf.len() < at + len {
        return None;
    }
    let payload = buf[at..at + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i & 3])
        .collect();
    Some((op, payload, at + len))
}

/// `42<id>[` -> (id, rest after `[`).
fn split_event(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let p = p.strip_prefix(b"42")?;
    let open = p.iter().position(|&b| b == b'[')?;
    Some((&p[..open], &p[open + 1..]))
}

async fn handle(
    mut stream: TcpStream,
    n: u64,
    group: broadcast::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 16384];
    // Handshake.
    let head_end = loop {
        let r = stream.read(&mut tmp).await?;
        if r == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..r]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16384 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end);
    let key = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-key"))
        })
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes();
    let open = format!(
        "0{{\"sid\":\"raw{n}\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}}"
    );
    frame(&mut out, open.as_bytes());
    stream.write_all(&out).await?;
    out.clear();
    let (mut rd, mut wr) = stream.into_split();
    let mut rx: Option<broadcast::Receiver<Bytes>> = None;
    loop {
        while let Some((op, p, used)) = parse(&buf) {
            buf.drain(..used);
            match op {
                8 => return Ok(()),
                1 => {}
                _ => continue,
            }
            if p == b"40" {
                frame(&mut out, format!("40{{\"sid\":\"raw{n}\"}}").as_bytes());
            } else if let Some((id, rest)) = split_event(&p) {
                let id = std::str::from_utf8(id).unwrap_or("");
                if rest.starts_with(b"\"join\"") {
                    rx.get_or_insert_with(|| group.subscribe());
                    if !id.is_empty() {
                        frame(&mut out, format!("43{id}[\"ok\"]").as_bytes());
                    }
                } else if let Some(payload) = rest.strip_prefix(b"\"broadcast\",") {
                    let mut msg = b"42[\"tick\",".to_vec();
                    msg.extend_from_slice(payload);
                    let mut f = Vec::with_capacity(msg.len() + 4);
                    frame(&mut f, &msg);
                    let _ = group.send(Bytes::from(f));
                    if !id.is_empty() {
                        frame(&mut out, format!("43{id}[\"ok\"]").as_bytes());
                    }
                } else if let Some(args) = rest.strip_prefix(b"\"echo\",") {
                    if !id.is_empty() {
                        let mut m = format!("43{id}[").into_bytes();
                        m.extend_from_slice(args);
                        frame(&mut out, &m);
                    }
                }
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
            out.clear();
        }
        tokio::select! {
            r = rd.read(&mut tmp) => {
                let r = r?;
                if r == 0 { return Ok(()); }
                buf.extend_from_slice(&tmp[..r]);
            }
            f = async { rx.as_mut().unwrap().recv().await }, if rx.is_some() => {
                match f {
                    Ok(f) => out.extend_from_slice(&f),
                    Err(broadcast::error::RecvError::Lagged(k)) => { LAGGED.fetch_add(k, Relaxed); }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
                // Everything already queued goes out in the same write.
                let r = rx.as_mut().unwrap();
                loop {
                    match r.try_recv() {
                        Ok(f) => out.extend_from_slice(&f),
                        Err(broadcast::error::TryRecvError::Lagged(k)) => { LAGGED.fetch_add(k, Relaxed); }
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let _ = std::io::stdout().flush();
    let (group, _) = broadcast::channel::<Bytes>(4096);
    let group = Arc::new(group);
    tokio::spawn(async {
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let l = LAGGED.load(Relaxed);
            if l != last {
                eprintln!("raw-ws: {l} frames lost to lagging members so far");
                last = l;
            }
        }
    });
    let mut n = 0u64;
    loop {
        let Ok((s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        n += 1;
        let g = (*group).clone();
        tokio::spawn(async move {
            let _ = handle(s, n, g).await;
        });
    }
}
