//! `sio-test-server`: the Socket.IO server the interop tests (node and
//! python) and the benchmarks drive. Every behaviour below is part of a
//! contract those tests rely on.
//!
//! ```text
//! cargo run -p tidewire-examples --bin sio-test-server
//! ```
//!
//! Environment: `HOST` (127.0.0.1), `PORT` (3000; 0 picks a free port),
//! `PING_INTERVAL_MS`, `PING_TIMEOUT_MS`, `ACK_TIMEOUT_MS`, `CONNECT_TIMEOUT_MS`, `RUST_LOG`,
//! `RECOVERY_WINDOW_MS` (connection state recovery with that window; unset: off).
//! `TIDEWIRE_HTTP=hyper` serves with `axum::serve` (hyper) instead of the default
//! `tidewire::serve` (the lean HTTP/1.1 server, docs/http1.md).
//! Prints `listening on http://HOST:PORT` on stdout once bound.
//!
//! # Namespace `/`
//! On connect the client gets `welcome` `{id, ns, auth}`. Events (every one
//! answers through its ack, when the client asks for one):
//! - `echo` ...args → acks the same arguments back (binary included)
//! - `join` room → joins; acks the socket's rooms. `leave` room → leaves; acks the rooms
//! - `broadcast` payload → emits `tick` payload to room `bench` (benchmark contract)
//! - `to-room` `{room, event, data, except?}` → `socket.to(room).except(except).emit(event, data)`; acks `"sent"`
//! - `to-all` `{event, data}` → `io.emit(event, data)` to every socket of `/`, sender included
//! - `ask` `{event, data, timeoutMs}` → server `emit_with_ack` to this client; acks `{ok: reply}` or `{error}`
//! - `ask-room` `{room, event, data, timeoutMs}` → broadcast with ack to the room; acks
//!   `{replies: [{id, ok} | {id, error}]}` sorted by id
//! - `upload` `{name, body: <binary>}` → acks two arguments: `{name, size}` and the body (binary)
//! - `server-emit` → emits `multi` with arguments `1, "two", {three: 3}, <binary 0x01 0x02>`
//! - `typed` `{a: u32}` → acks `a + 1` (anything else: the ack gets `{error}`)
//! - `count` room? → acks how many sockets `fetch_sockets` finds (in the room, if given)
//! - `sockets-join` `{from, to}` → every socket in room `from` joins `to`; acks
//! - `disconnect-room` room → disconnects every socket in the room; acks
//! - `disconnect-me` → the server disconnects this socket from `/`
//! - `close-me` → the server closes the whole connection
//! - `watch` → joins room `observers`, which receives `left` `{id, ns, reason}` whenever a socket
//!   of `/` or `/admin` disconnects
//! - `stream` `{room, count, rate, directEvery}` (fault-injection contract, tests/faults):
//!   emits `n` with the numbers 1..=count, `rate` per second, to room `room`; every
//!   `directEvery`-th number (0: none) is instead a direct emit to each member of the stream:
//!   the sockets `fetch_sockets` finds in the room, plus every socket id found there earlier
//!   in this stream (a socket waiting for its recovery is in no room, but keeps its id, so
//!   what is emitted to that id is recorded for it). Acks `{sent}` once done.
//! - `recovered` → acks whether this socket was recovered (`socket.recovered()`), and
//!   `recovery-stats` → acks `{connects, recovered}` counted on `/` since the server started
//!
//! # Namespace `/admin`
//! A middleware accepts `auth.token == "secret"` and refuses anything else with
//! message `"unauthorized"` and data `{"reason": "bad token"}`. Events:
//! `whoami` → acks `{ns, user}` (user from `auth.user`, stored by the middleware);
//! `echo` as on `/`.
//!
//! # Dynamic namespaces `/dyn-<anything>`
//! `name` → acks the namespace name; `echo` as on `/`.

use std::{error::Error, io::Write as _, net::SocketAddr, str::FromStr, time::Duration};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tidewire::{Args, ConnectError, Payload, Socket, SocketIo};
use tracing_subscriber::EnvFilter;

#[derive(Clone)]
struct User(String);

#[derive(Deserialize)]
struct ToRoom {
    room: String,
    event: String,
    data: Value,
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Deserialize)]
struct Ask {
    #[serde(default)]
    room: Option<String>,
    event: String,
    data: Value,
    #[serde(rename = "timeoutMs")]
    timeout_ms: u64,
}

#[derive(Deserialize, Serialize)]
struct Upload {
    name: String,
    body: Bytes,
}

#[derive(Deserialize)]
struct Typed {
    a: u32,
}

#[derive(Deserialize)]
struct JoinMove {
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct Stream {
    room: String,
    count: u64,
    rate: f64,
    #[serde(rename = "directEvery", default)]
    direct_every: u64,
}

/// Connects and recovered connects on `/` (`recovery-stats`).
struct RecoveryStats {
    connects: std::sync::atomic::AtomicU64,
    recovered: std::sync::atomic::AtomicU64,
}

static RECOVERY_STATS: RecoveryStats = RecoveryStats {
    connects: std::sync::atomic::AtomicU64::new(0),
    recovered: std::sync::atomic::AtomicU64::new(0),
};

/// The `stream` event (tests/faults): numbered `n` events to a room at a fixed rate,
/// every `direct_every`-th one as a direct emit to each member instead.
async fn run_stream(io: SocketIo, req: Stream) -> u64 {
    let members = |io: SocketIo, room: String| async move {
        io.within(room)
            .fetch_sockets()
            .await
            .map(|found| found.into_iter().map(|s| s.id()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    // Every socket id seen in the room during this stream, in the order first seen.
    let mut known: Vec<tidewire::Sid> = Vec::new();
    let remember = |known: &mut Vec<tidewire::Sid>, found: Vec<tidewire::Sid>| {
        for id in found {
            if !known.contains(&id) {
                known.push(id);
            }
        }
    };
    remember(&mut known, members(io.clone(), req.room.clone()).await);
    let period = Duration::from_secs_f64(1.0 / req.rate.clamp(0.001, 1_000_000.0));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    for n in 1..=req.count {
        ticks.tick().await;
        if req.direct_every > 0 && n % req.direct_every == 0 {
            remember(&mut known, members(io.clone(), req.room.clone()).await);
            for id in &known {
                let _ = io.to(*id).emit("n", n).await;
            }
        } else {
            let _ = io.to(req.room.clone()).emit("n", n).await;
        }
        sent += 1;
    }
    sent
}

/// `echo` on any namespace: the arguments come back as they were, binary included.
fn echo_everything(socket: &Socket) {
    socket.on_any(|socket, event, args: Payload, ack| async move {
        if event == "echo" {
            let _ = ack.send(args);
        } else {
            tracing::debug!(id = %socket.id(), %event, "unhandled event");
        }
    });
}

fn report_disconnect(io: &SocketIo, socket: &Socket) {
    let io = io.clone();
    socket.on_disconnect(move |socket, reason| {
        let io = io.clone();
        async move {
            let left =
                json!({"id": socket.id(), "ns": socket.ns_name(), "reason": reason.as_str()});
            let _ = io.to("observers").emit("left", left).await;
        }
    });
}

fn setup(io: &SocketIo) {
    let io2 = io.clone();
    io.ns("/", move |socket: Socket| {
        let io = io2.clone();
        async move {
            RECOVERY_STATS
                .connects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if socket.recovered() {
                RECOVERY_STATS
                    .recovered
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let welcome = json!({"id": socket.id(), "ns": socket.ns_name(), "auth": socket.auth()});
            let _ = socket.emit("welcome", welcome);
            echo_everything(&socket);
            report_disconnect(&io, &socket);

            socket.on("join", |socket, room: String, ack| async move {
                socket.join(room).await;
                let _ = ack.send(socket.rooms().await);
            });
            socket.on("leave", |socket, room: String, ack| async move {
                socket.leave(room).await;
                let _ = ack.send(socket.rooms().await);
            });
            socket.on("watch", |socket, (): (), ack| async move {
                socket.join("observers").await;
                let _ = ack.send("watching");
            });
            socket.on("stream", |socket, req: Stream, ack| async move {
                let sent = run_stream(socket.io(), req).await;
                let _ = ack.send(json!({ "sent": sent }));
            });
            socket.on("recovered", |socket, (): (), ack| async move {
                let _ = ack.send(socket.recovered());
            });
            socket.on("recovery-stats", |_socket, (): (), ack| async move {
                use std::sync::atomic::Ordering::Relaxed;
                let _ = ack.send(json!({
                    "connects": RECOVERY_STATS.connects.load(Relaxed),
                    "recovered": RECOVERY_STATS.recovered.load(Relaxed),
                }));
            });
            socket.on("broadcast", |socket, payload: Value, ack| async move {
                let _ = socket.io().to("bench").emit("tick", payload).await;
                let _ = ack.send("ok");
            });
            socket.on("to-room", |socket, req: ToRoom, ack| async move {
                let result = socket
                    .to(req.room)
                    .except(req.except)
                    .emit(&req.event, req.data)
                    .await;
                let _ = ack.send(if result.is_ok() { "sent" } else { "failed" });
            });
            socket.on("to-all", |socket, req: ToRoom, ack| async move {
                let _ = socket.io().emit(&req.event, req.data).await;
                let _ = ack.send("sent");
            });
            socket.on("ask", |socket, req: Ask, ack| async move {
                let reply = socket
                    .emit_with_ack::<Value>(&req.event, req.data)
                    .timeout(Duration::from_millis(req.timeout_ms))
                    .await;
                let _ = ack.send(match reply {
                    Ok(value) => json!({"ok": value}),
                    Err(e) => json!({"error": e.to_string()}),
                });
            });
            socket.on("ask-room", |socket, req: Ask, ack| async move {
                let room = req.room.unwrap_or_default();
                let replies = socket
                    .io()
                    .to(room)
                    .timeout(Duration::from_millis(req.timeout_ms))
                    .emit_with_ack::<Value>(&req.event, req.data)
                    .await;
                let answer = match replies {
                    Ok(mut replies) => {
                        replies.sort_by_key(|(id, _)| id.to_string());
                        let list: Vec<Value> = replies
                            .into_iter()
                            .map(|(id, r)| match r {
                                Ok(v) => json!({"id": id, "ok": v}),
                                Err(e) => json!({"id": id, "error": e.to_string()}),
                            })
                            .collect();
                        json!({"replies": list})
                    }
                    Err(e) => json!({"error": e.to_string()}),
                };
                let _ = ack.send(answer);
            });
            socket.on("upload", |_socket, upload: Upload, ack| async move {
                let info = json!({"name": upload.name, "size": upload.body.len()});
                let _ = ack.send(Args((info, upload.body)));
            });
            socket.on("server-emit", |socket, (): (), ack| async move {
                let sent = socket.emit(
                    "multi",
                    Args((1, "two", json!({"three": 3}), Bytes::from_static(&[1, 2]))),
                );
                let _ = ack.send(sent.is_ok());
            });
            socket.on("typed", |_socket, t: Typed, ack| async move {
                let _ = ack.send(t.a + 1);
            });
            socket.on("count", |socket, room: Option<String>, ack| async move {
                let found = match room {
                    Some(room) => socket.io().within(room).fetch_sockets().await,
                    None => socket.io().fetch_sockets().await,
                };
                let n = found.map(|s| s.len()).unwrap_or(0);
                let _ = ack.send(n);
            });
            socket.on("sockets-join", |socket, m: JoinMove, ack| async move {
                let ok = socket.io().within(m.from).join(m.to).await.is_ok();
                let _ = ack.send(ok);
            });
            socket.on("disconnect-room", |socket, room: String, ack| async move {
                let _ = ack.send("ok");
                let _ = socket.io().within(room).disconnect().await;
            });
            socket.on("disconnect-me", |socket, (): (), _ack| async move {
                socket.disconnect();
            });
            socket.on("close-me", |socket, (): (), _ack| async move {
                socket.close();
            });
        }
    });

    let io2 = io.clone();
    io.ns("/admin", move |socket: Socket| {
        let io = io2.clone();
        async move {
            echo_everything(&socket);
            report_disconnect(&io, &socket);
            socket.on("whoami", |socket, (): (), ack| async move {
                let user = socket.extensions().get::<User>().map(|u| u.0);
                let _ = ack.send(json!({"ns": socket.ns_name(), "user": user}));
            });
        }
    })
    .middleware(|socket| async move {
        if socket.auth()["token"] != "secret" {
            return Err(ConnectError::new("unauthorized").with_data(json!({"reason": "bad token"})));
        }
        let user = socket.auth()["user"]
            .as_str()
            .unwrap_or("anonymous")
            .to_owned();
        socket.extensions().insert(User(user));
        Ok(())
    });

    io.dynamic_ns(
        |name| name.starts_with("/dyn-"),
        |socket: Socket| async move {
            echo_everything(&socket);
            socket.on("name", |socket, (): (), ack| async move {
                let _ = ack.send(socket.ns_name());
            });
        },
    );
}

fn env_var<T>(name: &str) -> Result<Option<T>, Box<dyn Error>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("invalid {name}={raw:?}: {e}").into()),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("invalid {name}: {e}").into()),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                tokio::select! {
                    _ = sigterm.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = env_var::<u16>("PORT")?.unwrap_or(3000);
    let mut builder = SocketIo::builder();
    if let Some(ms) = env_var::<u64>("PING_INTERVAL_MS")? {
        builder = builder.ping_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = env_var::<u64>("PING_TIMEOUT_MS")? {
        builder = builder.ping_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = env_var::<u64>("CONNECT_TIMEOUT_MS")? {
        builder = builder.connect_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = env_var::<u64>("ACK_TIMEOUT_MS")? {
        builder = builder.ack_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = env_var::<u64>("RECOVERY_WINDOW_MS")? {
        builder =
            builder.recovery(tidewire::RecoveryConfig::default().window(Duration::from_millis(ms)));
    }
    let io = builder.build();
    setup(&io);

    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { "tidewire sio-test-server\n" }),
        )
        .merge(io.router());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot bind {host}:{port}: {e}"))?;
    let local = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}")?;
        stdout.flush()?;
    }
    let shutdown_io = io.clone();
    let shutdown = async move {
        shutdown_signal().await;
        shutdown_io.shutdown().await;
    };
    if std::env::var("TIDEWIRE_HTTP").as_deref() == Ok("hyper") {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
    } else {
        tidewire::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
    }
    Ok(())
}
