//! Connection state recovery: a shared log of recorded packets with offsets,
//! and the sessions of disconnected sockets, kept for a window.
//!
//! Socket.IO v5 clients that got a private id (`pid`) in their CONNECT reply
//! come back with `{pid, offset}` in the CONNECT auth, `offset` being the last
//! one they received (the last argument of every recorded event). A restore
//! gives the socket its id, rooms and extensions back and replays, after the
//! CONNECT reply, every recorded packet it missed, in order.
//!
//! A broadcast is recorded once, whatever the number of recipients: memory
//! grows with messages, not messages times recipients. Appending and local
//! delivery happen under one lock, so every socket receives recorded packets
//! in offset order; that is what makes "everything after my last offset" a
//! complete answer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tidewire_engine::Sid;

use crate::adapter::{BroadcastOptions, Room};
use crate::extensions::Extensions;
use crate::packet::OutgoingPacket;

/// Options of connection state recovery (off unless set with
/// [`SocketIoBuilder::recovery`](crate::SocketIoBuilder::recovery)).
///
/// ```
/// use std::time::Duration;
/// let config = tidewire::RecoveryConfig::default()
///     .window(Duration::from_secs(60))
///     .max_packets(50_000)
///     .skip_middlewares(false);
/// assert_eq!(config.window, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// How long a disconnected socket's state and the packets it missed are kept; 2 minutes.
    pub window: Duration,
    /// Most packets kept in a namespace's log; 100,000.
    pub max_packets: usize,
    /// Most bytes kept in a namespace's log; 64 MiB.
    pub max_bytes: usize,
    /// Whether a recovered socket skips the connect middlewares; true (as in Node).
    pub skip_middlewares: bool,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            max_packets: 100_000,
            max_bytes: 64 << 20,
            skip_middlewares: true,
        }
    }
}

impl RecoveryConfig {
    /// Sets [`RecoveryConfig::window`].
    ///
    /// ```
    /// let c = tidewire::RecoveryConfig::default().window(std::time::Duration::from_secs(5));
    /// assert_eq!(c.window.as_secs(), 5);
    /// ```
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets [`RecoveryConfig::max_packets`].
    ///
    /// ```
    /// assert_eq!(tidewire::RecoveryConfig::default().max_packets(10).max_packets, 10);
    /// ```
    pub fn max_packets(mut self, n: usize) -> Self {
        self.max_packets = n.max(1);
        self
    }

    /// Sets [`RecoveryConfig::max_bytes`].
    ///
    /// ```
    /// assert_eq!(tidewire::RecoveryConfig::default().max_bytes(1024).max_bytes, 1024);
    /// ```
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Sets [`RecoveryConfig::skip_middlewares`].
    ///
    /// ```
    /// assert!(!tidewire::RecoveryConfig::default().skip_middlewares(false).skip_middlewares);
    /// ```
    pub fn skip_middlewares(mut self, skip: bool) -> Self {
        self.skip_middlewares = skip;
        self
    }
}

/// Set once a disconnected socket's state is persisted (or dropped); a resume
/// that arrives before waits for it.
#[derive(Default)]
pub(crate) struct Cleanup {
    done: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cleanup {
    pub(crate) fn mark(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Waits for [`Cleanup::mark`], at most `limit`; false if it timed out.
    pub(crate) async fn wait(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.done.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

struct Entry {
    offset: u64,
    at: Instant,
    packet: OutgoingPacket,
    rooms: Vec<Room>,
    except: Vec<Room>,
    bytes: usize,
}

/// What a disconnected socket leaves behind for its return.
pub(crate) struct Persisted {
    pub sid: Sid,
    pub rooms: Vec<Room>,
    pub extensions: Extensions,
    pub disconnected_at: Instant,
    /// Offset of the last recorded packet queued for the client.
    pub last_sent: u64,
    /// The log's head when the socket disconnected.
    pub disconnected_head: u64,
    /// The log's head when the socket connected (where a client with no offset resumes).
    pub connected_at: u64,
}

/// A successful restore.
pub(crate) struct Restored {
    pub sid: Sid,
    pub rooms: Vec<Room>,
    pub extensions: Extensions,
    /// Where the replay starts (exclusive).
    pub from: u64,
}

/// Why a resume could not be honoured: the client gets a fresh session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Unknown, expired, already used, or forged token.
    UnknownSession,
    /// The offset is not one this server gave, or the log no longer holds what was missed.
    OffsetUnavailable,
}

struct Inner {
    log: VecDeque<Entry>,
    bytes: usize,
    next_offset: u64,
    /// Highest offset dropped from the log.
    trimmed_through: u64,
    persisted: HashMap<Sid, Persisted>,
    /// Persisted pids by disconnection time, for expiry.
    expiry: VecDeque<(Instant, Sid)>,
}

/// A namespace's recovery state.
pub(crate) struct RecoveryStore {
    config: RecoveryConfig,
    inner: Mutex<Inner>,
    /// Private ids of sockets not yet persisted, to find a socket a resume takes over.
    live: Mutex<HashMap<Sid, (Sid, Arc<Cleanup>)>>,
    /// Woken when a cluster-sequenced packet lands (see [`RecoveryStore::check_remote`]).
    advanced: tokio::sync::Notify,
}

impl RecoveryStore {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                log: VecDeque::new(),
                bytes: 0,
                next_offset: 1,
                trimmed_through: 0,
                persisted: HashMap::new(),
                expiry: VecDeque::new(),
            }),
            live: Mutex::new(HashMap::new()),
            advanced: tokio::sync::Notify::new(),
        }
    }

    /// A connected socket's private id.
    pub(crate) fn register_live(&self, pid: Sid, sid: Sid, cleanup: Arc<Cleanup>) {
        self.live.lock().insert(pid, (sid, cleanup));
    }

    /// The socket with private id `pid` is persisted (or gone for good).
    pub(crate) fn unregister_live(&self, pid: Sid, sid: Sid) {
        let mut live = self.live.lock();
        if live.get(&pid).is_some_and(|(s, _)| *s == sid) {
            live.remove(&pid);
        }
    }

    /// The socket id behind `pid`: a socket not yet persisted (with its cleanup
    /// signal to wait for), or a persisted session.
    pub(crate) fn sid_for(&self, pid: Sid) -> Option<(Sid, Option<Arc<Cleanup>>)> {
        if let Some((sid, cleanup)) = self.live.lock().get(&pid) {
            return Some((*sid, Some(cleanup.clone())));
        }
        let mut inner = self.inner.lock();
        self.trim(&mut inner, Instant::now());
        inner.persisted.get(&pid).map(|p| (p.sid, None))
    }

    pub(crate) fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// The offset of the last recorded packet (0 before the first).
    pub(crate) fn head(&self) -> u64 {
        self.inner.lock().next_offset - 1
    }

    /// Records `packet` for the sockets `opts` selects and hands the stamped
    /// packet to `deliver` while still holding the log, so deliveries happen in
    /// offset order.
    pub(crate) fn record<R>(
        &self,
        packet: &OutgoingPacket,
        opts: &BroadcastOptions,
        deliver: impl FnOnce(&OutgoingPacket) -> R,
    ) -> R {
        let mut inner = self.inner.lock();
        let offset = inner.next_offset;
        inner.next_offset += 1;
        let stamped = self.append(&mut inner, offset, packet, opts);
        deliver(&stamped)
    }

    /// Appends `packet` at `offset` (stamped with it) and trims the log.
    fn append(
        &self,
        inner: &mut Inner,
        offset: u64,
        packet: &OutgoingPacket,
        opts: &BroadcastOptions,
    ) -> OutgoingPacket {
        let now = Instant::now();
        let stamped = packet.with_offset(offset);
        let bytes = stamped
            .engine_packets()
            .iter()
            .map(|p| p.len())
            .sum::<usize>()
            + 64;
        inner.log.push_back(Entry {
            offset,
            at: now,
            packet: stamped.clone(),
            rooms: opts.rooms.clone(),
            except: opts.except.clone(),
            bytes,
        });
        inner.bytes += bytes;
        self.trim(inner, now);
        stamped
    }

    /// Records a packet a cluster already gave `offset` (every node sees the
    /// cluster's packets in offset order) and hands the stamped packet to
    /// `deliver` while holding the log. An offset at or below the head was
    /// seen already and is dropped; one past a gap means packets were lost in
    /// between (the cluster's log was cut), so no resume may span the gap.
    pub(crate) fn record_at(
        &self,
        offset: u64,
        packet: &OutgoingPacket,
        opts: &BroadcastOptions,
        deliver: impl FnOnce(&OutgoingPacket),
    ) {
        let mut inner = self.inner.lock();
        if offset < inner.next_offset {
            return;
        }
        if offset > inner.next_offset {
            inner.log.clear();
            inner.bytes = 0;
            inner.trimmed_through = offset - 1;
        }
        inner.next_offset = offset + 1;
        let stamped = self.append(&mut inner, offset, packet, opts);
        self.advanced.notify_waiters();
        deliver(&stamped)
    }

    /// Checks a resume of a session kept by another node: waits (at most
    /// `limit`) until this node's log reaches `from`, then checks the log
    /// still holds everything after it.
    pub(crate) async fn check_remote(&self, from: u64, limit: Duration) -> Result<(), Miss> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.advanced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.inner.lock();
                if inner.next_offset > from {
                    return if inner.trimmed_through <= from {
                        Ok(())
                    } else {
                        Err(Miss::OffsetUnavailable)
                    };
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Miss::OffsetUnavailable);
            }
        }
    }

    fn trim(&self, inner: &mut Inner, now: Instant) {
        while let Some(front) = inner.log.front() {
            let old = now.duration_since(front.at) > self.config.window;
            let full =
                inner.log.len() > self.config.max_packets || inner.bytes > self.config.max_bytes;
            if !(old || full) {
                break;
            }
            if let Some(entry) = inner.log.pop_front() {
                inner.bytes -= entry.bytes;
                inner.trimmed_through = entry.offset;
            }
        }
        while let Some(&(at, pid)) = inner.expiry.front() {
            if now.duration_since(at) <= self.config.window {
                break;
            }
            inner.expiry.pop_front();
            if inner
                .persisted
                .get(&pid)
                .is_some_and(|p| p.disconnected_at == at)
            {
                inner.persisted.remove(&pid);
            }
        }
    }

    /// Keeps a disconnected socket's state under its private id.
    pub(crate) fn persist(&self, pid: Sid, session: Persisted) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.expiry.push_back((session.disconnected_at, pid));
        inner.persisted.insert(pid, session);
        self.trim(&mut inner, now);
    }

    /// Takes the session persisted under `pid` (a restore consumes it) and
    /// checks the log still holds everything it may have missed.
    pub(crate) fn restore(&self, pid: Sid, client_offset: Option<&str>) -> Result<Restored, Miss> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        self.trim(&mut inner, now);
        let session = inner.persisted.remove(&pid).ok_or(Miss::UnknownSession)?;
        let head = inner.next_offset - 1;
        let from = match client_offset {
            None => session.connected_at,
            Some(text) => text
                .strip_prefix('@')
                .unwrap_or(text)
                .parse::<u64>()
                .map_err(|_| Miss::OffsetUnavailable)?,
        };
        if from > head {
            return Err(Miss::OffsetUnavailable);
        }
        // Every recorded packet after `from` meant for this socket must still be
        // in the log. If the log was trimmed past `from`, that holds only when the
        // client had everything queued for it (`last_sent <= from`: what was
        // trimmed and recorded while it was connected was not for it) and nothing
        // recorded after it left was trimmed.
        let complete = inner.trimmed_through <= from
            || (session.last_sent <= from && inner.trimmed_through <= session.disconnected_head);
        if !complete {
            return Err(Miss::OffsetUnavailable);
        }
        Ok(Restored {
            sid: session.sid,
            rooms: session.rooms,
            extensions: session.extensions,
            from,
        })
    }

    /// Runs `f` with the packets recorded after `from` that a socket in `rooms`
    /// was meant to get, and the log's head, holding the log so no recorded
    /// packet can be delivered meanwhile.
    pub(crate) fn replay<R>(
        &self,
        from: u64,
        rooms: &[Room],
        f: impl FnOnce(Vec<OutgoingPacket>, u64) -> R,
    ) -> R {
        let inner = self.inner.lock();
        let head = inner.next_offset - 1;
        // Offsets in the log are consecutive, so the replay starts at a known index.
        let first = inner.log.front().map_or(0, |e| e.offset);
        let start = usize::try_from((from + 1).saturating_sub(first)).unwrap_or(usize::MAX);
        let missed = inner
            .log
            .iter()
            .skip(start)
            .filter(|e| selects(&e.rooms, &e.except, rooms))
            .map(|e| e.packet.clone())
            .collect();
        f(missed, head)
    }

    /// Runs `f` while holding the log (no recorded packet is delivered meanwhile).
    pub(crate) fn with_log_held<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let inner = self.inner.lock();
        f(inner.next_offset - 1)
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.log.len(), inner.persisted.len())
    }
}

/// Whether a socket in `socket_rooms` is selected by a broadcast to `rooms` except `except`.
fn selects(rooms: &[Room], except: &[Room], socket_rooms: &[Room]) -> bool {
    let included = rooms.is_empty() || socket_rooms.iter().any(|r| rooms.contains(r));
    included && !socket_rooms.iter().any(|r| except.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::encode_event;

    fn packet(n: u32) -> OutgoingPacket {
        encode_event("/", "n", &n, None).unwrap()
    }

    fn persisted(sid: Sid, rooms: &[&str], last_sent: u64, connected_at: u64) -> Persisted {
        persisted_at(sid, rooms, last_sent, connected_at, last_sent)
    }

    fn persisted_at(
        sid: Sid,
        rooms: &[&str],
        last_sent: u64,
        connected_at: u64,
        disconnected_head: u64,
    ) -> Persisted {
        let mut all: Vec<Room> = rooms.iter().map(|r| Room::from(*r)).collect();
        all.push(Room::from(sid));
        Persisted {
            sid,
            rooms: all,
            extensions: Extensions::default(),
            disconnected_at: Instant::now(),
            last_sent,
            disconnected_head,
            connected_at,
        }
    }

    fn texts(packets: &[OutgoingPacket]) -> Vec<String> {
        packets
            .iter()
            .map(|p| String::from_utf8(p.text().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn broadcasts_are_recorded_once_and_replayed_by_room() {
        let store = RecoveryStore::new(RecoveryConfig::default());
        let to_a = BroadcastOptions::default().to("a");
        let to_b = BroadcastOptions::default().to("b");
        let everyone = BroadcastOptions::default();
        for (i, opts) in [&to_a, &to_b, &everyone, &to_a].into_iter().enumerate() {
            let offset = store.record(&packet(i as u32), opts, |p| p.offset());
            assert_eq!(offset, Some(i as u64 + 1));
        }
        let (pid, sid) = (Sid::generate(), Sid::generate());
        store.persist(pid, persisted(sid, &["a"], 1, 0));
        let restored = store.restore(pid, Some("@1")).unwrap();
        assert_eq!(restored.sid, sid);
        let missed = store.replay(restored.from, &restored.rooms, |missed, head| {
            assert_eq!(head, 4);
            missed
        });
        assert_eq!(texts(&missed), [r#"42["n",2,"@3"]"#, r#"42["n",3,"@4"]"#]);
        assert_eq!(
            store.restore(pid, Some("1")).err(),
            Some(Miss::UnknownSession),
            "a restore consumes the session"
        );
    }

    #[test]
    fn forged_unknown_and_late_resumes_miss() {
        let store = RecoveryStore::new(RecoveryConfig::default().window(Duration::from_millis(20)));
        store.record(&packet(1), &BroadcastOptions::default(), |_| ());
        let pid = Sid::generate();
        store.persist(pid, persisted(Sid::generate(), &[], 1, 0));
        assert_eq!(
            store.restore(Sid::generate(), Some("1")).err(),
            Some(Miss::UnknownSession)
        );
        store.persist(pid, persisted(Sid::generate(), &[], 1, 0));
        assert_eq!(
            store.restore(pid, Some("99")).err(),
            Some(Miss::OffsetUnavailable)
        );
        store.persist(pid, persisted(Sid::generate(), &[], 1, 0));
        assert_eq!(
            store.restore(pid, Some("x")).err(),
            Some(Miss::OffsetUnavailable)
        );
        store.persist(pid, persisted(Sid::generate(), &[], 1, 0));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            store.restore(pid, Some("1")).err(),
            Some(Miss::UnknownSession),
            "expired"
        );
        assert_eq!(store.len(), (0, 0), "nothing is kept past the window");
    }

    #[test]
    fn a_log_trimmed_past_what_was_sent_is_a_miss() {
        let store = RecoveryStore::new(RecoveryConfig::default().max_packets(2));
        for i in 0..5 {
            store.record(&packet(i), &BroadcastOptions::default(), |_| ());
        }
        let pid = Sid::generate();
        // The client has 1, the server had queued up to 5: 2 and 3 are gone from the log.
        store.persist(pid, persisted(Sid::generate(), &[], 5, 0));
        assert_eq!(
            store.restore(pid, Some("1")).err(),
            Some(Miss::OffsetUnavailable)
        );
        // A client that received everything queued resumes even from a trimmed log.
        store.persist(pid, persisted(Sid::generate(), &[], 5, 0));
        assert!(store.restore(pid, Some("5")).is_ok());
        // ... unless what was recorded after it left was trimmed too.
        store.persist(pid, persisted_at(Sid::generate(), &[], 1, 0, 1));
        assert_eq!(
            store.restore(pid, Some("1")).err(),
            Some(Miss::OffsetUnavailable)
        );
    }

    #[test]
    fn except_rooms_are_honoured() {
        assert!(!selects(&[], &[Room::from("x")], &[Room::from("x")]));
        assert!(selects(&[], &[], &[Room::from("x")]));
        assert!(!selects(&[Room::from("a")], &[], &[Room::from("b")]));
    }
}
