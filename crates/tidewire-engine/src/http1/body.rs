//! The request body handed to the service: a streaming [`http_body::Body`]
//! that reads from the connection only when polled.
//!
//! The body and the connection loop share one [`BodyShared`]: the loop moves
//! its read buffer (the bytes already read past the head) in when the request
//! starts, and takes what is left (a pipelined next request) back after the
//! response, draining what the service did not read.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::chunked::{ChunkedDecoder, Decoded};
use super::head::BodyKind;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Bytes reserved for one read of body bytes.
const READ_CHUNK: usize = 8 * 1024;

/// Errors reading a request body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("connection closed before the request body ended")]
    Incomplete,
    #[error(transparent)]
    Chunked(#[from] super::chunked::ChunkError),
    #[error("request body read after its response was sent")]
    Detached,
    #[error(transparent)]
    Io(#[from] io::Error),
}

enum Decoder {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

enum Continue {
    /// No `Expect: 100-continue`, or already answered.
    None,
    /// This many bytes of the interim response were written so far.
    Pending(usize),
}

struct State {
    buf: BytesMut,
    decoder: Decoder,
    expect: Continue,
    /// The response went out; the connection loop took the buffer back.
    detached: bool,
    /// Stopped by an error; nothing more comes.
    failed: bool,
}

/// Shared between the body and the connection loop.
pub(crate) struct BodyShared {
    io: Arc<TcpStream>,
    state: Mutex<State>,
    /// Notified when the body is complete or dropped.
    settled: Notify,
}

impl BodyShared {
    /// A body framed as `kind`, starting with the bytes already read in `buf`.
    pub(crate) fn new(
        io: Arc<TcpStream>,
        buf: BytesMut,
        kind: BodyKind,
        expect_continue: bool,
    ) -> Arc<Self> {
        let decoder = match kind {
            BodyKind::Length(0) => Decoder::Done,
            BodyKind::Length(n) => Decoder::Length(n),
            BodyKind::Chunked => Decoder::Chunked(ChunkedDecoder::new()),
        };
        Arc::new(Self {
            io,
            state: Mutex::new(State {
                buf,
                decoder,
                expect: if expect_continue {
                    Continue::Pending(0)
                } else {
                    Continue::None
                },
                detached: false,
                failed: false,
            }),
            settled: Notify::new(),
        })
    }

    /// Whether every body byte was read.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.state.lock().decoder, Decoder::Done)
    }

    /// Whether the client still waits for `100 Continue` before sending the body.
    pub(crate) fn continue_unsent(&self) -> bool {
        matches!(self.state.lock().expect, Continue::Pending(0))
    }

    /// Resolves once the body is complete, or never if it ends otherwise.
    pub(crate) async fn completed(&self) {
        loop {
            let settled = self.settled.notified();
            let (done, stuck) = {
                let state = self.state.lock();
                (
                    matches!(state.decoder, Decoder::Done),
                    state.failed || state.detached,
                )
            };
            if done {
                return;
            }
            if stuck {
                std::future::pending::<()>().await;
            }
            settled.await;
        }
    }

    /// Polls the next data chunk; what the body and the drain both use.
    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        let mut state = self.state.lock();
        if state.detached {
            return Poll::Ready(Some(Err(BodyError::Detached)));
        }
        if state.failed {
            return Poll::Ready(None);
        }
        let result = ready!(self.poll_locked(&mut state, cx));
        match &result {
            Some(Err(_)) => {
                state.failed = true;
                self.settled.notify_one();
            }
            None => self.settled.notify_one(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(result)
    }

    fn poll_locked(
        &self,
        state: &mut State,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        while let Continue::Pending(written) = state.expect {
            if matches!(state.decoder, Decoder::Done) {
                state.expect = Continue::None;
                break;
            }
            match self.io.try_write(&CONTINUE[written..]) {
                Ok(n) if written + n == CONTINUE.len() => state.expect = Continue::None,
                Ok(n) => state.expect = Continue::Pending(written + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(self.io.poll_write_ready(cx)) {
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
        loop {
            let want = match &mut state.decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(left) => {
                    let left_now = *left;
                    if !state.buf.is_empty() {
                        let take = usize::try_from(left_now)
                            .unwrap_or(usize::MAX)
                            .min(state.buf.len());
                        let left_after = left_now - take as u64;
                        state.decoder = if left_after == 0 {
                            Decoder::Done
                        } else {
                            Decoder::Length(left_after)
                        };
                        return Poll::Ready(Some(Ok(state.buf.split_to(take).freeze())));
                    }
                    usize::try_from(left_now)
                        .unwrap_or(usize::MAX)
                        .min(READ_CHUNK)
                }
                Decoder::Chunked(decoder) => match decoder.decode(&mut state.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(Decoded::Done) => {
                        state.decoder = Decoder::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => READ_CHUNK,
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                },
            };
            if let Err(e) = ready!(self.poll_fill(state, want, cx)) {
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    /// Reads more bytes into the buffer; EOF is an error (the body is not complete).
    fn poll_fill(
        &self,
        state: &mut State,
        want: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BodyError>> {
        loop {
            ready!(self.io.poll_read_ready(cx))?;
            state.buf.reserve(want.max(64));
            match super::io::read_some(&self.io, &mut state.buf) {
                Ok(0) => return Poll::Ready(Err(BodyError::Incomplete)),
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    /// Reads and discards up to `limit` bytes of what is left of the body.
    /// `true`: the body is complete and the connection can carry another request.
    pub(crate) async fn drain(&self, limit: u64) -> bool {
        let mut drained = 0u64;
        loop {
            match std::future::poll_fn(|cx| self.poll_data(cx)).await {
                None => return self.is_complete(),
                Some(Ok(data)) => {
                    drained += data.len() as u64;
                    if drained > limit {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    }

    /// Ends the body's access to the connection and returns the bytes read past it.
    pub(crate) fn detach(&self) -> BytesMut {
        let mut state = self.state.lock();
        state.detached = true;
        std::mem::take(&mut state.buf)
    }
}

/// The streaming request body (wrapped in `axum::body::Body`).
pub(crate) struct RequestBody {
    shared: Arc<BodyShared>,
    length: Option<u64>,
}

impl RequestBody {
    pub(crate) fn new(shared: Arc<BodyShared>, kind: BodyKind) -> Self {
        let length = match kind {
            BodyKind::Length(n) => Some(n),
            BodyKind::Chunked => None,
        };
        Self { shared, length }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.shared.settled.notify_one();
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = ready!(this.shared.poll_data(cx));
        if let (Some(Ok(data)), Some(left)) = (&polled, this.length.as_mut()) {
            *left = left.saturating_sub(data.len() as u64);
        }
        Poll::Ready(polled.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.length == Some(0) || self.shared.is_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
