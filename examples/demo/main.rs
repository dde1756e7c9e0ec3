//! `demo`: a small chat on tidewire — namespaces, rooms, acks and an auth middleware.
//!
//! ```text
//! cargo run -p tidewire-examples --bin demo     # http://127.0.0.1:3000 (HOST/PORT to change)
//! ```
//! From a browser console or node with `socket.io-client`:
//! ```js
//! const chat = io("http://127.0.0.1:3000/chat", { auth: { name: "ada" } });
//! await chat.emitWithAck("join", "rust");              // -> [socket id, "rust"] (its rooms)
//! await chat.emitWithAck("say", { room: "rust", text: "hi" }); // -> "delivered"
//! chat.on("said", (msg) => console.log(msg));
//! ```
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tidewire::{ConnectError, Socket, SocketIo};

/// Who a socket is, set by the middleware from the auth payload.
#[derive(Clone)]
struct Name(String);

#[derive(Deserialize)]
struct Say {
    room: String,
    text: String,
}

#[derive(Serialize)]
struct Said<'a> {
    from: &'a str,
    room: &'a str,
    text: &'a str,
}

fn name(socket: &Socket) -> String {
    socket
        .extensions()
        .get::<Name>()
        .map(|n| n.0)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let io = SocketIo::new();

    // `/` : a public echo with an ack.
    io.ns("/", |socket: Socket| async move {
        socket.on("ping", |_socket, data: serde_json::Value, ack| async move {
            let _ = ack.send(json!({ "pong": data }));
        });
    });

    // `/chat`: only for clients that say who they are.
    io.ns("/chat", |socket: Socket| async move {
        socket.on("join", |socket, room: String, ack| async move {
            socket.join(room.clone()).await;
            let _ = socket.to(room.clone()).emit("joined", name(&socket)).await;
            let _ = ack.send(socket.rooms().await);
        });
        socket.on("say", |socket, msg: Say, ack| async move {
            let who = name(&socket);
            let said = Said {
                from: &who,
                room: &msg.room,
                text: &msg.text,
            };
            let sent = socket.within(msg.room.clone()).emit("said", &said).await;
            let _ = ack.send(if sent.is_ok() { "delivered" } else { "failed" });
        });
        socket.on_disconnect(|socket, reason| async move {
            tracing::info!(who = name(&socket), %reason, "left the chat");
        });
    })
    .middleware(|socket| async move {
        match socket.auth()["name"].as_str() {
            Some(n) if !n.trim().is_empty() => {
                socket.extensions().insert(Name(n.trim().to_owned()));
                Ok(())
            }
            _ => Err(ConnectError::new("who are you?").with_data(json!({ "need": "auth.name" }))),
        }
    });

    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { "tidewire demo: connect a Socket.IO client to /chat" }),
        )
        .merge(io.router());
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
