//! `cluster-node`: one tidewire node of a Redis cluster, as the cluster
//! tests (`tests/cluster`) drive it; the contract is `tests/cluster/CONTRACT.md`.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/ NODE_NAME=a PORT=3001 cargo run -p tidewire-examples --bin cluster-node
//! ```
//!
//! Environment: `HOST` (127.0.0.1), `PORT` (3000; 0 picks a free port),
//! `REDIS_URL` (required), `NODE_NAME`, `RECOVERY_WINDOW_MS` (default 60000),
//! `RUST_LOG`. Prints `listening on http://HOST:PORT` once bound.

use std::{error::Error, io::Write as _, time::Duration};

use serde_json::{json, Value};
use tidewire::{RecoveryConfig, SocketIo};
use tidewire_redis::{RedisCluster, RedisConfig};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("PORT").ok().map_or(Ok(3000), |p| p.parse())?;
    let redis_url = std::env::var("REDIS_URL").map_err(|_| "REDIS_URL is required")?;
    let node = std::env::var("NODE_NAME").unwrap_or_else(|_| "node".to_owned());
    let window: u64 = std::env::var("RECOVERY_WINDOW_MS")
        .ok()
        .map_or(Ok(60_000), |v| v.parse())?;

    let cluster = RedisCluster::new(RedisConfig::new(redis_url).node_name(node.clone()))?;
    let io = cluster
        .install(
            SocketIo::builder()
                .recovery(RecoveryConfig::default().window(Duration::from_millis(window))),
        )
        .build();
    setup(&io, &node, &cluster);

    let name = node.clone();
    let app = axum::Router::new()
        .route(
            "/node",
            axum::routing::get(move || {
                let name = name.clone();
                async move { name }
            }),
        )
        .merge(io.router())
        .layer(cluster.forward_layer());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot bind {host}:{port}: {e}"))?;
    let local = listener.local_addr()?;
    cluster.set_advertised_addr(local);
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}")?;
        stdout.flush()?;
    }
    let shutdown_io = io.clone();
    let leaving = cluster.clone();
    // The lean HTTP/1.1 server (idle sessions hold no buffers); the forward
    // layer tunnels its upgrades as well as hyper's.
    tidewire::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            leaving.leave().await;
            shutdown_io.shutdown().await;
        })
        .await?;
    Ok(())
}

fn setup(io: &SocketIo, node: &str, cluster: &RedisCluster) {
    let node = node.to_owned();
    {
        let io = io.clone();
        let node = node.clone();
        io.clone().root().on_server_side(move |event, args| {
            let io = io.clone();
            let node = node.clone();
            async move {
                if event == "hello" {
                    let payload = args.args().first().cloned().unwrap_or(Value::Null);
                    let _ = io
                        .local()
                        .emit("heard", json!({ "node": node, "payload": payload }))
                        .await;
                }
            }
        });
    }
    let cluster = cluster.clone();
    io.ns("/", move |socket| {
        let node = node.clone();
        let cluster = cluster.clone();
        async move {
            let me = json!({ "node": node });
            {
                let node = node.clone();
                socket.on("whoami", move |socket, (): (), ack| {
                    let node = node.clone();
                    async move {
                        let _ = ack.send(json!({ "node": node, "id": socket.id().as_str() }));
                    }
                });
            }
            {
                let me = me.clone();
                socket.on("join", move |socket, room: String, ack| {
                    let me = me.clone();
                    async move {
                        socket.join(room).await;
                        let _ = ack.send(me);
                    }
                });
            }
            {
                let me = me.clone();
                socket.on("leave", move |socket, room: String, ack| {
                    let me = me.clone();
                    async move {
                        socket.leave(room).await;
                        let _ = ack.send(me);
                    }
                });
            }
            {
                let me = me.clone();
                socket.on(
                    "to-room",
                    move |socket, (room, event, payload): (String, String, Value), ack| {
                        let me = me.clone();
                        async move {
                            let _ = socket.io().to(room).emit(&event, payload).await;
                            let _ = ack.send(me);
                        }
                    },
                );
            }
            {
                let me = me.clone();
                socket.on(
                    "local-to-room",
                    move |socket, (room, event, payload): (String, String, Value), ack| {
                        let me = me.clone();
                        async move {
                            let _ = socket.io().local().to(room).emit(&event, payload).await;
                            let _ = ack.send(me);
                        }
                    },
                );
            }
            {
                let me = me.clone();
                socket.on(
                    "to-all",
                    move |socket, (event, payload): (String, Value), ack| {
                        let me = me.clone();
                        async move {
                            let _ = socket.io().emit(&event, payload).await;
                            let _ = ack.send(me);
                        }
                    },
                );
            }
            {
                let node = node.clone();
                socket.on(
                    "ask-room",
                    move |socket, (room, timeout_ms): (String, u64), ack| {
                        let node = node.clone();
                        async move {
                            let asked = socket
                                .io()
                                .to(room)
                                .timeout(Duration::from_millis(timeout_ms))
                                .emit_with_ack::<Value>("question", node)
                                .await;
                            let _ = match asked {
                                Ok(replies) => {
                                    let mut ok: Vec<Value> = Vec::new();
                                    let mut errors = Vec::new();
                                    for (_, reply) in replies {
                                        match reply {
                                            Ok(v) => ok.push(v),
                                            Err(e) => errors.push(e.to_string()),
                                        }
                                    }
                                    let error = (!errors.is_empty()).then(|| errors.join("; "));
                                    ack.send(json!({ "replies": ok, "error": error }))
                                }
                                Err(e) => {
                                    ack.send(json!({ "replies": [], "error": e.to_string() }))
                                }
                            };
                        }
                    },
                );
            }
            // The benchmark contract (crates/tidewire-bench): `broadcast` goes to room `bench` as `tick`.
            socket.on("broadcast", |socket, payload: Value, ack| async move {
                let _ = socket.io().to("bench").emit("tick", payload).await;
                let _ = ack.send("ok");
            });
            socket.on("fetch", |socket, room: String, ack| async move {
                let found = socket.io().within(room).fetch_sockets().await;
                let mut list: Vec<Value> = found
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        let rooms: Vec<&str> = s.rooms().iter().map(|r| r.as_str()).collect();
                        json!({ "id": s.id().as_str(), "rooms": rooms })
                    })
                    .collect();
                list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
                let _ = ack.send(list);
            });
            {
                let me = me.clone();
                socket.on(
                    "sockets-join",
                    move |socket, (room, target): (String, String), ack| {
                        let me = me.clone();
                        async move {
                            let _ = socket.io().within(room).join(target).await;
                            let _ = ack.send(me);
                        }
                    },
                );
            }
            {
                let me = me.clone();
                socket.on("disconnect-room", move |socket, room: String, ack| {
                    let me = me.clone();
                    async move {
                        let _ = socket.io().within(room).disconnect().await;
                        let _ = ack.send(me);
                    }
                });
            }
            {
                let me = me.clone();
                socket.on("server-side", move |socket, payload: Value, ack| {
                    let me = me.clone();
                    async move {
                        let _ = socket.io().root().server_side_emit("hello", payload).await;
                        let _ = ack.send(me);
                    }
                });
            }
            {
                let node = node.clone();
                socket.on(
                    "stream",
                    move |socket, (room, count, interval_ms): (String, u64, u64), ack| {
                        let node = node.clone();
                        async move {
                            let mut ticker =
                                tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
                            let mut sent = 0u64;
                            for n in 1..=count {
                                ticker.tick().await;
                                if socket.io().to(room.as_str()).emit("n", n).await.is_ok() {
                                    sent += 1;
                                }
                            }
                            let _ = ack.send(json!({ "node": node, "sent": sent }));
                        }
                    },
                );
            }
            {
                let cluster = cluster.clone();
                socket.on("cluster", move |_socket, (): (), ack| {
                    let nodes: Vec<Value> = cluster
                        .nodes()
                        .iter()
                        .map(|n| json!({ "name": n.name, "sockets": n.sockets }))
                        .collect();
                    async move {
                        let _ = ack.send(nodes);
                    }
                });
            }
        }
    });
}
