//! The session state machine: queue, heartbeat, upgrade and close, with no I/O.
//!
//! Transports feed it events (a poll arrived, a probe ping, a pong, a tick)
//! and carry out what it answers. Keeping it free of I/O lets every rule be
//! unit-tested on plain values.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::packet::{EncodedPacket, PacketType};
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
    /// Packets written but not yet confirmed by such a client (`ack=` or `Last-Event-ID`).
    retained: VecDeque<(u64, EncodedPacket)>,
    retained_bytes: usize,
    next_ping_at: Instant,
    pong_deadline: Option<Instant>,
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
            next_ping_at: now + limits.ping_interval,
            pong_deadline: None,
        }
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.transport
    }

    pub(crate) fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
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
    /// holds (queued and retained for resend) within `max_packets` and `max_bytes`.
    fn fits(&self, packets: usize, bytes: usize, max_packets: usize, max_bytes: usize) -> bool {
        self.queue.len() + self.retained.len() + packets <= max_packets
            && self.queued_bytes + self.retained_bytes + bytes <= max_bytes
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
        self.queued_bytes = 0;
        std::mem::take(&mut self.queue)
    }

    /// Payload bytes waiting in the queue.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Hands every queued packet to `write`, in order, and empties the queue;
    /// a busy session keeps its allocation (see [`keep_queue_allocation`]) so
    /// it does not allocate a new queue for every batch. Returns how many
    /// packets were written.
    pub(crate) fn drain_queue(&mut self, mut write: impl FnMut(&EncodedPacket)) -> usize {
        let n = self.queue.len();
        for packet in &self.queue {
            write(packet);
        }
        self.queue.clear();
        self.queued_bytes = 0;
        if n > 0 && !keep_queue_allocation(n, self.queue.capacity()) {
            self.queue = VecDeque::new();
        }
        n
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
            self.ack(ack);
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
    /// returned to be written again first.
    pub(crate) fn begin_sse_stream(
        &mut self,
        last_event_id: Option<u64>,
    ) -> Result<(u32, Vec<(u64, EncodedPacket)>), PollConflict> {
        if self.transport != TransportKind::Sse {
            return Err(PollConflict::WrongTransport);
        }
        if let Some(id) = last_event_id {
            self.ack(id);
        }
        self.sse_stream = self.sse_stream.wrapping_add(1);
        Ok((self.sse_stream, self.retained.iter().cloned().collect()))
    }

    /// The client confirmed every SSE event up to `id`.
    pub(crate) fn ack(&mut self, id: u64) {
        while self.retained.front().is_some_and(|(seq, _)| *seq <= id) {
            if let Some((_, packet)) = self.retained.pop_front() {
                self.retained_bytes -= packet.len();
            }
        }
    }

    /// What SSE stream `stream` writes next.
    pub(crate) fn sse_next(&mut self, stream: u32) -> SseStep {
        if self.sse_stream != stream {
            return SseStep::Superseded;
        }
        if self.transport != TransportKind::Sse {
            // Upgraded: the stream ends with a noop after everything it carried.
            return SseStep::Finish(vec![(0, EncodedPacket::control(PacketType::Noop))]);
        }
        // Drained in place: the queue keeps its allocation for the next batch.
        let mut events = Vec::with_capacity(self.queue.len());
        self.queued_bytes = 0;
        for packet in self.queue.drain(..) {
            self.down_seq += 1;
            self.retained_bytes += packet.len();
            self.retained.push_back((self.down_seq, packet.clone()));
            events.push((self.down_seq, packet));
        }
        if !events.is_empty() && !keep_queue_allocation(events.len(), self.queue.capacity()) {
            self.queue = VecDeque::new();
        }
        if self.closed.is_some() {
            SseStep::Finish(events)
        } else if events.is_empty() {
            SseStep::Wait
        } else {
            SseStep::Write(events)
        }
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
    Write(Vec<(u64, EncodedPacket)>),
    /// Write these, then end the response.
    Finish(Vec<(u64, EncodedPacket)>),
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

    #[test]
    fn sse_retains_until_confirmed_and_replays_on_resume() {
        let l = limits();
        let mut s = SessionState::new(TransportKind::Sse, Instant::now(), &l);
        let (first, replay) = s.begin_sse_stream(None).unwrap();
        assert!(replay.is_empty());
        s.push_all([msg("a"), msg("b")], &l).unwrap();
        let SseStep::Write(events) = s.sse_next(first) else {
            panic!()
        };
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        // Retained events count toward the limit (4 packets).
        s.push_all([msg("c")], &l).unwrap();
        assert_eq!(
            s.push_all([msg("d"), msg("e")], &l),
            Err(SendError::SlowConsumer)
        );
        // The stream dropped after event 1; a new one resumes from there.
        let (second, replay) = s.begin_sse_stream(Some(1)).unwrap();
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), [2]);
        assert!(matches!(s.sse_next(first), SseStep::Superseded));
        let SseStep::Write(events) = s.sse_next(second) else {
            panic!()
        };
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [3]);
        s.ack(3);
        assert!(matches!(s.sse_next(second), SseStep::Wait));
        assert_eq!(
            s.push_all([msg("d"), msg("e"), msg("f"), msg("g")], &l),
            Ok(true)
        );
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
        let SseStep::Write(events) = s.sse_next(stream) else {
            panic!()
        };
        assert_eq!(events.len(), 1);
        assert!(s.complete_upgrade(conn));
        s.push_all([msg("after")], &l).unwrap();
        let SseStep::Finish(events) = s.sse_next(stream) else {
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
