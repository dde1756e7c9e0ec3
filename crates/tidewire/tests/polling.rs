//! End-to-end tests of the Socket.IO layer through the server's tower
//! service, speaking Engine.IO long-polling by hand (no network, no client
//! library): CONNECT, events and acks both ways, binary attachments, rooms,
//! middleware refusal, namespaces, malformed input.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tidewire::{Args, ConnectError, Payload, Socket, SocketIo};

mod common;
use common::*;

fn server() -> SocketIo {
    let io = SocketIo::new();
    io.ns("/", |socket: Socket| async move {
        socket.on("echo", |_socket, args: Value, ack| async move {
            let _ = ack.send(args);
        });
        socket.on("sum", |_socket, (a, b): (i64, i64), ack| async move {
            let _ = ack.send(a + b);
        });
        socket.on("bin", |_socket, body: Bytes, ack| async move {
            let _ = ack.send(Args((body.len(), body)));
        });
        socket.on("join", |socket, room: String, ack| async move {
            socket.join(room).await;
            let _ = ack.send(());
        });
        socket.on(
            "shout",
            |socket, (room, text): (String, String), _ack| async move {
                let _ = socket.to(room).emit("shout", text).await;
            },
        );
        socket.on("ask", |socket, (): (), ack| async move {
            let answer = socket
                .emit_with_ack::<String>("question", "name?")
                .timeout(Duration::from_secs(2))
                .await;
            let _ = ack.send(answer.unwrap_or_else(|e| e.to_string()));
        });
        socket.on("boom", |_socket, (): (), _ack| async move {
            panic!("a handler bug");
        });
        socket.on_any(|_socket, event, args: Payload, ack| async move {
            let _ = ack.send(json!({"unhandled": event, "n": args.len()}));
        });
    });
    io.ns("/admin", |_socket: Socket| async move {})
        .middleware(|socket| async move {
            if socket.auth()["token"] == "ok" {
                Ok(())
            } else {
                Err(ConnectError::new("nope").with_data(json!({"code": 7})))
            }
        });
    io
}

fn sid_of(connect: &str) -> String {
    let v: Value = serde_json::from_str(&connect[connect.find('{').unwrap()..]).unwrap();
    v["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn connect_events_and_acks() {
    let io = server();
    let c = Client::open(&io).await;
    let connect = c.connect("").await;
    assert!(connect.starts_with("0{\"sid\":\""), "{connect}");
    assert_eq!(sid_of(&connect).len(), 22);
    assert_ne!(
        sid_of(&connect),
        c.sid,
        "the socket id is not the engine sid"
    );

    c.send(r#"21["echo",{"a":1}]"#).await;
    assert_eq!(c.recv().await, r#"31[{"a":1}]"#);
    c.send(r#"22["sum",2,3]"#).await;
    assert_eq!(c.recv().await, "32[5]");
    // Arguments that do not deserialize: the ack carries an error, the connection lives.
    c.send(r#"23["sum","x"]"#).await;
    assert!(c
        .recv()
        .await
        .starts_with(r#"33[{"error":"invalid arguments for `sum`"#));
    c.send(r#"24["whatever",1,2]"#).await;
    assert_eq!(c.recv().await, r#"34[{"n":2,"unhandled":"whatever"}]"#);
}

#[tokio::test]
async fn server_to_client_ack() {
    let io = server();
    let c = Client::open(&io).await;
    c.connect("").await;
    c.send(r#"27["ask"]"#).await;
    let question = c.recv().await;
    let (id, rest) = question[1..].split_at(question[1..].find('[').unwrap());
    assert_eq!(rest, r#"["question","name?"]"#);
    c.send(&format!(r#"3{id}["ada"]"#)).await;
    assert_eq!(c.recv().await, r#"37["ada"]"#);
}

#[tokio::test]
async fn binary_both_ways() {
    let io = server();
    let c = Client::open(&io).await;
    c.connect("").await;
    let text = br#"451-1["bin",{"_placeholder":true,"num":0}]"#;
    assert_eq!(c.post(&[text, b"bAAEC"]).await, StatusCode::OK); // base64 of 00 01 02
    assert_eq!(c.recv().await, r#"61-1[3,{"_placeholder":true,"num":0}]"#);
    assert_eq!(c.recv_binary().await, Bytes::from_static(&[0, 1, 2]));
}

#[tokio::test]
async fn rooms_and_namespaces() {
    let io = server();
    let (a, b) = (Client::open(&io).await, Client::open(&io).await);
    let b_id = sid_of(&b.connect("").await);
    a.connect("").await;
    for c in [&a, &b] {
        c.send(r#"20["join","r"]"#).await;
        assert_eq!(c.recv().await, "30[null]");
    }
    a.send(r#"2["shout","r","hi"]"#).await;
    assert_eq!(b.recv().await, r#"2["shout","hi"]"#);
    let found = io.within("r").fetch_sockets().await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().any(|s| s.id().as_str() == b_id));

    // A second namespace on the same connection: refused, then accepted.
    let refused = a.connect("/admin,{\"token\":\"bad\"}").await;
    assert_eq!(refused, r#"4/admin,{"message":"nope","data":{"code":7}}"#);
    let accepted = a.connect("/admin,{\"token\":\"ok\"}").await;
    assert!(accepted.starts_with("0/admin,{\"sid\":"), "{accepted}");
    assert_eq!(
        a.connect("/missing,").await,
        r#"4/missing,{"message":"Invalid namespace"}"#
    );
    assert_eq!(io.of("/admin").unwrap().socket_count(), 1);

    // Server-side disconnect of one namespace.
    io.of("/admin").unwrap().disconnect_sockets().await.unwrap();
    assert_eq!(a.recv().await, "1/admin,");
    assert_eq!(io.root().socket_count(), 2);
}

#[tokio::test]
async fn malformed_packets_close_only_that_client() {
    let io = server();
    let good = Client::open(&io).await;
    good.connect("").await;
    for bad in ["2[oops", "8", r#"2["x"]"#, "51-[\"a\"", r#"3["no id"]"#] {
        let c = Client::open(&io).await;
        if bad != r#"2["x"]"# {
            c.connect("").await;
        }
        // `2["x"]` without a CONNECT first is an event for a namespace not joined.
        c.send(bad).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, _) = request(&io, Method::GET, c.uri(), vec![]).await;
        assert_ne!(status, StatusCode::OK, "{bad} should close the session");
    }
    good.send(r#"21["echo",1]"#).await;
    assert_eq!(good.recv().await, "31[1]");
    assert_eq!(io.connection_count(), 1);
}

#[tokio::test]
async fn a_panicking_handler_leaves_the_connection_alone() {
    let io = server();
    let c = Client::open(&io).await;
    c.connect("").await;
    c.send(r#"2["boom"]"#).await;
    c.send(r#"21["echo","still here"]"#).await;
    assert_eq!(c.recv().await, r#"31["still here"]"#);
}
