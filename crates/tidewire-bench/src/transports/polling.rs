//! Engine.IO long-polling client: one keep-alive connection for the GET loop, one for
//! the POSTs (packets queued while a POST is in flight go out together in the next).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::http::{get, post, Conn};
use super::{sid_of, tcp, Inbound, Reply};

pub async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    inbound: Arc<Inbound>,
    rx: mpsc::UnboundedReceiver<String>,
) -> Result<(), String> {
    let host = server.to_string();
    let mut down = Conn::new(tcp(server, source).await?);
    down.send(&get("/socket.io/?EIO=4&transport=polling", &host, ""))
        .await?;
    let head = down.head().await?;
    let body = down.body(&head).await?;
    if head.status != 200 {
        return Err(format!("polling handshake: status {}", head.status));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let sid = sid_of(&text).ok_or_else(|| format!("no sid in {text:?}"))?;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let up = Conn::new(tcp(server, source).await?);
    let (pong_tx, pong_rx) = mpsc::unbounded_channel::<()>();
    tokio::spawn(writer(
        up,
        host.clone(),
        path.clone(),
        rx,
        pong_rx,
        inbound.clone(),
    ));
    tokio::spawn(async move {
        let req = get(&path, &host, "");
        'outer: loop {
            if down.send(&req).await.is_err() {
                break;
            }
            let body = match down.head().await {
                Ok(h) if h.status == 200 => match down.body(&h).await {
                    Ok(b) => b,
                    Err(_) => break,
                },
                _ => break,
            };
            for p in body.split(|&b| b == 0x1e) {
                match inbound.packet(p) {
                    Reply::Pong => {
                        let _ = pong_tx.send(());
                    }
                    Reply::Close => break 'outer,
                    Reply::None => {}
                }
            }
        }
        inbound.closed();
    });
    Ok(())
}

async fn writer(
    mut up: Conn,
    host: String,
    path: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    mut pongs: mpsc::UnboundedReceiver<()>,
    inbound: Arc<Inbound>,
) {
    let mut body = String::new();
    loop {
        tokio::select! {
            m = rx.recv() => match m { Some(m) => body.push_str(&m), None => break },
            p = pongs.recv() => match p { Some(()) => body.push('3'), None => break },
        }
        while let Ok(m) = rx.try_recv() {
            body.push('\u{1e}');
            body.push_str(&m);
        }
        if up.send(&post(&path, &host, &body)).await.is_err() {
            break;
        }
        body.clear();
        match up.head().await {
            Ok(h) if h.status == 200 => {
                if up.body(&h).await.is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    inbound.closed();
}
