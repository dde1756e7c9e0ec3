//! The one task that serves a WebSocket connection.
//!
//! It waits on two things in a single `select!`: bytes from the client and a
//! change in the session (packets queued, closed, upgrade progress). The
//! heartbeat lives in the engine's shared timer, so the task holds no timer
//! of its own.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::frame::{close_payload, write_server_frame, FrameDecoder, OpCode, WsEvent};
use super::upgrade::{Io, PendingUpgrade};
use crate::engine::EngineCore;
use crate::packet::{EncodedPacket, Packet};
use crate::{CloseReason, EngineHandler, Session};

/// Reads into `buf`, reserving room for at least the frame being received.
async fn read_some(io: &mut Io, buf: &mut BytesMut, wanted: usize) -> std::io::Result<usize> {
    let room = wanted.clamp(READ_CHUNK, MAX_READ_RESERVE);
    if buf.capacity() - buf.len() < room {
        buf.reserve(room);
    }
    io.read_buf(buf).await
}

/// Bytes reserved for a read; small on purpose, since an idle connection holds it.
const READ_CHUNK: usize = 512;
/// Most bytes reserved at once for one large frame.
const MAX_READ_RESERVE: usize = 64 * 1024;
/// How long the last frames may take to leave when the connection ends.
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) struct Connection<H: EngineHandler> {
    core: Arc<EngineCore<H>>,
    session: Session<H::Data>,
    id: u32,
    /// Still proving itself during an upgrade; the HTTP transport carries the session meanwhile.
    probing: bool,
    /// Frames waiting to be written: everything queued, framed under the
    /// session lock in one pass, so it leaves in one write. A busy connection
    /// (several frames per batch) keeps it between batches, up to
    /// [`KEPT_OUT_CAPACITY`]; a quiet one frees it after each write.
    out: Vec<u8>,
}

/// Most bytes the write buffer keeps allocated once it has been written.
const KEPT_OUT_CAPACITY: usize = 4096;

enum Step {
    /// `out` holds this many frames to write.
    Write(usize),
    /// The session closed: write what is left in `out` (maybe a close packet), then end.
    Finish,
    /// This connection no longer carries the session (probe failed, replaced).
    Abandon,
    Wait,
}

enum Flow {
    Continue,
    Stop,
}

impl<H: EngineHandler> Connection<H> {
    pub(super) fn direct(core: Arc<EngineCore<H>>, session: Session<H::Data>) -> Self {
        Self {
            core,
            session,
            id: 1,
            probing: false,
            out: Vec::new(),
        }
    }

    pub(super) fn probe(core: Arc<EngineCore<H>>, session: Session<H::Data>, id: u32) -> Self {
        Self {
            core,
            session,
            id,
            probing: true,
            out: Vec::new(),
        }
    }

    pub(super) async fn run(self, on_upgrade: PendingUpgrade) {
        match on_upgrade.resolve().await {
            Ok((io, read_buf)) => {
                let core = self.core.clone();
                core.shared.metrics.websocket_connections.incr();
                self.serve(io, read_buf).await;
                core.shared.metrics.websocket_connections.decr();
            }
            Err(error) => {
                tracing::debug!(sid = %self.session.id(), %error, "WebSocket upgrade failed");
                self.lost(CloseReason::TransportError);
            }
        }
    }

    /// `read_buf`: bytes the client sent after its handshake that were already read.
    async fn serve(mut self, mut io: Io, mut read_buf: BytesMut) {
        let mut decoder = FrameDecoder::new(self.core.config.max_payload);
        // A second handle so the wake-up future does not borrow `self`.
        let session = self.session.clone();
        // Enabled before every look at the state; replaced only once it fires,
        // so a write or a read that changed nothing does not set up a new one.
        let changed = session.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // Frames the client sent right behind its handshake, already read by the HTTP server.
        if !read_buf.is_empty() {
            if let Flow::Stop = self
                .handle_frames(&mut decoder, &mut read_buf, &mut io)
                .await
            {
                return;
            }
        }
        loop {
            match self.next_step() {
                Step::Write(frames) => {
                    if let Err(reason) = self.write_out(&mut io).await {
                        self.lost(reason);
                        return;
                    }
                    if frames >= 2 && self.out.capacity() <= KEPT_OUT_CAPACITY {
                        self.out.clear();
                    } else {
                        self.out = Vec::new();
                    }
                    continue;
                }
                Step::Finish => {
                    let mut out = std::mem::take(&mut self.out);
                    let _ = tokio::time::timeout(FINISH_TIMEOUT, async {
                        write_server_frame(&mut out, OpCode::Close, &close_payload(1000, ""));
                        io.write_all(&out).await?;
                        io.shutdown().await
                    })
                    .await;
                    return;
                }
                Step::Abandon => {
                    send_close_frame(&mut io, 1000, "").await;
                    return;
                }
                Step::Wait => {}
            }
            let wanted = decoder.bytes_wanted(&read_buf);
            // Fixed order (no random draw per wake-up); the read comes first, so
            // a steady stream of outgoing packets never starves the client's input.
            let fired = tokio::select! {
                biased;
                result = read_some(&mut io, &mut read_buf, wanted) => {
                    match result {
                        Ok(0) => return self.lost(CloseReason::TransportClose),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(sid = %self.session.id(), %error, "WebSocket read failed");
                            return self.lost(CloseReason::TransportError);
                        }
                    }
                    if let Flow::Stop = self.handle_frames(&mut decoder, &mut read_buf, &mut io).await {
                        return;
                    }
                    if read_buf.is_empty() {
                        // Idle connections keep no buffer; the next read reserves one.
                        read_buf = BytesMut::new();
                    }
                    false
                }
                _ = changed.as_mut() => true,
            };
            if fired {
                changed.set(session.changed());
                changed.as_mut().enable();
                // One pass of the scheduler before draining: broadcasts already
                // on their way join this batch, so a busy connection writes
                // fewer, fuller batches (docs/benchmarks.md, fan-out).
                tokio::task::yield_now().await;
            }
        }
    }

    /// Handles every complete frame in `read_buf`.
    async fn handle_frames(
        &mut self,
        decoder: &mut FrameDecoder,
        read_buf: &mut BytesMut,
        io: &mut Io,
    ) -> Flow {
        loop {
            match decoder.decode(read_buf) {
                Ok(Some(event)) => {
                    if let Flow::Stop = self.on_event(event, io).await {
                        return Flow::Stop;
                    }
                    // Event handlers start inline (in arrival order); a client
                    // that sends without pause must still let other tasks run.
                    tokio::task::consume_budget().await;
                }
                Ok(None) => return Flow::Continue,
                Err(error) => {
                    tracing::debug!(sid = %self.session.id(), %error, "WebSocket protocol error");
                    send_close_frame(io, error.close_code(), &error.to_string()).await;
                    self.lost(CloseReason::TransportError);
                    return Flow::Stop;
                }
            }
        }
    }

    /// Decides, under the session lock, what this connection does next.
    fn next_step(&mut self) -> Step {
        let (id, probing, out) = (self.id, &mut self.probing, &mut self.out);
        self.session.with_state(|s| {
            if *probing {
                if s.is_active(id) {
                    *probing = false;
                } else if s.closed().is_some() || !s.is_probing(id) {
                    return Step::Abandon;
                } else {
                    return Step::Wait;
                }
            }
            if !s.is_active(id) {
                return Step::Abandon;
            }
            // One allocation for the whole batch: payloads plus at most 10 header bytes each.
            let (packets, bytes) = s.backlog();
            out.reserve(bytes + 10 * packets);
            let written = s.drain_queue(|packet| encode_frame(out, packet));
            if s.closed().is_some() {
                Step::Finish
            } else if written == 0 {
                Step::Wait
            } else {
                Step::Write(written)
            }
        })
    }

    async fn on_event(&mut self, event: WsEvent, io: &mut Io) -> Flow {
        match event {
            WsEvent::Text(bytes) => match Packet::decode_text(bytes) {
                Ok(packet) => return self.on_packet(packet, io).await,
                Err(error) => {
                    tracing::debug!(sid = %self.session.id(), %error, "bad Engine.IO packet");
                    send_close_frame(io, 1003, "invalid Engine.IO packet").await;
                    self.lost(CloseReason::ParseError);
                    return Flow::Stop;
                }
            },
            WsEvent::Binary(data) => {
                if !self.probing {
                    self.core.on_packet(&self.session, Packet::Binary(data));
                }
            }
            WsEvent::Ping(data) => {
                let mut out = Vec::with_capacity(data.len() + 2);
                write_server_frame(&mut out, OpCode::Pong, &data);
                if io.write_all(&out).await.is_err() {
                    self.lost(CloseReason::TransportError);
                    return Flow::Stop;
                }
            }
            WsEvent::Pong(_) => {}
            WsEvent::Close(_) => {
                send_close_frame(io, 1000, "").await;
                self.lost(CloseReason::TransportClose);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    async fn on_packet(&mut self, packet: Packet, io: &mut Io) -> Flow {
        if !self.probing {
            self.core.on_packet(&self.session, packet);
            return Flow::Continue;
        }
        match packet {
            Packet::Ping(data) if data.as_str() == "probe" => {
                let mut out = Vec::with_capacity(8);
                write_server_frame(&mut out, OpCode::Text, b"3probe");
                if io.write_all(&out).await.is_err() {
                    self.lost(CloseReason::TransportError);
                    return Flow::Stop;
                }
                if self.session.with_state(|s| s.probe_pinged(self.id)) {
                    // The pending poll answers a noop so the client can pause polling.
                    self.session.wake();
                }
            }
            Packet::Upgrade => {
                if !self.session.with_state(|s| s.complete_upgrade(self.id)) {
                    send_close_frame(io, 1000, "upgrade no longer possible").await;
                    return Flow::Stop;
                }
                self.probing = false;
                tracing::debug!(sid = %self.session.id(), "upgraded to WebSocket");
                self.session.wake();
            }
            Packet::Close => {
                self.session.close(CloseReason::TransportClose);
                return Flow::Stop;
            }
            // Anything else during a probe is not part of the exchange; the HTTP transport carries data.
            _ => {}
        }
        Flow::Continue
    }

    /// Writes the framed batch in `out`; fails if the session closes while the client is not reading.
    async fn write_out(&self, io: &mut Io) -> Result<(), CloseReason> {
        let mut write = std::pin::pin!(io.write_all(&self.out));
        // Usually the socket takes the whole batch at once: no need to watch for a close.
        if let Some(result) = write.as_mut().now_or_never() {
            return result.map_err(|_| CloseReason::TransportError);
        }
        let closed = async {
            loop {
                let changed = self.session.changed();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.session.is_closed() {
                    return;
                }
                changed.await;
            }
        };
        tokio::select! {
            biased;
            result = write => result.map_err(|_| CloseReason::TransportError),
            _ = closed => Err(CloseReason::TransportError),
        }
    }

    /// The connection ended on its own: the session loses its transport.
    fn lost(&self, reason: CloseReason) {
        if self.probing {
            self.session.with_state(|s| s.abort_probe(self.id));
            self.session.wake();
        } else if self.session.with_state(|s| s.is_active(self.id)) {
            self.session.close(reason);
        }
    }
}

/// Appends a packet as one server frame.
fn encode_frame(out: &mut Vec<u8>, packet: &EncodedPacket) {
    match packet {
        EncodedPacket::Text(bytes) => write_server_frame(out, OpCode::Text, bytes),
        EncodedPacket::Binary(bytes) => write_server_frame(out, OpCode::Binary, bytes),
    }
}

async fn send_close_frame(io: &mut Io, code: u16, reason: &str) {
    let mut out = Vec::with_capacity(reason.len() + 4);
    write_server_frame(&mut out, OpCode::Close, &close_payload(code, reason));
    let _ = tokio::time::timeout(FINISH_TIMEOUT, async {
        io.write_all(&out).await?;
        io.shutdown().await
    })
    .await;
}
