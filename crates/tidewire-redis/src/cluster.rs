//! One node's link to the cluster: its Redis connections and the tasks that
//! keep them useful (subscriber, stream reader, sequencer, writer, heartbeat).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use serde_json::Value as Json;
use tidewire::adapter::{AdapterContext, BroadcastOptions};
use tidewire::packet::OutgoingPacket;
use tidewire::{AckCollector, Adapter};
use tokio::sync::{mpsc, oneshot};

use crate::adapter::{AdapterShared, RedisAdapter};
use crate::codec;
use crate::config::RedisConfig;
use crate::forward::{ForwardLayer, Owner, SessionRouter};
use crate::Error;

/// Gives a recorded packet its cluster-wide offset (a counter that restarts
/// above any earlier value if Redis lost its data), appends it to the
/// namespace's stream, and publishes it for Node servers, in one round trip.
const RECORD_SCRIPT: &str = r"
local seq = redis.call('INCR', KEYS[1])
if seq == 1 then
  local t = redis.call('TIME')
  seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('SET', KEYS[1], string.format('%.0f', seq))
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('%.0f', seq) .. '-0', 'd', ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
";

/// Most packets waiting for the sequencer before broadcasts fall back to local delivery.
const SEQUENCER_QUEUE: usize = 65_536;
/// Most queued writes (room mirrors, session records) before new ones are dropped.
const WRITER_QUEUE: usize = 65_536;
/// How long the stream reader blocks in one XREAD.
const READ_BLOCK_MS: usize = 1000;

/// A node of the cluster, as the heartbeat table shows it.
///
/// ```
/// # async fn demo(cluster: tidewire_redis::RedisCluster) {
/// for node in cluster.nodes() {
///     println!("{} holds {} sockets", node.name, node.sockets);
/// }
/// # }
/// ```
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its unique id (also its uid in Redis messages).
    pub uid: String,
    /// The prefix of its session ids.
    pub tag: String,
    /// Its name.
    pub name: String,
    /// Where other nodes forward requests for its sessions.
    pub addr: Option<SocketAddr>,
    /// How many sockets (all namespaces) it holds.
    pub sockets: usize,
    /// When it last said it was alive (ms since the Unix epoch).
    pub seen_ms: u64,
}

pub(crate) struct Recorded {
    pub nsp: Arc<str>,
    pub packet: OutgoingPacket,
    pub opts: BroadcastOptions,
}

pub(crate) enum Pending {
    /// Collecting one JSON response per other node.
    Responses {
        remaining: usize,
        items: Vec<Json>,
        done: Option<oneshot::Sender<Vec<Json>>>,
    },
    /// A broadcast with acks: other nodes report counts and answers.
    Acks(AckCollector),
}

pub(crate) struct Shared {
    pub config: RedisConfig,
    pub uid: String,
    pub tag: String,
    pub name: String,
    pub cmd: ConnectionManager,
    sub: ConnectionManager,
    reader: ConnectionManager,
    pub namespaces: RwLock<HashMap<String, Weak<AdapterShared>>>,
    pub pending: Mutex<HashMap<String, Pending>>,
    seq_tx: mpsc::Sender<Recorded>,
    write_tx: mpsc::Sender<redis::Cmd>,
    nodes: RwLock<HashMap<String, NodeInfo>>,
    advertised: Mutex<Option<SocketAddr>>,
    redis_up: AtomicBool,
    sub_dirty: AtomicBool,
    dropped_writes: AtomicU64,
    fallbacks: AtomicU64,
}

/// This node's membership in a Redis cluster: make one per process, then
/// give its adapter to the server and its forwarding layer to the router.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tidewire_redis::{RedisCluster, RedisConfig};
/// let cluster = RedisCluster::new(RedisConfig::new("redis://127.0.0.1:6379/"))?;
/// let io = cluster.install(tidewire::SocketIo::builder()).build();
/// let app = axum::Router::new()
///     .merge(io.router())
///     .layer(cluster.forward_layer());
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
/// cluster.set_advertised_addr(listener.local_addr()?);
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCluster(pub(crate) Arc<Shared>);

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("uid", &self.0.uid)
            .field("name", &self.0.name)
            .finish_non_exhaustive()
    }
}

fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RedisCluster {
    /// Joins the cluster at `config.url`. Returns at once: connections come
    /// up in the background and come back by themselves after Redis goes
    /// away (local clients are served meanwhile). Must run inside a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tidewire_redis::Error> {
    /// let cluster = tidewire_redis::RedisCluster::new(tidewire_redis::RedisConfig::new("redis://127.0.0.1/"))?;
    /// # Ok(()) }
    /// ```
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(config.url.as_str())?;
        let info = client.get_connection_info().clone();
        let resp3 = info.clone().set_redis_settings(
            info.redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        let sub_client = redis::Client::open(resp3)?;
        let base = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let cmd = ConnectionManager::new_lazy_with_config(
            client.clone(),
            base.clone()
                .set_response_timeout(Some(config.request_timeout)),
        )?;
        let reader = ConnectionManager::new_lazy_with_config(
            client,
            base.clone()
                .set_response_timeout(Some(Duration::from_millis(READ_BLOCK_MS as u64 + 4000))),
        )?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let sub = ConnectionManager::new_lazy_with_config(
            sub_client,
            base.set_response_timeout(Some(config.request_timeout))
                .set_push_sender(push_tx)
                .set_automatic_resubscription(),
        )?;
        let (seq_tx, seq_rx) = mpsc::channel(SEQUENCER_QUEUE);
        let (write_tx, write_rx) = mpsc::channel(WRITER_QUEUE);
        let tag = random_string(4);
        let uid = format!("tidewire~{tag}{}", random_string(8));
        let name = config.node_name.clone().unwrap_or_else(|| tag.clone());
        let advertised = config.advertised_addr;
        let shared = Arc::new(Shared {
            config,
            uid,
            tag,
            name,
            cmd,
            sub,
            reader,
            namespaces: RwLock::default(),
            pending: Mutex::default(),
            seq_tx,
            write_tx,
            nodes: RwLock::default(),
            advertised: Mutex::new(advertised),
            redis_up: AtomicBool::new(true),
            sub_dirty: AtomicBool::new(true),
            dropped_writes: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(subscriber(weak.clone(), push_rx));
        tokio::spawn(sequencer(weak.clone(), seq_rx));
        tokio::spawn(writer(weak.clone(), write_rx));
        tokio::spawn(stream_reader(weak.clone()));
        tokio::spawn(heartbeat(weak));
        tracing::info!(uid = %shared.uid, name = %shared.name, "joined the Redis cluster");
        Ok(Self(shared))
    }

    /// The adapter factory for [`tidewire::SocketIoBuilder::adapter`].
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// let io = tidewire::SocketIo::builder().adapter(cluster.adapter()).build();
    /// # }
    /// ```
    pub fn adapter(&self) -> impl Fn(AdapterContext) -> Arc<dyn Adapter> + Send + Sync + 'static {
        let shared = self.0.clone();
        move |ctx| Arc::new(RedisAdapter::new(shared.clone(), ctx)) as Arc<dyn Adapter>
    }

    /// Sets the adapter and this node's session-id prefix on `builder`.
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// let io = cluster.install(tidewire::SocketIo::builder()).build();
    /// # }
    /// ```
    pub fn install(&self, builder: tidewire::SocketIoBuilder) -> tidewire::SocketIoBuilder {
        builder
            .sid_prefix(self.0.tag.clone())
            .adapter(self.adapter())
    }

    /// The tower layer that forwards a request for a session held by another
    /// node to that node, so no sticky balancing is needed. Put it around
    /// the router that serves the server.
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster, io: tidewire::SocketIo) {
    /// let app = axum::Router::new().merge(io.router()).layer(cluster.forward_layer());
    /// # }
    /// ```
    pub fn forward_layer(&self) -> ForwardLayer {
        ForwardLayer::new(Arc::new(Router(Arc::downgrade(&self.0))))
    }

    /// Where the other nodes reach this one (call it once the listener is bound).
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// cluster.set_advertised_addr("127.0.0.1:3000".parse().unwrap());
    /// # }
    /// ```
    pub fn set_advertised_addr(&self, addr: SocketAddr) {
        *self.0.advertised.lock() = Some(addr);
    }

    /// Where the other nodes reach this one, once known.
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// assert!(cluster.advertised_addr().is_none() || true);
    /// # }
    /// ```
    pub fn advertised_addr(&self) -> Option<SocketAddr> {
        *self.0.advertised.lock()
    }

    /// This node's unique id.
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// assert!(cluster.uid().starts_with("tidewire~"));
    /// # }
    /// ```
    pub fn uid(&self) -> &str {
        &self.0.uid
    }

    /// This node's name.
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// println!("I am {}", cluster.name());
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The live nodes (this one included), from the last heartbeat round.
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// let total: usize = cluster.nodes().iter().map(|n| n.sockets).sum();
    /// # }
    /// ```
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self.0.nodes.read().values().cloned().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }

    /// Leaves the cluster at shutdown: the other nodes stop forwarding to
    /// this one at once instead of after the heartbeat timeout.
    ///
    /// ```no_run
    /// # async fn demo(cluster: tidewire_redis::RedisCluster) {
    /// cluster.leave().await;
    /// # }
    /// ```
    pub async fn leave(&self) {
        let mut del = redis::cmd("HDEL");
        del.arg(self.0.nodes_key()).arg(&self.0.uid);
        if let Err(error) = self.0.query::<i64>(&del).await {
            tracing::warn!(%error, "could not leave the cluster table; the others will notice in a few seconds");
        }
    }

    /// Whether Redis answered the last command (false while it is away).
    ///
    /// ```no_run
    /// # fn demo(cluster: tidewire_redis::RedisCluster) {
    /// if !cluster.is_connected() { tracing::warn!("serving local clients only"); }
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.0.redis_up.load(Ordering::Relaxed)
    }
}

/// Finds a session's node from the tag its id starts with.
struct Router(Weak<Shared>);

impl SessionRouter for Router {
    fn owner(&self, sid: &str) -> Owner {
        let Some(shared) = self.0.upgrade() else {
            return Owner::Local;
        };
        let tag_len = shared.tag.len();
        let Some(tag) = sid.get(..tag_len) else {
            return Owner::Unknown;
        };
        if tag == shared.tag {
            return Owner::Local;
        }
        let nodes = shared.nodes.read();
        match nodes.values().find(|n| n.tag == tag) {
            Some(NodeInfo {
                addr: Some(addr), ..
            }) => Owner::Remote(*addr),
            _ => Owner::Unknown,
        }
    }

    fn refresh(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let weak = self.0.clone();
        Box::pin(async move {
            if let Some(shared) = weak.upgrade() {
                shared.read_nodes(None).await;
            }
        })
    }
}

impl Shared {
    pub(crate) fn adapter_for(&self, nsp: &str) -> Option<Arc<AdapterShared>> {
        self.namespaces.read().get(nsp).and_then(Weak::upgrade)
    }

    pub(crate) fn channel(&self, nsp: &str) -> String {
        format!("{}#{}#", self.config.key, nsp)
    }

    pub(crate) fn request_channel(&self, nsp: &str) -> String {
        format!("{}-request#{}#", self.config.key, nsp)
    }

    pub(crate) fn response_channel(&self, nsp: &str) -> String {
        format!("{}-response#{}#", self.config.key, nsp)
    }

    pub(crate) fn tw_key(&self, nsp: &str, what: &str) -> String {
        format!("{}-tidewire#{}#{}", self.config.key, nsp, what)
    }

    fn mark(&self, up: bool, error: Option<&redis::RedisError>) {
        let was = self.redis_up.swap(up, Ordering::Relaxed);
        match (was, up) {
            (true, false) => tracing::error!(
                error = %error.map(ToString::to_string).unwrap_or_default(),
                "lost Redis: serving local clients only; cross-node broadcasts, acks and resumes wait until it is back"
            ),
            (false, true) => {
                tracing::warn!(
                    fallbacks = self.fallbacks.load(Ordering::Relaxed),
                    dropped_writes = self.dropped_writes.load(Ordering::Relaxed),
                    "Redis is back: cross-node traffic resumes"
                );
                self.sub_dirty.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// Runs a command on the shared connection, noting whether Redis answered.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, redis::RedisError> {
        let mut conn = self.cmd.clone();
        let result = cmd.query_async::<T>(&mut conn).await;
        match &result {
            Ok(_) => self.mark(true, None),
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                self.mark(false, Some(e))
            }
            Err(_) => {}
        }
        result
    }

    /// Publishes without waiting for the answer; errors are logged.
    pub(crate) fn publish(self: &Arc<Self>, channel: String, message: Vec<u8>) {
        let shared = self.clone();
        tokio::spawn(async move {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(channel).arg(message);
            if let Err(error) = shared.query::<i64>(&cmd).await {
                tracing::debug!(%error, "publish failed");
            }
        });
    }

    /// Queues a write (room mirror, session record) behind the earlier ones.
    pub(crate) fn write(&self, cmd: redis::Cmd) {
        if self.write_tx.try_send(cmd).is_err() {
            self.dropped_writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands a packet to the sequencer; delivers it here without an offset
    /// when Redis is known to be away or the queue is full.
    pub(crate) fn record(&self, recorded: Recorded, local: &AdapterShared) {
        if !self.is_up() {
            self.fallback(&recorded, local);
            return;
        }
        if let Err(error) = self.seq_tx.try_send(recorded) {
            let recorded = match error {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            self.fallback(&recorded, local);
        }
    }

    fn fallback(&self, recorded: &Recorded, local: &AdapterShared) {
        let n = self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if n % 1000 == 0 {
            tracing::warn!(
                total = n + 1,
                "broadcast delivered on this node only (Redis unreachable or behind): other nodes miss it and it cannot be replayed"
            );
        }
        local
            .local
            .broadcast_local_now(&recorded.packet, &recorded.opts);
    }

    /// How many nodes (this one included) listen on `nsp`'s request channel.
    pub(crate) async fn num_sub(&self, nsp: &str) -> Result<usize, redis::RedisError> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("NUMSUB").arg(self.request_channel(nsp));
        let (_, n): (String, usize) = self.query(&cmd).await?;
        Ok(n)
    }

    pub(crate) async fn subscribe_namespace(&self, nsp: &str) {
        let channels = vec![
            self.request_channel(nsp),
            self.response_channel(nsp),
            format!("{}{}#", self.response_channel(nsp), self.uid),
        ];
        let mut sub = self.sub.clone();
        if let Err(error) = sub.subscribe(&channels).await {
            tracing::debug!(%error, namespace = nsp, "subscribe failed; retried with the next heartbeat");
            self.sub_dirty.store(true, Ordering::Relaxed);
        }
    }

    async fn resubscribe_all(&self) {
        let mut sub = self.sub.clone();
        let pattern = format!("{}#*", self.config.key);
        if let Err(error) = sub.psubscribe(&pattern).await {
            tracing::debug!(%error, "psubscribe failed; retried with the next heartbeat");
            return;
        }
        let names: Vec<String> = self.namespaces.read().keys().cloned().collect();
        self.sub_dirty.store(false, Ordering::Relaxed);
        for nsp in names {
            self.subscribe_namespace(&nsp).await;
        }
    }

    /// Registers a pending request and waits for `expected` responses.
    pub(crate) async fn collect(
        self: &Arc<Self>,
        nsp: &str,
        request: &mut serde_json::Map<String, Json>,
    ) -> Result<Vec<Json>, tidewire::AdapterError> {
        let expected = self
            .num_sub(nsp)
            .await
            .map_err(|e| tidewire::AdapterError::Backend(Box::new(e)))?
            .saturating_sub(1);
        if expected == 0 {
            return Ok(Vec::new());
        }
        let request_id = random_string(12);
        request.insert("requestId".into(), Json::from(request_id.clone()));
        request.insert("uid".into(), Json::from(self.uid.clone()));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(
            request_id.clone(),
            Pending::Responses {
                remaining: expected,
                items: Vec::new(),
                done: Some(tx),
            },
        );
        let body = serde_json::to_vec(&Json::Object(request.clone())).unwrap_or_default();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.request_channel(nsp)).arg(body);
        if let Err(e) = self.query::<i64>(&cmd).await {
            self.pending.lock().remove(&request_id);
            return Err(tidewire::AdapterError::Backend(Box::new(e)));
        }
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(items)) => Ok(items),
            _ => {
                self.pending.lock().remove(&request_id);
                Err(tidewire::AdapterError::Timeout(timeout))
            }
        }
    }

    fn on_response(&self, payload: &[u8]) {
        let mut attachments = Vec::new();
        let response = match codec::read_message(payload) {
            Some(codec::Message::Json(response)) => response,
            // Broadcast-with-ack answers: binary arguments become attachments.
            Some(codec::Message::MessagePack(response)) => {
                codec::json_from_msgpack(&response, &mut attachments)
            }
            None => return,
        };
        let Some(id) = response.get("requestId").and_then(Json::as_str) else {
            return;
        };
        let mut pending = self.pending.lock();
        match pending.get_mut(id) {
            Some(Pending::Responses {
                remaining,
                items,
                done,
            }) => {
                items.push(response.clone());
                *remaining = remaining.saturating_sub(1);
                if *remaining == 0 {
                    let items = std::mem::take(items);
                    if let Some(done) = done.take() {
                        let _ = done.send(items);
                    }
                    pending.remove(id);
                }
            }
            Some(Pending::Acks(acks)) => match response.get("type").and_then(Json::as_u64) {
                Some(8) => {
                    let count = response
                        .get("clientCount")
                        .and_then(Json::as_u64)
                        .unwrap_or(0);
                    acks.node_reported(usize::try_from(count).unwrap_or(0));
                }
                Some(9) => {
                    let args = response.get("packet").cloned().unwrap_or(Json::Null);
                    let sid = response
                        .get("sid")
                        .and_then(Json::as_str)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(unknown_sid);
                    // One ack argument per answer, as Node's adapter sends it.
                    acks.reply(
                        sid,
                        tidewire::Payload::with_attachments(Json::Array(vec![args]), attachments),
                    );
                }
                _ => {}
            },
            None => {}
        }
    }
}

impl Shared {
    fn nodes_key(&self) -> String {
        format!("{}-tidewire#nodes", self.config.key)
    }

    /// Reads the heartbeat table: the live nodes replace the cached ones
    /// (`me`, when given, is this node's fresh entry); stale entries are removed.
    async fn read_nodes(&self, me: Option<NodeInfo>) {
        let mut all = redis::cmd("HGETALL");
        all.arg(self.nodes_key());
        let Ok(table) = self.query::<HashMap<String, String>>(&all).await else {
            return;
        };
        let horizon = now_ms().saturating_sub(
            u64::try_from(self.config.node_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        let mut live = HashMap::new();
        let mut stale = Vec::new();
        for (uid, json) in table {
            match serde_json::from_str::<NodeInfo>(&json) {
                Ok(node) if node.seen_ms >= horizon => {
                    live.insert(uid, node);
                }
                _ => stale.push(uid),
            }
        }
        if let Some(me) = me {
            live.insert(me.uid.clone(), me);
        } else if let Some(me) = self.nodes.read().get(&self.uid) {
            live.insert(me.uid.clone(), me.clone());
        }
        *self.nodes.write() = live;
        if !stale.is_empty() {
            let mut del = redis::cmd("HDEL");
            del.arg(self.nodes_key()).arg(stale);
            let _ = self.query::<i64>(&del).await;
        }
    }
}

/// Stands for a socket of a Node server, whose ids are not tidewire ids.
pub(crate) fn unknown_sid() -> tidewire::Sid {
    "AAAAAAAAAAAAAAAAAAAAAA"
        .parse()
        .unwrap_or_else(|_| tidewire::Sid::generate())
}

/// Reads what Redis pushes on the subscriber connection.
async fn subscriber(weak: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = rx.recv().await {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let (channel, payload) = match push.kind {
            PushKind::Message => (push.data.first(), push.data.get(1)),
            PushKind::PMessage => (push.data.get(1), push.data.get(2)),
            PushKind::Disconnection => {
                shared.sub_dirty.store(true, Ordering::Relaxed);
                shared.mark(false, None);
                continue;
            }
            _ => continue,
        };
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (channel, payload)
        else {
            continue;
        };
        let Ok(channel) = std::str::from_utf8(channel) else {
            continue;
        };
        route(&shared, channel, payload);
    }
}

fn route(shared: &Arc<Shared>, channel: &str, payload: &[u8]) {
    let key = shared.config.key.as_str();
    let Some(rest) = channel.strip_prefix(key) else {
        return;
    };
    let (kind, rest) = if let Some(rest) = rest.strip_prefix('#') {
        ("broadcast", rest)
    } else if let Some(rest) = rest.strip_prefix("-request#") {
        ("request", rest)
    } else if let Some(rest) = rest.strip_prefix("-response#") {
        ("response", rest)
    } else {
        return;
    };
    if kind == "response" {
        shared.on_response(payload);
        return;
    }
    let nsp = rest.split('#').next().unwrap_or_default();
    let Some(adapter) = shared.adapter_for(nsp) else {
        return;
    };
    match kind {
        "broadcast" => adapter.on_node_broadcast(payload),
        _ => adapter.on_request(payload),
    }
}

/// Appends recorded packets to their streams, in the order they were sent.
async fn sequencer(weak: Weak<Shared>, mut rx: mpsc::Receiver<Recorded>) {
    let script_sha = redis::Script::new(RECORD_SCRIPT);
    let mut batch = Vec::with_capacity(256);
    loop {
        batch.clear();
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut pipe = redis::pipe();
        for item in &batch {
            let nsp = &*item.nsp;
            let channel_and_message = if shared.config.node_compat {
                codec::packet_to_node(&item.packet).ok().map(|packet| {
                    let mut channel = shared.channel(nsp);
                    if item.opts.rooms.len() == 1 {
                        channel.push_str(item.opts.rooms[0].as_str());
                        channel.push('#');
                    }
                    (
                        channel,
                        codec::encode_node_broadcast(&shared.uid, packet, &item.opts),
                    )
                })
            } else {
                None
            };
            let (channel, message) = channel_and_message.unwrap_or_default();
            pipe.cmd("EVALSHA")
                .arg(script_sha.get_hash())
                .arg(2)
                .arg(shared.tw_key(nsp, "seq"))
                .arg(shared.tw_key(nsp, "log"))
                .arg(shared.config.stream_max_len)
                .arg(codec::encode_entry(&item.packet, &item.opts))
                .arg(channel)
                .arg(message)
                .ignore();
        }
        let mut conn = shared.cmd.clone();
        let mut result: Result<(), redis::RedisError> = pipe.query_async(&mut conn).await;
        if matches!(&result, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            // First use on this Redis (or it restarted): load the script, retry once.
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(RECORD_SCRIPT);
            let _: Result<String, _> = load.query_async(&mut conn).await;
            result = pipe.query_async(&mut conn).await;
        }
        match result {
            Ok(()) => shared.mark(true, None),
            Err(error) => {
                if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
                    shared.mark(false, Some(&error));
                } else {
                    tracing::error!(%error, "recording broadcasts in Redis failed");
                }
                for item in batch.drain(..) {
                    if let Some(adapter) = shared.adapter_for(&item.nsp) {
                        shared.fallback(&item, &adapter);
                    }
                }
            }
        }
    }
}

/// Runs queued writes in order, pipelined.
async fn writer(weak: Weak<Shared>, mut rx: mpsc::Receiver<redis::Cmd>) {
    let mut batch = Vec::with_capacity(512);
    loop {
        batch.clear();
        if rx.recv_many(&mut batch, 512).await == 0 {
            return;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut pipe = redis::pipe();
        for cmd in &batch {
            pipe.add_command(cmd.clone()).ignore();
        }
        let mut conn = shared.cmd.clone();
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            shared
                .dropped_writes
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::debug!(%error, n = batch.len(), "Redis writes dropped");
        }
    }
}

/// Reads every namespace's stream and hands the packets to the local sockets.
async fn stream_reader(weak: Weak<Shared>) {
    let mut positions: HashMap<String, String> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let adapters: Vec<(String, Arc<AdapterShared>)> = shared
            .namespaces
            .read()
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.upgrade()?)))
            .collect();
        if adapters.is_empty() {
            drop(shared);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut conn = shared.reader.clone();
        // Namespaces seen for the first time start at their stream's end
        // (after loading what recovery may replay).
        for (nsp, adapter) in &adapters {
            if positions.contains_key(nsp) {
                continue;
            }
            let known = adapter.start.lock().take();
            let start = match known {
                Some(position) => Ok(position),
                None => start_position(&shared, &mut conn, nsp, adapter).await,
            };
            match start {
                Ok(position) => {
                    positions.insert(nsp.clone(), position);
                }
                Err(error) => {
                    tracing::debug!(%error, namespace = %nsp, "stream start failed");
                }
            }
        }
        let ready: Vec<&(String, Arc<AdapterShared>)> = adapters
            .iter()
            .filter(|(nsp, _)| positions.contains_key(nsp))
            .collect();
        if ready.is_empty() {
            drop(shared);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS");
        for (nsp, _) in &ready {
            cmd.arg(shared.tw_key(nsp, "log"));
        }
        for (nsp, _) in &ready {
            cmd.arg(&positions[nsp]);
        }
        let reply: Result<Option<redis::streams::StreamReadReply>, _> =
            cmd.query_async(&mut conn).await;
        match reply {
            Ok(reply) => {
                backoff = Duration::from_millis(100);
                let Some(reply) = reply else { continue };
                for key in reply.keys {
                    let Some((nsp, adapter)) = ready
                        .iter()
                        .find(|(nsp, _)| shared.tw_key(nsp, "log") == key.key)
                    else {
                        continue;
                    };
                    for entry in key.ids {
                        deliver_entry(adapter, &entry);
                        positions.insert(nsp.clone(), entry.id.clone());
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%error, "stream read failed; retrying");
                drop(shared);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn offset_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn deliver_entry(adapter: &AdapterShared, entry: &redis::streams::StreamId) {
    let Some(offset) = offset_of(&entry.id) else {
        return;
    };
    let Some(Value::BulkString(data)) = entry.map.get("d") else {
        return;
    };
    match codec::decode_entry(data) {
        Ok(decoded) => adapter
            .ctx
            .deliver_recorded(offset, decoded.packet, &decoded.opts),
        Err(error) => tracing::warn!(%error, "skipping a malformed stream entry"),
    }
}

/// Where a namespace's reading starts: its stream's end, after loading the
/// recent entries into the recovery log (so clients of a dead node can resume here).
pub(crate) async fn start_position(
    shared: &Shared,
    conn: &mut ConnectionManager,
    nsp: &str,
    adapter: &AdapterShared,
) -> Result<String, redis::RedisError> {
    let log = shared.tw_key(nsp, "log");
    let keep = adapter.ctx.recovery_config().map_or(1, |r| {
        r.max_packets.min(shared.config.stream_max_len).max(1)
    });
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(&log).arg("+").arg("-").arg("COUNT").arg(keep);
    let reply: redis::streams::StreamRangeReply = cmd.query_async(conn).await?;
    let Some(last) = reply.ids.first().map(|e| e.id.clone()) else {
        return Ok("0-0".into());
    };
    if adapter.ctx.recovery_config().is_some() {
        for entry in reply.ids.iter().rev() {
            deliver_entry(adapter, entry);
        }
    }
    Ok(last)
}

/// Says this node is alive, reads who else is, keeps sessions' records alive,
/// and repairs subscriptions after Redis comes back.
async fn heartbeat(weak: Weak<Shared>) {
    let mut tick: u64 = 0;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let every = shared.config.heartbeat;
        if shared.sub_dirty.load(Ordering::Relaxed) {
            shared.resubscribe_all().await;
        }
        let adapters: Vec<Arc<AdapterShared>> = shared
            .namespaces
            .read()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let sockets = adapters.iter().map(|a| a.local_socket_count()).sum();
        let me = NodeInfo {
            uid: shared.uid.clone(),
            tag: shared.tag.clone(),
            name: shared.name.clone(),
            addr: *shared.advertised.lock(),
            sockets,
            seen_ms: now_ms(),
        };
        let mut hset = redis::cmd("HSET");
        hset.arg(shared.nodes_key())
            .arg(&me.uid)
            .arg(serde_json::to_string(&me).unwrap_or_default());
        if shared.query::<i64>(&hset).await.is_ok() {
            shared.read_nodes(Some(me)).await;
        } else {
            // Redis is away: only this node is known alive.
            let mut nodes = shared.nodes.write();
            nodes.clear();
            nodes.insert(me.uid.clone(), me);
        }
        // Keep the records of connected sockets from expiring (a third of their lifetime).
        for adapter in &adapters {
            adapter.refresh_sessions(tick);
        }
        // Nudge the subscriber connection so it notices a dead Redis and reconnects.
        let mut sub = shared.sub.clone();
        let _ = redis::cmd("PING").query_async::<Value>(&mut sub).await;
        drop(shared);
        tick += 1;
        tokio::time::sleep(every).await;
    }
}
