//! RFC 6455 framing for the server side of a connection, kept free of I/O so
//! that every protocol rule can be tested on plain byte buffers.
//!
//! No extension is ever negotiated by this server, so the reserved bits are
//! always an error and payloads are never compressed.

use bytes::{Buf, Bytes, BytesMut};

const FIN_BIT: u8 = 0x80;
const RSV_BITS: u8 = 0x70;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LEN7_BITS: u8 = 0x7F;
/// Section 5.5 caps control frames so they can always be slipped between the
/// fragments of a long message; it also means they never use an extended
/// length, so an oversized one is caught from its second byte.
const MAX_CONTROL_PAYLOAD: usize = 125;
const MASK_KEY_LEN: usize = 4;

/// Frame opcodes defined by RFC 6455 section 5.2; the reserved ones are
/// deliberately not representable so that they can only surface as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One complete event decoded from the client.
///
/// Data messages are only surfaced once reassembled, so the layers above
/// never have to reason about fragmentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsEvent {
    /// Already validated as UTF-8 (invalid text fails the connection with
    /// 1007), so a failed conversion further up is a bug, not a bad client.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// `None` when the client sent no status code, which the closing
    /// handshake must answer differently from an explicit code.
    Close(Option<(u16, String)>),
}

/// A violation of RFC 6455 by the client. Every one is fatal: the connection
/// must be closed with [`WsProtocolError::close_code`] and the decoder
/// dropped, as its state is not meaningful afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WsProtocolError {
    #[error("client frame is not masked")]
    UnmaskedFrame,
    #[error("reserved bits 0x{0:02x} are set but no extension was negotiated")]
    ReservedBits(u8),
    #[error("unknown opcode 0x{0:x}")]
    UnknownOpcode(u8),
    #[error("control frame payload of {0} bytes exceeds the 125-byte limit")]
    ControlFrameTooLong(u64),
    #[error("control frame is fragmented (FIN bit not set)")]
    FragmentedControlFrame,
    #[error("continuation frame without a fragmented message in progress")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is still in progress")]
    ExpectedContinuation,
    #[error("64-bit payload length has its most significant bit set")]
    InvalidPayloadLength,
    #[error("message exceeds the {limit}-byte size limit")]
    MessageTooLarge { limit: usize },
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("close frame payload of 1 byte cannot hold a status code")]
    InvalidClosePayload,
    #[error("close frame carries invalid status code {0}")]
    InvalidCloseCode(u16),
    #[error("close frame reason is not valid UTF-8")]
    InvalidCloseReason,
}

impl WsProtocolError {
    /// The status code to close the connection with (RFC 6455 section 7.4.1).
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8 | Self::InvalidCloseReason => 1007,
            Self::MessageTooLarge { .. } => 1009,
            Self::UnmaskedFrame
            | Self::ReservedBits(_)
            | Self::UnknownOpcode(_)
            | Self::ControlFrameTooLong(_)
            | Self::FragmentedControlFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::InvalidPayloadLength
            | Self::InvalidClosePayload
            | Self::InvalidCloseCode(_) => 1002,
        }
    }
}

/// Everything the decoder needs from a frame header, once it is complete.
struct FrameHeader {
    fin: bool,
    opcode: OpCode,
    mask: [u8; MASK_KEY_LEN],
    header_len: usize,
    payload_len: usize,
}

/// Number of extended payload length bytes announced by the 7-bit length.
fn extended_len_bytes(len7: u8) -> usize {
    match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

/// Reads the payload length; `buf` must hold the extended length bytes.
fn payload_len(buf: &[u8], len7: u8) -> Option<u64> {
    match len7 {
        126 => Some(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]).into()),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        short => Some(short.into()),
    }
}

/// Incremental decoder of client-to-server frames.
///
/// It keeps state only for a fragmented data message in progress; frames are
/// otherwise parsed straight out of the connection's read buffer, so a
/// partially received frame costs nothing beyond the bytes already read.
pub(crate) struct FrameDecoder {
    max_message_size: usize,
    /// Opcode of the first fragment of the message being reassembled.
    partial_kind: Option<OpCode>,
    /// Reassembly buffer, replaced by an unallocated one between messages so
    /// that idle connections do not pin the memory of their largest message.
    partial: BytesMut,
    /// Length of the prefix of `partial` already known to be valid UTF-8, so
    /// that invalid text fails as soon as it arrives (instead of after the
    /// client has made us buffer up to the limit) without scanning twice.
    partial_utf8_valid: usize,
}

impl std::fmt::Debug for FrameDecoder {
    // Hand-written so that logging a connection never dumps message bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("max_message_size", &self.max_message_size)
            .field("partial_kind", &self.partial_kind)
            .field("partial_len", &self.partial.len())
            .finish()
    }
}

impl FrameDecoder {
    /// `max_message_size` bounds data messages (single frames and reassembled
    /// ones alike). Control frames are not counted against it: the protocol
    /// already caps them at 125 bytes.
    pub(crate) fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            partial_kind: None,
            partial: BytesMut::new(),
            partial_utf8_valid: 0,
        }
    }

    /// Takes bytes from the front of `buf` (the connection's read buffer) and
    /// returns the next complete event.
    ///
    /// `Ok(None)` means more bytes are needed; `buf` then starts at the
    /// incomplete frame, untouched, so the caller only has to append to it.
    /// Non-final fragments are consumed on the way, which is why one call may
    /// eat several frames before it has something to return.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<WsEvent>, WsProtocolError> {
        loop {
            let Some(header) = self.parse_header(buf)? else {
                return Ok(None);
            };
            let frame_len = header.header_len.saturating_add(header.payload_len);
            if buf.len() < frame_len {
                return Ok(None);
            }
            buf.advance(header.header_len);
            let len = header.payload_len;
            unmask(&mut buf[..len], header.mask);

            match header.opcode {
                OpCode::Ping => return Ok(Some(WsEvent::Ping(buf.split_to(len).freeze()))),
                OpCode::Pong => return Ok(Some(WsEvent::Pong(buf.split_to(len).freeze()))),
                OpCode::Close => {
                    let event = parse_close(&buf[..len])?;
                    buf.advance(len);
                    return Ok(Some(event));
                }
                OpCode::Text | OpCode::Binary if header.fin => {
                    // The common case: handed out without copying.
                    let payload = buf.split_to(len).freeze();
                    if header.opcode == OpCode::Binary {
                        return Ok(Some(WsEvent::Binary(payload)));
                    }
                    if std::str::from_utf8(&payload).is_err() {
                        return Err(WsProtocolError::InvalidUtf8);
                    }
                    return Ok(Some(WsEvent::Text(payload)));
                }
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    if header.opcode != OpCode::Continuation {
                        self.partial_kind = Some(header.opcode);
                    }
                    self.partial.extend_from_slice(&buf[..len]);
                    buf.advance(len);
                    let kind = self.partial_kind;
                    if kind == Some(OpCode::Text) {
                        self.check_partial_utf8(header.fin)?;
                    }
                    if header.fin {
                        let payload = std::mem::take(&mut self.partial).freeze();
                        self.partial_kind = None;
                        self.partial_utf8_valid = 0;
                        return Ok(Some(if kind == Some(OpCode::Text) {
                            WsEvent::Text(payload)
                        } else {
                            WsEvent::Binary(payload)
                        }));
                    }
                }
            }
        }
    }

    /// How many more bytes are needed at least before [`Self::decode`] can
    /// make progress: the rest of the header, or of the payload once the
    /// header says how long it is; 0 when a whole frame is already buffered.
    /// Only a hint for sizing the next read, capped by the size limit so that
    /// a hostile length cannot make the caller reserve memory that `decode`
    /// is about to refuse anyway.
    pub(crate) fn bytes_wanted(&self, buf: &BytesMut) -> usize {
        let (b1, have) = match buf.get(1) {
            Some(&b1) => (b1, buf.len()),
            None => return 2 - buf.len(),
        };
        let len7 = b1 & LEN7_BITS;
        let ext = extended_len_bytes(len7);
        let mask_len = if b1 & MASK_BIT != 0 { MASK_KEY_LEN } else { 0 };
        let header_len = 2 + ext + mask_len;
        let Some(payload_len) = payload_len(buf, len7) else {
            return header_len - have;
        };
        let cap = self.max_message_size.max(MAX_CONTROL_PAYLOAD) as u64;
        let total = (header_len as u64).saturating_add(payload_len.min(cap));
        usize::try_from(total.saturating_sub(have as u64)).unwrap_or(usize::MAX)
    }

    /// Validates the header at the front of `buf`; `Ok(None)` if it is not
    /// complete yet. Everything that can be rejected from the header alone is
    /// rejected here, before the payload is waited for, so an oversized or
    /// malformed frame never gets buffered.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<FrameHeader>, WsProtocolError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        if b0 & RSV_BITS != 0 {
            return Err(WsProtocolError::ReservedBits(b0 & RSV_BITS));
        }
        let opcode_bits = b0 & OPCODE_BITS;
        let opcode =
            OpCode::from_bits(opcode_bits).ok_or(WsProtocolError::UnknownOpcode(opcode_bits))?;
        let fin = b0 & FIN_BIT != 0;
        // Section 5.1: masking stops a script from choosing the bytes an
        // intermediary sees, so unmasked client frames must be refused.
        if b1 & MASK_BIT == 0 {
            return Err(WsProtocolError::UnmaskedFrame);
        }
        let len7 = b1 & LEN7_BITS;
        if opcode.is_control() {
            if !fin {
                return Err(WsProtocolError::FragmentedControlFrame);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                // The real length may not be known yet; 126 stands for "more".
                let len = payload_len(buf, len7).unwrap_or(u64::from(len7));
                return Err(WsProtocolError::ControlFrameTooLong(len));
            }
        } else {
            match (opcode, self.partial_kind) {
                (OpCode::Continuation, None) => {
                    return Err(WsProtocolError::UnexpectedContinuation)
                }
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(WsProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
        }

        let Some(len) = payload_len(buf, len7) else {
            return Ok(None);
        };
        if len >> 63 != 0 {
            return Err(WsProtocolError::InvalidPayloadLength);
        }
        if !opcode.is_control() {
            // Counting what is already buffered makes a fragmented message
            // fail on the header of the fragment that would overflow it.
            let message_len = (self.partial.len() as u64).saturating_add(len);
            if message_len > self.max_message_size as u64 {
                return Err(WsProtocolError::MessageTooLarge {
                    limit: self.max_message_size,
                });
            }
        }
        // Bounded by the limit (data) or by 125 (control), so it fits.
        let payload_len = usize::try_from(len).map_err(|_| WsProtocolError::MessageTooLarge {
            limit: self.max_message_size,
        })?;

        let mask_at = 2 + extended_len_bytes(len7);
        let Some(mask) = buf.get(mask_at..mask_at + MASK_KEY_LEN) else {
            return Ok(None);
        };
        Ok(Some(FrameHeader {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            header_len: mask_at + MASK_KEY_LEN,
            payload_len,
        }))
    }

    /// Extends the validated UTF-8 prefix of the message being reassembled.
    /// A character cut by a fragment boundary is legal until the final
    /// fragment, so only an incomplete tail is tolerated before `fin`.
    fn check_partial_utf8(&mut self, fin: bool) -> Result<(), WsProtocolError> {
        let unchecked = self
            .partial
            .get(self.partial_utf8_valid..)
            .unwrap_or_default();
        match std::str::from_utf8(unchecked) {
            Ok(_) => {
                self.partial_utf8_valid = self.partial.len();
                Ok(())
            }
            Err(e) if e.error_len().is_none() && !fin => {
                self.partial_utf8_valid += e.valid_up_to();
                Ok(())
            }
            Err(_) => Err(WsProtocolError::InvalidUtf8),
        }
    }
}

/// Section 5.5.1: an optional 2-byte status code followed by an optional
/// UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<WsEvent, WsProtocolError> {
    let (code, reason) = match payload {
        [] => return Ok(WsEvent::Close(None)),
        [_] => return Err(WsProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => (u16::from_be_bytes([*hi, *lo]), reason),
    };
    if !is_valid_close_code(code) {
        return Err(WsProtocolError::InvalidCloseCode(code));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| WsProtocolError::InvalidCloseReason)?;
    Ok(WsEvent::Close(Some((code, reason.to_owned()))))
}

/// Section 7.4: codes a peer may put on the wire. 1004 is reserved and
/// 1005/1006/1015 only exist as local placeholders, so seeing them on the wire
/// means a broken or hostile peer; 3000-4999 belong to libraries and
/// applications and are passed through.
fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// XORs `payload` with the 4-byte masking key (section 5.3), eight bytes at a
/// time: frames are unmasked in the read buffer, so this is the only pass
/// over the payload bytes the decoder makes.
fn unmask(payload: &mut [u8], key: [u8; MASK_KEY_LEN]) {
    // Every chunk starts at a multiple of 8, hence of 4, so each one sees the
    // key in the same phase and the tail restarts it at index 0.
    let wide_key = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide_key).to_ne_bytes());
    }
    // The tail is up to 7 bytes long, so the key has to wrap around.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Header of an unmasked server frame with FIN set, written into a stack
/// array: returns (array, used_len). Servers never fragment or mask (section
/// 5.1 forbids masking), and the minimal length form is used as section 5.2
/// requires.
pub(crate) fn server_frame_header(opcode: OpCode, payload_len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = FIN_BIT | opcode.bits();
    if payload_len < 126 {
        header[1] = payload_len as u8;
        (header, 2)
    } else if let Ok(len) = u16::try_from(payload_len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        (header, 4)
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        (header, 10)
    }
}

/// Appends a complete server frame (header + payload) to `out`, reserving
/// once so that a large payload is copied a single time.
pub(crate) fn write_server_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    if payload.len() < 126 {
        // The common small frame: two header bytes, no header array.
        out.reserve(2 + payload.len());
        out.push(FIN_BIT | opcode.bits());
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
        return;
    }
    let (header, header_len) = server_frame_header(opcode, payload.len());
    out.reserve(header_len + payload.len());
    out.extend_from_slice(&header[..header_len]);
    out.extend_from_slice(payload);
}

/// The payload of a close frame: 2-byte code + UTF-8 reason. The reason is
/// shortened so the payload fits the 125-byte control frame limit, cutting on
/// a character boundary so the client does not fail the connection over
/// invalid UTF-8 in the very frame meant to close it cleanly.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masking key of the examples in RFC 6455 section 5.7.
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const FIN: u8 = 0x80;
    const CONT: u8 = 0x0;
    const TEXT: u8 = 0x1;
    const BIN: u8 = 0x2;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;

    /// Test-only client encoder: masked, minimal length form. `b0` is the raw
    /// first byte (FIN, RSV and opcode bits) so malformed frames can be built.
    fn client_frame_into(out: &mut Vec<u8>, b0: u8, payload: &[u8], mask: [u8; 4]) {
        out.push(b0);
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }

    fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        client_frame_into(&mut out, b0, payload, MASK);
        out
    }

    fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    /// Decodes everything `bytes` holds in one go, as if it arrived in a
    /// single read; also checks that nothing was left undecoded.
    fn decode_all(dec: &mut FrameDecoder, bytes: &[u8]) -> Result<Vec<WsEvent>, WsProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut events = Vec::new();
        while let Some(event) = dec.decode(&mut buf)? {
            events.push(event);
        }
        assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
        Ok(events)
    }

    fn decode_one(bytes: &[u8]) -> WsEvent {
        let mut events = decode_all(&mut FrameDecoder::new(1 << 20), bytes).expect("valid");
        assert_eq!(events.len(), 1, "{events:?}");
        events.remove(0)
    }

    /// The error raised by `bytes`, whether or not they hold complete frames.
    fn decode_err_with(dec: &mut FrameDecoder, bytes: &[u8]) -> WsProtocolError {
        let mut buf = BytesMut::from(bytes);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error for {bytes:02x?}"),
                Err(e) => return e,
            }
        }
    }

    fn decode_err(bytes: &[u8]) -> WsProtocolError {
        decode_err_with(&mut FrameDecoder::new(1 << 20), bytes)
    }

    fn text(s: &str) -> WsEvent {
        WsEvent::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn binary(b: &[u8]) -> WsEvent {
        WsEvent::Binary(Bytes::copy_from_slice(b))
    }

    #[test]
    fn rfc_example_single_masked_text_frame() {
        // RFC 6455 section 5.7.
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode_one(&frame), text("Hello"));
        assert_eq!(client_frame(FIN | TEXT, b"Hello"), frame);
    }

    #[test]
    fn every_length_form_round_trips() {
        for (len, header_len) in [(0, 6), (125, 6), (126, 8), (65535, 8), (65536, 14)] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            for (opcode, expected) in [
                (TEXT, WsEvent::Text(Bytes::from(payload.clone()))),
                (BIN, WsEvent::Binary(Bytes::from(payload.clone()))),
            ] {
                let frame = client_frame(FIN | opcode, &payload);
                assert_eq!(frame.len(), header_len + len, "length form for {len}");
                let mut dec = FrameDecoder::new(1 << 20);
                let mut buf = BytesMut::from(&frame[..]);
                assert_eq!(dec.decode(&mut buf), Ok(Some(expected)), "len {len}");
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn non_minimal_length_forms_are_accepted() {
        // Section 5.2 asks senders for the minimal form; being lenient costs
        // nothing and the size checks still apply to the decoded length.
        let mut frame = vec![FIN | BIN, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 3];
        frame.extend_from_slice(&MASK);
        frame.extend(b"abc".iter().zip(MASK).map(|(b, m)| b ^ m));
        assert_eq!(decode_one(&frame), binary(b"abc"));
        let mut frame = vec![FIN | TEXT, 0x80 | 126, 0, 1];
        frame.extend_from_slice(&MASK);
        frame.push(b'x' ^ MASK[0]);
        assert_eq!(decode_one(&frame), text("x"));
    }

    #[test]
    fn unfragmented_payload_is_not_copied() {
        let payload = vec![7u8; 300];
        let mut buf = BytesMut::from(&client_frame(FIN | BIN, &payload)[..]);
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let Ok(Some(WsEvent::Binary(got))) = FrameDecoder::new(1 << 20).decode(&mut buf) else {
            panic!("expected a binary event");
        };
        let at = got.as_ptr() as usize;
        assert!(at > start && at + got.len() <= end, "payload was copied");
        assert_eq!(&got[..], &payload[..]);
    }

    #[test]
    fn control_frames_up_to_125_bytes() {
        for len in [0, 1, 125] {
            let payload = vec![0xA5; len];
            let ping = Bytes::from(payload.clone());
            assert_eq!(
                decode_one(&client_frame(FIN | PING, &payload)),
                WsEvent::Ping(ping.clone())
            );
            assert_eq!(
                decode_one(&client_frame(FIN | PONG, &payload)),
                WsEvent::Pong(ping)
            );
        }
    }

    #[test]
    fn events_come_out_one_per_call_and_leave_the_rest_buffered() {
        let second = client_frame(FIN | BIN, b"two");
        let stream = concat(&[client_frame(FIN | TEXT, b"one"), second.clone()]);
        let mut dec = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&stream[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(text("one"))));
        assert_eq!(&buf[..], &second[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(binary(b"two"))));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_input() {
        let frames = vec![
            client_frame(
                FIN | TEXT,
                "a longer text message with ünïcödé, ".repeat(8).as_bytes(),
            ),
            client_frame(FIN | PING, b"are you there"),
            client_frame(BIN, &[1, 2, 3]),
            client_frame(FIN | PONG, b""),
            client_frame(CONT, &[4; 200]),
            client_frame(FIN | CONT, &[5; 70_000]),
            client_frame(FIN | TEXT, b""),
            client_frame(FIN | CLOSE, &close_payload(1000, "done")),
        ];
        let mut boundaries = vec![0];
        for frame in &frames {
            boundaries.push(boundaries.last().copied().unwrap_or(0) + frame.len());
        }
        let stream = concat(&frames);
        let expected = vec![
            text(&"a longer text message with ünïcödé, ".repeat(8)),
            WsEvent::Ping(Bytes::from_static(b"are you there")),
            WsEvent::Pong(Bytes::new()),
            binary(&[&[1, 2, 3][..], &[4; 200], &[5; 70_000]].concat()),
            text(""),
            WsEvent::Close(Some((1000, "done".to_owned()))),
        ];

        let mut dec = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for (fed, byte) in stream.iter().enumerate().map(|(i, b)| (i + 1, b)) {
            buf.extend_from_slice(&[*byte]);
            while let Some(event) = dec.decode(&mut buf).expect("valid stream") {
                events.push(event);
            }
            // Whatever is left starts at a frame boundary and is untouched.
            let consumed = fed - buf.len();
            assert!(
                boundaries.contains(&consumed),
                "buffer cut mid-frame at {consumed}"
            );
            assert_eq!(&buf[..], &stream[consumed..fed]);
            if fed < stream.len() {
                // The hint never asks for more than the current frame needs.
                let frame_end = boundaries
                    .iter()
                    .copied()
                    .find(|&b| b > consumed)
                    .unwrap_or(0);
                let wanted = dec.bytes_wanted(&buf);
                assert!(
                    wanted >= 1 && wanted <= frame_end - fed,
                    "wanted {wanted} at {fed}"
                );
            }
        }
        assert_eq!(events, expected);
        assert!(buf.is_empty());
    }

    #[test]
    fn bytes_wanted_values() {
        let dec = FrameDecoder::new(1 << 20);
        let wanted = |bytes: &[u8]| dec.bytes_wanted(&BytesMut::from(bytes));
        assert_eq!(wanted(&[]), 2);
        assert_eq!(wanted(&[0x81]), 1);
        // 7-bit length 5: 2 + mask 4 + 5 payload.
        assert_eq!(wanted(&[0x81, 0x85]), 9);
        assert_eq!(wanted(&[0x81, 0x85, 1, 2, 3, 4, 5]), 4);
        // 16-bit length: first the length itself and the mask.
        assert_eq!(wanted(&[0x82, 0xFE]), 6);
        assert_eq!(wanted(&[0x82, 0xFE, 0x01]), 5);
        assert_eq!(wanted(&[0x82, 0xFE, 0x01, 0x00]), 4 + 256);
        // 64-bit length.
        assert_eq!(wanted(&[0x82, 0xFF, 0, 0]), 10);
        assert_eq!(wanted(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]), 4 + 65536);
        // A complete frame needs nothing more.
        assert_eq!(wanted(&client_frame(FIN | TEXT, b"hi")), 0);
        // A hostile length is capped at the limit.
        let small = FrameDecoder::new(1000);
        let huge = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(small.bytes_wanted(&BytesMut::from(&huge[..])), 4 + 1000);
    }

    #[test]
    fn fragmented_text_with_control_frames_between_fragments() {
        let stream = concat(&[
            client_frame(TEXT, b"Hel"),
            client_frame(FIN | PING, b"p"),
            client_frame(CONT, b"lo, "),
            client_frame(FIN | PONG, b""),
            client_frame(CONT, b""),
            client_frame(FIN | CLOSE, &close_payload(1001, "")),
            client_frame(FIN | CONT, b"world"),
        ]);
        let mut dec = FrameDecoder::new(1 << 20);
        let events = decode_all(&mut dec, &stream).expect("valid");
        assert_eq!(
            events,
            vec![
                WsEvent::Ping(Bytes::from_static(b"p")),
                WsEvent::Pong(Bytes::new()),
                WsEvent::Close(Some((1001, String::new()))),
                text("Hello, world"),
            ]
        );
    }

    #[test]
    fn reassembly_buffer_is_released_after_each_message() {
        let mut dec = FrameDecoder::new(1 << 20);
        let stream = concat(&[
            client_frame(BIN, &[1; 5000]),
            client_frame(FIN | CONT, &[2; 5000]),
        ]);
        let mut buf = BytesMut::from(&stream[..5000]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(
            dec.partial.capacity(),
            0,
            "nothing buffered before a frame is complete"
        );
        buf.extend_from_slice(&stream[5000..]);
        let Ok(Some(WsEvent::Binary(msg))) = dec.decode(&mut buf) else {
            panic!("expected the reassembled message");
        };
        assert_eq!(msg.len(), 10_000);
        assert_eq!(dec.partial.capacity(), 0);
        assert_eq!(dec.partial_kind, None);
        assert_eq!(dec.partial_utf8_valid, 0);
        // And the decoder is ready for the next message.
        let events = decode_all(
            &mut dec,
            &concat(&[client_frame(TEXT, b"a"), client_frame(FIN | CONT, b"b")]),
        );
        assert_eq!(events, Ok(vec![text("ab")]));
    }

    #[test]
    fn empty_fragments() {
        let stream = concat(&[client_frame(TEXT, b""), client_frame(FIN | CONT, b"")]);
        assert_eq!(decode_one(&stream), text(""));
        let stream = concat(&[
            client_frame(BIN, b""),
            client_frame(CONT, b""),
            client_frame(FIN | CONT, b"x"),
        ]);
        assert_eq!(decode_one(&stream), binary(b"x"));
    }

    #[test]
    fn utf8_split_across_fragments_at_every_position() {
        let message = "aé€𝄞z😀";
        let bytes = message.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let stream = concat(&[
                    client_frame(TEXT, &bytes[..i]),
                    client_frame(CONT, &bytes[i..j]),
                    client_frame(FIN | CONT, &bytes[j..]),
                ]);
                assert_eq!(decode_one(&stream), text(message), "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn invalid_utf8_is_rejected_with_1007() {
        let invalid: [&[u8]; 6] = [
            b"\xff",
            b"abc\x80",
            b"\xc0\x80",         // overlong NUL
            b"\xed\xa0\x80",     // UTF-16 surrogate
            b"\xf4\x90\x80\x80", // above U+10FFFF
            b"truncated \xe2\x82",
        ];
        for bytes in invalid {
            let err = decode_err(&client_frame(FIN | TEXT, bytes));
            assert_eq!(err, WsProtocolError::InvalidUtf8, "{bytes:02x?}");
            assert_eq!(err.close_code(), 1007);
            // Reassembled messages too, including a character left
            // incomplete by the final fragment.
            let stream = concat(&[client_frame(TEXT, b"ok"), client_frame(FIN | CONT, bytes)]);
            assert_eq!(decode_err(&stream), WsProtocolError::InvalidUtf8);
        }
        // Binary messages carry arbitrary bytes.
        assert_eq!(
            decode_one(&client_frame(FIN | BIN, b"\xff\xfe")),
            binary(b"\xff\xfe")
        );
    }

    #[test]
    fn invalid_utf8_fails_before_the_message_is_complete() {
        let mut dec = FrameDecoder::new(1 << 20);
        let first = client_frame(TEXT, b"fine so far \xff");
        assert_eq!(
            decode_err_with(&mut dec, &first),
            WsProtocolError::InvalidUtf8
        );
        // A cut character is not an error until the message ends.
        let mut dec = FrameDecoder::new(1 << 20);
        assert_eq!(
            decode_all(&mut dec, &client_frame(TEXT, b"\xe2\x82")),
            Ok(vec![])
        );
        assert_eq!(
            decode_all(&mut dec, &client_frame(FIN | CONT, b"\xac")),
            Ok(vec![text("€")])
        );
        // ... unless what follows cannot complete it.
        let stream = concat(&[client_frame(TEXT, b"\xe2\x82"), client_frame(CONT, b"a")]);
        assert_eq!(decode_err(&stream), WsProtocolError::InvalidUtf8);
    }

    #[test]
    fn reserved_bits_are_rejected() {
        for rsv in [0x40, 0x20, 0x10, 0x70] {
            for opcode in [TEXT, BIN, CONT, PING, CLOSE] {
                let err = decode_err(&[FIN | rsv | opcode, 0x80]);
                assert_eq!(err, WsProtocolError::ReservedBits(rsv));
                assert_eq!(err.close_code(), 1002);
            }
        }
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for opcode in (3..=7).chain(11..=15) {
            let err = decode_err(&client_frame(FIN | opcode, b""));
            assert_eq!(err, WsProtocolError::UnknownOpcode(opcode));
            assert_eq!(err.close_code(), 1002);
            assert_eq!(
                decode_err(&[opcode, 0x80]),
                WsProtocolError::UnknownOpcode(opcode)
            );
        }
    }

    #[test]
    fn unmasked_frames_are_rejected() {
        // RFC 6455 section 5.7's unmasked "Hello", as a server would send it.
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let err = decode_err(&frame);
        assert_eq!(err, WsProtocolError::UnmaskedFrame);
        assert_eq!(err.close_code(), 1002);
        assert_eq!(decode_err(&[0x89, 0x00]), WsProtocolError::UnmaskedFrame);
    }

    #[test]
    fn long_control_frames_are_rejected() {
        for opcode in [PING, PONG, CLOSE] {
            let err = decode_err(&client_frame(FIN | opcode, &[0; 126]));
            assert_eq!(err, WsProtocolError::ControlFrameTooLong(126));
            assert_eq!(err.close_code(), 1002);
            // Known from the first two bytes, before any length is read.
            assert!(matches!(
                decode_err(&[FIN | opcode, 0x80 | 127]),
                WsProtocolError::ControlFrameTooLong(_)
            ));
        }
    }

    #[test]
    fn fragmented_control_frames_are_rejected() {
        for opcode in [PING, PONG, CLOSE] {
            let err = decode_err(&client_frame(opcode, b"x"));
            assert_eq!(err, WsProtocolError::FragmentedControlFrame);
            assert_eq!(err.close_code(), 1002);
            assert_eq!(
                decode_err(&[opcode, 0x80]),
                WsProtocolError::FragmentedControlFrame
            );
        }
    }

    #[test]
    fn continuation_without_a_message_is_rejected() {
        for b0 in [CONT, FIN | CONT] {
            let err = decode_err(&client_frame(b0, b"x"));
            assert_eq!(err, WsProtocolError::UnexpectedContinuation);
            assert_eq!(err.close_code(), 1002);
        }
        // Also once the previous fragmented message is complete.
        let stream = concat(&[
            client_frame(BIN, b"a"),
            client_frame(FIN | CONT, b"b"),
            client_frame(FIN | CONT, b"c"),
        ]);
        assert_eq!(decode_err(&stream), WsProtocolError::UnexpectedContinuation);
    }

    #[test]
    fn new_message_during_a_fragmented_one_is_rejected() {
        for first in [TEXT, BIN] {
            for second in [TEXT, BIN, FIN | TEXT, FIN | BIN] {
                let stream = concat(&[client_frame(first, b"a"), client_frame(second, b"b")]);
                let err = decode_err(&stream);
                assert_eq!(err, WsProtocolError::ExpectedContinuation);
                assert_eq!(err.close_code(), 1002);
            }
        }
    }

    #[test]
    fn oversized_frames_are_rejected_from_the_header_alone() {
        let limit = 1000;
        // Only the header bytes are present: no mask key, no payload.
        let headers: [&[u8]; 3] = [
            &[FIN | BIN, 0x80 | 126, 0x03, 0xE9],                 // 1001
            &[FIN | TEXT, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0], // 1 GiB
            &[
                BIN,
                0x80 | 127,
                0x7F,
                0xFF,
                0xFF,
                0xFF,
                0xFF,
                0xFF,
                0xFF,
                0xFF,
            ],
        ];
        for header in headers {
            let mut dec = FrameDecoder::new(limit);
            let mut buf = BytesMut::from(header);
            let err = dec.decode(&mut buf).expect_err("too large");
            assert_eq!(err, WsProtocolError::MessageTooLarge { limit });
            assert_eq!(err.close_code(), 1009);
        }
        // The limit itself is fine.
        let mut dec = FrameDecoder::new(limit);
        let events = decode_all(&mut dec, &client_frame(FIN | BIN, &[0; 1000]));
        assert_eq!(events, Ok(vec![binary(&[0; 1000])]));
    }

    #[test]
    fn oversized_reassembled_messages_are_rejected() {
        let limit = 10;
        let ok = concat(&[
            client_frame(TEXT, b"12345"),
            client_frame(FIN | CONT, b"67890"),
        ]);
        assert_eq!(
            decode_all(&mut FrameDecoder::new(limit), &ok),
            Ok(vec![text("1234567890")])
        );

        let mut dec = FrameDecoder::new(limit);
        let mut buf = BytesMut::from(&client_frame(BIN, b"123456")[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // Refused on the header of the fragment that would overflow.
        buf.extend_from_slice(&[FIN | CONT, 0x80 | 5]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(WsProtocolError::MessageTooLarge { limit })
        );
    }

    #[test]
    fn control_frames_are_not_counted_against_the_limit() {
        let mut dec = FrameDecoder::new(4);
        let events = decode_all(&mut dec, &client_frame(FIN | PING, &[1; 125]));
        assert_eq!(events, Ok(vec![WsEvent::Ping(Bytes::from(vec![1; 125]))]));
    }

    #[test]
    fn length_with_the_high_bit_set_is_rejected() {
        let header = [FIN | BIN, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        let err = decode_err_with(&mut FrameDecoder::new(usize::MAX), &header);
        assert_eq!(err, WsProtocolError::InvalidPayloadLength);
        assert_eq!(err.close_code(), 1002);
    }

    #[test]
    fn huge_limit_does_not_overflow() {
        let mut dec = FrameDecoder::new(usize::MAX);
        let header = [
            FIN | BIN,
            0x80 | 127,
            0x7F,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            1,
            2,
            3,
            4,
        ];
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), header.len());
        assert!(dec.bytes_wanted(&buf) > 0);
    }

    #[test]
    fn close_frames() {
        assert_eq!(
            decode_one(&client_frame(FIN | CLOSE, b"")),
            WsEvent::Close(None)
        );
        assert_eq!(
            decode_one(&client_frame(FIN | CLOSE, &[0x03, 0xE8])),
            WsEvent::Close(Some((1000, String::new())))
        );
        assert_eq!(
            decode_one(&client_frame(
                FIN | CLOSE,
                &close_payload(4321, "bye, ünïcode")
            )),
            WsEvent::Close(Some((4321, "bye, ünïcode".to_owned())))
        );

        let err = decode_err(&client_frame(FIN | CLOSE, &[0x03]));
        assert_eq!(err, WsProtocolError::InvalidClosePayload);
        assert_eq!(err.close_code(), 1002);

        let err = decode_err(&client_frame(FIN | CLOSE, &[0x03, 0xE8, b'a', 0xFF]));
        assert_eq!(err, WsProtocolError::InvalidCloseReason);
        assert_eq!(err.close_code(), 1007);
    }

    #[test]
    fn close_codes() {
        let valid: [u16; 13] = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ];
        for code in valid {
            let event = decode_one(&client_frame(FIN | CLOSE, &code.to_be_bytes()));
            assert_eq!(event, WsEvent::Close(Some((code, String::new()))));
        }
        let invalid = [
            0,
            1,
            999,
            1004,
            1005,
            1006,
            1012,
            1013,
            1014,
            1015,
            1016,
            1100,
            2000,
            2999,
            5000,
            u16::MAX,
        ];
        for code in invalid {
            let err = decode_err(&client_frame(FIN | CLOSE, &close_payload(code, "x")));
            assert_eq!(err, WsProtocolError::InvalidCloseCode(code));
            assert_eq!(err.close_code(), 1002);
        }
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        assert_eq!(close_payload(1000, ""), vec![0x03, 0xE8]);
        assert_eq!(
            close_payload(1001, "going away"),
            b"\x03\xe9going away".to_vec()
        );
        let exact = "x".repeat(123);
        assert_eq!(close_payload(1000, &exact).len(), 125);
        for (reason, expected_reason_len) in [
            ("x".repeat(200), 123),
            ("é".repeat(100), 122), // 2-byte chars: 123 would split one
            ("€".repeat(100), 123), // 3-byte chars: 41 of them fit exactly
            ("𝄞".repeat(100), 120), // 4-byte chars
            (format!("a{}", "😀".repeat(40)), 121),
        ] {
            let payload = close_payload(1000, &reason);
            assert_eq!(payload.len(), 2 + expected_reason_len, "{reason}");
            let cut = std::str::from_utf8(&payload[2..]).expect("cut on a char boundary");
            assert!(reason.starts_with(cut));
            // What we send is what a conforming peer accepts.
            assert_eq!(
                decode_one(&client_frame(FIN | CLOSE, &payload)),
                WsEvent::Close(Some((1000, cut.to_owned())))
            );
        }
    }

    #[test]
    fn server_frame_headers() {
        // RFC 6455 section 5.7.
        let (h, n) = server_frame_header(OpCode::Text, 5);
        assert_eq!(&h[..n], &[0x81, 0x05]);
        let (h, n) = server_frame_header(OpCode::Ping, 5);
        assert_eq!(&h[..n], &[0x89, 0x05]);
        let (h, n) = server_frame_header(OpCode::Pong, 5);
        assert_eq!(&h[..n], &[0x8A, 0x05]);
        let (h, n) = server_frame_header(OpCode::Binary, 256);
        assert_eq!(&h[..n], &[0x82, 0x7E, 0x01, 0x00]);
        let (h, n) = server_frame_header(OpCode::Binary, 65536);
        assert_eq!(&h[..n], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);

        for (len, used) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (usize::MAX >> 1, 10),
        ] {
            let (h, n) = server_frame_header(OpCode::Binary, len);
            assert_eq!(n, used, "len {len}");
            assert_eq!(h[1] & MASK_BIT, 0, "server frames are never masked");
            let announced = payload_len(&h[..n], h[1] & LEN7_BITS);
            assert_eq!(announced, Some(len as u64));
        }
        for (opcode, bits) in [
            (OpCode::Continuation, 0x0),
            (OpCode::Text, 0x1),
            (OpCode::Binary, 0x2),
            (OpCode::Close, 0x8),
            (OpCode::Ping, 0x9),
            (OpCode::Pong, 0xA),
        ] {
            assert_eq!(server_frame_header(opcode, 0).0[0], FIN | bits);
            assert_eq!(OpCode::from_bits(bits), Some(opcode));
        }
    }

    #[test]
    fn write_server_frame_appends() {
        let mut out = b"earlier".to_vec();
        write_server_frame(&mut out, OpCode::Text, b"Hello");
        assert_eq!(out, b"earlier\x81\x05Hello");

        let payload = vec![9u8; 70_000];
        let mut out = Vec::new();
        write_server_frame(&mut out, OpCode::Binary, &payload);
        assert_eq!(out.len(), 10 + payload.len());
        assert_eq!(&out[..2], &[0x82, 0x7F]);
        assert_eq!(&out[10..], &payload[..]);

        let mut out = Vec::new();
        write_server_frame(&mut out, OpCode::Close, &close_payload(1000, "bye"));
        assert_eq!(out, b"\x88\x05\x03\xe8bye");
    }

    #[test]
    fn unmask_matches_bytewise_xor() {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        for len in 0..80 {
            let key = (rng.next() as u32).to_ne_bytes();
            let original = rng.bytes(len);
            let mut data = original.clone();
            unmask(&mut data, key);
            let expected: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(data, expected, "len {len}");
            unmask(&mut data, key);
            assert_eq!(data, original);
        }
    }

    /// Tiny PRNG so the randomized test is reproducible without extra crates.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }

        fn mask(&mut self) -> [u8; 4] {
            if self.below(10) == 0 {
                [0; 4]
            } else {
                (self.next() as u32).to_ne_bytes()
            }
        }

        fn text(&mut self, min_len: usize) -> String {
            const CHARS: [char; 9] = ['a', 'Z', ' ', 'é', 'ß', '€', '中', '𝄞', '😀'];
            let mut s = String::new();
            while s.len() < min_len {
                s.push(CHARS[self.below(CHARS.len())]);
            }
            s
        }

        fn payload_len(&mut self) -> usize {
            match self.below(20) {
                0 => 126 + self.below(70_000),
                1..=3 => 126 + self.below(1000),
                _ => self.below(126),
            }
        }
    }

    #[test]
    fn random_streams_split_at_random_points() {
        for case in 0..300u64 {
            let mut rng =
                XorShift(0x9E37_79B9_7F4A_7C15 ^ case.wrapping_mul(0xD6E8_FEB8_6659_FD93));
            let mut stream = Vec::new();
            let mut expected = Vec::new();

            let control =
                |rng: &mut XorShift, stream: &mut Vec<u8>, expected: &mut Vec<WsEvent>| {
                    let len = rng.below(126);
                    let payload = rng.bytes(len);
                    let (opcode, event) = if rng.below(2) == 0 {
                        (PING, WsEvent::Ping(Bytes::from(payload.clone())))
                    } else {
                        (PONG, WsEvent::Pong(Bytes::from(payload.clone())))
                    };
                    let mask = rng.mask();
                    client_frame_into(stream, FIN | opcode, &payload, mask);
                    expected.push(event);
                };

            for _ in 0..1 + rng.below(12) {
                match rng.below(10) {
                    0 | 1 => control(&mut rng, &mut stream, &mut expected),
                    2 => {
                        let codes = [1000, 1001, 1003, 1008, 3000, 4999];
                        let code = codes[rng.below(codes.len())];
                        let reason_len = rng.below(140);
                        let reason = rng.text(reason_len);
                        let payload = close_payload(code, &reason);
                        let cut = String::from_utf8(payload[2..].to_vec()).expect("utf8");
                        let mask = rng.mask();
                        client_frame_into(&mut stream, FIN | CLOSE, &payload, mask);
                        expected.push(WsEvent::Close(Some((code, cut))));
                    }
                    _ => {
                        let len = rng.payload_len();
                        let is_text = rng.below(2) == 0;
                        let payload = if is_text {
                            rng.text(len).into_bytes()
                        } else {
                            rng.bytes(len)
                        };
                        // Fragment boundaries anywhere, including inside a
                        // UTF-8 sequence.
                        let mut cuts: Vec<usize> = (0..rng.below(4))
                            .map(|_| rng.below(payload.len() + 1))
                            .collect();
                        cuts.sort_unstable();
                        cuts.insert(0, 0);
                        cuts.push(payload.len());
                        let fragments = cuts.len() - 1;
                        for k in 0..fragments {
                            let mut b0 = if k == 0 {
                                if is_text {
                                    TEXT
                                } else {
                                    BIN
                                }
                            } else {
                                CONT
                            };
                            if k == fragments - 1 {
                                b0 |= FIN;
                            } else if rng.below(3) == 0 {
                                // Interleave after this fragment.
                                let mut after = Vec::new();
                                let mask = rng.mask();
                                client_frame_into(
                                    &mut stream,
                                    b0,
                                    &payload[cuts[k]..cuts[k + 1]],
                                    mask,
                                );
                                control(&mut rng, &mut after, &mut expected);
                                stream.extend_from_slice(&after);
                                continue;
                            }
                            let mask = rng.mask();
                            client_frame_into(
                                &mut stream,
                                b0,
                                &payload[cuts[k]..cuts[k + 1]],
                                mask,
                            );
                        }
                        let payload = Bytes::from(payload);
                        expected.push(if is_text {
                            WsEvent::Text(payload)
                        } else {
                            WsEvent::Binary(payload)
                        });
                    }
                }
            }

            let mut dec = FrameDecoder::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut events = Vec::new();
            let mut pos = 0;
            while pos < stream.len() {
                let chunk = 1 + match rng.below(4) {
                    0 => rng.below(4),
                    1 => rng.below(64),
                    2 => rng.below(2048),
                    _ => rng.below(100_000),
                };
                let end = (pos + chunk).min(stream.len());
                buf.extend_from_slice(&stream[pos..end]);
                pos = end;
                loop {
                    match dec.decode(&mut buf) {
                        Ok(Some(event)) => events.push(event),
                        Ok(None) => break,
                        Err(e) => panic!("case {case}: unexpected error {e}"),
                    }
                }
                assert!(dec.bytes_wanted(&buf) >= 1, "case {case}");
            }
            assert!(buf.is_empty(), "case {case}");
            assert_eq!(events, expected, "case {case}");
            assert_eq!(dec.partial.capacity(), 0, "case {case}");
        }
    }

    #[test]
    fn error_messages_say_what_went_wrong() {
        assert_eq!(
            WsProtocolError::UnknownOpcode(0x3).to_string(),
            "unknown opcode 0x3"
        );
        assert_eq!(
            WsProtocolError::MessageTooLarge { limit: 1024 }.to_string(),
            "message exceeds the 1024-byte size limit"
        );
        assert_eq!(
            WsProtocolError::InvalidCloseCode(1005).to_string(),
            "close frame carries invalid status code 1005"
        );
        assert_eq!(
            WsProtocolError::ReservedBits(0x40).to_string(),
            "reserved bits 0x40 are set but no extension was negotiated"
        );
    }
}
