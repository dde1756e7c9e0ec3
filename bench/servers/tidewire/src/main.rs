//! The benchmark contract on tidewire, and nothing else.
//! Namespace `/`: `echo` acks its arguments back; `join` joins the room it names (acks
//! "ok"); `broadcast` re-emits its payload as `tick` to room `bench` (acks "ok").
//! Env: PORT (3000), HOST (127.0.0.1), TIDEWIRE_HTTP (`hyper`: axum::serve; default:
//! tidewire::serve, the lean HTTP/1.1 server). Prints `listening on http://HOST:PORT`.
use std::io::Write as _;
use std::net::SocketAddr;

use serde_json::Value;
use tidewire::{Payload, Socket, SocketIo};

#[tokio::main]
async fn main() {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let io = SocketIo::builder().build();
    io.ns("/", |socket: Socket| async move {
        // `echo` through the catch-all handler: the arguments go back as they came,
        // without a round trip through serde_json::Value.
        socket.on_any(|_socket, event, args: Payload, ack| async move {
            if event == "echo" {
                let _ = ack.send(args);
            }
        });
        socket.on("join", |socket, room: String, ack| async move {
            socket.join(room).await;
            let _ = ack.send("ok");
        });
        socket.on("broadcast", |socket, payload: Value, ack| async move {
            let _ = socket.io().to("bench").emit("tick", payload).await;
            let _ = ack.send("ok");
        });
    });
    let app = axum::Router::new().merge(io.router());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .expect("bind");
    let local = listener.local_addr().unwrap();
    println!("listening on http://{local}");
    let _ = std::io::stdout().flush();
    if std::env::var("TIDEWIRE_HTTP").as_deref() == Ok("hyper") {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    } else {
        tidewire::serve(listener, app).await.unwrap();
    }
}
