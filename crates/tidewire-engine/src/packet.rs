//! Engine.IO v4 packets and the long-polling payload format.
//!
//! A text packet is one ASCII digit (its type) followed by its data. A binary
//! message travels as a WebSocket binary frame, or inside a polling payload as
//! `b` followed by the base64 of its bytes. A polling payload joins packets
//! with the record separator `0x1E`.
//!
//! Everything here is free of I/O so the codec can be tested on bytes.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use crate::message::Utf8Bytes;

/// The record separator that joins packets in a long-polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The kind of an Engine.IO packet, as its leading digit says.
///
/// ```
/// use tidewire_engine::packet::PacketType;
/// assert_eq!(PacketType::from_digit(b'4'), Some(PacketType::Message));
/// assert_eq!(PacketType::Message.digit(), b'4');
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: sent by the server when a session opens.
    Open,
    /// `1`: either side ends the session.
    Close,
    /// `2`: heartbeat request (server to client, or the `probe` during an upgrade).
    Ping,
    /// `3`: heartbeat answer.
    Pong,
    /// `4`: application data.
    Message,
    /// `5`: the client switches the session to the probed WebSocket.
    Upgrade,
    /// `6`: no operation; answers a pending poll during an upgrade.
    Noop,
}

impl PacketType {
    /// Parses a packet type from its ASCII digit.
    pub fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => Self::Open,
            b'1' => Self::Close,
            b'2' => Self::Ping,
            b'3' => Self::Pong,
            b'4' => Self::Message,
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => return None,
        })
    }

    /// The ASCII digit that starts a packet of this type.
    pub fn digit(self) -> u8 {
        match self {
            Self::Open => b'0',
            Self::Close => b'1',
            Self::Ping => b'2',
            Self::Pong => b'3',
            Self::Message => b'4',
            Self::Upgrade => b'5',
            Self::Noop => b'6',
        }
    }
}

/// A decoded packet received from a client.
///
/// ```
/// use tidewire_engine::packet::Packet;
/// let p = Packet::decode_text(bytes::Bytes::from_static(b"4hello")).unwrap();
/// assert!(matches!(p, Packet::Message(ref m) if m.as_str() == "hello"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0` with the handshake JSON (clients never send it; kept for completeness).
    Open(Utf8Bytes),
    /// `1`: the client ends the session.
    Close,
    /// `2` with optional data (`probe` during an upgrade).
    Ping(Utf8Bytes),
    /// `3` with optional data (`probe` during an upgrade).
    Pong(Utf8Bytes),
    /// `4`: a text message.
    Message(Utf8Bytes),
    /// A binary message (a WebSocket binary frame or a `b`-prefixed base64 packet).
    Binary(Bytes),
    /// `5`: switch to the probed transport.
    Upgrade,
    /// `6`: no operation.
    Noop,
}

/// Why a packet or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet was empty; every packet has at least a type digit.
    #[error("empty packet: every Engine.IO packet starts with a type digit")]
    Empty,
    /// The first byte is not a known packet type.
    #[error("unknown packet type byte 0x{0:02x}: expected a digit 0-6 or `b` for base64 binary")]
    UnknownType(u8),
    /// The packet text is not valid UTF-8.
    #[error("packet is not valid UTF-8")]
    InvalidUtf8,
    /// A `b` packet did not carry valid base64.
    #[error("binary packet carries invalid base64")]
    InvalidBase64,
}

impl Packet {
    /// Decodes one text packet (a WebSocket text frame, or one record of a polling payload).
    pub fn decode_text(data: Bytes) -> Result<Self, DecodeError> {
        let first = *data.first().ok_or(DecodeError::Empty)?;
        if first == b'b' {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&data[1..])
                .map_err(|_| DecodeError::InvalidBase64)?;
            return Ok(Packet::Binary(Bytes::from(decoded)));
        }
        let kind = PacketType::from_digit(first).ok_or(DecodeError::UnknownType(first))?;
        let rest = || Utf8Bytes::try_from(data.slice(1..)).map_err(|_| DecodeError::InvalidUtf8);
        Ok(match kind {
            PacketType::Open => Packet::Open(rest()?),
            PacketType::Close => Packet::Close,
            PacketType::Ping => Packet::Ping(rest()?),
            PacketType::Pong => Packet::Pong(rest()?),
            PacketType::Message => Packet::Message(rest()?),
            PacketType::Upgrade => Packet::Upgrade,
            PacketType::Noop => Packet::Noop,
        })
    }
}

/// Splits a long-polling payload into its packets.
///
/// Returns an iterator so a POST body is decoded without collecting it first.
///
/// ```
/// use tidewire_engine::packet::{decode_payload, Packet};
/// let body = bytes::Bytes::from_static(b"4hi\x1ebAQI=");
/// let packets: Vec<_> = decode_payload(body).collect::<Result<_, _>>().unwrap();
/// assert_eq!(packets[1], Packet::Binary(bytes::Bytes::from_static(&[1, 2])));
/// ```
pub fn decode_payload(body: Bytes) -> impl Iterator<Item = Result<Packet, DecodeError>> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let mut body = rest.take()?;
        let record = match body.iter().position(|&b| b == RECORD_SEPARATOR) {
            Some(at) => {
                let record = body.split_to(at);
                body = body.slice(1..);
                rest = Some(body);
                record
            }
            None => body,
        };
        Some(Packet::decode_text(record))
    })
}

/// An outgoing packet, already encoded, cheap to clone and share between sessions.
///
/// A broadcast is encoded once into an `EncodedPacket`; every recipient's
/// queue holds a clone (a reference count), and each transport frames the same
/// bytes its own way.
///
/// ```
/// use tidewire_engine::packet::EncodedPacket;
/// let p = EncodedPacket::message("hello");
/// assert_eq!(p.as_text().unwrap(), &b"4hello"[..]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodedPacket {
    /// A complete text packet, type digit included (`4hello`, `2`, `6`).
    Text(Bytes),
    /// The raw bytes of a binary message.
    Binary(Bytes),
}

impl EncodedPacket {
    /// A text message packet (`4` + text).
    pub fn message(text: &str) -> Self {
        Self::message_with(text.len(), |buf| buf.put_slice(text.as_bytes()))
    }

    /// A text message packet whose text is written by `write`, with no extra copy.
    ///
    /// `write` must write valid UTF-8; `size_hint` is the expected length.
    ///
    /// ```
    /// use bytes::BufMut;
    /// use tidewire_engine::packet::EncodedPacket;
    /// let p = EncodedPacket::message_with(2, |buf| buf.put_slice(b"hi"));
    /// assert_eq!(p, EncodedPacket::message("hi"));
    /// ```
    pub fn message_with(size_hint: usize, write: impl FnOnce(&mut BytesMut)) -> Self {
        let mut buf = BytesMut::with_capacity(size_hint + 1);
        buf.put_u8(PacketType::Message.digit());
        write(&mut buf);
        Self::Text(buf.freeze())
    }

    /// A binary message packet.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// A packet with only a type digit (`1`, `2`, `3`, `6`).
    pub fn control(kind: PacketType) -> Self {
        static DIGITS: [u8; 7] = *b"0123456";
        let at = (kind.digit() - b'0') as usize;
        Self::Text(Bytes::from_static(&DIGITS[at..at + 1]))
    }

    /// A packet with a type digit and a static suffix, like `3probe`.
    pub fn control_static(bytes: &'static [u8]) -> Self {
        Self::Text(Bytes::from_static(bytes))
    }

    /// The text bytes, if this is a text packet.
    pub fn as_text(&self) -> Option<&Bytes> {
        match self {
            Self::Text(b) => Some(b),
            Self::Binary(_) => None,
        }
    }

    /// Bytes this packet occupies in a queue (its payload length).
    pub fn len(&self) -> usize {
        match self {
            Self::Text(b) | Self::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty (never true for a well-formed packet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends this packet as one record of a polling payload (text, or `b` + base64).
    pub fn write_payload_record(&self, out: &mut Vec<u8>) {
        match self {
            Self::Text(b) => out.extend_from_slice(b),
            Self::Binary(b) => {
                out.push(b'b');
                base64::engine::general_purpose::STANDARD.encode_string_into_vec(b, out);
            }
        }
    }
}

trait EncodeIntoVec {
    fn encode_string_into_vec(&self, input: &[u8], out: &mut Vec<u8>);
}

impl<E: base64::Engine> EncodeIntoVec for E {
    fn encode_string_into_vec(&self, input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let len = base64::encoded_len(input.len(), true).unwrap_or(0);
        out.resize(start + len, 0);
        let written = self.encode_slice(input, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
    }
}

/// Encodes several packets as one long-polling payload.
///
/// ```
/// use tidewire_engine::packet::{encode_payload, EncodedPacket};
/// let body = encode_payload(&[EncodedPacket::message("a"), EncodedPacket::binary(vec![1u8])]);
/// assert_eq!(body, b"4a\x1ebAQ==".to_vec());
/// ```
pub fn encode_payload<'a>(packets: impl IntoIterator<Item = &'a EncodedPacket>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, packet) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        packet.write_payload_record(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn decodes_every_type() {
        assert_eq!(Packet::decode_text(text("1")), Ok(Packet::Close));
        assert_eq!(
            Packet::decode_text(text("2probe")).unwrap(),
            Packet::Ping(Utf8Bytes::from_static("probe"))
        );
        assert_eq!(
            Packet::decode_text(text("3")).unwrap(),
            Packet::Pong(Utf8Bytes::from_static(""))
        );
        assert_eq!(Packet::decode_text(text("5")), Ok(Packet::Upgrade));
        assert_eq!(Packet::decode_text(text("6")), Ok(Packet::Noop));
        assert_eq!(
            Packet::decode_text(text("4é")).unwrap(),
            Packet::Message(Utf8Bytes::from_static("é"))
        );
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert_eq!(Packet::decode_text(Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text(text("9")),
            Err(DecodeError::UnknownType(b'9'))
        );
        assert_eq!(
            Packet::decode_text(text("b!!")),
            Err(DecodeError::InvalidBase64)
        );
        assert_eq!(
            Packet::decode_text(Bytes::from_static(&[b'4', 0xff, 0xfe])),
            Err(DecodeError::InvalidUtf8)
        );
        let results: Vec<_> = decode_payload(text("4a\x1e\x1e4b")).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[1], Err(DecodeError::Empty));
    }

    #[test]
    fn payload_round_trip() {
        let packets = [
            EncodedPacket::message("hello"),
            EncodedPacket::binary(vec![0u8, 1, 2, 255]),
            EncodedPacket::control(PacketType::Ping),
        ];
        let body = Bytes::from(encode_payload(&packets));
        let decoded: Vec<_> = decode_payload(body).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            decoded,
            vec![
                Packet::Message(Utf8Bytes::from_static("hello")),
                Packet::Binary(Bytes::from_static(&[0, 1, 2, 255])),
                Packet::Ping(Utf8Bytes::from_static("")),
            ]
        );
    }

    #[test]
    fn control_packets_are_single_digits() {
        assert_eq!(
            EncodedPacket::control(PacketType::Noop).as_text().unwrap(),
            &text("6")
        );
        assert_eq!(
            EncodedPacket::control(PacketType::Open).as_text().unwrap(),
            &text("0")
        );
    }
}
