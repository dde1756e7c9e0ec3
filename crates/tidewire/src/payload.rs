//! Event arguments: how typed Rust values become Socket.IO arguments and back,
//! binary attachments included.
//!
//! # Arguments
//! A Socket.IO event carries a list of arguments (`socket.emit("ev", a, b)` in
//! JavaScript). In tidewire:
//! - sending `data` sends **one** argument; wrap a tuple in [`Args`] to send
//!   several (`Args((a, b))`), or `Args(())` to send none;
//! - receiving into `T`: when the client sent exactly one argument, `T` is that
//!   argument; otherwise `T` is the whole list (use a tuple, a `Vec`, or `()` for none).
//!
//! # Binary
//! Byte buffers are sent as attachments rather than JSON: any value that
//! serializes with `serialize_bytes` (a [`bytes::Bytes`], a `serde_bytes::ByteBuf`)
//! becomes a `{"_placeholder":true,"num":N}` object in the JSON plus one
//! binary Engine.IO message. On receipt, deserialize such arguments (or
//! fields) into [`Bytes`]. A plain `Vec<u8>` is a JSON array of numbers, not
//! binary. Deserializing a placeholder into a `serde_json::Value` fails; use
//! [`Payload`] itself (in a catch-all handler) to see the raw tree and the
//! attachments.
//!
//! ```
//! use bytes::Bytes;
//! use tidewire::{Args, Payload};
//! #[derive(serde::Deserialize)]
//! struct Upload { name: String, body: Bytes }
//!
//! let payload = Payload::with_attachments(
//!     serde_json::json!([{"name": "a.bin", "body": {"_placeholder": true, "num": 0}}]),
//!     vec![Bytes::from_static(b"\x00\x01")],
//! );
//! let upload: Upload = payload.deserialize().unwrap();
//! assert_eq!(upload.body.as_ref(), b"\x00\x01");
//! # let _ = Args(());
//! ```

use std::cell::{Cell, RefCell};

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::packet::PacketError;

/// Several arguments for one event or ack: `Args((a, b, c))` sends three,
/// `Args(())` sends none.
///
/// ```
/// use tidewire::{packet::encode_event, Args};
/// let p = encode_event("/", "move", &Args((10, 20)), None).unwrap();
/// assert_eq!(p.text(), &br#"42["move",10,20]"#[..]);
/// let p = encode_event("/", "ping", &Args(()), None).unwrap();
/// assert_eq!(p.text(), &br#"42["ping"]"#[..]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Args<T>(pub T);

pub(crate) const ARGS_MAGIC: &str = "$tidewire::Args";

impl<T: Serialize> Serialize for Args<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(ARGS_MAGIC, &self.0)
    }
}

/// The arguments of a received event or ack: JSON values (binary arguments
/// still as placeholders) and the binary attachments they refer to.
///
/// ```
/// use tidewire::Payload;
/// let p = Payload::new(vec![serde_json::json!(1), serde_json::json!("two")]);
/// let (a, b): (u32, String) = p.deserialize().unwrap();
/// assert_eq!((a, b.as_str()), (1, "two"));
/// let first: u32 = p.arg(0).unwrap();
/// assert_eq!(first, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    args: Vec<Value>,
    attachments: Vec<Bytes>,
}

impl Payload {
    /// Arguments without attachments.
    ///
    /// ```
    /// let p = tidewire::Payload::new(vec![serde_json::json!(1)]);
    /// assert_eq!(p.len(), 1);
    /// ```
    pub fn new(args: Vec<Value>) -> Self {
        Self {
            args,
            attachments: Vec::new(),
        }
    }

    /// Serializes `data` into arguments (one, or several with [`Args`]),
    /// extracting byte buffers into attachments.
    ///
    /// ```
    /// use tidewire::{Args, Payload};
    /// let p = Payload::from_serialize(&Args((1, bytes::Bytes::from_static(b"x")))).unwrap();
    /// assert_eq!(p.len(), 2);
    /// assert_eq!(p.attachments().len(), 1);
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(data: &T) -> Result<Self, serde_json::Error> {
        to_payload(data)
    }

    /// Arguments (a JSON array, or one value taken as the only argument) and
    /// the attachments their placeholders refer to.
    ///
    /// ```
    /// let p = tidewire::Payload::with_attachments(serde_json::json!("only"), vec![]);
    /// assert_eq!(p.args(), &[serde_json::json!("only")]);
    /// ```
    pub fn with_attachments(args: Value, attachments: Vec<Bytes>) -> Self {
        let args = match args {
            Value::Array(args) => args,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        Self { args, attachments }
    }

    /// The arguments as JSON (binary ones as `{"_placeholder":true,"num":N}`).
    ///
    /// ```
    /// let p = tidewire::Payload::new(vec![serde_json::json!({"a": 1})]);
    /// assert_eq!(p.args()[0]["a"], 1);
    /// ```
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The binary attachments, in placeholder order.
    ///
    /// ```
    /// let p = tidewire::Payload::from_serialize(&bytes::Bytes::from_static(b"x")).unwrap();
    /// assert_eq!(p.attachments().len(), 1);
    /// ```
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// How many arguments there are.
    ///
    /// ```
    /// assert_eq!(tidewire::Payload::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether there are no arguments.
    ///
    /// ```
    /// assert!(tidewire::Payload::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Deserializes the arguments: the only argument when there is exactly
    /// one, else the whole list (a tuple, a `Vec`, `()` for none).
    ///
    /// ```
    /// let p = tidewire::Payload::new(vec![serde_json::json!(1), serde_json::json!(2)]);
    /// let (a, b): (u8, u8) = p.deserialize().unwrap();
    /// assert_eq!(a + b, 3);
    /// assert!(p.deserialize::<String>().is_err());
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self.args.as_slice() {
            [only] => T::deserialize(De {
                value: only,
                atts: &self.attachments,
            }),
            args => T::deserialize(SliceDe {
                items: args,
                atts: &self.attachments,
            }),
        }
    }

    /// Deserializes argument number `index` (from 0).
    ///
    /// ```
    /// let p = tidewire::Payload::new(vec![serde_json::json!("a"), serde_json::json!(2)]);
    /// assert_eq!(p.arg::<u8>(1).unwrap(), 2);
    /// assert!(p.arg::<u8>(5).is_err());
    /// ```
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<T, serde_json::Error> {
        let value = self.args.get(index).ok_or_else(|| {
            <serde_json::Error as de::Error>::custom(format!(
                "no argument #{index}: the payload has {}",
                self.args.len()
            ))
        })?;
        T::deserialize(De {
            value,
            atts: &self.attachments,
        })
    }

    /// Splits `["event", ...args]` into the event name and its arguments.
    pub(crate) fn split_event(mut self) -> Option<(String, Payload)> {
        if self.args.is_empty() {
            return None;
        }
        let name = match self.args.remove(0) {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some((name, self))
    }

    /// Fails when a placeholder refers to a missing attachment.
    pub(crate) fn check_placeholders(&self) -> Result<(), PacketError> {
        fn walk(value: &Value, count: usize) -> Result<(), PacketError> {
            match value {
                Value::Array(items) => items.iter().try_for_each(|v| walk(v, count)),
                Value::Object(map) => {
                    if let Some(num) = placeholder_num(map) {
                        if num as usize >= count || num > usize::MAX as u64 {
                            return Err(PacketError::BadPlaceholder { num, count });
                        }
                        return Ok(());
                    }
                    map.values().try_for_each(|v| walk(v, count))
                }
                _ => Ok(()),
            }
        }
        self.args
            .iter()
            .try_for_each(|v| walk(v, self.attachments.len()))
    }
}

/// A payload serializes back into its arguments, binary included, so it can
/// be forwarded as is: `ack.send(payload)`, `socket.emit("ev", payload)`.
///
/// ```
/// use tidewire::{packet::encode_event, Payload};
/// let p = Payload::with_attachments(
///     serde_json::json!([1, {"_placeholder": true, "num": 0}]),
///     vec![bytes::Bytes::from_static(b"z")],
/// );
/// let out = encode_event("/", "echo", &p, None).unwrap();
/// assert_eq!(out.text(), &br#"451-["echo",1,{"_placeholder":true,"num":0}]"#[..]);
/// ```
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(ARGS_MAGIC, &Restored(&self.args, &self.attachments))
    }
}

struct Restored<'a>(&'a [Value], &'a [Bytes]);
struct RestoredValue<'a>(&'a Value, &'a [Bytes]);

impl Serialize for Restored<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|v| RestoredValue(v, self.1)))
    }
}

impl Serialize for RestoredValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Array(items) => {
                serializer.collect_seq(items.iter().map(|v| RestoredValue(v, self.1)))
            }
            Value::Object(map) => match placeholder_num(map)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| self.1.get(n))
            {
                Some(bytes) => serializer.serialize_bytes(bytes),
                None => {
                    serializer.collect_map(map.iter().map(|(k, v)| (k, RestoredValue(v, self.1))))
                }
            },
            other => other.serialize(serializer),
        }
    }
}

fn placeholder_num(map: &Map<String, Value>) -> Option<u64> {
    if map.len() == 2 && map.get("_placeholder") == Some(&Value::Bool(true)) {
        map.get("num")?.as_u64()
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Serialization: JSON straight into the packet buffer, byte buffers extracted.

pub(crate) struct Extracted {
    pub attachments: Vec<Bytes>,
    /// The top-level value was an [`Args`]: its sequence is the argument list.
    pub spread: bool,
}

#[derive(Default)]
struct Ctx {
    attachments: RefCell<Vec<Bytes>>,
    spread: Cell<bool>,
}

/// Writes `data` as JSON into `buf`, replacing byte buffers by placeholders.
pub(crate) fn write_json<T: Serialize + ?Sized>(
    buf: &mut BytesMut,
    data: &T,
) -> Result<Extracted, serde_json::Error> {
    let ctx = Ctx::default();
    let mut ser = serde_json::Serializer::new(buf.writer());
    data.serialize(Ex {
        inner: &mut ser,
        ctx: &ctx,
        top: true,
    })?;
    Ok(Extracted {
        attachments: ctx.attachments.into_inner(),
        spread: ctx.spread.get(),
    })
}

/// Serializes `data` to a JSON value with byte buffers extracted (for acks
/// and payloads built outside a packet).
pub(crate) fn to_payload<T: Serialize + ?Sized>(data: &T) -> Result<Payload, serde_json::Error> {
    let mut buf = BytesMut::new();
    let extracted = write_json(&mut buf, data)?;
    let value: Value = serde_json::from_slice(&buf)?;
    let args = if extracted.spread {
        match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        }
    } else {
        vec![value]
    };
    Ok(Payload {
        args,
        attachments: extracted.attachments,
    })
}

struct Ex<'c, S> {
    inner: S,
    ctx: &'c Ctx,
    top: bool,
}

struct Wrap<'a, 'c, T: ?Sized>(&'a T, &'c Ctx);

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Ex {
            inner: serializer,
            ctx: self.1,
            top: false,
        })
    }
}

struct Compound<'c, C> {
    inner: C,
    ctx: &'c Ctx,
}

macro_rules! forward {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result<Self::Ok, Self::Error> { self.inner.$method(v) })*
    };
}

impl<'c, S: Serializer> Serializer for Ex<'c, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'c, S::SerializeSeq>;
    type SerializeTuple = Compound<'c, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'c, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'c, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'c, S::SerializeMap>;
    type SerializeStruct = Compound<'c, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'c, S::SerializeStructVariant>;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_unit_struct(&'static str),
    );

    fn serialize_bytes(self, v: &[u8]) -> Result<Self::Ok, Self::Error> {
        let num = {
            let mut atts = self.ctx.attachments.borrow_mut();
            atts.push(Bytes::copy_from_slice(v));
            atts.len() - 1
        };
        use ser::SerializeMap;
        let mut map = self.inner.serialize_map(Some(2))?;
        map.serialize_entry("_placeholder", &true)?;
        map.serialize_entry("num", &num)?;
        map.end()
    }

    fn serialize_none(self) -> Result<Self::Ok, Self::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.inner.serialize_some(&Wrap(value, self.ctx))
    }

    fn serialize_unit(self) -> Result<Self::Ok, Self::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Self::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        if self.top && name == ARGS_MAGIC {
            self.ctx.spread.set(true);
        }
        self.inner
            .serialize_newtype_struct(name, &Wrap(value, self.ctx))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.inner
            .serialize_newtype_variant(name, index, variant, &Wrap(value, self.ctx))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Ok(Compound {
            inner: self.inner.serialize_seq(len)?,
            ctx: self.ctx,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Ok(Compound {
            inner: self.inner.serialize_tuple(len)?,
            ctx: self.ctx,
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Ok(Compound {
            inner: self.inner.serialize_tuple_struct(name, len)?,
            ctx: self.ctx,
        })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Ok(Compound {
            inner: self
                .inner
                .serialize_tuple_variant(name, index, variant, len)?,
            ctx: self.ctx,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Ok(Compound {
            inner: self.inner.serialize_map(len)?,
            ctx: self.ctx,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Ok(Compound {
            inner: self.inner.serialize_struct(name, len)?,
            ctx: self.ctx,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Ok(Compound {
            inner: self
                .inner
                .serialize_struct_variant(name, index, variant, len)?,
            ctx: self.ctx,
        })
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(
        self,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.inner.serialize_element(&Wrap(v, self.ctx))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.inner.serialize_element(&Wrap(v, self.ctx))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(&Wrap(v, self.ctx))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(&Wrap(v, self.ctx))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), C::Error> {
        self.inner.serialize_key(&Wrap(k, self.ctx))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.inner.serialize_value(&Wrap(v, self.ctx))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), C::Error> {
        self.inner.serialize_field(key, &Wrap(v, self.ctx))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), C::Error> {
        self.inner.serialize_field(key, &Wrap(v, self.ctx))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

// ---------------------------------------------------------------------------
// Deserialization: a JSON tree whose placeholders read as bytes.

type DeError = serde_json::Error;

#[derive(Clone, Copy)]
struct De<'a> {
    value: &'a Value,
    atts: &'a [Bytes],
}

/// The whole argument list, seen as one sequence.
struct SliceDe<'a> {
    items: &'a [Value],
    atts: &'a [Bytes],
}

impl<'de> de::Deserializer<'de> for SliceDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visit_seq(self.items, self.atts, visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.items.is_empty() {
            visitor.visit_unit()
        } else {
            visit_seq(self.items, self.atts, visitor)
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.items.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

fn visit_seq<'de, V: Visitor<'de>>(
    items: &'de [Value],
    atts: &'de [Bytes],
    visitor: V,
) -> Result<V::Value, DeError> {
    let mut seq = Seq {
        iter: items.iter(),
        atts,
    };
    let value = visitor.visit_seq(&mut seq)?;
    let left = seq.iter.len();
    if left == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(
            items.len(),
            &"fewer elements in the sequence",
        ))
    }
}

struct Seq<'a> {
    iter: std::slice::Iter<'a, Value>,
    atts: &'a [Bytes],
}

impl<'de> de::SeqAccess<'de> for Seq<'de> {
    type Error = DeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(value) => seed
                .deserialize(De {
                    value,
                    atts: self.atts,
                })
                .map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
    atts: &'a [Bytes],
}

impl<'de> de::MapAccess<'de> for MapDe<'de> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(key))
                    .map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("map value requested before its key"))?;
        seed.deserialize(De {
            value,
            atts: self.atts,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct EnumDe<'a> {
    variant: &'a str,
    value: Option<&'a Value>,
    atts: &'a [Bytes],
}

impl<'de> de::EnumAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    type Variant = Self;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DeError> {
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(
            self.variant,
        ))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(de::Error::invalid_type(
                de::Unexpected::Map,
                &"a unit variant",
            )),
        }
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DeError> {
        match self.value {
            Some(value) => seed.deserialize(De {
                value,
                atts: self.atts,
            }),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a newtype variant",
            )),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Some(value) => de::Deserializer::deserialize_seq(
                De {
                    value,
                    atts: self.atts,
                },
                visitor,
            ),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a tuple variant",
            )),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Some(value) => de::Deserializer::deserialize_map(
                De {
                    value,
                    atts: self.atts,
                },
                visitor,
            ),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a struct variant",
            )),
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visit_seq(items, self.atts, visitor),
            Value::Object(map) => match placeholder_num(map) {
                Some(num) => match usize::try_from(num).ok().and_then(|n| self.atts.get(n)) {
                    Some(bytes) => visitor.visit_bytes(bytes),
                    None => Err(de::Error::custom(format!(
                        "placeholder refers to missing attachment #{num}"
                    ))),
                },
                None => visitor.visit_map(MapDe {
                    iter: map.iter(),
                    value: None,
                    atts: self.atts,
                }),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Array(items) if items.is_empty() => visitor.visit_unit(),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let Some((variant, value)) = map.iter().next() else {
                    return Err(de::Error::custom("empty enum object"));
                };
                visitor.visit_enum(EnumDe {
                    variant,
                    value: Some(value),
                    atts: self.atts,
                })
            }
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other("a JSON value that is neither a string nor a one-key object"),
                &"an enum",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn one_argument_is_the_value_several_are_a_list() {
        let p = Payload::new(vec![json!({"a": 1})]);
        #[derive(Deserialize, PartialEq, Debug)]
        struct A {
            a: u8,
        }
        assert_eq!(p.deserialize::<A>().unwrap(), A { a: 1 });
        let p = Payload::new(vec![json!(1), json!("x")]);
        assert_eq!(p.deserialize::<(u8, String)>().unwrap(), (1, "x".into()));
        assert!(p.deserialize::<(u8,)>().is_err());
        let p = Payload::new(vec![]);
        p.deserialize::<()>().unwrap();
        assert_eq!(p.deserialize::<Option<u8>>().unwrap(), None);
        assert_eq!(p.deserialize::<Vec<u8>>().unwrap(), Vec::<u8>::new());
        let p = Payload::new(vec![json!(null)]);
        p.deserialize::<()>().unwrap();
    }

    #[test]
    fn type_mismatch_is_an_error_not_a_panic() {
        let p = Payload::new(vec![json!("text")]);
        assert!(p.deserialize::<u32>().is_err());
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Need {
            field: u8,
        }
        assert!(p.deserialize::<Need>().is_err());
        assert!(Payload::new(vec![json!({})]).deserialize::<Need>().is_err());
        assert!(p.arg::<String>(3).is_err());
    }

    #[test]
    fn enums_options_and_nested_binary() {
        #[derive(Deserialize, Debug, PartialEq)]
        enum E {
            Unit,
            New(u8),
            Tup(u8, u8),
            Rec { b: Bytes },
        }
        let p = Payload::with_attachments(
            json!(["Unit", {"New": 1}, {"Tup": [1, 2]}, {"Rec": {"b": {"_placeholder": true, "num": 0}}}, null]),
            vec![Bytes::from_static(b"!")],
        );
        let got: (E, E, E, E, Option<u8>) = p.deserialize().unwrap();
        assert_eq!(
            got,
            (
                E::Unit,
                E::New(1),
                E::Tup(1, 2),
                E::Rec {
                    b: Bytes::from_static(b"!")
                },
                None
            )
        );
        let list: Vec<Option<Bytes>> = Payload::with_attachments(
            json!([[{"_placeholder": true, "num": 0}, null]]),
            vec![Bytes::from_static(b"x")],
        )
        .deserialize()
        .unwrap();
        assert_eq!(list, vec![Some(Bytes::from_static(b"x")), None]);
    }

    #[test]
    fn to_payload_extracts_binary() {
        let p = to_payload(&Args((1, Bytes::from_static(b"ab")))).unwrap();
        assert_eq!(
            p.args(),
            &[json!(1), json!({"_placeholder": true, "num": 0})]
        );
        assert_eq!(p.attachments(), &[Bytes::from_static(b"ab")]);
        let (n, b): (u8, Bytes) = p.deserialize().unwrap();
        assert_eq!((n, b), (1, Bytes::from_static(b"ab")));
        let p = to_payload(&"one").unwrap();
        assert_eq!(p.args(), &[json!("one")]);
        assert!(to_payload(&Args(())).unwrap().is_empty());
    }

    #[test]
    fn payload_serializes_back_with_binary() {
        let original = Payload::with_attachments(
            json!([{"a": [{"_placeholder": true, "num": 1}]}, {"_placeholder": true, "num": 0}, "s"]),
            vec![Bytes::from_static(b"zero"), Bytes::from_static(b"one")],
        );
        let again = to_payload(&original).unwrap();
        // Attachments are renumbered in serialization order.
        assert_eq!(
            again.args(),
            &[
                json!({"a": [{"_placeholder": true, "num": 0}]}),
                json!({"_placeholder": true, "num": 1}),
                json!("s")
            ]
        );
        assert_eq!(
            again.attachments(),
            &[Bytes::from_static(b"one"), Bytes::from_static(b"zero")]
        );
        assert!(to_payload(&Payload::default()).unwrap().is_empty());
    }

    #[test]
    fn split_event_and_placeholder_checks() {
        let p = Payload::with_attachments(json!(["ev", 1]), vec![]);
        let (name, args) = p.split_event().unwrap();
        assert_eq!(name, "ev");
        assert_eq!(args.args(), &[json!(1)]);
        let bad = Payload::with_attachments(
            json!([{"_placeholder": true, "num": 1}]),
            vec![Bytes::new()],
        );
        assert!(bad.check_placeholders().is_err());
        assert!(bad.deserialize::<Bytes>().is_err());
    }
}
