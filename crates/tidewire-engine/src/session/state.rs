//! The session state machine: queue, heartbeat, upgrade and close, with no I/O.
//!
//! Transports feed it events (a poll arrived, a probe ping, a pong, a tick)
//! and carry out what it answers. Keeping it free of I/O lets every rule be
//! unit-tested on plain values.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::channel::{ChannelShared, Entry, Lagged, Subscriber};
use crate::packet::{EncodedPacket, PacketType};
use crate::transport::sse::SsePiece;
use crate::{CloseReason, TransportKind};

/// Most queue slots an emptied queue keeps allocated for the next batch; a
/// burst larger than this gives its memory back once it is written.
const KEPT_QUEUE_CAPACITY: usize = 32;

/// Whether an emptied queue that held `drained` packets keeps its allocation:
/// only a busy session (several packets per batch) does, and only up to
/// [`KEPT_QUEUE_CAPACITY`]. A quiet one (a lone ping or reply) frees it, so an
/// idle session holds no queue memory.
fn keep_queue_allocation(drained: usize, capacity: usize) -> bool {
    drained >= 2 && capacity <= KEPT_QUEUE_CAPACITY
}

/// With exactly one channel in `subs`, hands `f` its unread entries (at most
/// `limit`) straight from the shared log (no copy into the queue) and moves
/// the cursor; a gap sets `lagged`. Returns how many entries `f` got.
fn read_only_channel(
    subs: &mut [Subscription],
    lagged: &mut bool,
    limit: usize,
    mut f: impl FnMut(&Entry),
) -> usize {
    let [sub] = subs else {
        return 0;
    };
    let mut read = 0;
    match sub.channel.read(sub.slot, sub.cursor, limit, |_, entry| {
        f(entry);
        read += 1;
    }) {
        Ok(cursor) => sub.cursor = cursor,
        Err(Lagged) => *lagged = true,
    }
    read
}

/// The limits and timings a session enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_packets: usize,
    pub max_bytes: usize,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub upgrade_timeout: Duration,
}

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session is closed; the packet was not sent.
    #[error("session closed: the packet was not sent")]
    Closed,
    /// The client is not reading fast enough: the queue hit its limit and the
    /// session is being closed with [`CloseReason::SlowConsumer`].
    #[error("client too slow: the outgoing queue is full, the session is closed")]
    SlowConsumer,
    /// A volatile packet was dropped because the client is not ready for it.
    #[error("volatile packet dropped: the client is not ready")]
    Dropped,
}

/// What the heartbeat timer asks for on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    Nothing,
    /// A ping was queued; wake the writer.
    PingQueued,
    /// No pong in time: close the session.
    PingTimeout,
    /// An upgrade probe took too long and was abandoned; wake its connection.
    ProbeExpired,
}

/// An upgrade probe in progress: a WebSocket connection that is not yet the session's transport.
#[derive(Debug, Clone, Copy)]
struct Probe {
    conn: u32,
    deadline: Instant,
    /// The probe ping arrived: a pending poll must be answered so the client can pause polling.
    release_poll: bool,
}

/// What a pending long-poll should answer, if it should answer now.
#[derive(Debug)]
pub(crate) enum PollAnswer {
    /// Packets to send; `last_seq` is the last one's sequence number for a
    /// client that confirms what it receives.
    Packets {
        packets: VecDeque<EncodedPacket>,
        last_seq: Option<u64>,
    },
    /// A noop (`6`), to end a poll during or after an upgrade.
    Noop,
    /// The session is closed; answer a close packet.
    Closed,
}

#[derive(Debug)]
pub(crate) struct SessionState {
    transport: TransportKind,
    /// The connection allowed to write downstream (WebSocket connections carry an id).
    active_conn: u32,
    next_conn: u32,
    probe: Option<Probe>,
    queue: VecDeque<EncodedPacket>,
    queued_bytes: usize,
    closed: Option<CloseReason>,
    poll_active: bool,
    /// Which pending GET is the current one (a confirming client's retry replaces a stale one).
    poll_gen: u32,
    post_active: bool,
    /// The SSE stream allowed to write (a new stream replaces the old one).
    sse_stream: u32,
    /// Sequence number of the last packet written to a client that confirms
    /// what it receives (SSE event ids; long-polling with `ack=`).
    down_seq: u64,
    /// A long-polling client that confirms its polls (`ack=`): its answers are kept until confirmed.
    acked_polling: bool,
    /// Packets written but not yet confirmed by such a long-polling client (`ack=`).
    retained: VecDeque<(u64, EncodedPacket)>,
    retained_bytes: usize,
    /// SSE packets written but not yet confirmed (`ack=` or `Last-Event-ID`), kept as
    /// the chunks that carried them: one entry per write, not one per packet.
    sse_sent: VecDeque<SentChunk>,
    /// Packets in `sse_sent` the client has not confirmed, and the bytes of its chunks.
    sse_unconfirmed: usize,
    sse_sent_bytes: usize,
    /// The highest SSE packet id the client confirmed (an event's id is its last packet's).
    sse_confirmed: u64,
    /// The SSE stream found its window full (see [`SessionState::sse_next`]):
    /// a confirmation must wake it.
    sse_window_full: bool,
    /// The last SSE write took everything there was (see
    /// [`SessionState::sse_drained`]).
    sse_drained: bool,
    next_ping_at: Instant,
    pong_deadline: Option<Instant>,
    /// Shared logs this session also writes out (see [`crate::Channel`]).
    subs: Vec<Subscription>,
    /// A channel dropped entries this session had not read: nothing more is
    /// written, the session is being closed as a slow consumer.
    lagged: bool,
}

/// One write of an SSE stream, kept until the client confirms its events.
#[derive(Debug)]
struct SentChunk {
    /// The ids of its first and last packets (ids count up by one per packet).
    first: u64,
    last: u64,
    bytes: Bytes,
}

/// A session's place in a [`crate::Channel`]; leaving the session's list unsubscribes it.
#[derive(Debug)]
struct Subscription {
    channel: Arc<ChannelShared>,
    slot: u32,
    cursor: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.channel.unsubscribe(self.slot);
    }
}

impl std::fmt::Debug for ChannelShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelShared")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl SessionState {
    pub(crate) fn new(transport: TransportKind, now: Instant, limits: &Limits) -> Self {
        Self {
            transport,
            active_conn: 1,
            next_conn: 2,
            probe: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            closed: None,
            poll_active: false,
            poll_gen: 0,
            post_active: false,
            sse_stream: 0,
            down_seq: 0,
            acked_polling: false,
            retained: VecDeque::new(),
            retained_bytes: 0,
            sse_sent: VecDeque::new(),
            sse_unconfirmed: 0,
            sse_sent_bytes: 0,
            sse_confirmed: 0,
            sse_window_full: false,
            sse_drained: false,
            next_ping_at: now + limits.ping_interval,
            pong_deadline: None,
            subs: Vec::new(),
            lagged: false,
        }
    }

    // ----- channels -----

    /// Starts reading `channel` from its tail. False if closed or already subscribed.
    pub(crate) fn subscribe(
        &mut self,
        channel: &Arc<ChannelShared>,
        who: Weak<dyn Subscriber>,
    ) -> bool {
        if self.closed.is_some() || self.subs.iter().any(|s| Arc::ptr_eq(&s.channel, channel)) {
            return false;
        }
        // What is already queued stays ahead of the channel's next entries.
        let (slot, cursor) = channel.subscribe(who);
        self.subs.push(Subscription {
            channel: channel.clone(),
            slot,
            cursor,
        });
        true
    }

    /// Stops reading `channel`; what it published before still goes out.
    pub(crate) fn unsubscribe(&mut self, channel: &Arc<ChannelShared>) -> bool {
        let Some(at) = self
            .subs
            .iter()
            .position(|s| Arc::ptr_eq(&s.channel, channel))
        else {
            return false;
        };
        self.absorb();
        self.subs.remove(at);
        true
    }

    /// Stops reading every channel of `group`. Returns how many.
    pub(crate) fn unsubscribe_group(&mut self, group: u64) -> usize {
        let before = self.subs.len();
        if self.subs.iter().any(|s| s.channel.group == group) {
            self.absorb();
            self.subs.retain(|s| s.channel.group != group);
        }
        before - self.subs.len()
    }

    /// Moves every channel entry this session has not read into its queue, in
    /// publication order. Called before anything is queued directly, so the
    /// queue always precedes the channels' unread entries.
    fn absorb(&mut self) {
        if self.subs.is_empty() || self.lagged {
            return;
        }
        let (queue, bytes) = (&mut self.queue, &mut self.queued_bytes);
        if self.subs.len() == 1 {
            read_only_channel(&mut self.subs, &mut self.lagged, usize::MAX, |entry| {
                *bytes += entry.packet().len();
                queue.push_back(entry.packet().clone());
            });
            return;
        }
        let mut pulled: Vec<(u64, EncodedPacket)> = Vec::new();
        for sub in &mut self.subs {
            match sub
                .channel
                .read(sub.slot, sub.cursor, usize::MAX, |seq, entry| {
                    pulled.push((seq, entry.packet().clone()))
                }) {
                Ok(cursor) => sub.cursor = cursor,
                Err(Lagged) => {
                    self.lagged = true;
                    return;
                }
            }
        }
        // Stable: a packet's attachments keep their place behind it.
        pulled.sort_by_key(|(seq, _)| *seq);
        for (_, packet) in pulled {
            *bytes += packet.len();
            queue.push_back(packet);
        }
    }

    /// Nothing may be written: a channel lost entries this session needed and
    /// the close is on its way.
    fn frozen(&self) -> bool {
        self.lagged && self.closed.is_none()
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.transport
    }

    pub(crate) fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    pub(crate) fn queued(&self) -> usize {
        self.backlog().0
    }

    /// Packets and payload bytes waiting to be written: the queue and the
    /// channels' unread entries (what a writer sizes its buffer for).
    pub(crate) fn backlog(&self) -> (usize, usize) {
        self.subs.iter().fold(
            (self.queue.len(), self.queued_bytes),
            |(packets, bytes), sub| {
                let (more, more_bytes) = sub.channel.pending(sub.cursor);
                (packets + more, bytes + more_bytes)
            },
        )
    }

    /// Queues packets atomically (all or none). Returns whether the queue was
    /// empty before, i.e. whether a writer may be waiting.
    pub(crate) fn push_all<I>(&mut self, packets: I, limits: &Limits) -> Result<bool, SendError>
    where
        I: IntoIterator<Item = EncodedPacket>,
        I::IntoIter: ExactSizeIterator + Clone,
    {
        if self.closed.is_some() {
            return Err(SendError::Closed);
        }
        self.absorb();
        let packets = packets.into_iter();
        let bytes: usize = packets.clone().map(|p| p.len()).sum();
        if !self.fits(packets.len(), bytes, limits.max_packets, limits.max_bytes) {
            return Err(SendError::SlowConsumer);
        }
        let was_empty = self.queue.is_empty();
        self.queue.extend(packets);
        self.queued_bytes += bytes;
        Ok(was_empty)
    }

    /// Whether `packets` more packets of `bytes` in all keep what the session
    /// holds within its limits: at most `max_packets` queued, at most
    /// `max_packets` written but kept until the client confirms them, and
    /// `max_bytes` for both together.
    ///
    /// The two counts are separate because what was written and awaits
    /// confirmation is in flight (socket buffers, the confirmation's round
    /// trip), not a backlog: counting it against the queue would give a
    /// confirming client half the room a WebSocket client has before a busy
    /// room closes it as a slow consumer.
    fn fits(&self, packets: usize, bytes: usize, max_packets: usize, max_bytes: usize) -> bool {
        self.queue.len() + packets <= max_packets
            && self.retained.len() + self.sse_unconfirmed <= max_packets
            && self.queued_bytes + self.retained_bytes + self.sse_sent_bytes + bytes <= max_bytes
    }

    /// Queues one packet: [`SessionState::push_all`] for the common case of a
    /// single packet, without going through an iterator of clones.
    pub(crate) fn push(
        &mut self,
        packet: EncodedPacket,
        limits: &Limits,
    ) -> Result<bool, SendError> {
        if self.closed.is_some() {
            return Err(SendError::Closed);
        }
        self.absorb();
        let bytes = packet.len();
        if !self.fits(1, bytes, limits.max_packets, limits.max_bytes) {
            return Err(SendError::SlowConsumer);
        }
        let was_empty = self.queue.is_empty();
        self.queue.push_back(packet);
        self.queued_bytes += bytes;
        Ok(was_empty)
    }

    /// Queues packets the application allows to be lost, all or none: dropped
    /// when the client already has half a queue's worth waiting, or mid-upgrade.
    pub(crate) fn push_volatile_all<I>(
        &mut self,
        packets: I,
        limits: &Limits,
    ) -> Result<bool, SendError>
    where
        I: IntoIterator<Item = EncodedPacket>,
        I::IntoIter: ExactSizeIterator + Clone,
    {
        if self.closed.is_some() {
            return Err(SendError::Closed);
        }
        let packets = packets.into_iter();
        let bytes: usize = packets.clone().map(|p| p.len()).sum();
        if self.probe.is_some()
            || !self.fits(
                packets.len(),
                bytes,
                limits.max_packets / 2,
                limits.max_bytes / 2,
            )
        {
            return Err(SendError::Dropped);
        }
        self.push_all(packets, limits)
    }

    /// Takes everything queued, for a writer that owns the downstream.
    pub(crate) fn take_queue(&mut self) -> VecDeque<EncodedPacket> {
        self.absorb();
        if self.frozen() {
            return VecDeque::new();
        }
        self.queued_bytes = 0;
        std::mem::take(&mut self.queue)
    }

    /// Hands every queued packet to `write`, in order, and empties the queue;
    /// a busy session keeps its allocation (see [`keep_queue_allocation`]) so
    /// it does not allocate a new queue for every batch. Returns how many
    /// packets were written.
    pub(crate) fn drain_queue(&mut self, mut write: impl FnMut(&EncodedPacket)) -> usize {
        if self.frozen() {
            return 0;
        }
        if self.subs.len() > 1 {
            self.absorb();
        }
        let n = self.queue.len();
        for packet in &self.queue {
            write(packet);
        }
        self.queue.clear();
        self.queued_bytes = 0;
        if n > 0 && !keep_queue_allocation(n, self.queue.capacity()) {
            self.queue = VecDeque::new();
        }
        n + read_only_channel(&mut self.subs, &mut self.lagged, usize::MAX, |entry| {
            write(entry.packet())
        })
    }

    /// Marks the session closed. Returns false if it already was.
    ///
    /// A close the server chose (forced, shutdown, slow consumer) queues a
    /// close packet for the client; a slow consumer's backlog is dropped
    /// first, since the client could not take it anyway.
    pub(crate) fn close(&mut self, reason: CloseReason) -> bool {
        if self.closed.is_some() {
            return false;
        }
        if matches!(
            reason,
            CloseReason::ForcedClose | CloseReason::ServerShutdown
        ) {
            // Flushed before the close packet.
            self.absorb();
        }
        self.subs.clear();
        self.closed = Some(reason);
        self.probe = None;
        match reason {
            CloseReason::SlowConsumer | CloseReason::PayloadTooLarge | CloseReason::TakenOver => {
                self.queue.clear();
                self.queued_bytes = 0;
                self.queue
                    .push_back(EncodedPacket::control(PacketType::Close));
            }
            CloseReason::ForcedClose | CloseReason::ServerShutdown => {
                self.queue
                    .push_back(EncodedPacket::control(PacketType::Close));
            }
            _ => {}
        }
        true
    }

    // ----- heartbeat -----

    pub(crate) fn tick(&mut self, now: Instant, limits: &Limits) -> Tick {
        if self.closed.is_some() {
            return Tick::Nothing;
        }
        if let Some(probe) = self.probe {
            if now >= probe.deadline {
                self.probe = None;
                return Tick::ProbeExpired;
            }
        }
        match self.pong_deadline {
            Some(deadline) if now >= deadline => Tick::PingTimeout,
            Some(_) => Tick::Nothing,
            None if now >= self.next_ping_at => {
                self.pong_deadline = Some(now + limits.ping_timeout);
                self.absorb();
                // Heartbeats bypass the queue limit: a full queue already closes the session.
                self.queue
                    .push_back(EncodedPacket::control(PacketType::Ping));
                self.queued_bytes += 1;
                Tick::PingQueued
            }
            None => Tick::Nothing,
        }
    }

    pub(crate) fn on_pong(&mut self, now: Instant, limits: &Limits) {
        if self.pong_deadline.take().is_some() {
            self.next_ping_at = now + limits.ping_interval;
        }
    }

    // ----- long-polling -----

    /// A GET arrived. Refused (protocol error) when one is already pending.
    ///
    /// `ack` is tidewire's extension: the sequence number of the last packet
    /// the client received. A client that sends it gets every unconfirmed
    /// packet again, so a poll answer lost in flight loses nothing.
    ///
    /// A second GET while one is pending breaks the protocol, except from a
    /// confirming client: its retry after a cut the server did not see
    /// replaces the stale GET, which then answers a noop and takes nothing.
    pub(crate) fn begin_poll(&mut self, ack: Option<u64>) -> Result<u32, PollConflict> {
        if self.transport != TransportKind::Polling {
            return Err(PollConflict::WrongTransport);
        }
        if self.poll_active && !(self.acked_polling && ack.is_some()) {
            return Err(PollConflict::ConcurrentGet);
        }
        if let Some(ack) = ack {
            self.acked_polling = true;
            // No SSE stream to wake on a polling session.
            let _ = self.ack(ack);
        }
        self.poll_active = true;
        self.poll_gen = self.poll_gen.wrapping_add(1);
        Ok(self.poll_gen)
    }

    pub(crate) fn end_poll(&mut self, poll: u32) {
        if self.poll_gen == poll {
            self.poll_active = false;
        }
    }

    /// What pending GET `poll` should answer now, or `None` to keep waiting.
    pub(crate) fn poll_answer(&mut self, poll: u32) -> Option<PollAnswer> {
        if self.poll_gen != poll {
            return Some(PollAnswer::Noop);
        }
        self.absorb();
        if self.frozen() {
            return None;
        }
        if self.acked_polling && !(self.queue.is_empty() && self.retained.is_empty()) {
            // Unconfirmed packets first (the last answer may have been lost), then new ones.
            let mut packets: VecDeque<EncodedPacket> =
                self.retained.iter().map(|(_, p)| p.clone()).collect();
            for packet in self.take_queue() {
                self.down_seq += 1;
                self.retained_bytes += packet.len();
                self.retained.push_back((self.down_seq, packet.clone()));
                packets.push_back(packet);
            }
            return Some(PollAnswer::Packets {
                packets,
                last_seq: Some(self.down_seq),
            });
        }
        if !self.queue.is_empty() {
            return Some(PollAnswer::Packets {
                packets: self.take_queue(),
                last_seq: None,
            });
        }
        if self.closed.is_some() {
            return Some(PollAnswer::Closed);
        }
        if self.transport != TransportKind::Polling || self.probe.is_some_and(|p| p.release_poll) {
            return Some(PollAnswer::Noop);
        }
        None
    }

    /// A POST arrived. Refused when one is already in progress.
    pub(crate) fn begin_post(&mut self, transport: TransportKind) -> Result<(), PollConflict> {
        if self.post_active {
            return Err(PollConflict::ConcurrentPost);
        }
        // A POST may still arrive right after an upgrade, while the client flushes.
        if !transport.is_http() {
            return Err(PollConflict::WrongTransport);
        }
        self.post_active = true;
        Ok(())
    }

    pub(crate) fn end_post(&mut self) {
        self.post_active = false;
    }

    // ----- server-sent events -----

    /// A new SSE stream opens, replacing any current one. Events up to
    /// `last_event_id` are confirmed; the rest of the retained events are
    /// returned, encoded as they were written, to be written again first.
    pub(crate) fn begin_sse_stream(
        &mut self,
        last_event_id: Option<u64>,
    ) -> Result<(u32, Bytes), PollConflict> {
        if self.transport != TransportKind::Sse {
            return Err(PollConflict::WrongTransport);
        }
        if let Some(id) = last_event_id {
            // The new stream writes next whatever the window was.
            let _ = self.ack(id);
        }
        self.sse_stream = self.sse_stream.wrapping_add(1);
        Ok((self.sse_stream, self.sse_unconfirmed_events()))
    }

    /// The events written but not confirmed, as the bytes that carried them.
    fn sse_unconfirmed_events(&self) -> Bytes {
        let mut chunks = self.sse_sent.iter().map(|chunk| {
            if chunk.first <= self.sse_confirmed {
                // Confirmed part way: from the first event after the confirmed one.
                let from = crate::transport::sse::event_after(&chunk.bytes, self.sse_confirmed);
                chunk.bytes.slice(from..)
            } else {
                chunk.bytes.clone()
            }
        });
        match (chunks.next(), self.sse_sent.len()) {
            (None, _) => Bytes::new(),
            (Some(only), 1) => only,
            (Some(first), _) => {
                let mut all = first.to_vec();
                all.reserve(self.sse_sent_bytes);
                chunks.for_each(|chunk| all.extend_from_slice(&chunk));
                Bytes::from(all)
            }
        }
    }

    /// The client confirmed every packet up to `id` (SSE event ids; acked polls).
    /// Returns whether an SSE stream waits for this confirmation (its window
    /// was full and now has room): the caller wakes it.
    #[must_use = "a stream whose window was full waits for a wake"]
    pub(crate) fn ack(&mut self, id: u64) -> bool {
        while self.retained.front().is_some_and(|(seq, _)| *seq <= id) {
            if let Some((_, packet)) = self.retained.pop_front() {
                self.retained_bytes -= packet.len();
            }
        }
        // An id never sent confirms what was sent; an old one confirms nothing new.
        let id = id.min(self.down_seq);
        if id <= self.sse_confirmed {
            return false;
        }
        while let Some(chunk) = self.sse_sent.front() {
            let unconfirmed_from = chunk.first.max(self.sse_confirmed + 1);
            if chunk.last > id {
                if id >= unconfirmed_from {
                    self.sse_unconfirmed -= (id + 1 - unconfirmed_from) as usize;
                }
                break;
            }
            self.sse_unconfirmed -= (chunk.last + 1 - unconfirmed_from) as usize;
            self.sse_sent_bytes -= chunk.bytes.len();
            self.sse_confirmed = chunk.last;
            self.sse_sent.pop_front();
        }
        self.sse_confirmed = id;
        std::mem::take(&mut self.sse_window_full)
    }

    /// The id the next SSE packet written gets.
    pub(crate) fn next_event_id(&self) -> u64 {
        self.down_seq + 1
    }

    /// Keeps `chunk`, which carried the events from id `first` to the last one
    /// written, until the client confirms them (see [`Self::sse_next`]).
    pub(crate) fn retain_sse(&mut self, first: u64, chunk: Bytes) {
        if self.down_seq < first || self.transport != TransportKind::Sse {
            return;
        }
        self.sse_unconfirmed += (self.down_seq + 1 - first) as usize;
        self.sse_sent_bytes += chunk.len();
        self.sse_sent.push_back(SentChunk {
            first,
            last: self.down_seq,
            bytes: chunk,
        });
    }

    /// What SSE stream `stream` writes next: hands each event to `write` (its
    /// id, its packet, and for a channel entry the encoding every stream
    /// shares). The writer hands the chunk it wrote to [`Self::retain_sse`],
    /// which keeps it until the client confirms its events.
    ///
    /// At most `limits.max_packets` packets are written and unconfirmed at a
    /// time (and no more once they hold `limits.max_bytes`): a stream whose
    /// window is full waits for the client's confirmation, and the backlog
    /// stays queued, where the usual slow-consumer limits apply. A client that
    /// reads promptly but confirms a round trip later is paced, not closed.
    pub(crate) fn sse_next(
        &mut self,
        stream: u32,
        limits: &Limits,
        mut write: impl FnMut(u64, &EncodedPacket, Option<&SsePiece>),
    ) -> SseStep {
        self.sse_drained = false;
        if self.sse_stream != stream {
            return SseStep::Superseded;
        }
        if self.transport != TransportKind::Sse {
            // Upgraded: the stream ends with a noop after everything it carried.
            write(0, &EncodedPacket::control(PacketType::Noop), None);
            return SseStep::Finish;
        }
        if self.frozen() {
            return SseStep::Wait;
        }
        // A closed session's last events (the close packet) go out regardless.
        let window = if self.closed.is_some() {
            usize::MAX
        } else {
            self.sse_window(limits)
        };
        self.sse_window_full = window == 0;
        if window == 0 {
            return SseStep::Wait;
        }
        if self.subs.len() > 1 {
            self.absorb();
        }
        let seq = &mut self.down_seq;
        let mut keep = |packet: &EncodedPacket, data: Option<&SsePiece>| {
            *seq += 1;
            write(*seq, packet, data);
        };
        // Drained in place: the queue keeps its allocation for the next batch.
        let queued = self.queue.len().min(window);
        if queued == self.queue.len() {
            self.queued_bytes = 0;
            for packet in self.queue.drain(..) {
                keep(&packet, None);
            }
            if queued > 0 && !keep_queue_allocation(queued, self.queue.capacity()) {
                self.queue = VecDeque::new();
            }
        } else {
            for packet in self.queue.drain(..queued) {
                self.queued_bytes -= packet.len();
                keep(&packet, None);
            }
        }
        // The queue precedes the channel: read it only once the queue is empty.
        let room = if self.queue.is_empty() {
            window - queued
        } else {
            0
        };
        let from_channel = read_only_channel(&mut self.subs, &mut self.lagged, room, |entry| {
            keep(entry.packet(), Some(entry.sse_piece()))
        });
        // A read stops at its limit or at the tail; short of the limit it reached
        // the tail, and the channel wakes the session at its next entry.
        self.sse_drained = self.queue.is_empty() && from_channel < room && !self.lagged;
        if self.closed.is_some() {
            SseStep::Finish
        } else if queued + from_channel == 0 {
            SseStep::Wait
        } else {
            SseStep::Write
        }
    }

    /// Whether the last [`Self::sse_next`] that wrote took everything and the
    /// window (its chunk retained) still has room: what another look would find
    /// comes with a wake-up. A full window is not drained: the next look marks
    /// that a confirmation has to wake the stream.
    pub(crate) fn sse_drained(&self, limits: &Limits) -> bool {
        self.sse_drained && self.sse_window(limits) > 0
    }

    /// How many more events the SSE stream may write before the client
    /// confirms some (see [`Self::sse_next`]).
    fn sse_window(&self, limits: &Limits) -> usize {
        if self.sse_sent_bytes >= limits.max_bytes {
            return 0;
        }
        limits.max_packets.saturating_sub(self.sse_unconfirmed)
    }

    /// Whether what the session holds (queued, and kept for a client to
    /// confirm) is over its limits. Channel entries join without the
    /// per-packet check a direct send makes, so writers check after writing.
    pub(crate) fn holds_too_much(&self, limits: &Limits) -> bool {
        !self.fits(0, 0, limits.max_packets, limits.max_bytes)
    }

    // ----- upgrade -----

    /// A WebSocket asks to take over an HTTP session. Returns its connection id.
    pub(crate) fn begin_probe(
        &mut self,
        now: Instant,
        limits: &Limits,
    ) -> Result<u32, ProbeRefused> {
        if self.closed.is_some() {
            return Err(ProbeRefused::Closed);
        }
        if !self.transport.is_http() {
            return Err(ProbeRefused::AlreadyUpgraded);
        }
        if self.probe.is_some() {
            return Err(ProbeRefused::ProbeInProgress);
        }
        let conn = self.next_conn;
        self.next_conn = self.next_conn.wrapping_add(1);
        self.probe = Some(Probe {
            conn,
            deadline: now + limits.upgrade_timeout,
            release_poll: false,
        });
        Ok(conn)
    }

    /// The probe ping (`2probe`) arrived on connection `conn`.
    pub(crate) fn probe_pinged(&mut self, conn: u32) -> bool {
        match &mut self.probe {
            Some(p) if p.conn == conn => {
                p.release_poll = true;
                true
            }
            _ => false,
        }
    }

    /// The client sent `5` on connection `conn`: it becomes the session's transport.
    pub(crate) fn complete_upgrade(&mut self, conn: u32) -> bool {
        match self.probe {
            Some(p) if p.conn == conn && self.closed.is_none() => {
                self.probe = None;
                self.transport = TransportKind::WebSocket;
                self.active_conn = conn;
                // Whatever the SSE stream wrote before the switch is behind the
                // final noop the stream still writes; nothing is resent over WebSocket.
                self.retained.clear();
                self.retained_bytes = 0;
                self.sse_sent.clear();
                self.sse_unconfirmed = 0;
                self.sse_sent_bytes = 0;
                true
            }
            _ => false,
        }
    }

    /// The probing connection went away before the upgrade finished.
    pub(crate) fn abort_probe(&mut self, conn: u32) {
        if self.probe.is_some_and(|p| p.conn == conn) {
            self.probe = None;
        }
    }

    /// Whether connection `conn` is probing.
    pub(crate) fn is_probing(&self, conn: u32) -> bool {
        self.probe.is_some_and(|p| p.conn == conn)
    }

    /// Whether connection `conn` owns the downstream.
    pub(crate) fn is_active(&self, conn: u32) -> bool {
        self.transport == TransportKind::WebSocket && self.active_conn == conn
    }
}

/// What an SSE stream does next. Events are `(id, packet)`; id 0 means "no id line".
#[derive(Debug)]
pub(crate) enum SseStep {
    /// Events were handed over: write them.
    Write,
    /// Write what was handed over, then end the response.
    Finish,
    /// Another stream took over this session.
    Superseded,
    Wait,
}

/// A long-polling request that breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollConflict {
    ConcurrentGet,
    ConcurrentPost,
    WrongTransport,
}

/// Why a WebSocket could not start probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeRefused {
    Closed,
    AlreadyUpgraded,
    ProbeInProgress,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::sse;

    fn limits() -> Limits {
        Limits {
            max_packets: 4,
            max_bytes: 100,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            upgrade_timeout: Duration::from_secs(10),
        }
    }

    fn msg(s: &str) -> EncodedPacket {
        EncodedPacket::message(s)
    }

    /// Stands in for a session's handle in a channel's subscriber list.
    #[derive(Default)]
    struct Fake {
        woken: std::sync::atomic::AtomicUsize,
        lagged: std::sync::atomic::AtomicBool,
    }

    impl Subscriber for Fake {
        fn wake(&self) {
            self.woken
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn lagged(self: Arc<Self>) {
            self.lagged
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn subscribed(channel: &crate::Channel) -> (SessionState, Arc<Fake>) {
        let mut s = SessionState::new(TransportKind::WebSocket, Instant::now(), &limits());
        let fake = Arc::new(Fake::default());
        let weak: Weak<dyn Subscriber> = Arc::downgrade(&fake) as Weak<dyn Subscriber>;
        assert!(s.subscribe(&channel.0, weak.clone()));
        assert!(!s.subscribe(&channel.0, weak), "once per channel");
        (s, fake)
    }

    fn drained(s: &mut SessionState) -> Vec<String> {
        let mut out = Vec::new();
        s.drain_queue(|p| out.push(String::from_utf8_lossy(p.as_text().unwrap()).into_owned()));
        out
    }

    #[test]
    fn channel_entries_and_direct_packets_keep_their_order() {
        let channel = crate::Channel::new(0, 16, 1000);
        let (mut s, fake) = subscribed(&channel);
        s.push(msg("a"), &limits()).unwrap();
        channel.publish(&[msg("b")]);
        assert_eq!(fake.woken.load(std::sync::atomic::Ordering::Relaxed), 1);
        // Queued directly after the broadcast: goes out after it.
        s.push(msg("c"), &limits()).unwrap();
        channel.publish(&[msg("d"), msg("d'")]);
        assert_eq!(s.queued(), 5);
        assert_eq!(drained(&mut s), ["4a", "4b", "4c", "4d", "4d'"]);
        assert!(drained(&mut s).is_empty());
        // Caught up after each read (the push above read too): every publish
        // since woke it, and the log is empty.
        channel.publish(&[msg("e")]);
        assert_eq!(fake.woken.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(drained(&mut s), ["4e"]);
        assert_eq!(
            channel.0.pending(0),
            (0, 0),
            "nothing kept once everyone read"
        );
    }

    #[test]
    fn two_channels_merge_in_publication_order() {
        let (one, two) = (
            crate::Channel::new(0, 16, 1000),
            crate::Channel::new(0, 16, 1000),
        );
        let (mut s, _fake) = subscribed(&one);
        let fake = Arc::new(Fake::default());
        assert!(s.subscribe(&two.0, Arc::downgrade(&fake) as Weak<dyn Subscriber>));
        one.publish(&[msg("1")]);
        two.publish(&[msg("2")]);
        one.publish(&[msg("3")]);
        assert_eq!(drained(&mut s), ["41", "42", "43"]);
        // Polling and SSE take the same order.
        two.publish(&[msg("4")]);
        one.publish(&[msg("5")]);
        let taken: Vec<_> = s
            .take_queue()
            .iter()
            .map(|p| p.as_text().unwrap().to_vec())
            .collect();
        assert_eq!(taken, [b"44".to_vec(), b"45".to_vec()]);
        assert_eq!(s.unsubscribe_group(0), 2);
    }

    #[test]
    fn leaving_a_channel_keeps_what_it_published_before() {
        let channel = crate::Channel::new(0, 16, 1000);
        let (mut s, _fake) = subscribed(&channel);
        channel.publish(&[msg("before")]);
        assert!(s.unsubscribe(&channel.0));
        assert_eq!(channel.subscribers(), 0);
        channel.publish(&[msg("after")]);
        assert_eq!(drained(&mut s), ["4before"]);
    }

    #[test]
    fn a_subscriber_too_far_behind_is_reported_and_writes_nothing_more() {
        let channel = crate::Channel::new(0, 4, 1000);
        let (mut reader, reader_fake) = subscribed(&channel);
        let (mut idle, idle_fake) = subscribed(&channel);
        for n in 0..6 {
            channel.publish(&[msg(&n.to_string())]);
            assert_eq!(drained(&mut reader).len(), 1);
        }
        assert!(idle_fake.lagged.load(std::sync::atomic::Ordering::Relaxed));
        assert!(!reader_fake
            .lagged
            .load(std::sync::atomic::Ordering::Relaxed));
        // Never a gap: nothing is written until the close.
        assert!(drained(&mut idle).is_empty());
        assert!(idle.close(CloseReason::SlowConsumer));
        assert_eq!(drained(&mut idle), ["1"], "only the close packet");
        assert_eq!(
            channel.subscribers(),
            1,
            "a closed session leaves its channels"
        );
    }

    #[test]
    fn queue_is_bounded_and_atomic() {
        let l = limits();
        let mut s = SessionState::new(TransportKind::Polling, Instant::now(), &l);
        assert_eq!(s.push_all([msg("a")], &l), Ok(true));
        assert_eq!(s.push_all([msg("b"), msg("c")], &l), Ok(false));
        assert_eq!(
            s.push_all([msg("d"), msg("e")], &l),
            Err(SendError::SlowConsumer)
        );
        assert_eq!(s.queued(), 3, "a refused batch queues nothing");
        assert_eq!(s.push_volatile_all([msg("v")], &l), Err(SendError::Dropped));
        assert!(s.close(CloseReason::SlowConsumer));
        assert!(!s.close(CloseReason::ForcedClose), "close happens once");
        let q = s.take_queue();
        assert_eq!(q.len(), 1, "a slow consumer gets only the close packet");
        assert_eq!(s.push_all([msg("x")], &l), Err(SendError::Closed));
    }

    #[test]
    fn heartbeat_pings_then_times_out() {
        let l = limits();
        let t0 = Instant::now();
        let mut s = SessionState::new(TransportKind::WebSocket, t0, &l);
        assert_eq!(s.tick(t0 + Duration::from_secs(24), &l), Tick::Nothing);
        assert_eq!(s.tick(t0 + Duration::from_secs(25), &l), Tick::PingQueued);
        assert_eq!(s.take_queue().len(), 1);
        assert_eq!(s.tick(t0 + Duration::from_secs(30), &l), Tick::Nothing);
        s.on_pong(t0 + Duration::from_secs(30), &l);
        assert_eq!(s.tick(t0 + Duration::from_secs(54), &l), Tick::Nothing);
        assert_eq!(s.tick(t0 + Duration::from_secs(55), &l), Tick::PingQueued);
        assert_eq!(s.tick(t0 + Duration::from_secs(75), &l), Tick::PingTimeout);
    }

    #[test]
    fn poll_waits_until_there_is_something_to_say() {
        let l = limits();
        let mut s = SessionState::new(TransportKind::Polling, Instant::now(), &l);
        let poll = s.begin_poll(None).unwrap();
        assert_eq!(s.begin_poll(None), Err(PollConflict::ConcurrentGet));
        assert!(s.poll_answer(poll).is_none());
        s.push_all([msg("a")], &l).unwrap();
        assert!(
            matches!(s.poll_answer(poll), Some(PollAnswer::Packets { packets: q, .. }) if q.len() == 1)
        );
        s.end_poll(poll);
        s.close(CloseReason::ForcedClose);
        assert!(
            matches!(s.poll_answer(poll), Some(PollAnswer::Packets { packets: q, .. }) if q.len() == 1)
        );
        assert!(matches!(s.poll_answer(poll), Some(PollAnswer::Closed)));
    }

    #[test]
    fn upgrade_switches_at_one_point() {
        let l = limits();
        let t0 = Instant::now();
        let mut s = SessionState::new(TransportKind::Polling, t0, &l);
        let conn = s.begin_probe(t0, &l).unwrap();
        assert_eq!(s.begin_probe(t0, &l), Err(ProbeRefused::ProbeInProgress));
        let poll = s.begin_poll(None).unwrap();
        assert!(
            s.poll_answer(poll).is_none(),
            "probe alone does not end the poll"
        );
        assert!(s.probe_pinged(conn));
        assert!(matches!(s.poll_answer(poll), Some(PollAnswer::Noop)));
        s.end_poll(poll);
        s.push_all([msg("during")], &l).unwrap();
        assert!(!s.is_active(conn));
        assert!(s.complete_upgrade(conn));
        assert!(s.is_active(conn));
        assert_eq!(s.transport(), TransportKind::WebSocket);
        assert_eq!(s.begin_poll(None), Err(PollConflict::WrongTransport));
        assert_eq!(
            s.take_queue().len(),
            1,
            "packets queued mid-upgrade go to the new transport"
        );
    }

    /// One SSE step with the events it wrote, kept as the stream's writer keeps them.
    fn sse_step(
        s: &mut SessionState,
        stream: u32,
        l: &Limits,
    ) -> (SseStep, Vec<(u64, EncodedPacket)>) {
        let mut events = Vec::new();
        let first = s.next_event_id();
        let step = s.sse_next(stream, l, |id, p, shared| {
            if let Some(piece) = shared {
                assert_eq!(*piece, SsePiece::of(p), "shared encoding");
            }
            events.push((id, p.clone()))
        });
        if matches!(step, SseStep::Write | SseStep::Finish) {
            s.retain_sse(first, sse::encode_events(&events));
        }
        (step, events)
    }

    /// An SSE session reading `channel`, its stream open, one packet queued directly.
    fn sse_subscribed(channel: &crate::Channel, l: &Limits) -> (SessionState, Arc<Fake>, u32) {
        let mut s = SessionState::new(TransportKind::Sse, Instant::now(), l);
        let fake = Arc::new(Fake::default());
        assert!(s.subscribe(&channel.0, Arc::downgrade(&fake) as Weak<dyn Subscriber>));
        let (stream, _) = s.begin_sse_stream(None).unwrap();
        s.push(msg("direct"), l).unwrap();
        (s, fake, stream)
    }

    #[test]
    fn sse_writes_channel_entries_and_keeps_them_until_confirmed() {
        let l = limits();
        let channel = crate::Channel::new(0, 16, 1000);
        let (mut s, _fake, stream) = sse_subscribed(&channel, &l);
        for n in 0..4 {
            channel.publish(&[msg(&n.to_string())]);
        }
        assert_eq!(s.backlog(), (5, "4direct".len() + 4 * "40".len()));
        // Four events may be unconfirmed at a time: the fifth waits in the channel.
        let (step, events) = sse_step(&mut s, stream, &l);
        assert_eq!(s.backlog(), (1, "43".len()), "the channel's unread entry");
        assert!(matches!(step, SseStep::Write));
        assert_eq!(
            events.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(matches!(sse_step(&mut s, stream, &l).0, SseStep::Wait));
        assert!(
            !s.holds_too_much(&l),
            "a full window is not a slow consumer"
        );
        assert!(s.ack(2), "the confirmation wakes the waiting stream");
        let (_, events) = sse_step(&mut s, stream, &l);
        assert_eq!(events, [(5, msg("3"))]);
        let (second, replay) = s.begin_sse_stream(Some(3)).unwrap();
        assert_eq!(replay, sse::encode_events(&[(4, msg("2")), (5, msg("3"))]));
        assert!(matches!(sse_step(&mut s, second, &l).0, SseStep::Wait));
    }

    #[test]
    fn sse_retains_until_confirmed_and_replays_on_resume() {
        let l = limits();
        let mut s = SessionState::new(TransportKind::Sse, Instant::now(), &l);
        let (first, replay) = s.begin_sse_stream(None).unwrap();
        assert!(replay.is_empty());
        s.push_all([msg("a"), msg("b")], &l).unwrap();
        let (SseStep::Write, events) = sse_step(&mut s, first, &l) else {
            panic!()
        };
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        // The two written events have their own budget (4 packets): the
        // queue still takes four, not two, and refuses a fifth.
        s.push_all([msg("c"), msg("d"), msg("e"), msg("f")], &l)
            .unwrap();
        assert_eq!(s.push(msg("g"), &l), Err(SendError::SlowConsumer));
        // The stream dropped after event 1; a new one resumes from there.
        let (second, replay) = s.begin_sse_stream(Some(1)).unwrap();
        assert_eq!(replay, sse::encode_events(&[(2, msg("b"))]));
        assert!(matches!(sse_step(&mut s, first, &l).0, SseStep::Superseded));
        // Event 2 is still unconfirmed: room for three more, "f" stays queued.
        let (SseStep::Write, events) = sse_step(&mut s, second, &l) else {
            panic!()
        };
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(matches!(sse_step(&mut s, second, &l).0, SseStep::Wait));
        assert!(s.ack(5));
        assert_eq!(sse_step(&mut s, second, &l).1, [(6, msg("f"))]);
        assert!(!s.ack(6), "the window had room: nobody waits");
        assert!(matches!(sse_step(&mut s, second, &l).0, SseStep::Wait));
        assert_eq!(
            s.push_all([msg("g"), msg("h"), msg("i"), msg("j")], &l),
            Ok(true)
        );
    }

    #[test]
    fn an_sse_write_that_took_everything_with_room_left_is_drained() {
        let l = Limits {
            max_packets: 4,
            max_bytes: 1000,
            ..limits()
        };
        let channel = crate::Channel::new(0, 16, 1000);
        let (mut s, fake, stream) = sse_subscribed(&channel, &l);
        channel.publish(&[msg("a")]);
        assert!(matches!(sse_step(&mut s, stream, &l).0, SseStep::Write));
        assert!(
            s.sse_drained(&l),
            "two of four: read to the tail, room left"
        );
        // The channel's next entry wakes it (it read to the tail).
        let woken = fake.woken.load(std::sync::atomic::Ordering::Relaxed);
        channel.publish(&[msg("b")]);
        assert_eq!(
            fake.woken.load(std::sync::atomic::Ordering::Relaxed),
            woken + 1
        );
        assert!(matches!(sse_step(&mut s, stream, &l).0, SseStep::Write));
        assert!(s.sse_drained(&l));
        // The fourth event fills the window: the next look must mark it full.
        channel.publish(&[msg("c"), msg("d")]);
        assert!(matches!(sse_step(&mut s, stream, &l).0, SseStep::Write));
        assert!(!s.sse_drained(&l), "window full, an entry left unread");
        assert!(matches!(sse_step(&mut s, stream, &l).0, SseStep::Wait));
        assert!(
            s.ack(4),
            "the full window was noticed: the confirmation wakes"
        );
        // Bytes close the window too.
        let tight = Limits { max_bytes: 40, ..l };
        s.push(msg("twenty bytes of text"), &tight).unwrap();
        assert!(matches!(sse_step(&mut s, stream, &tight).0, SseStep::Write));
        assert!(!s.sse_drained(&tight), "the bytes written fill the window");
    }

    #[test]
    fn sse_confirms_part_of_a_chunk_and_replays_across_chunks() {
        let l = Limits {
            max_packets: 100,
            max_bytes: 10_000,
            ..limits()
        };
        let mut s = SessionState::new(TransportKind::Sse, Instant::now(), &l);
        let (stream, _) = s.begin_sse_stream(None).unwrap();
        let sent: Vec<(u64, EncodedPacket)> = (1..=7)
            .map(|n| {
                (
                    n,
                    msg(&format!(
                        "p{n}{}",
                        if n == 5 { "\nsecond line" } else { "" }
                    )),
                )
            })
            .collect();
        // Three writes: events 1-3, 4-5 (one with a line break), 6-7.
        for batch in [&sent[0..3], &sent[3..5], &sent[5..7]] {
            let packets: Vec<EncodedPacket> = batch.iter().map(|(_, p)| p.clone()).collect();
            s.push_all(packets, &l).unwrap();
            assert!(matches!(sse_step(&mut s, stream, &l).0, SseStep::Write));
        }
        assert_eq!(s.sse_unconfirmed, 7);
        assert!(!s.ack(2));
        assert!(!s.ack(1)); // late and stale: confirms nothing more
        assert_eq!(s.sse_unconfirmed, 5);
        let (_, replay) = s.begin_sse_stream(None).unwrap();
        assert_eq!(replay, sse::encode_events(&sent[2..]));
        // Confirming inside the second chunk drops the first one whole.
        let (_, replay) = s.begin_sse_stream(Some(4)).unwrap();
        assert_eq!(replay, sse::encode_events(&sent[4..]));
        assert_eq!((s.sse_sent.len(), s.sse_unconfirmed), (2, 3));
        // An id past the last written confirms everything written, not what comes later.
        assert!(!s.ack(1000));
        assert_eq!(
            (s.sse_sent.len(), s.sse_unconfirmed, s.sse_sent_bytes),
            (0, 0, 0)
        );
        let (stream, replay) = s.begin_sse_stream(None).unwrap();
        assert!(replay.is_empty());
        s.push_all([msg("p8")], &l).unwrap();
        let (SseStep::Write, events) = sse_step(&mut s, stream, &l) else {
            panic!()
        };
        assert_eq!(events[0].0, 8);
        assert_eq!(s.sse_unconfirmed, 1);
    }

    #[test]
    fn acked_polls_resend_what_was_not_confirmed() {
        let l = limits();
        let mut s = SessionState::new(TransportKind::Polling, Instant::now(), &l);
        let poll = s.begin_poll(Some(0)).unwrap();
        s.push_all([msg("a"), msg("b")], &l).unwrap();
        let Some(PollAnswer::Packets { packets, last_seq }) = s.poll_answer(poll) else {
            panic!()
        };
        assert_eq!((packets.len(), last_seq), (2, Some(2)));
        s.end_poll(poll);
        // That answer was lost: the client confirms only what it had before.
        let poll = s.begin_poll(Some(0)).unwrap();
        s.push_all([msg("c")], &l).unwrap();
        let Some(PollAnswer::Packets { packets, last_seq }) = s.poll_answer(poll) else {
            panic!()
        };
        assert_eq!(packets, [msg("a"), msg("b"), msg("c")]);
        assert_eq!(last_seq, Some(3));
        s.end_poll(poll);
        let poll = s.begin_poll(Some(3)).unwrap();
        assert!(
            s.poll_answer(poll).is_none(),
            "everything confirmed: the poll waits"
        );
    }

    #[test]
    fn sse_stream_ends_with_noop_after_upgrade() {
        let l = limits();
        let t0 = Instant::now();
        let mut s = SessionState::new(TransportKind::Sse, t0, &l);
        let (stream, _) = s.begin_sse_stream(None).unwrap();
        let conn = s.begin_probe(t0, &l).unwrap();
        s.push_all([msg("before")], &l).unwrap();
        let (SseStep::Write, events) = sse_step(&mut s, stream, &l) else {
            panic!()
        };
        assert_eq!(events.len(), 1);
        assert!(s.complete_upgrade(conn));
        s.push_all([msg("after")], &l).unwrap();
        let (SseStep::Finish, events) = sse_step(&mut s, stream, &l) else {
            panic!()
        };
        assert_eq!(events, vec![(0, EncodedPacket::control(PacketType::Noop))]);
        assert_eq!(
            s.take_queue().len(),
            1,
            "later packets belong to the WebSocket"
        );
    }

    #[test]
    fn stale_probe_expires() {
        let l = limits();
        let t0 = Instant::now();
        let mut s = SessionState::new(TransportKind::Polling, t0, &l);
        let conn = s.begin_probe(t0, &l).unwrap();
        assert_eq!(s.tick(t0 + Duration::from_secs(11), &l), Tick::ProbeExpired);
        assert!(!s.is_probing(conn));
        assert!(!s.complete_upgrade(conn));
        assert!(s.begin_probe(t0, &l).is_ok());
    }
}
