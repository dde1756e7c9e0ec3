//! The messages on the wire between nodes.
//!
//! Two formats travel through Redis:
//!
//! - **Node's** (`@socket.io/redis-adapter` and `@socket.io/redis-emitter`):
//!   MessagePack `[uid, packet, opts]` on the broadcast channels, where
//!   `packet` is socket.io-parser's object (`{type, data, nsp, id?}`, binary
//!   arguments as MessagePack `bin`) and `opts` is `{rooms, except, flags}`;
//!   requests and responses are JSON, except the broadcast-with-ack request
//!   and its ack responses, which are MessagePack.
//! - **Ours**, in the recovery stream: the packet as the clients get it
//!   (its Socket.IO text and attachments, encoded once), so a node delivers
//!   it without decoding.

use bytes::{BufMut, Bytes, BytesMut};
use rmpv::Value as Mp;
use serde_json::Value as Json;
use tidewire::adapter::{BroadcastFlags, BroadcastOptions, Room};
use tidewire::packet::{DecodeLimits, OutgoingPacket, Packet, PacketType};

/// A message from another node that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not MessagePack, or truncated.
    #[error("malformed MessagePack: {0}")]
    MessagePack(String),
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Well-formed but not the expected shape.
    #[error("unexpected message shape: {0}")]
    Shape(&'static str),
}

/// Reads one MessagePack value.
pub fn read_msgpack(bytes: &[u8]) -> Result<Mp, CodecError> {
    let mut cursor = bytes;
    rmpv::decode::read_value(&mut cursor).map_err(|e| CodecError::MessagePack(e.to_string()))
}

/// Writes one MessagePack value.
pub fn write_msgpack(value: &Mp) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// The field of a MessagePack map named `key`.
pub fn field<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn str_list(value: Option<&Mp>) -> Vec<Room> {
    value
        .and_then(Mp::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| match v {
                    Mp::String(s) => s.as_str().map(Room::from),
                    // Node allows numeric room names.
                    Mp::Integer(i) => Some(Room::from(i.to_string())),
                    Mp::F64(f) => Some(Room::from(f.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Broadcast options as Node sends them (`{rooms, except, flags}`).
pub fn opts_from_node(value: Option<&Mp>) -> BroadcastOptions {
    let Some(value) = value else {
        return BroadcastOptions::default();
    };
    let flags = field(value, "flags");
    let flag = |name| {
        flags
            .and_then(|f| field(f, name))
            .and_then(Mp::as_bool)
            .unwrap_or(false)
    };
    let timeout = flags
        .and_then(|f| field(f, "timeout"))
        .and_then(|t| t.as_u64().or_else(|| t.as_f64().map(|f| f as u64)))
        .map(std::time::Duration::from_millis);
    BroadcastOptions {
        rooms: str_list(field(value, "rooms")),
        except: str_list(field(value, "except")),
        flags: BroadcastFlags {
            volatile: flag("volatile"),
            local: flag("local"),
            timeout,
        },
    }
}

/// Broadcast options the way Node reads them.
pub fn opts_to_node(opts: &BroadcastOptions) -> Mp {
    let rooms = |list: &[Room]| Mp::Array(list.iter().map(|r| Mp::from(r.as_str())).collect());
    let mut flags = Vec::new();
    if opts.flags.volatile {
        flags.push((Mp::from("volatile"), Mp::Boolean(true)));
    }
    if let Some(timeout) = opts.flags.timeout {
        flags.push((
            Mp::from("timeout"),
            Mp::from(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        ));
    }
    Mp::Map(vec![
        (Mp::from("rooms"), rooms(&opts.rooms)),
        (Mp::from("except"), rooms(&opts.except)),
        (Mp::from("flags"), Mp::Map(flags)),
    ])
}

/// Broadcast options as JSON (Node's requests: `{rooms, except}`).
pub fn opts_to_json(opts: &BroadcastOptions) -> Json {
    serde_json::json!({
        "rooms": opts.rooms.iter().map(Room::as_str).collect::<Vec<_>>(),
        "except": opts.except.iter().map(Room::as_str).collect::<Vec<_>>(),
    })
}

/// Room names from a JSON array (Node allows numbers as room names).
pub fn rooms_from_json(value: Option<&Json>) -> Vec<Room> {
    value
        .and_then(Json::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| match i {
                    Json::String(s) => Some(Room::from(s.as_str())),
                    Json::Number(n) => Some(Room::from(n.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Broadcast options from a JSON request.
pub fn opts_from_json(value: Option<&Json>) -> BroadcastOptions {
    let list = |key: &str| rooms_from_json(value.and_then(|v| v.get(key)));
    BroadcastOptions {
        rooms: list("rooms"),
        except: list("except"),
        flags: BroadcastFlags::default(),
    }
}

/// JSON (with binary placeholders) and its attachments, from MessagePack
/// data where binary values are inline.
pub fn json_from_msgpack(value: &Mp, attachments: &mut Vec<Bytes>) -> Json {
    match value {
        Mp::Nil => Json::Null,
        Mp::Boolean(b) => Json::Bool(*b),
        Mp::Integer(i) => {
            if let Some(n) = i.as_i64() {
                Json::from(n)
            } else if let Some(n) = i.as_u64() {
                Json::from(n)
            } else {
                Json::Null
            }
        }
        Mp::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Mp::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Mp::String(s) => Json::String(s.as_str().unwrap_or_default().to_owned()),
        Mp::Binary(b) => {
            let num = attachments.len();
            attachments.push(Bytes::copy_from_slice(b));
            serde_json::json!({ "_placeholder": true, "num": num })
        }
        Mp::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| json_from_msgpack(i, attachments))
                .collect(),
        ),
        Mp::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Mp::String(s) => s.as_str().unwrap_or_default().to_owned(),
                        other => other.to_string(),
                    };
                    (key, json_from_msgpack(v, attachments))
                })
                .collect(),
        ),
        // notepack encodes `undefined` and dates as extensions: nothing JSON can hold.
        Mp::Ext(..) => Json::Null,
    }
}

/// MessagePack data with binary inline, from JSON whose placeholders name `attachments`.
pub fn msgpack_from_json(value: &Json, attachments: &[Bytes]) -> Mp {
    match value {
        Json::Null => Mp::Nil,
        Json::Bool(b) => Mp::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Mp::from(s.as_str()),
        Json::Array(items) => Mp::Array(
            items
                .iter()
                .map(|i| msgpack_from_json(i, attachments))
                .collect(),
        ),
        Json::Object(map) => {
            if map.get("_placeholder") == Some(&Json::Bool(true)) {
                if let Some(bytes) = map
                    .get("num")
                    .and_then(Json::as_u64)
                    .and_then(|n| attachments.get(usize::try_from(n).ok()?))
                {
                    return Mp::Binary(bytes.to_vec());
                }
            }
            Mp::Map(
                map.iter()
                    .map(|(k, v)| (Mp::from(k.as_str()), msgpack_from_json(v, attachments)))
                    .collect(),
            )
        }
    }
}

/// A request or response from Node's channels: JSON when it starts with `{`,
/// MessagePack otherwise (broadcasts with acks).
pub enum Message {
    /// A JSON message.
    Json(Json),
    /// A MessagePack message.
    MessagePack(Mp),
}

/// Reads a request or response; `None` when it is neither JSON nor MessagePack.
pub fn read_message(payload: &[u8]) -> Option<Message> {
    if payload.first() == Some(&b'{') {
        serde_json::from_slice(payload).ok().map(Message::Json)
    } else {
        read_msgpack(payload).ok().map(Message::MessagePack)
    }
}

/// A socket.io-parser packet object (`{type, data, nsp, id?}`) as the packet
/// this server sends (`nsp` as given: a broadcast names its namespace).
pub fn packet_from_node(packet: &Mp, nsp: &str) -> Result<OutgoingPacket, CodecError> {
    let id = field(packet, "id").and_then(Mp::as_u64);
    packet_from_node_with_id(packet, nsp, id)
}

/// Like [`packet_from_node`], with ack id `id` whatever the packet says (a
/// broadcast with acks gets an id of the namespace that sends it: Node's
/// adapter publishes it without one).
pub fn packet_from_node_with_id(
    packet: &Mp,
    nsp: &str,
    id: Option<u64>,
) -> Result<OutgoingPacket, CodecError> {
    let kind = field(packet, "type")
        .and_then(Mp::as_u64)
        .ok_or(CodecError::Shape("packet without a type"))?;
    let kind = match kind {
        2 | 5 => PacketType::Event,
        3 | 6 => PacketType::Ack,
        _ => return Err(CodecError::Shape("only events and acks are broadcast")),
    };
    let data = field(packet, "data").ok_or(CodecError::Shape("packet without data"))?;
    let mut attachments = Vec::new();
    let json = json_from_msgpack(data, &mut attachments);
    if !json.is_array() {
        return Err(CodecError::Shape("packet data is not an array"));
    }
    Ok(encode_wire(kind, nsp, id, &json, attachments))
}

/// Socket.IO wire text (`42/ns,7[...]`, Engine.IO's `4` included) and attachments.
pub fn encode_wire(
    kind: PacketType,
    nsp: &str,
    id: Option<u64>,
    data: &Json,
    attachments: Vec<Bytes>,
) -> OutgoingPacket {
    let mut text = BytesMut::with_capacity(64);
    text.put_u8(b'4');
    let binary = !attachments.is_empty();
    let kind = match (kind, binary) {
        (PacketType::Event, true) => PacketType::BinaryEvent,
        (PacketType::Ack, true) => PacketType::BinaryAck,
        (kind, _) => kind,
    };
    text.put_u8(kind.digit());
    if binary {
        text.put_slice(attachments.len().to_string().as_bytes());
        text.put_u8(b'-');
    }
    if nsp != "/" && !nsp.is_empty() {
        text.put_slice(nsp.as_bytes());
        text.put_u8(b',');
    }
    if let Some(id) = id {
        text.put_slice(id.to_string().as_bytes());
    }
    // A serde_json::Value always serializes.
    let _ = serde_json::to_writer((&mut text).writer(), data);
    OutgoingPacket::from_parts(text.freeze(), attachments, id)
}

/// Our packet as socket.io-parser's object, for Node nodes.
pub fn packet_to_node(packet: &OutgoingPacket) -> Result<Mp, CodecError> {
    let text = packet.text();
    let text = std::str::from_utf8(text.get(1..).unwrap_or_default())
        .map_err(|_| CodecError::Shape("packet text is not UTF-8"))?;
    let decoded = Packet::decode(text, &DecodeLimits::default())
        .map_err(|_| CodecError::Shape("not a Socket.IO packet"))?;
    let attachments: Vec<Bytes> = packet.attachments().cloned().collect();
    let data = decoded
        .data
        .as_ref()
        .map(|d| msgpack_from_json(d, &attachments))
        .unwrap_or(Mp::Nil);
    let kind: u8 = match decoded.kind {
        PacketType::Event | PacketType::BinaryEvent => 2,
        PacketType::Ack | PacketType::BinaryAck => 3,
        _ => return Err(CodecError::Shape("only events and acks are broadcast")),
    };
    let mut fields = vec![
        (Mp::from("type"), Mp::from(kind)),
        (Mp::from("data"), data),
        (Mp::from("nsp"), Mp::from(decoded.namespace)),
    ];
    if let Some(id) = decoded.id {
        fields.push((Mp::from("id"), Mp::from(id)));
    }
    Ok(Mp::Map(fields))
}

/// A broadcast on Node's channel: `[uid, packet, opts]`.
pub fn encode_node_broadcast(uid: &str, packet: Mp, opts: &BroadcastOptions) -> Vec<u8> {
    write_msgpack(&Mp::Array(vec![Mp::from(uid), packet, opts_to_node(opts)]))
}

/// A broadcast from Node's channel: the sender's uid, the packet object, the options.
pub fn decode_node_broadcast(bytes: &[u8]) -> Result<(String, Mp, BroadcastOptions), CodecError> {
    let value = read_msgpack(bytes)?;
    let Mp::Array(mut items) = value else {
        return Err(CodecError::Shape("broadcast is not an array"));
    };
    if items.len() < 2 {
        return Err(CodecError::Shape("broadcast without a packet"));
    }
    let opts = opts_from_node(items.get(2));
    let packet = items.swap_remove(1);
    let uid = match &items[0] {
        Mp::String(s) => s.as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    Ok((uid, packet, opts))
}

/// A recorded packet in the recovery stream (our format): the text and
/// attachments as clients get them, and who they are for.
pub struct StreamEntry {
    /// The packet, encoded once by the node that sent it.
    pub packet: OutgoingPacket,
    /// Its recipients.
    pub opts: BroadcastOptions,
}

/// Encodes a stream entry: `[text, [attachment...], rooms, except]`.
pub fn encode_entry(packet: &OutgoingPacket, opts: &BroadcastOptions) -> Vec<u8> {
    let rooms = |list: &[Room]| Mp::Array(list.iter().map(|r| Mp::from(r.as_str())).collect());
    write_msgpack(&Mp::Array(vec![
        Mp::Binary(packet.text().to_vec()),
        Mp::Array(
            packet
                .attachments()
                .map(|a| Mp::Binary(a.to_vec()))
                .collect(),
        ),
        rooms(&opts.rooms),
        rooms(&opts.except),
    ]))
}

/// Decodes a stream entry.
pub fn decode_entry(bytes: &[u8]) -> Result<StreamEntry, CodecError> {
    let value = read_msgpack(bytes)?;
    let items = value
        .as_array()
        .ok_or(CodecError::Shape("entry is not an array"))?;
    let text = match items.first() {
        Some(Mp::Binary(b)) => Bytes::copy_from_slice(b),
        _ => return Err(CodecError::Shape("entry without text")),
    };
    let attachments = items
        .get(1)
        .and_then(Mp::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| match a {
                    Mp::Binary(b) => Some(Bytes::copy_from_slice(b)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(StreamEntry {
        packet: OutgoingPacket::from_parts(text, attachments, None),
        opts: BroadcastOptions {
            rooms: str_list(items.get(2)),
            except: str_list(items.get(3)),
            flags: BroadcastFlags::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewire::packet::encode_event;

    #[test]
    fn node_packets_become_wire_text() {
        let packet = Mp::Map(vec![
            (Mp::from("type"), Mp::from(2)),
            (
                Mp::from("data"),
                Mp::Array(vec![Mp::from("news"), Mp::from(1), Mp::Binary(vec![0, 1])]),
            ),
            (Mp::from("nsp"), Mp::from("/chat")),
        ]);
        let out = packet_from_node(&packet, "/chat").unwrap();
        assert_eq!(
            out.text(),
            &br#"451-/chat,["news",1,{"_placeholder":true,"num":0}]"#[..]
        );
        assert_eq!(
            out.attachments().next().unwrap(),
            &Bytes::from_static(&[0, 1])
        );
    }

    #[test]
    fn wire_packets_round_trip_through_node_format() {
        let ours = encode_event("/", "file", &(1, Bytes::from_static(b"\x07")), None).unwrap();
        let node = packet_to_node(&ours).unwrap();
        assert_eq!(field(&node, "type").and_then(Mp::as_u64), Some(2));
        let back = packet_from_node(&node, "/").unwrap();
        assert_eq!(back.text(), ours.text());
        let msg = encode_node_broadcast(
            "uid",
            node,
            &BroadcastOptions::default().to("r").except("x"),
        );
        let (uid, _, opts) = decode_node_broadcast(&msg).unwrap();
        assert_eq!(uid, "uid");
        assert_eq!(opts.rooms, vec![Room::from("r")]);
        assert_eq!(opts.except, vec![Room::from("x")]);
    }

    #[test]
    fn entries_round_trip() {
        let ours = encode_event("/", "n", &5, None).unwrap();
        let bytes = encode_entry(&ours, &BroadcastOptions::default().to("a"));
        let entry = decode_entry(&bytes).unwrap();
        assert_eq!(entry.packet.text(), ours.text());
        assert_eq!(entry.opts.rooms, vec![Room::from("a")]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_node_broadcast(b"\xc1\xff").is_err());
        assert!(decode_node_broadcast(&write_msgpack(&Mp::from(3))).is_err());
        assert!(decode_entry(b"").is_err());
        assert!(packet_from_node(&Mp::from("x"), "/").is_err());
    }
}
