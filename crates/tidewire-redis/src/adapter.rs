//! The [`Adapter`] of one namespace on a Redis cluster.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value as Json};
use tidewire::adapter::{
    AdapterContext, BoxFuture, BroadcastOptions, RemoteSession, SessionEnding,
};
use tidewire::packet::OutgoingPacket;
use tidewire::{
    AckCollector, Adapter, AdapterError, LocalAdapter, Payload, RecoveryConfig, RemoteSocket, Room,
    Sid,
};

use crate::cluster::{Pending, Recorded, Shared};
use crate::codec;

/// Node's request types (socket.io-redis-adapter), plus tidewire's own.
mod kind {
    pub const SOCKETS: u64 = 0;
    pub const ALL_ROOMS: u64 = 1;
    pub const REMOTE_JOIN: u64 = 2;
    pub const REMOTE_LEAVE: u64 = 3;
    pub const REMOTE_DISCONNECT: u64 = 4;
    pub const REMOTE_FETCH: u64 = 5;
    pub const SERVER_SIDE_EMIT: u64 = 6;
    pub const BROADCAST: u64 = 7;
    pub const BROADCAST_CLIENT_COUNT: u64 = 8;
    pub const BROADCAST_ACK: u64 = 9;
    /// tidewire: a client resumed its session on another node; the socket
    /// still holding it here must end without touching the cluster's record.
    pub const TAKE_OVER: u64 = 100;
}

pub(crate) struct AdapterShared {
    pub cluster: Arc<Shared>,
    pub ctx: AdapterContext,
    pub nsp: Arc<str>,
    pub local: LocalAdapter,
    /// Connected sockets' private ids: pid -> (sid, connected_at).
    live: Mutex<HashMap<Sid, (Sid, u64)>>,
    recovery: OnceLock<Option<RecoveryConfig>>,
    /// Where the stream reader starts for this namespace, read when the
    /// namespace is created (the reader may only get to it a blocking read later).
    pub start: Mutex<Option<String>>,
}

/// The Redis adapter of one namespace; made by [`RedisCluster::adapter`](crate::RedisCluster::adapter).
pub struct RedisAdapter(pub(crate) Arc<AdapterShared>);

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("namespace", &self.0.nsp)
            .finish_non_exhaustive()
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

fn backend(error: redis::RedisError) -> AdapterError {
    AdapterError::Backend(Box::new(error))
}

impl RedisAdapter {
    pub(crate) fn new(cluster: Arc<Shared>, ctx: AdapterContext) -> Self {
        let nsp: Arc<str> = Arc::from(ctx.namespace_name());
        Self(Arc::new(AdapterShared {
            cluster,
            local: LocalAdapter::new(ctx.clone()),
            ctx,
            nsp,
            live: Mutex::default(),
            recovery: OnceLock::new(),
            start: Mutex::new(None),
        }))
    }
}

impl AdapterShared {
    fn recovery(&self) -> Option<&RecoveryConfig> {
        self.recovery
            .get_or_init(|| self.ctx.recovery_config())
            .as_ref()
    }

    fn pid_key(&self, pid: &Sid) -> String {
        self.cluster.tw_key(&self.nsp, &format!("pid#{pid}"))
    }

    fn rooms_key(&self, sid: &Sid) -> String {
        self.cluster.tw_key(&self.nsp, &format!("rooms#{sid}"))
    }

    /// How long a connected socket's record lives between refreshes.
    fn live_ttl(recovery: &RecoveryConfig) -> u64 {
        recovery.window.as_secs().max(10) * 2
    }

    pub(crate) fn local_socket_count(&self) -> usize {
        self.ctx.namespace().map_or(0, |ns| ns.socket_count())
    }

    /// Keeps connected sockets' records alive (every few heartbeats).
    pub(crate) fn refresh_sessions(&self, tick: u64) {
        let Some(recovery) = self.recovery() else {
            return;
        };
        let ttl = Self::live_ttl(recovery);
        let every = (ttl / 3 / self.cluster.config.heartbeat.as_secs().max(1)).max(1);
        if tick % every != 0 {
            return;
        }
        let live: Vec<(Sid, Sid)> = self
            .live
            .lock()
            .iter()
            .map(|(pid, (sid, _))| (*pid, *sid))
            .collect();
        for (pid, sid) in live {
            let mut a = redis::cmd("EXPIRE");
            a.arg(self.pid_key(&pid)).arg(ttl);
            self.cluster.write(a);
            let mut b = redis::cmd("EXPIRE");
            b.arg(self.rooms_key(&sid)).arg(ttl);
            self.cluster.write(b);
        }
    }

    /// A broadcast from a Node server or emitter (tidewire nodes use the stream).
    pub(crate) fn on_node_broadcast(&self, payload: &[u8]) {
        let (uid, packet, opts) = match codec::decode_node_broadcast(payload) {
            Ok(parts) => parts,
            Err(error) => {
                tracing::debug!(%error, "ignoring a malformed broadcast");
                return;
            }
        };
        if uid.starts_with("tidewire~") {
            return;
        }
        let nsp = codec::field(&packet, "nsp")
            .and_then(rmpv::Value::as_str)
            .unwrap_or("/");
        if nsp != &*self.nsp {
            return;
        }
        match codec::packet_from_node(&packet, &self.nsp) {
            Ok(out) => self.local.broadcast_local_now(&out, &opts),
            Err(error) => tracing::debug!(%error, "ignoring a broadcast this server cannot send"),
        }
    }

    fn respond(&self, response: Json) {
        let body = serde_json::to_vec(&response).unwrap_or_default();
        self.cluster
            .publish(self.cluster.response_channel(&self.nsp), body);
    }

    /// A request from another node.
    pub(crate) fn on_request(self: &Arc<Self>, payload: &[u8]) {
        let request = match codec::read_message(payload) {
            Some(codec::Message::Json(request)) => request,
            Some(codec::Message::MessagePack(request)) => {
                let kind = codec::field(&request, "type").and_then(rmpv::Value::as_u64);
                if kind == Some(kind::BROADCAST) {
                    self.on_broadcast_with_ack(&request);
                }
                return;
            }
            None => return,
        };
        if request.get("uid").and_then(Json::as_str) == Some(self.cluster.uid.as_str()) {
            return;
        }
        let Some(kind) = request.get("type").and_then(Json::as_u64) else {
            return;
        };
        let request_id = request.get("requestId").cloned().unwrap_or(Json::Null);
        let this = self.clone();
        tokio::spawn(async move {
            let local = &this.local;
            match kind {
                kind::SOCKETS => {
                    let rooms = codec::opts_from_json(Some(&request)).rooms;
                    let sockets = local.sockets(rooms).await.unwrap_or_default();
                    let ids: Vec<String> = sockets.iter().map(ToString::to_string).collect();
                    this.respond(json!({ "requestId": request_id, "sockets": ids }));
                }
                kind::ALL_ROOMS => {
                    let mut rooms: Vec<String> = Vec::new();
                    for sid in local.sockets(Vec::new()).await.unwrap_or_default() {
                        for room in local.socket_rooms(sid).await.unwrap_or_default() {
                            if !rooms.iter().any(|r| r == room.as_str()) {
                                rooms.push(room.to_string());
                            }
                        }
                    }
                    this.respond(json!({ "requestId": request_id, "rooms": rooms }));
                }
                kind::REMOTE_JOIN | kind::REMOTE_LEAVE => {
                    let rooms = codec::rooms_from_json(request.get("rooms"));
                    if let Some(opts) = request.get("opts") {
                        let opts = codec::opts_from_json(Some(opts));
                        let _ = if kind == kind::REMOTE_JOIN {
                            local.add_sockets(opts, rooms).await
                        } else {
                            local.del_sockets(opts, rooms).await
                        };
                        return;
                    }
                    let (Some(sid), Some(room)) = (
                        request
                            .get("sid")
                            .and_then(Json::as_str)
                            .and_then(|s| s.parse().ok()),
                        request.get("room").and_then(Json::as_str),
                    ) else {
                        return;
                    };
                    let Some(socket) = this.ctx.local_socket(&sid) else {
                        return;
                    };
                    if kind == kind::REMOTE_JOIN {
                        socket.join(room).await;
                    } else {
                        socket.leave(room).await;
                    }
                    this.respond(json!({ "requestId": request_id }));
                }
                kind::REMOTE_DISCONNECT => {
                    let close = request
                        .get("close")
                        .and_then(Json::as_bool)
                        .unwrap_or(false);
                    if let Some(opts) = request.get("opts") {
                        let opts = codec::opts_from_json(Some(opts));
                        let _ = local.disconnect_sockets(opts, close).await;
                        return;
                    }
                    let Some(sid) = request
                        .get("sid")
                        .and_then(Json::as_str)
                        .and_then(|s| s.parse::<Sid>().ok())
                    else {
                        return;
                    };
                    if let Some(socket) = this.ctx.local_socket(&sid) {
                        if close {
                            socket.close();
                        } else {
                            socket.disconnect();
                        }
                        this.respond(json!({ "requestId": request_id }));
                    }
                }
                kind::REMOTE_FETCH => {
                    let opts = codec::opts_from_json(request.get("opts"));
                    let found = local.fetch_sockets(opts).await.unwrap_or_default();
                    let sockets: Vec<Json> = found
                        .iter()
                        .map(|s| {
                            json!({
                                "id": s.id().to_string(),
                                "handshake": {},
                                "rooms": s.rooms().iter().map(Room::as_str).collect::<Vec<_>>(),
                                "data": {},
                            })
                        })
                        .collect();
                    this.respond(json!({ "requestId": request_id, "sockets": sockets }));
                }
                kind::SERVER_SIDE_EMIT => {
                    let mut data = match request.get("data") {
                        Some(Json::Array(items)) => items.clone(),
                        _ => return,
                    };
                    if data.is_empty() {
                        return;
                    }
                    let Json::String(event) = data.remove(0) else {
                        return;
                    };
                    this.ctx.server_side_event(event, Payload::new(data));
                    if !request_id.is_null() {
                        // Server-side acks are not supported here: answer so the sender does not wait.
                        this.respond(json!({
                            "type": kind::SERVER_SIDE_EMIT,
                            "requestId": request_id,
                            "data": Json::Null,
                        }));
                    }
                }
                kind::TAKE_OVER => {
                    if let Some(sid) = request
                        .get("sid")
                        .and_then(Json::as_str)
                        .and_then(|s| s.parse::<Sid>().ok())
                    {
                        this.ctx.take_over(&sid);
                    }
                }
                _ => tracing::debug!(kind, "ignoring an unknown request"),
            }
        });
    }

    /// Another node's broadcast with acks: send it here, report how many
    /// sockets got it, then their answers.
    fn on_broadcast_with_ack(self: &Arc<Self>, request: &rmpv::Value) {
        let uid = codec::field(request, "uid").and_then(rmpv::Value::as_str);
        if uid == Some(self.cluster.uid.as_str()) {
            return;
        }
        let Some(request_id) = codec::field(request, "requestId")
            .and_then(rmpv::Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let Some(packet) = codec::field(request, "packet") else {
            return;
        };
        let id = self.ctx.next_ack_id();
        let Ok(packet) = codec::packet_from_node_with_id(packet, &self.nsp, Some(id)) else {
            return;
        };
        let opts = codec::opts_from_node(codec::field(request, "opts"));
        let timeout = opts.flags.timeout.unwrap_or(Duration::from_secs(5));
        let this = self.clone();
        tokio::spawn(async move {
            let acks = AckCollector::new();
            let _ = this
                .local
                .broadcast_with_ack(packet, opts, acks.clone())
                .await;
            this.respond(json!({
                "type": kind::BROADCAST_CLIENT_COUNT,
                "requestId": request_id,
                "clientCount": acks.expected_count(),
            }));
            for (sid, answer) in acks.wait(timeout).await {
                let Ok(payload) = answer else { continue };
                // Node's adapter carries one ack argument per answer.
                let attachments = payload.attachments().to_vec();
                let args = payload.args().first().cloned().unwrap_or(Json::Null);
                let message = rmpv::Value::Map(vec![
                    (
                        rmpv::Value::from("type"),
                        rmpv::Value::from(kind::BROADCAST_ACK),
                    ),
                    (
                        rmpv::Value::from("requestId"),
                        rmpv::Value::from(request_id.as_str()),
                    ),
                    (
                        rmpv::Value::from("packet"),
                        codec::msgpack_from_json(&args, &attachments),
                    ),
                    (rmpv::Value::from("sid"), rmpv::Value::from(sid.as_str())),
                ]);
                this.cluster.publish(
                    this.cluster.response_channel(&this.nsp),
                    codec::write_msgpack(&message),
                );
            }
        });
    }

    /// Sends a broadcast: `local` ones to this node's sockets only (no
    /// cluster-wide offset), the others through the cluster's stream.
    fn send(&self, packet: OutgoingPacket, opts: BroadcastOptions) {
        if opts.flags.local {
            self.local.broadcast_local_now(&packet, &opts);
        } else {
            self.cluster.record(
                Recorded {
                    nsp: self.nsp.clone(),
                    packet,
                    opts,
                },
                self,
            );
        }
    }

    /// Asks the other nodes to make the sockets `opts` selects join or leave `rooms`.
    fn publish_membership(&self, kind: u64, opts: &BroadcastOptions, rooms: &[Room]) {
        if opts.flags.local {
            return;
        }
        self.publish_request(request(
            kind,
            json!({
                "opts": codec::opts_to_json(opts),
                "rooms": rooms.iter().map(Room::as_str).collect::<Vec<_>>(),
            }),
        ));
    }

    fn publish_request(&self, mut request: serde_json::Map<String, Json>) {
        request.insert("uid".into(), Json::from(self.cluster.uid.clone()));
        let body = serde_json::to_vec(&Json::Object(request)).unwrap_or_default();
        self.cluster
            .publish(self.cluster.request_channel(&self.nsp), body);
    }
}

fn request(kind: u64, fields: Json) -> serde_json::Map<String, Json> {
    let mut map = match fields {
        Json::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    map.insert("type".into(), Json::from(kind));
    map
}

impl Adapter for RedisAdapter {
    fn init(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        Box::pin(async move {
            let shared = &self.0;
            let mut conn = shared.cluster.cmd.clone();
            match crate::cluster::start_position(&shared.cluster, &mut conn, &shared.nsp, shared)
                .await
            {
                Ok(position) => *shared.start.lock() = Some(position),
                // The stream reader finds its start itself once Redis is back.
                Err(error) => tracing::debug!(%error, "stream position unknown at creation"),
            }
            shared
                .cluster
                .namespaces
                .write()
                .insert(shared.nsp.to_string(), Arc::downgrade(shared));
            shared.cluster.subscribe_namespace(&shared.nsp).await;
            Ok(())
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.0.cluster.namespaces.write().remove(&*self.0.nsp);
        ready(Ok(()))
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async move {
            self.0
                .cluster
                .num_sub(&self.0.nsp)
                .await
                .map(|n| n.max(1))
                .map_err(backend)
        })
    }

    fn add_all(&self, sid: Sid, rooms: Vec<Room>) -> BoxFuture<'_, Result<(), AdapterError>> {
        if self.0.recovery().is_some() && !rooms.is_empty() {
            let mut cmd = redis::cmd("SADD");
            cmd.arg(self.0.rooms_key(&sid));
            for room in &rooms {
                cmd.arg(room.as_str());
            }
            self.0.cluster.write(cmd);
        }
        self.0.local.add_all(sid, rooms)
    }

    fn del(&self, sid: Sid, room: Room) -> BoxFuture<'_, Result<(), AdapterError>> {
        if self.0.recovery().is_some() {
            let mut cmd = redis::cmd("SREM");
            cmd.arg(self.0.rooms_key(&sid)).arg(room.as_str());
            self.0.cluster.write(cmd);
        }
        self.0.local.del(sid, room)
    }

    fn del_all(&self, sid: Sid) -> BoxFuture<'_, Result<(), AdapterError>> {
        // The room mirror in Redis stays until `session_ended` says what to keep.
        self.0.local.del_all(sid)
    }

    fn broadcast(
        &self,
        packet: OutgoingPacket,
        opts: BroadcastOptions,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.0.send(packet, opts);
        ready(Ok(()))
    }

    fn broadcast_local_now(&self, packet: &OutgoingPacket, opts: &BroadcastOptions) {
        self.0.local.broadcast_local_now(packet, opts);
    }

    fn record(&self, packet: &OutgoingPacket, opts: &BroadcastOptions) -> bool {
        self.0.send(packet.clone(), opts.clone());
        true
    }

    fn broadcast_with_ack(
        &self,
        packet: OutgoingPacket,
        opts: BroadcastOptions,
        acks: AckCollector,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        Box::pin(async move {
            let shared = &self.0;
            if !opts.flags.local {
                match shared.cluster.num_sub(&shared.nsp).await {
                    Ok(n) if n > 1 => {
                        let node_packet = codec::packet_to_node(&packet)
                            .map_err(|e| AdapterError::Backend(Box::new(e)))?;
                        let request_id =
                            format!("{}-{}", shared.cluster.uid, rand::random::<u64>());
                        acks.expect_nodes(n - 1);
                        shared
                            .cluster
                            .pending
                            .lock()
                            .insert(request_id.clone(), Pending::Acks(acks.clone()));
                        let message = rmpv::Value::Map(vec![
                            (
                                rmpv::Value::from("uid"),
                                rmpv::Value::from(shared.cluster.uid.as_str()),
                            ),
                            (
                                rmpv::Value::from("requestId"),
                                rmpv::Value::from(request_id.as_str()),
                            ),
                            (
                                rmpv::Value::from("type"),
                                rmpv::Value::from(kind::BROADCAST),
                            ),
                            (rmpv::Value::from("packet"), node_packet),
                            (rmpv::Value::from("opts"), codec::opts_to_node(&opts)),
                        ]);
                        shared.cluster.publish(
                            shared.cluster.request_channel(&shared.nsp),
                            codec::write_msgpack(&message),
                        );
                        let cluster = shared.cluster.clone();
                        let timeout = opts.flags.timeout.unwrap_or(Duration::from_secs(5));
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout + Duration::from_secs(1)).await;
                            cluster.pending.lock().remove(&request_id);
                        });
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "broadcast with acks reaches this node only: Redis unreachable");
                    }
                }
            }
            shared.local.broadcast_with_ack(packet, opts, acks).await
        })
    }

    fn sockets(&self, rooms: Vec<Room>) -> BoxFuture<'_, Result<Vec<Sid>, AdapterError>> {
        Box::pin(async move {
            let shared = &self.0;
            let mut found = shared.local.sockets(rooms.clone()).await?;
            let mut req = request(
                kind::SOCKETS,
                json!({ "rooms": rooms.iter().map(Room::as_str).collect::<Vec<_>>() }),
            );
            for response in shared.cluster.collect(&shared.nsp, &mut req).await? {
                for id in response
                    .get("sockets")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(sid) = id.as_str().and_then(|s| s.parse::<Sid>().ok()) {
                        if !found.contains(&sid) {
                            found.push(sid);
                        }
                    }
                }
            }
            Ok(found)
        })
    }

    fn socket_rooms(&self, sid: Sid) -> BoxFuture<'_, Result<Vec<Room>, AdapterError>> {
        self.0.local.socket_rooms(sid)
    }

    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<'_, Result<Vec<RemoteSocket>, AdapterError>> {
        Box::pin(async move {
            let shared = &self.0;
            let mut found = shared.local.fetch_sockets(opts.clone()).await?;
            if opts.flags.local {
                return Ok(found);
            }
            let Some(ns) = shared.ctx.namespace() else {
                return Ok(found);
            };
            let mut req = request(
                kind::REMOTE_FETCH,
                json!({ "opts": codec::opts_to_json(&opts) }),
            );
            for response in shared.cluster.collect(&shared.nsp, &mut req).await? {
                for socket in response
                    .get("sockets")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(sid) = socket
                        .get("id")
                        .and_then(Json::as_str)
                        .and_then(|s| s.parse::<Sid>().ok())
                    else {
                        // A Node server's socket: its id is not a tidewire id.
                        continue;
                    };
                    let rooms = codec::rooms_from_json(socket.get("rooms"));
                    found.push(RemoteSocket::from_remote(ns.clone(), sid, rooms));
                }
            }
            Ok(found)
        })
    }

    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.0.publish_membership(kind::REMOTE_JOIN, &opts, &rooms);
        self.0.local.add_sockets(opts, rooms)
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.0.publish_membership(kind::REMOTE_LEAVE, &opts, &rooms);
        self.0.local.del_sockets(opts, rooms)
    }

    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        if !opts.flags.local {
            self.0.publish_request(request(
                kind::REMOTE_DISCONNECT,
                json!({ "opts": codec::opts_to_json(&opts), "close": close }),
            ));
        }
        self.0.local.disconnect_sockets(opts, close)
    }

    fn server_side_emit(
        &self,
        event: String,
        args: Payload,
    ) -> BoxFuture<'_, Result<(), AdapterError>> {
        let mut data = vec![Json::from(event)];
        data.extend(args.args().iter().cloned());
        self.0
            .publish_request(request(kind::SERVER_SIDE_EMIT, json!({ "data": data })));
        ready(Ok(()))
    }

    fn session_connected(&self, pid: Sid, sid: Sid, connected_at: u64) {
        let Some(recovery) = self.0.recovery() else {
            return;
        };
        self.0.live.lock().insert(pid, (sid, connected_at));
        let ttl = AdapterShared::live_ttl(recovery);
        let mut set = redis::cmd("SET");
        set.arg(self.0.pid_key(&pid))
            .arg(json!({ "sid": sid.as_str(), "at": connected_at }).to_string())
            .arg("EX")
            .arg(ttl);
        self.0.cluster.write(set);
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(self.0.rooms_key(&sid)).arg(ttl);
        self.0.cluster.write(expire);
    }

    fn session_ended(&self, pid: Sid, sid: Sid, ending: SessionEnding) {
        let Some(recovery) = self.0.recovery() else {
            return;
        };
        let connected_at = {
            let mut live = self.0.live.lock();
            match live.get(&pid) {
                Some((s, at)) if *s == sid => {
                    let at = *at;
                    live.remove(&pid);
                    at
                }
                _ => 0,
            }
        };
        match ending {
            SessionEnding::TakenOver => {}
            SessionEnding::Final => {
                let mut del = redis::cmd("DEL");
                del.arg(self.0.pid_key(&pid)).arg(self.0.rooms_key(&sid));
                self.0.cluster.write(del);
            }
            SessionEnding::Resumable(rooms) => {
                let window = recovery.window.as_secs().max(1);
                let mut set = redis::cmd("SET");
                set.arg(self.0.pid_key(&pid))
                    .arg(json!({ "sid": sid.as_str(), "at": connected_at }).to_string())
                    .arg("EX")
                    .arg(window);
                self.0.cluster.write(set);
                let rooms_key = self.0.rooms_key(&sid);
                let mut del = redis::cmd("DEL");
                del.arg(&rooms_key);
                self.0.cluster.write(del);
                if !rooms.is_empty() {
                    let mut add = redis::cmd("SADD");
                    add.arg(&rooms_key);
                    for room in &rooms {
                        add.arg(room.as_str());
                    }
                    self.0.cluster.write(add);
                    let mut expire = redis::cmd("EXPIRE");
                    expire.arg(&rooms_key).arg(window);
                    self.0.cluster.write(expire);
                }
            }
        }
    }

    fn take_remote_session(
        &self,
        pid: Sid,
    ) -> BoxFuture<'_, Result<Option<RemoteSession>, AdapterError>> {
        Box::pin(async move {
            let shared = &self.0;
            if shared.recovery().is_none() {
                return Ok(None);
            }
            let mut getdel = redis::cmd("GETDEL");
            getdel.arg(shared.pid_key(&pid));
            let Some(record) = shared
                .cluster
                .query::<Option<String>>(&getdel)
                .await
                .map_err(backend)?
            else {
                return Ok(None);
            };
            let record: Json =
                serde_json::from_str(&record).map_err(|e| AdapterError::Backend(Box::new(e)))?;
            let Some(sid) = record
                .get("sid")
                .and_then(Json::as_str)
                .and_then(|s| s.parse::<Sid>().ok())
            else {
                return Ok(None);
            };
            let connected_at = record.get("at").and_then(Json::as_u64).unwrap_or(0);
            let mut members = redis::cmd("SMEMBERS");
            members.arg(shared.rooms_key(&sid));
            let rooms: Vec<String> = shared.cluster.query(&members).await.map_err(backend)?;
            // If the old socket still lives on some node (a connection the
            // server has not seen die), it ends there without touching the record.
            shared.publish_request(request(kind::TAKE_OVER, json!({ "sid": sid.as_str() })));
            Ok(Some(RemoteSession {
                sid,
                rooms: rooms.into_iter().map(Room::from).collect(),
                connected_at,
            }))
        })
    }
}
