//! Socket.IO v5 packets, free of I/O.
//!
//! A packet travels as the text of one Engine.IO message:
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//! ```
//!
//! `type` is one digit ([`PacketType`]); the attachment count appears only on
//! binary packets (`5`, `6`), which are followed by that many Engine.IO binary
//! messages whose bytes replace the `{"_placeholder":true,"num":N}` objects in
//! the JSON; the namespace is omitted for `/`.
//!
//! [`Packet::decode`] parses what a client sent and returns a [`PacketError`]
//! on anything malformed (it never panics); [`PartialPacket`] collects the
//! attachments of a binary packet. The `encode_*` functions build what the
//! server sends, as complete Engine.IO packets ready to queue.
//!
//! ```
//! use tidewire::packet::{Packet, PacketType, DecodeLimits};
//! let p = Packet::decode(r#"2/chat,12["message","hi"]"#, &DecodeLimits::default()).unwrap();
//! assert_eq!(p.kind, PacketType::Event);
//! assert_eq!(p.namespace, "/chat");
//! assert_eq!(p.id, Some(12));
//! assert_eq!(p.data.unwrap()[1], "hi");
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;
use tidewire_engine::packet::EncodedPacket;

use crate::payload::{self, Payload};

/// The kind of a Socket.IO packet, as its leading digit says.
///
/// ```
/// use tidewire::packet::PacketType;
/// assert_eq!(PacketType::from_digit(b'2'), Some(PacketType::Event));
/// assert_eq!(PacketType::BinaryAck.digit(), b'6');
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: connect to a namespace (client), or accept the connection (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event, `["name", ...args]`.
    Event,
    /// `3`: an acknowledgement, `[...args]`.
    Ack,
    /// `4`: the server refused a namespace connection, `{"message", "data"}`.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    /// Parses a packet type from its ASCII digit.
    ///
    /// ```
    /// use tidewire::packet::PacketType;
    /// assert_eq!(PacketType::from_digit(b'3'), Some(PacketType::Ack));
    /// assert_eq!(PacketType::from_digit(b'7'), None);
    /// ```
    pub fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    /// The ASCII digit that starts a packet of this type.
    ///
    /// ```
    /// assert_eq!(tidewire::packet::PacketType::Connect.digit(), b'0');
    /// ```
    pub fn digit(self) -> u8 {
        match self {
            Self::Connect => b'0',
            Self::Disconnect => b'1',
            Self::Event => b'2',
            Self::Ack => b'3',
            Self::ConnectError => b'4',
            Self::BinaryEvent => b'5',
            Self::BinaryAck => b'6',
        }
    }

    /// Whether packets of this type carry an attachment count.
    ///
    /// ```
    /// assert!(tidewire::packet::PacketType::BinaryEvent.is_binary());
    /// ```
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// Why a packet from a client was refused. The connection that sent it is
/// closed with the reason `"parse error"`.
///
/// ```
/// use tidewire::packet::{DecodeLimits, Packet, PacketError};
/// assert_eq!(Packet::decode("9", &DecodeLimits::default()), Err(PacketError::UnknownType(b'9')));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The message was empty.
    #[error("empty Socket.IO packet: every packet starts with a type digit 0-6")]
    Empty,
    /// The first byte is not a packet type.
    #[error("unknown Socket.IO packet type byte 0x{0:02x}: expected a digit 0-6")]
    UnknownType(u8),
    /// A binary packet's attachment count is missing, not a number, or not followed by `-`.
    #[error("binary packet without a valid `<count>-` attachment header")]
    BadAttachmentCount,
    /// A binary packet announces more attachments than the server accepts.
    #[error("binary packet announces {count} attachments, more than the limit of {max} (raise `max_attachments` if legitimate)")]
    TooManyAttachments {
        /// What the packet announced.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// The ack id does not fit in 64 bits.
    #[error("ack id is not a valid unsigned 64-bit number")]
    BadAckId,
    /// The data after the header is not JSON.
    #[error("packet data is not valid JSON: {0}")]
    InvalidJson(String),
    /// The data is JSON, but not what this packet type carries.
    #[error("invalid payload for a {kind:?} packet: {why}")]
    InvalidPayload {
        /// The packet type.
        kind: PacketType,
        /// What was expected.
        why: &'static str,
    },
    /// A binary message arrived when no binary packet was waiting for attachments.
    #[error("unexpected binary message: no binary packet is waiting for attachments")]
    UnexpectedBinary,
    /// A text packet arrived while a binary packet still waited for attachments.
    #[error("text packet received while a binary packet still waits for {0} attachment(s)")]
    MissingAttachments(usize),
    /// A placeholder refers to an attachment that does not exist.
    #[error("placeholder refers to attachment #{num}, but the packet has {count}")]
    BadPlaceholder {
        /// The number in the placeholder.
        num: u64,
        /// How many attachments the packet has.
        count: usize,
    },
}

/// Limits applied while decoding.
///
/// ```
/// use tidewire::packet::DecodeLimits;
/// assert_eq!(DecodeLimits::default().max_attachments, 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most binary attachments one packet may announce.
    pub max_attachments: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_attachments: 10,
        }
    }
}

/// Event names a client may not use (they are the server's own events).
///
/// ```
/// assert!(tidewire::packet::RESERVED_EVENTS.contains(&"disconnect"));
/// ```
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// A decoded Socket.IO packet, its namespace borrowed from the message text.
///
/// ```
/// use tidewire::packet::{DecodeLimits, Packet, PacketType};
/// let p = Packet::decode(r#"51-["file",{"_placeholder":true,"num":0}]"#, &DecodeLimits::default()).unwrap();
/// assert_eq!(p.kind, PacketType::BinaryEvent);
/// assert_eq!(p.attachments, 1);
/// assert_eq!(p.namespace, "/");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<'a> {
    /// The packet type.
    pub kind: PacketType,
    /// The namespace (`/` when the packet names none).
    pub namespace: &'a str,
    /// The ack id, if any.
    pub id: Option<u64>,
    /// Binary attachments that follow (binary packets only).
    pub attachments: usize,
    /// The JSON data, if any (validated against the packet type).
    pub data: Option<Value>,
}

impl<'a> Packet<'a> {
    /// Decodes the text of one Engine.IO message.
    ///
    /// ```
    /// use tidewire::packet::{DecodeLimits, Packet, PacketType};
    /// let p = Packet::decode("1/chat,", &DecodeLimits::default()).unwrap();
    /// assert_eq!((p.kind, p.namespace), (PacketType::Disconnect, "/chat"));
    /// assert!(Packet::decode("2{oops", &DecodeLimits::default()).is_err());
    /// ```
    pub fn decode(text: &'a str, limits: &DecodeLimits) -> Result<Self, PacketError> {
        let bytes = text.as_bytes();
        let first = *bytes.first().ok_or(PacketError::Empty)?;
        let kind = PacketType::from_digit(first).ok_or(PacketError::UnknownType(first))?;
        let mut at = 1;

        let mut attachments = 0;
        if kind.is_binary() {
            let digits = count_digits(&bytes[at..]);
            if digits == 0 || bytes.get(at + digits) != Some(&b'-') {
                return Err(PacketError::BadAttachmentCount);
            }
            attachments = text[at..at + digits]
                .parse::<usize>()
                .map_err(|_| PacketError::BadAttachmentCount)?;
            if attachments > limits.max_attachments {
                return Err(PacketError::TooManyAttachments {
                    count: attachments,
                    max: limits.max_attachments,
                });
            }
            at += digits + 1;
        }

        let mut namespace = "/";
        if bytes.get(at) == Some(&b'/') {
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |p| at + p);
            namespace = &text[at..end];
            at = (end + 1).min(bytes.len());
        }

        let mut id = None;
        let digits = count_digits(&bytes[at..]);
        if digits > 0 {
            id = Some(
                text[at..at + digits]
                    .parse::<u64>()
                    .map_err(|_| PacketError::BadAckId)?,
            );
            at += digits;
        }

        let rest = &text[at..];
        let data = if rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Value>(rest)
                    .map_err(|e| PacketError::InvalidJson(e.to_string()))?,
            )
        };
        validate(kind, id, data.as_ref())?;
        Ok(Packet {
            kind,
            namespace,
            id,
            attachments,
            data,
        })
    }

    /// The event name of an `Event`/`BinaryEvent` packet (numbers are given as text).
    ///
    /// ```
    /// use tidewire::packet::{DecodeLimits, Packet};
    /// let p = Packet::decode(r#"2["hello",1]"#, &DecodeLimits::default()).unwrap();
    /// assert_eq!(p.event_name().as_deref(), Some("hello"));
    /// ```
    pub fn event_name(&self) -> Option<String> {
        match self.data.as_ref()?.as_array()?.first()? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

fn validate(kind: PacketType, id: Option<u64>, data: Option<&Value>) -> Result<(), PacketError> {
    let invalid = |why| Err(PacketError::InvalidPayload { kind, why });
    match kind {
        PacketType::Connect => match data {
            None | Some(Value::Object(_)) => Ok(()),
            _ => invalid("the auth payload must be a JSON object"),
        },
        PacketType::Disconnect => match data {
            None => Ok(()),
            _ => invalid("a disconnect packet carries no data"),
        },
        PacketType::ConnectError => match data {
            Some(Value::String(_) | Value::Object(_)) => Ok(()),
            _ => invalid("expected an object or a string"),
        },
        PacketType::Event | PacketType::BinaryEvent => match data.and_then(Value::as_array) {
            Some(args) => match args.first() {
                Some(Value::String(name)) if RESERVED_EVENTS.contains(&name.as_str()) => {
                    invalid("the event name is reserved")
                }
                Some(Value::String(_) | Value::Number(_)) => Ok(()),
                _ => invalid("expected an array starting with the event name"),
            },
            None => invalid("expected an array starting with the event name"),
        },
        PacketType::Ack | PacketType::BinaryAck => {
            if id.is_none() {
                return invalid("an ack needs an ack id");
            }
            match data {
                Some(Value::Array(_)) => Ok(()),
                _ => invalid("expected an array of arguments"),
            }
        }
    }
}

/// A binary packet collecting its attachments.
///
/// ```
/// use bytes::Bytes;
/// use tidewire::packet::{DecodeLimits, Packet, PartialPacket};
/// let p = Packet::decode(r#"51-["f",{"_placeholder":true,"num":0}]"#, &DecodeLimits::default()).unwrap();
/// let mut partial = PartialPacket::new(&p);
/// assert!(partial.push(Bytes::from_static(b"\x01\x02")).unwrap());
/// let (_, payload) = partial.finish().unwrap();
/// assert_eq!(payload.attachments()[0], Bytes::from_static(b"\x01\x02"));
/// ```
#[derive(Debug)]
pub struct PartialPacket {
    /// The packet header (namespace owned).
    pub header: PacketHeader,
    data: Value,
    expected: usize,
    attachments: Vec<Bytes>,
}

/// The header fields of a packet, owned.
///
/// ```
/// use tidewire::packet::{DecodeLimits, Packet, PartialPacket};
/// let p = Packet::decode(r#"61-/a,4[{"_placeholder":true,"num":0}]"#, &DecodeLimits::default()).unwrap();
/// assert_eq!(PartialPacket::new(&p).header.id, Some(4));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketHeader {
    /// The packet type.
    pub kind: PacketType,
    /// The namespace.
    pub namespace: String,
    /// The ack id.
    pub id: Option<u64>,
}

impl PartialPacket {
    /// Starts collecting the attachments `packet` announced.
    ///
    /// ```
    /// use tidewire::packet::{DecodeLimits, Packet, PartialPacket};
    /// let p = Packet::decode(r#"52-["f",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#, &DecodeLimits::default()).unwrap();
    /// assert_eq!(PartialPacket::new(&p).missing(), 2);
    /// ```
    pub fn new(packet: &Packet<'_>) -> Self {
        Self {
            header: PacketHeader {
                kind: packet.kind,
                namespace: packet.namespace.to_owned(),
                id: packet.id,
            },
            data: packet.data.clone().unwrap_or(Value::Null),
            expected: packet.attachments,
            attachments: Vec::new(),
        }
    }

    /// Attachments still missing.
    ///
    /// ```
    /// use tidewire::packet::{DecodeLimits, Packet, PartialPacket};
    /// let p = Packet::decode(r#"51-["f",{"_placeholder":true,"num":0}]"#, &DecodeLimits::default()).unwrap();
    /// let mut partial = PartialPacket::new(&p);
    /// partial.push(bytes::Bytes::new()).unwrap();
    /// assert_eq!(partial.missing(), 0);
    /// ```
    pub fn missing(&self) -> usize {
        self.expected - self.attachments.len()
    }

    /// Adds one attachment; returns whether the packet is now complete.
    ///
    /// ```
    /// use tidewire::packet::{DecodeLimits, Packet, PartialPacket};
    /// let p = Packet::decode(r#"51-["f",{"_placeholder":true,"num":0}]"#, &DecodeLimits::default()).unwrap();
    /// let mut partial = PartialPacket::new(&p);
    /// assert_eq!(partial.push(bytes::Bytes::from_static(b"a")), Ok(true));
    /// assert!(partial.push(bytes::Bytes::new()).is_err());
    /// ```
    pub fn push(&mut self, attachment: Bytes) -> Result<bool, PacketError> {
        if self.missing() == 0 {
            return Err(PacketError::UnexpectedBinary);
        }
        self.attachments.push(attachment);
        Ok(self.missing() == 0)
    }

    /// The complete packet: its header and its payload (JSON with placeholders
    /// and the attachments they refer to). Fails when a placeholder refers to a
    /// missing attachment.
    ///
    /// ```
    /// use tidewire::packet::{DecodeLimits, Packet, PartialPacket};
    /// let p = Packet::decode(r#"51-["f",{"_placeholder":true,"num":9}]"#, &DecodeLimits::default()).unwrap();
    /// let mut partial = PartialPacket::new(&p);
    /// partial.push(bytes::Bytes::new()).unwrap();
    /// assert!(partial.finish().is_err()); // placeholder #9 does not exist
    /// ```
    pub fn finish(self) -> Result<(PacketHeader, Payload), PacketError> {
        let payload = Payload::with_attachments(self.data, self.attachments);
        payload.check_placeholders()?;
        Ok((self.header, payload))
    }
}

/// What the server sends for one Socket.IO packet: a text packet followed by
/// its binary attachments, encoded once and shared by every recipient.
///
/// ```
/// use tidewire::packet::encode_event;
/// let out = encode_event("/", "news", &"hi", None).unwrap();
/// assert_eq!(out.text(), &br#"42["news","hi"]"#[..]);
/// assert_eq!(out.attachment_count(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPacket {
    packets: std::sync::Arc<[EncodedPacket]>,
    ack_id: Option<u64>,
    /// Its place in the namespace's recovery log, when connection state recovery records it.
    offset: Option<u64>,
}

impl OutgoingPacket {
    /// Wraps already encoded Engine.IO packets (a text packet, then its
    /// attachments); an adapter that received a packet from another node uses this.
    ///
    /// ```
    /// use bytes::Bytes;
    /// let p = tidewire::packet::OutgoingPacket::from_parts(Bytes::from_static(b"42[\"a\"]"), vec![], None);
    /// assert_eq!(p.attachment_count(), 0);
    /// ```
    pub fn from_parts(text: Bytes, attachments: Vec<Bytes>, ack_id: Option<u64>) -> Self {
        let mut packets = Vec::with_capacity(1 + attachments.len());
        packets.push(EncodedPacket::Text(text));
        packets.extend(attachments.into_iter().map(EncodedPacket::Binary));
        Self {
            packets: packets.into(),
            ack_id,
            offset: None,
        }
    }

    fn single(text: Bytes) -> Self {
        Self {
            packets: std::sync::Arc::new([EncodedPacket::Text(text)]),
            ack_id: None,
            offset: None,
        }
    }

    /// This packet with `offset` appended as its last argument (`42["ev",1,"@17"]`),
    /// the way Socket.IO's connection state recovery marks what a client received.
    /// The `@` lets the bundled client tell an offset from an ordinary string
    /// argument (official clients treat offsets as opaque strings).
    /// The text is copied once; the attachments are shared.
    ///
    /// ```
    /// let p = tidewire::packet::encode_event("/", "ev", &1, None).unwrap().with_offset(17);
    /// assert_eq!(p.text(), &br#"42["ev",1,"@17"]"#[..]);
    /// assert_eq!(p.offset(), Some(17));
    /// ```
    pub fn with_offset(&self, offset: u64) -> Self {
        let text = self.text();
        let Some(body) = text.strip_suffix(b"]") else {
            return self.clone();
        };
        let mut buf = BytesMut::with_capacity(text.len() + 24);
        buf.put_slice(body);
        buf.put_slice(b",\"@");
        buf.put_slice(offset.to_string().as_bytes());
        buf.put_slice(b"\"]");
        let mut packets: Vec<EncodedPacket> = self.packets.to_vec();
        packets[0] = EncodedPacket::Text(buf.freeze());
        Self {
            packets: packets.into(),
            ack_id: self.ack_id,
            offset: Some(offset),
        }
    }

    /// The recovery offset this packet carries, if any.
    ///
    /// ```
    /// assert_eq!(tidewire::packet::encode_event("/", "a", &1, None).unwrap().offset(), None);
    /// ```
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The Engine.IO text packet, `4` included (`42["news","hi"]`).
    ///
    /// ```
    /// let p = tidewire::packet::encode_event("/", "a", &1, None).unwrap();
    /// assert_eq!(p.text(), &b"42[\"a\",1]"[..]);
    /// ```
    pub fn text(&self) -> &Bytes {
        match &self.packets[0] {
            EncodedPacket::Text(b) | EncodedPacket::Binary(b) => b,
        }
    }

    /// The binary attachments, in order.
    ///
    /// ```
    /// let p = tidewire::packet::encode_event("/", "f", &bytes::Bytes::from_static(b"x"), None).unwrap();
    /// assert_eq!(p.attachments().next().unwrap(), &bytes::Bytes::from_static(b"x"));
    /// ```
    pub fn attachments(&self) -> impl Iterator<Item = &Bytes> {
        self.packets[1..].iter().map(|p| match p {
            EncodedPacket::Text(b) | EncodedPacket::Binary(b) => b,
        })
    }

    /// How many attachments follow the text packet.
    ///
    /// ```
    /// let p = tidewire::packet::encode_event("/", "f", &bytes::Bytes::from_static(b"x"), None).unwrap();
    /// assert_eq!(p.attachment_count(), 1);
    /// ```
    pub fn attachment_count(&self) -> usize {
        self.packets.len() - 1
    }

    /// The ack id written in the packet, if the sender expects an answer.
    ///
    /// ```
    /// let p = tidewire::packet::encode_event("/", "q", &1, Some(5)).unwrap();
    /// assert_eq!(p.ack_id(), Some(5));
    /// ```
    pub fn ack_id(&self) -> Option<u64> {
        self.ack_id
    }

    /// Every Engine.IO packet to queue, in order.
    ///
    /// ```
    /// let p = tidewire::packet::encode_event("/", "f", &bytes::Bytes::from_static(b"x"), None).unwrap();
    /// assert_eq!(p.engine_packets().len(), 2); // the text packet, then one attachment
    /// ```
    pub fn engine_packets(&self) -> &[EncodedPacket] {
        &self.packets
    }
}

fn write_header(
    buf: &mut BytesMut,
    kind: PacketType,
    attachments: usize,
    namespace: &str,
    id: Option<u64>,
) {
    buf.put_u8(b'4');
    buf.put_u8(kind.digit());
    if kind.is_binary() {
        write_decimal(buf, attachments as u64);
        buf.put_u8(b'-');
    }
    if namespace != "/" && !namespace.is_empty() {
        buf.put_slice(namespace.as_bytes());
        buf.put_u8(b',');
    }
    if let Some(id) = id {
        write_decimal(buf, id);
    }
}

fn write_decimal(buf: &mut BytesMut, n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

/// Encodes an `EVENT` (or `BINARY_EVENT` when `data` holds byte buffers) for
/// `namespace`: `["event", data]`, or `["event", a, b]` for
/// [`Args((a, b))`](crate::Args).
///
/// ```
/// use tidewire::{packet::encode_event, Args};
/// let p = encode_event("/chat", "sum", &Args((1, 2)), Some(7)).unwrap();
/// assert_eq!(p.text(), &br#"42/chat,7["sum",1,2]"#[..]);
/// let bin = encode_event("/", "file", &bytes::Bytes::from_static(b"\x00"), None).unwrap();
/// assert_eq!(bin.text(), &br#"451-["file",{"_placeholder":true,"num":0}]"#[..]);
/// ```
pub fn encode_event<T: Serialize + ?Sized>(
    namespace: &str,
    event: &str,
    data: &T,
    id: Option<u64>,
) -> Result<OutgoingPacket, serde_json::Error> {
    encode_args(PacketType::Event, namespace, Some(event), data, id)
}

/// Encodes an `ACK` (or `BINARY_ACK`) answering `id`: `[data]`, or `[a, b]` for
/// [`Args((a, b))`](crate::Args).
///
/// ```
/// use tidewire::packet::encode_ack;
/// let p = encode_ack("/", 3, &serde_json::json!({"ok": true})).unwrap();
/// assert_eq!(p.text(), &br#"433[{"ok":true}]"#[..]);
/// ```
pub fn encode_ack<T: Serialize + ?Sized>(
    namespace: &str,
    id: u64,
    data: &T,
) -> Result<OutgoingPacket, serde_json::Error> {
    let mut out = encode_args(PacketType::Ack, namespace, None, data, Some(id))?;
    out.ack_id = None;
    Ok(out)
}

fn encode_args<T: Serialize + ?Sized>(
    kind: PacketType,
    namespace: &str,
    event: Option<&str>,
    data: &T,
    id: Option<u64>,
) -> Result<OutgoingPacket, serde_json::Error> {
    let mut buf = BytesMut::with_capacity(64);
    write_header(&mut buf, kind, 0, namespace, id);
    let body_start = buf.len();
    buf.put_u8(b'[');
    if let Some(event) = event {
        serde_json::to_writer((&mut buf).writer(), event)?;
        buf.put_u8(b',');
    }
    let data_start = buf.len();
    let extracted = payload::write_json(&mut buf, data)?;
    if extracted.spread {
        let written = &buf[data_start..];
        if written == b"null" || written == b"[]" {
            // No arguments: drop the value and the comma before it.
            let cut = if event.is_some() {
                data_start - 1
            } else {
                data_start
            };
            buf.truncate(cut);
            buf.put_u8(b']');
        } else if written.first() == Some(&b'[') {
            // `[a,b]` becomes the argument list: drop its `[`, keep its `]`.
            let len = buf.len();
            buf.copy_within(data_start + 1..len, data_start);
            buf.truncate(len - 1);
        } else {
            buf.put_u8(b']');
        }
    } else {
        buf.put_u8(b']');
    }

    if extracted.attachments.is_empty() {
        let mut out = OutgoingPacket::single(buf.freeze());
        out.ack_id = id;
        return Ok(out);
    }
    let binary_kind = match kind {
        PacketType::Ack => PacketType::BinaryAck,
        _ => PacketType::BinaryEvent,
    };
    let mut with_header = BytesMut::with_capacity(buf.len() + 8);
    write_header(
        &mut with_header,
        binary_kind,
        extracted.attachments.len(),
        namespace,
        id,
    );
    with_header.put_slice(&buf[body_start..]);
    Ok(OutgoingPacket::from_parts(
        with_header.freeze(),
        extracted.attachments,
        id,
    ))
}

/// Encodes the server's `CONNECT` answer: `0/ns,{"sid":"..."}`.
///
/// ```
/// let p = tidewire::packet::encode_connect("/admin", "abc");
/// assert_eq!(p.as_text().unwrap(), &br#"40/admin,{"sid":"abc"}"#[..]);
/// ```
pub fn encode_connect(namespace: &str, sid: &str) -> EncodedPacket {
    encode_connect_with_pid(namespace, sid, None)
}

/// Encodes a `CONNECT` reply that also gives the client its private recovery
/// id: `40/ns,{"sid":...,"pid":...}`.
///
/// ```
/// let p = tidewire::packet::encode_connect_with_pid("/", "abc", Some("xyz"));
/// assert_eq!(p.as_text().unwrap(), &br#"40{"sid":"abc","pid":"xyz"}"#[..]);
/// ```
pub fn encode_connect_with_pid(namespace: &str, sid: &str, pid: Option<&str>) -> EncodedPacket {
    let mut buf = BytesMut::with_capacity(namespace.len() + sid.len() + 48);
    write_header(&mut buf, PacketType::Connect, 0, namespace, None);
    buf.put_slice(b"{\"sid\":");
    // A Sid is URL-safe base64; serializing keeps any other string valid JSON.
    let _ = serde_json::to_writer((&mut buf).writer(), sid);
    if let Some(pid) = pid {
        buf.put_slice(b",\"pid\":");
        let _ = serde_json::to_writer((&mut buf).writer(), pid);
    }
    buf.put_u8(b'}');
    EncodedPacket::Text(buf.freeze())
}

/// Encodes a `CONNECT_ERROR`: `4/ns,{"message":...,"data":...}`.
///
/// ```
/// let p = tidewire::packet::encode_connect_error("/", "Invalid namespace", None);
/// assert_eq!(p.as_text().unwrap(), &br#"44{"message":"Invalid namespace"}"#[..]);
/// ```
pub fn encode_connect_error(namespace: &str, message: &str, data: Option<&Value>) -> EncodedPacket {
    let mut buf = BytesMut::with_capacity(namespace.len() + message.len() + 32);
    write_header(&mut buf, PacketType::ConnectError, 0, namespace, None);
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a Value>,
    }
    let _ = serde_json::to_writer((&mut buf).writer(), &Body { message, data });
    EncodedPacket::Text(buf.freeze())
}

/// Encodes a server `DISCONNECT` for `namespace`: `1/ns,`.
///
/// ```
/// let p = tidewire::packet::encode_disconnect("/chat");
/// assert_eq!(p.as_text().unwrap(), &b"41/chat,"[..]);
/// assert_eq!(tidewire::packet::encode_disconnect("/").as_text().unwrap(), &b"41"[..]);
/// ```
pub fn encode_disconnect(namespace: &str) -> EncodedPacket {
    let mut buf = BytesMut::with_capacity(namespace.len() + 3);
    write_header(&mut buf, PacketType::Disconnect, 0, namespace, None);
    EncodedPacket::Text(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Args;
    use serde_json::json;

    fn decode(text: &str) -> Result<Packet<'_>, PacketError> {
        Packet::decode(text, &DecodeLimits::default())
    }

    #[test]
    fn decodes_connect_with_and_without_auth() {
        let p = decode("0").unwrap();
        assert_eq!(
            (p.kind, p.namespace, p.id, p.data),
            (PacketType::Connect, "/", None, None)
        );
        let p = decode("0/admin,").unwrap();
        assert_eq!(p.namespace, "/admin");
        assert_eq!(p.data, None);
        let p = decode(r#"0/admin,{"token":"x"}"#).unwrap();
        assert_eq!(p.data, Some(json!({"token": "x"})));
        let p = decode(r#"0{"token":"y"}"#).unwrap();
        assert_eq!(p.namespace, "/");
        assert_eq!(p.data, Some(json!({"token": "y"})));
        // A namespace without the trailing comma (end of packet).
        assert_eq!(decode("1/chat").unwrap().namespace, "/chat");
    }

    #[test]
    fn decodes_events_and_acks() {
        let p = decode(r#"2["hello",1,{"a":[true]}]"#).unwrap();
        assert_eq!(p.kind, PacketType::Event);
        assert_eq!(p.event_name().as_deref(), Some("hello"));
        let p = decode(r#"2/chat,42["m"]"#).unwrap();
        assert_eq!((p.namespace, p.id), ("/chat", Some(42)));
        let p = decode(r#"31["ok"]"#).unwrap();
        assert_eq!((p.kind, p.id), (PacketType::Ack, Some(1)));
        let p = decode(r#"3/a,18446744073709551615[]"#).unwrap();
        assert_eq!(p.id, Some(u64::MAX));
        let p = decode(r#"2[7]"#).unwrap();
        assert_eq!(p.event_name().as_deref(), Some("7"));
    }

    #[test]
    fn decodes_binary_headers() {
        let p =
            decode(r#"52-/nsp,3["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
                .unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.namespace, p.id),
            (PacketType::BinaryEvent, 2, "/nsp", Some(3))
        );
        let p = decode(r#"61-9[{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (PacketType::BinaryAck, 1, Some(9))
        );
    }

    #[test]
    fn rejects_malformed_input() {
        use PacketError::*;
        assert_eq!(decode(""), Err(Empty));
        assert_eq!(decode("7"), Err(UnknownType(b'7')));
        assert_eq!(decode("x"), Err(UnknownType(b'x')));
        assert_eq!(decode(r#"5["a"]"#), Err(BadAttachmentCount));
        assert_eq!(decode(r#"51["a"]"#), Err(BadAttachmentCount));
        assert_eq!(decode(r#"5-["a"]"#), Err(BadAttachmentCount));
        assert_eq!(
            decode(r#"599999999999999999999999-["a"]"#),
            Err(BadAttachmentCount)
        );
        assert_eq!(
            decode(r#"511-["a"]"#),
            Err(TooManyAttachments { count: 11, max: 10 })
        );
        assert_eq!(decode(r#"399999999999999999999[]"#), Err(BadAckId));
        assert!(matches!(decode(r#"2["a""#), Err(InvalidJson(_))));
        assert!(matches!(decode("2{]"), Err(InvalidJson(_))));
        assert!(matches!(decode(r#"2{"a":1}"#), Err(InvalidPayload { .. })));
        assert!(matches!(decode("2[]"), Err(InvalidPayload { .. })));
        assert!(matches!(decode("2"), Err(InvalidPayload { .. })));
        assert!(matches!(
            decode(r#"2[{"x":1}]"#),
            Err(InvalidPayload { .. })
        ));
        assert!(matches!(
            decode(r#"2["disconnect"]"#),
            Err(InvalidPayload { .. })
        ));
        assert!(matches!(decode(r#"0"auth""#), Err(InvalidPayload { .. })));
        assert!(matches!(decode(r#"0[1]"#), Err(InvalidPayload { .. })));
        assert!(matches!(decode(r#"1{"a":1}"#), Err(InvalidPayload { .. })));
        assert!(matches!(
            decode(r#"3["no id"]"#),
            Err(InvalidPayload { .. })
        ));
        assert!(matches!(decode(r#"31{"a":1}"#), Err(InvalidPayload { .. })));
        assert!(matches!(decode("4"), Err(InvalidPayload { .. })));
        // Multi-byte UTF-8 right after the header never splits a character.
        assert!(matches!(decode("2é"), Err(InvalidJson(_))));
        assert!(decode("0/é").is_ok());
    }

    #[test]
    fn reconstructs_binary_packets() {
        let p = decode(
            r#"52-/f,1["up",{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":0}}]"#,
        )
        .unwrap();
        let mut partial = PartialPacket::new(&p);
        assert_eq!(partial.missing(), 2);
        assert!(!partial.push(Bytes::from_static(b"zero")).unwrap());
        assert!(partial.push(Bytes::from_static(b"one")).unwrap());
        assert_eq!(
            partial.push(Bytes::new()),
            Err(PacketError::UnexpectedBinary)
        );
        let (header, payload) = partial.finish().unwrap();
        assert_eq!(header.namespace, "/f");
        assert_eq!(header.id, Some(1));

        #[derive(serde::Deserialize)]
        struct Inner {
            x: Bytes,
        }
        let (name, args) = payload.split_event().unwrap();
        assert_eq!(name, "up");
        let (first, second): (Bytes, Inner) = args.deserialize().unwrap();
        assert_eq!(first, Bytes::from_static(b"one"));
        assert_eq!(second.x, Bytes::from_static(b"zero"));
    }

    #[test]
    fn rejects_dangling_placeholders() {
        let p = decode(r#"51-["up",{"_placeholder":true,"num":3}]"#).unwrap();
        let mut partial = PartialPacket::new(&p);
        partial.push(Bytes::from_static(b"a")).unwrap();
        assert_eq!(
            partial.finish().unwrap_err(),
            PacketError::BadPlaceholder { num: 3, count: 1 }
        );
    }

    #[test]
    fn encodes_events() {
        let p = encode_event("/", "a", &json!({"b": 1}), None).unwrap();
        assert_eq!(p.text(), &br#"42["a",{"b":1}]"#[..]);
        assert_eq!(p.ack_id(), None);
        let p = encode_event("/n", "a", &Args(()), Some(0)).unwrap();
        assert_eq!(p.text(), &br#"42/n,0["a"]"#[..]);
        assert_eq!(p.ack_id(), Some(0));
        let p = encode_event("/", "a", &Args(("x", 2, [3])), None).unwrap();
        assert_eq!(p.text(), &br#"42["a","x",2,[3]]"#[..]);
        // A tuple that is not wrapped in Args is one argument.
        let p = encode_event("/", "a", &("x", 2), None).unwrap();
        assert_eq!(p.text(), &br#"42["a",["x",2]]"#[..]);
        // Args around a non-sequence is a single argument.
        let p = encode_event("/", "a", &Args(5), None).unwrap();
        assert_eq!(p.text(), &br#"42["a",5]"#[..]);
        // Event names are JSON-escaped.
        let p = encode_event("/", "q\"", &1, None).unwrap();
        assert_eq!(p.text(), &br#"42["q\"",1]"#[..]);
    }

    #[test]
    fn encodes_binary_with_attachments() {
        #[derive(Serialize)]
        struct File {
            name: &'static str,
            body: Bytes,
        }
        let p = encode_event(
            "/up",
            "file",
            &Args((
                File {
                    name: "a",
                    body: Bytes::from_static(b"\x00\x01"),
                },
                Bytes::from_static(b"\xff"),
            )),
            Some(4),
        )
        .unwrap();
        assert_eq!(
            p.text(),
            &br#"452-/up,4["file",{"name":"a","body":{"_placeholder":true,"num":0}},{"_placeholder":true,"num":1}]"#[..]
        );
        let atts: Vec<_> = p.attachments().cloned().collect();
        assert_eq!(
            atts,
            vec![Bytes::from_static(b"\x00\x01"), Bytes::from_static(b"\xff")]
        );
        assert_eq!(p.engine_packets().len(), 3);

        let ack = encode_ack("/", 2, &Bytes::from_static(b"z")).unwrap();
        assert_eq!(ack.text(), &br#"461-2[{"_placeholder":true,"num":0}]"#[..]);
    }

    #[test]
    fn encodes_acks_and_control_packets() {
        assert_eq!(encode_ack("/", 1, &Args(())).unwrap().text(), &b"431[]"[..]);
        assert_eq!(
            encode_ack("/x", 1, &Args((1, 2))).unwrap().text(),
            &b"43/x,1[1,2]"[..]
        );
        assert_eq!(
            encode_ack("/", 1, &"ok").unwrap().text(),
            &br#"431["ok"]"#[..]
        );
        let p = encode_connect_error("/admin", "nope", Some(&json!({"code": 1})));
        assert_eq!(
            p.as_text().unwrap(),
            &br#"44/admin,{"message":"nope","data":{"code":1}}"#[..]
        );
    }

    #[test]
    fn round_trips_through_the_decoder() {
        let p = encode_event("/r", "ev", &Args((1, "two")), Some(99)).unwrap();
        let text = std::str::from_utf8(&p.text()[1..]).unwrap();
        let d = decode(text).unwrap();
        assert_eq!(
            (d.kind, d.namespace, d.id),
            (PacketType::Event, "/r", Some(99))
        );
        assert_eq!(d.data, Some(json!(["ev", 1, "two"])));
    }
}
