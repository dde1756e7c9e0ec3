//! A minimal WebSocket client (RFC 6455) over a `TcpStream`: one task per connection
//! reads frames and writes queued packets, batching everything queued into one write.
//! Frames are masked with the all-zero key (a valid key: masking then costs nothing).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::http::Conn;
use super::{tcp, Inbound, Reply};

pub fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// One complete frame at the start of `buf`: (fin, opcode, payload range, total length).
fn parse(buf: &[u8]) -> Option<(bool, u8, std::ops::Range<usize>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            )
        }
        n => (n as usize, 2),
    };
    if masked {
        at += 4; // servers do not mask; tolerate it anyway (unmasked below is wrong, rare)
    }
    if buf.len() < at + len {
        return None;
    }
    Some((fin, opcode, at..at + len, at + len))
}

pub async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    inbound: Arc<Inbound>,
    rx: mpsc::UnboundedReceiver<String>,
) -> Result<(), String> {
    let stream = tcp(server, source).await?;
    let mut conn = Conn::new(stream);
    // 16 random-enough bytes, as RFC 6455 asks (Node's `ws` checks the length).
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&crate::stats::now_us().to_le_bytes());
    nonce[8..].copy_from_slice(&(source.to_bits() as u64 ^ 0x5a5a_1234_dead_beef).to_le_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    conn.send(req.as_bytes()).await?;
    let head = conn.head().await?;
    if head.status != 101 {
        return Err(format!("websocket upgrade refused: {}", head.status));
    }
    // Wait for the open packet before handing the connection over.
    loop {
        if let Some((_, op, range, total)) = parse(conn.pending()) {
            let ok = op == 1 && conn.pending()[range.clone()].first() == Some(&b'0');
            conn.pos += total;
            if !ok {
                return Err("expected the Engine.IO open packet".into());
            }
            break;
        }
        conn.fill().await?;
    }
    let leftover = conn.pending().to_vec();
    tokio::spawn(run(conn.stream, leftover, inbound, rx));
    Ok(())
}

async fn run(
    stream: tokio::net::TcpStream,
    mut buf: Vec<u8>,
    inbound: Arc<Inbound>,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut out = Vec::with_capacity(256);
    let mut msg: Vec<u8> = Vec::new(); // fragmented message being assembled
    let mut pos = 0usize;
    buf.reserve(8192);
    'outer: loop {
        // Handle every complete frame in the buffer.
        while let Some((fin, op, range, total)) = parse(&buf[pos..]) {
            let payload = &buf[pos + range.start..pos + range.end];
            match op {
                0..=2 => {
                    // Fast path: a whole message in one frame is handled in place.
                    // Binary frames (attachments) are not part of the contract.
                    let reply = if op == 2 && fin && msg.is_empty() {
                        Some(Reply::None)
                    } else if fin && op != 0 && msg.is_empty() {
                        Some(inbound.packet(payload))
                    } else {
                        msg.extend_from_slice(payload);
                        if fin {
                            let whole = std::mem::take(&mut msg);
                            Some(inbound.packet(&whole))
                        } else {
                            None
                        }
                    };
                    match reply {
                        Some(Reply::Pong) => frame(&mut out, 1, b"3"),
                        Some(Reply::Close) => break 'outer,
                        _ => {}
                    }
                }
                8 => break 'outer,
                9 => frame(&mut out, 10, payload),
                _ => {}
            }
            pos += total;
        }
        if pos == buf.len() {
            buf.clear();
            pos = 0;
        } else if pos > 32768 {
            buf.drain(..pos);
            pos = 0;
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16384);
        }
        tokio::select! {
            // read_buf fills the spare capacity without zeroing it first.
            r = rd.read_buf(&mut buf) => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => crate::stats::mark_read(),
                }
            }
            m = rx.recv() => {
                let Some(m) = m else { break };
                frame(&mut out, 1, m.as_bytes());
                while let Ok(m) = rx.try_recv() {
                    frame(&mut out, 1, m.as_bytes());
                }
            }
        }
    }
    inbound.closed();
}
