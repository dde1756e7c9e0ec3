//! Client side of the three transports, hand-rolled over `tokio::net::TcpStream` so the
//! load generator stays cheap: no HTTP or WebSocket library, no per-message allocation
//! beyond the packet text.
//!
//! Every transport delivers Engine.IO packets to [`Inbound::packet`], which answers
//! pings, completes the Socket.IO CONNECT of namespace `/`, and hands every other
//! Socket.IO packet (`2...` event, `3...` ack) to the scenario's handler.

pub mod http;
pub mod polling;
pub mod sse;
pub mod websocket;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    WebSocket,
    Sse,
    Polling,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::WebSocket => "websocket",
            Kind::Sse => "sse",
            Kind::Polling => "polling",
        }
    }
}

/// The scenario's view of incoming Socket.IO packets (without the Engine.IO `4`), as
/// bytes: the handlers read ASCII prefixes and numbers, and checking every message for
/// UTF-8 first cost the load generator a tenth of its CPU.
pub type Handler = Arc<dyn Fn(&[u8]) + Send + Sync>;

pub struct Inbound {
    handler: Handler,
    connected: Mutex<Option<oneshot::Sender<()>>>,
    /// Cleared when the transport ends (server closed, error).
    pub alive: AtomicBool,
}

/// What a transport task should do after a packet.
pub enum Reply {
    None,
    Pong,
    Close,
}

impl Inbound {
    pub fn packet(&self, p: &[u8]) -> Reply {
        match p.first() {
            Some(b'2') => Reply::Pong,
            Some(b'4') => {
                let sio = &p[1..];
                if sio.starts_with(b"0") {
                    if let Some(tx) = self.connected.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                } else {
                    (self.handler)(sio);
                }
                Reply::None
            }
            Some(b'1') => Reply::Close,
            _ => Reply::None,
        }
    }

    pub fn closed(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

/// A connected Socket.IO client on namespace `/`.
pub struct Client {
    /// Engine.IO packets to send (e.g. `42["echo",1]`).
    pub tx: mpsc::UnboundedSender<String>,
    pub inbound: Arc<Inbound>,
}

impl Client {
    pub fn emit(&self, packet: String) -> bool {
        self.tx.send(packet).is_ok()
    }
    pub fn alive(&self) -> bool {
        self.inbound.alive.load(Ordering::Relaxed)
    }
}

pub fn source_addr(i: usize, sources: usize) -> Ipv4Addr {
    let n = (i % sources.clamp(1, 250)) as u8;
    Ipv4Addr::new(127, 0, 0, 1 + n)
}

pub async fn tcp(server: SocketAddr, source: Ipv4Addr) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let s = socket.connect(server).await.map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Extract `"sid":"..."` from an open packet.
pub fn sid_of(open: &str) -> Option<String> {
    let i = open.find("\"sid\":\"")? + 7;
    let end = open[i..].find('"')? + i;
    Some(open[i..end].to_owned())
}

/// Open a session over `kind`, join namespace `/`, and return the client.
pub async fn connect(
    kind: Kind,
    server: SocketAddr,
    source: Ipv4Addr,
    handler: Handler,
) -> Result<Client, String> {
    let (ctx, crx) = oneshot::channel();
    let inbound = Arc::new(Inbound {
        handler,
        connected: Mutex::new(Some(ctx)),
        alive: AtomicBool::new(true),
    });
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let fut = async {
        match kind {
            Kind::WebSocket => websocket::open(server, source, inbound.clone(), rx).await?,
            Kind::Sse => sse::open(server, source, inbound.clone(), rx).await?,
            Kind::Polling => polling::open(server, source, inbound.clone(), rx).await?,
        }
        tx.send("40".to_owned())
            .map_err(|_| "transport ended".to_owned())?;
        crx.await
            .map_err(|_| "no Socket.IO CONNECT reply".to_owned())
    };
    match tokio::time::timeout(Duration::from_secs(15), fut).await {
        Ok(Ok(())) => Ok(Client { tx, inbound }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("connect timed out (15 s)".into()),
    }
}
