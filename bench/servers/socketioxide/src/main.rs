//! The benchmark contract on socketioxide (crates.io), and nothing else.
//! Namespace `/`: `echo` acks its argument back; `join` joins the room it names (acks
//! "ok"); `broadcast` re-emits its payload as `tick` to room `bench` (acks "ok").
//! Env: PORT (3000), HOST (127.0.0.1). Prints `listening on http://HOST:PORT`.
use std::io::Write as _;

use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

#[tokio::main]
async fn main() {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on("echo", async |Data(data): Data<Value>, ack: AckSender| {
            let _ = ack.send(&data);
        });
        socket.on(
            "join",
            async |socket: SocketRef, Data(room): Data<String>, ack: AckSender| {
                socket.join(room);
                let _ = ack.send("ok");
            },
        );
        socket.on(
            "broadcast",
            async |socket: SocketRef, Data(data): Data<Value>, ack: AckSender| {
                let _ = socket.within("bench").emit("tick", &data).await;
                let _ = ack.send("ok");
            },
        );
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .expect("bind");
    let local = listener.local_addr().unwrap();
    println!("listening on http://{local}");
    let _ = std::io::stdout().flush();
    axum::serve(listener, app).await.unwrap();
}
