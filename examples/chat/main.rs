//! `chat`: a chat server with its web page — rooms, nicknames, a typing
//! indicator, acks shown as delivered ticks, and the transport in use.
//!
//! ```text
//! cargo run -p tidewire-examples --bin chat      # then open http://localhost:3000
//! ```
//!
//! Environment: `HOST` (127.0.0.1), `PORT` (3000; 0 picks a free port), `RUST_LOG`;
//! `REDIS_URL` runs it as one node of a cluster (rooms and messages span every
//! node sharing that Redis, any node accepts any session, and a page whose node
//! dies resumes on another; see `docs/cluster.md` and `examples/cluster/`),
//! with `NODE_NAME` naming the node and `ADVERTISE_ADDR` (host:port) saying
//! where the other nodes reach it (default: the address it listens on).
//! Prints `listening on http://HOST:PORT` on stdout once bound. The page is `/`,
//! the client bundle `/socket.io/tidewire.js`, Socket.IO `/socket.io/`.
//!
//! # Events (namespace `/`)
//! The handshake `auth` may carry `{nick, room}`: the page sends its current ones,
//! so a reconnected page keeps both. On connect the client gets `welcome`
//! `{nick, room, rooms}` and the room gets `notice` `{text}` ("ada joined").
//!
//! Client → server (each acks when asked):
//! - `nick` name → renames (trimmed, at most 24 chars); acks the name in effect
//! - `join` room → leaves the current room for `room`; acks the room in effect
//! - `message` text → the room (but the sender) gets `message` `{nick, text, at}`;
//!   acks `{at}` (ms since the epoch): the page turns the message's clock into a tick
//! - `typing` bool → the room (but the sender) gets `typing` `{nick, typing}`
//!
//! Leaving (a room or the server) sends `notice` and `typing` `false` to the room.

use std::time::SystemTime;

use axum::{response::Html, routing::get};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tidewire::{RecoveryConfig, Socket, SocketIo};
use tidewire_redis::{RedisCluster, RedisConfig};
use tracing_subscriber::EnvFilter;

/// The rooms the page offers; `join` accepts any other name too.
const ROOMS: [&str; 3] = ["lobby", "rust", "random"];

/// Who a socket is: kept in its extensions, and what the handshake's auth may carry.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
struct Member {
    nick: String,
    room: String,
}

/// Trims `name` to at most 24 chars; `None` when nothing is left.
fn clean(name: &str) -> Option<String> {
    let name: String = name.trim().chars().take(24).collect();
    (!name.is_empty()).then_some(name)
}

fn member(socket: &Socket) -> Member {
    socket.extensions().get::<Member>().unwrap_or_default()
}

/// Sends `event` to everyone in `room` but `socket`.
async fn to_room(socket: &Socket, room: &str, event: &str, data: impl Serialize) {
    let _ = socket.to(room).emit(event, data).await;
}

/// Tells `me.room` that `me` is gone (the socket has left the room already).
async fn announce_left(socket: &Socket, me: &Member) {
    let typing = json!({ "nick": me.nick, "typing": false });
    to_room(socket, &me.room, "typing", typing).await;
    let text = format!("{} left", me.nick);
    to_room(socket, &me.room, "notice", json!({ "text": text })).await;
}

async fn on_connect(socket: Socket) {
    let asked: Member = socket.auth_as().unwrap_or_default();
    let guest = || format!("guest-{}", &socket.id().to_string()[..4]);
    let me = Member {
        nick: clean(&asked.nick).unwrap_or_else(guest),
        room: clean(&asked.room).unwrap_or_else(|| ROOMS[0].to_owned()),
    };
    socket.join(me.room.clone()).await;
    let welcome = json!({ "nick": me.nick, "room": me.room, "rooms": ROOMS });
    let _ = socket.emit("welcome", welcome);
    let text = format!("{} joined", me.nick);
    to_room(&socket, &me.room, "notice", json!({ "text": text })).await;
    socket.extensions().insert(me);

    socket.on("nick", |socket, name: String, ack| async move {
        let mut me = member(&socket);
        if let Some(name) = clean(&name).filter(|n| *n != me.nick) {
            let text = format!("{} is now {name}", me.nick);
            to_room(&socket, &me.room, "notice", json!({ "text": text })).await;
            me.nick = name;
            socket.extensions().insert(me.clone());
        }
        let _ = ack.send(me.nick);
    });
    socket.on("join", |socket, room: String, ack| async move {
        let mut me = member(&socket);
        if let Some(room) = clean(&room).filter(|r| *r != me.room) {
            socket.leave(me.room.clone()).await;
            announce_left(&socket, &me).await;
            socket.join(room.clone()).await;
            let text = format!("{} joined", me.nick);
            to_room(&socket, &room, "notice", json!({ "text": text })).await;
            me.room = room;
            socket.extensions().insert(me.clone());
        }
        let _ = ack.send(me.room);
    });
    socket.on("message", |socket, text: String, ack| async move {
        let me = member(&socket);
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let message = json!({ "nick": me.nick, "text": text, "at": at });
        to_room(&socket, &me.room, "message", message).await;
        let _ = ack.send(json!({ "at": at }));
    });
    socket.on("typing", |socket, typing: bool, _ack| async move {
        let me = member(&socket);
        let state = json!({ "nick": me.nick, "typing": typing });
        to_room(&socket, &me.room, "typing", state).await;
    });
    socket.on_disconnect(|socket, _reason| async move {
        announce_left(&socket, &member(&socket)).await;
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.trim().parse())?;

    let cluster = match std::env::var("REDIS_URL") {
        Ok(url) => {
            let mut config = RedisConfig::new(url);
            if let Ok(name) = std::env::var("NODE_NAME") {
                config = config.node_name(name);
            }
            if let Ok(addr) = std::env::var("ADVERTISE_ADDR") {
                config = config.advertised_addr(addr.parse()?);
            }
            Some(RedisCluster::new(config)?)
        }
        Err(_) => None,
    };
    let io = match &cluster {
        Some(cluster) => cluster
            .install(SocketIo::builder().recovery(RecoveryConfig::default()))
            .build(),
        None => SocketIo::new(),
    };
    io.ns("/", on_connect);
    let page = || async { Html(include_str!("static/index.html")) };
    let mut app = axum::Router::new().route("/", get(page)).merge(io.router());
    if let Some(cluster) = &cluster {
        app = app.layer(cluster.forward_layer());
    }

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    if let Some(cluster) = cluster.as_ref().filter(|c| c.advertised_addr().is_none()) {
        cluster.set_advertised_addr(listener.local_addr()?);
    }
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        if let Some(cluster) = cluster {
            cluster.leave().await;
        }
        io.shutdown().await;
    };
    // tidewire's lean HTTP/1.1 server: it also hands out `ConnectInfo`, and the
    // cluster's forward layer tunnels its upgrades.
    tidewire::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
