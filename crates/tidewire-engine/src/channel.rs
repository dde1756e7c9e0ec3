//! A shared outgoing log that many sessions read: one append per broadcast,
//! one cursor per session.
//!
//! Queuing a broadcast into every recipient's own queue touches every
//! recipient's memory once per packet (a lock, a push, a reference count), and
//! with a thousand recipients those cache misses are most of the cost. A
//! [`Channel`] is written once per packet; each subscribed session's writer
//! copies what it has not read yet when it next runs, in one pass for every
//! packet published meanwhile. The publisher touches a session only to wake a
//! writer that is waiting (a bit in a dense bitmap says which ones are).
//!
//! Order: a session writes its own queue first, then its channels' entries.
//! Anything queued directly while the session is subscribed first pulls the
//! pending channel entries into the queue ([`SessionState::push`](crate)), so
//! what a task sends directly after a broadcast still goes out after it. Entries
//! of different channels are merged by a process-wide sequence number.
//!
//! Bounds: a channel keeps at most as many packets and bytes as a session may
//! hold. A subscriber that falls further behind is closed with
//! [`CloseReason::SlowConsumer`](crate::CloseReason::SlowConsumer), as a full
//! queue closes it; nothing is skipped silently.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::RwLock;

use crate::packet::EncodedPacket;
use crate::transport::sse::SsePiece;

/// Entries kept before the publisher looks for what every subscriber has read.
const TRIM_EVERY: usize = 64;

/// Orders entries of different channels: taken under the channel's write lock.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

/// A cursor slot nobody holds.
const FREE: u64 = u64::MAX;

/// What a channel needs from a subscribed session, without its type parameter.
pub(crate) trait Subscriber: Send + Sync {
    /// New entries: wake whoever writes downstream.
    fn wake(&self);
    /// The subscriber fell further behind than the channel keeps: close it.
    fn lagged(self: Arc<Self>);
}

/// A shared log of encoded packets that subscribed sessions write out in order.
///
/// Cheap to clone; every clone is the same channel. Subscribe sessions with
/// [`Session::subscribe`](crate::Session::subscribe); the layer above uses one
/// per large room, so a broadcast costs one append whatever the room's size.
///
/// ```no_run
/// # fn demo(a: tidewire_engine::Session<()>, b: tidewire_engine::Session<()>) {
/// use tidewire_engine::packet::EncodedPacket;
/// let channel = a.new_channel(0);
/// a.subscribe(&channel);
/// b.subscribe(&channel);
/// channel.publish(&[EncodedPacket::message("to both")]);
/// # }
/// ```
#[derive(Clone)]
pub struct Channel(pub(crate) Arc<ChannelShared>);

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.0.log.read();
        f.debug_struct("Channel")
            .field("group", &self.0.group)
            .field("subscribers", &log.active)
            .field("entries", &log.entries.len())
            .finish()
    }
}

impl PartialEq for Channel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

pub(crate) struct ChannelShared {
    pub(crate) group: u64,
    max_packets: usize,
    max_bytes: usize,
    pub(crate) log: RwLock<Log>,
    /// Subscribers whose cursor is behind the tail.
    behind: AtomicUsize,
}

pub(crate) struct Entry {
    seq: u64,
    /// Bytes appended to the log before this entry ([`Log::appended`] then),
    /// so what a reader has pending is one subtraction, not a pass.
    start: u64,
    packet: EncodedPacket,
    /// How the packet travels in an event stream, worked out by the first SSE
    /// reader for every other.
    sse_piece: OnceLock<SsePiece>,
}

impl Entry {
    /// The encoded packet.
    pub(crate) fn packet(&self) -> &EncodedPacket {
        &self.packet
    }

    /// How the packet travels in an event stream, encoded once for all the
    /// channel's SSE subscribers.
    pub(crate) fn sse_piece(&self) -> &SsePiece {
        self.sse_piece.get_or_init(|| SsePiece::of(&self.packet))
    }
}

pub(crate) struct Log {
    entries: VecDeque<Entry>,
    /// Index of `entries[0]`; entry indexes only grow.
    first: u64,
    bytes: usize,
    /// Bytes ever appended (only grows).
    appended: u64,
    /// Per slot: the index of the next entry its subscriber reads ([`FREE`] when unused).
    cursors: Vec<AtomicU64>,
    /// One bit per slot: its subscriber has read everything and may be waiting.
    parked: Vec<AtomicU64>,
    subscribers: Vec<Option<Weak<dyn Subscriber>>>,
    free: Vec<u32>,
    active: usize,
    trim_at: usize,
}

impl Log {
    fn tail(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.packet.len();
            self.first += 1;
        }
    }

    fn clear(&mut self) {
        self.first = self.tail();
        self.entries.clear();
        self.bytes = 0;
        self.trim_at = TRIM_EVERY;
        if self.entries.capacity() > TRIM_EVERY {
            self.entries = VecDeque::new();
        }
    }

    fn park(&self, slot: u32) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        self.parked[word].fetch_or(1 << bit, Ordering::Relaxed);
    }

    fn unpark(&self, slot: u32) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        self.parked[word].fetch_and(!(1 << bit), Ordering::Relaxed);
    }

    /// The oldest entry some subscriber has not read.
    fn min_cursor(&self) -> u64 {
        self.cursors
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .filter(|&c| c != FREE)
            .min()
            .unwrap_or(self.tail())
            .max(self.first)
    }
}

/// Why a subscriber could not read its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lagged;

impl Channel {
    /// A channel keeping at most `max_packets` packets and `max_bytes` bytes for
    /// its slowest subscriber; `group` tags it for
    /// [`Session::unsubscribe_group`](crate::Session::unsubscribe_group).
    ///
    /// ```
    /// let channel = tidewire_engine::Channel::new(7, 4096, 8 << 20);
    /// assert_eq!(channel.group(), 7);
    /// ```
    pub fn new(group: u64, max_packets: usize, max_bytes: usize) -> Self {
        Self(Arc::new(ChannelShared {
            group,
            max_packets: max_packets.max(1),
            max_bytes: max_bytes.max(1),
            log: RwLock::new(Log {
                entries: VecDeque::new(),
                first: 0,
                bytes: 0,
                appended: 0,
                cursors: Vec::new(),
                parked: Vec::new(),
                subscribers: Vec::new(),
                free: Vec::new(),
                active: 0,
                trim_at: TRIM_EVERY,
            }),
            behind: AtomicUsize::new(0),
        }))
    }

    /// The tag given at creation.
    ///
    /// ```
    /// assert_eq!(tidewire_engine::Channel::new(3, 16, 1024).group(), 3);
    /// ```
    pub fn group(&self) -> u64 {
        self.0.group
    }

    /// Sessions subscribed now.
    ///
    /// ```
    /// assert_eq!(tidewire_engine::Channel::new(0, 16, 1024).subscribers(), 0);
    /// ```
    pub fn subscribers(&self) -> usize {
        self.0.log.read().active
    }

    /// Appends `packets` (a packet and its attachments, kept together) for every
    /// subscriber, and wakes the ones waiting. A subscriber that has fallen
    /// further behind than the channel keeps is closed as a slow consumer.
    ///
    /// ```
    /// use tidewire_engine::{packet::EncodedPacket, Channel};
    /// let channel = Channel::new(0, 16, 1024);
    /// channel.publish(&[EncodedPacket::message("nobody listens")]);
    /// ```
    pub fn publish(&self, packets: &[EncodedPacket]) {
        if packets.is_empty() {
            return;
        }
        let shared = &*self.0;
        let mut laggards = Vec::new();
        let mut waiting = Vec::new();
        {
            let mut log = shared.log.write();
            if log.active == 0 {
                return;
            }
            if shared.behind.load(Ordering::Relaxed) == 0 {
                // Everyone read everything: nothing before this entry is needed.
                log.clear();
            }
            let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
            for packet in packets {
                let start = log.appended;
                log.bytes += packet.len();
                log.appended += packet.len() as u64;
                log.entries.push_back(Entry {
                    seq,
                    start,
                    packet: packet.clone(),
                    sse_piece: OnceLock::new(),
                });
            }
            if log.entries.len() >= log.trim_at
                || log.entries.len() > shared.max_packets
                || log.bytes > shared.max_bytes
            {
                shared.trim(&mut log, &mut laggards);
            }
            shared.behind.store(log.active, Ordering::Relaxed);
            for (word, bits) in log.parked.iter().enumerate() {
                let mut bits = bits.swap(0, Ordering::Relaxed);
                while bits != 0 {
                    let slot = word * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(subscriber) = log.subscribers[slot].as_ref().and_then(Weak::upgrade)
                    {
                        waiting.push(subscriber);
                    }
                }
            }
        }
        // Outside the lock: woken writers can read at once, and a session
        // whose last handle is one of these unsubscribes as it drops.
        for subscriber in waiting {
            subscriber.wake();
        }
        for subscriber in laggards {
            subscriber.lagged();
        }
    }
}

impl ChannelShared {
    /// Drops what every subscriber has read; if the log is still over its
    /// bounds, drops the oldest entries and lists the subscribers that needed them.
    fn trim(&self, log: &mut Log, laggards: &mut Vec<Arc<dyn Subscriber>>) {
        let min = log.min_cursor();
        while log.first < min {
            log.pop_front();
        }
        while log.entries.len() > self.max_packets || log.bytes > self.max_bytes {
            log.pop_front();
        }
        let first = log.first;
        for (slot, cursor) in log.cursors.iter().enumerate() {
            let cursor = cursor.load(Ordering::Relaxed);
            if cursor != FREE && cursor < first {
                if let Some(subscriber) = log.subscribers[slot].as_ref().and_then(Weak::upgrade) {
                    laggards.push(subscriber);
                }
            }
        }
        log.trim_at = log.entries.len() + TRIM_EVERY;
    }

    /// Adds a subscriber reading from now on. Returns its slot and cursor.
    pub(crate) fn subscribe(&self, who: Weak<dyn Subscriber>) -> (u32, u64) {
        let mut log = self.log.write();
        let tail = log.tail();
        let slot = match log.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = log.cursors.len() as u32;
                log.cursors.push(AtomicU64::new(FREE));
                log.subscribers.push(None);
                if log.parked.len() * 64 <= slot as usize {
                    log.parked.push(AtomicU64::new(0));
                }
                slot
            }
        };
        log.cursors[slot as usize].store(tail, Ordering::Relaxed);
        log.subscribers[slot as usize] = Some(who);
        log.active += 1;
        // Caught up: the next publish wakes it.
        log.park(slot);
        (slot, tail)
    }

    /// Removes a subscriber.
    pub(crate) fn unsubscribe(&self, slot: u32) {
        let mut log = self.log.write();
        let Some(cursor) = log.cursors.get(slot as usize) else {
            return;
        };
        let cursor = cursor.swap(FREE, Ordering::Relaxed);
        if cursor == FREE {
            return;
        }
        if cursor < log.tail() {
            self.behind.fetch_sub(1, Ordering::Relaxed);
        }
        log.unpark(slot);
        log.subscribers[slot as usize] = None;
        log.free.push(slot);
        log.active -= 1;
        if log.active == 0 || self.behind.load(Ordering::Relaxed) == 0 {
            log.clear();
        }
    }

    /// Hands `f` the entries from `cursor` on, at most `limit` of them (with
    /// their sequence numbers and shared encodings). A subscriber that read up
    /// to the tail is marked caught up, so the next publish wakes it; one that
    /// stopped short is still behind. Returns the new cursor.
    pub(crate) fn read(
        &self,
        slot: u32,
        cursor: u64,
        limit: usize,
        mut f: impl FnMut(u64, &Entry),
    ) -> Result<u64, Lagged> {
        let (tail, last_reader) = {
            let log = self.log.read();
            if cursor < log.first {
                return Err(Lagged);
            }
            let tail = log.tail();
            if cursor == tail {
                return Ok(cursor);
            }
            let from = (cursor - log.first) as usize;
            let upto = log.entries.len().min(from.saturating_add(limit));
            for entry in log.entries.range(from..upto) {
                f(entry.seq, entry);
            }
            let next = log.first + upto as u64;
            log.cursors[slot as usize].store(next, Ordering::Relaxed);
            if next < tail {
                return Ok(next);
            }
            log.park(slot);
            (tail, self.behind.fetch_sub(1, Ordering::Relaxed) == 1)
        };
        if last_reader {
            // Everyone has read everything: give the entries back now rather
            // than at the next publish (a quiet room holds nothing).
            let mut log = self.log.write();
            if self.behind.load(Ordering::Relaxed) == 0 {
                log.clear();
            }
        }
        Ok(tail)
    }

    /// Entries and bytes from `cursor` to the tail.
    pub(crate) fn pending(&self, cursor: u64) -> (usize, usize) {
        let log = self.log.read();
        if cursor < log.first {
            return (0, 0);
        }
        let from = (cursor - log.first) as usize;
        let bytes = log
            .entries
            .get(from)
            .map_or(0, |entry| (log.appended - entry.start) as usize);
        (log.entries.len().saturating_sub(from), bytes)
    }
}
