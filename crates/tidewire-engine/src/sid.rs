//! Session ids.

use std::fmt;

use base64::Engine as _;

/// A session id: 128 random bits from the OS generator, URL-safe base64 (22 characters).
///
/// ```
/// use tidewire_engine::Sid;
/// let a = Sid::generate();
/// assert_eq!(a.as_str().len(), 22);
/// assert_eq!(a.as_str().parse::<Sid>().unwrap(), a);
/// assert_ne!(a, Sid::generate());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid([u8; 22]);

impl Sid {
    /// A new unguessable id.
    pub fn generate() -> Self {
        let raw: [u8; 16] = rand::random();
        let mut out = [0u8; 22];
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(raw, &mut out)
            .unwrap_or(0);
        debug_assert_eq!(written, 22);
        Self(out)
    }

    /// A new id whose first characters are `prefix` (at most 8 URL-safe
    /// base64 characters; others are ignored). A cluster uses the prefix to
    /// tell which node holds a session; the rest stays random (at least 84 bits).
    ///
    /// ```
    /// use tidewire_engine::Sid;
    /// let sid = Sid::generate_with_prefix("n7Q");
    /// assert!(sid.as_str().starts_with("n7Q"));
    /// assert_eq!(sid.as_str().len(), 22);
    /// ```
    pub fn generate_with_prefix(prefix: &str) -> Self {
        let mut sid = Self::generate();
        let usable = prefix
            .bytes()
            .take(8)
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        for (slot, byte) in sid.0.iter_mut().zip(usable) {
            *slot = byte;
        }
        sid
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // URL-safe base64 is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A string that is not a well-formed session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tidewire session id: expected 22 URL-safe base64 characters")]
pub struct InvalidSid;

impl std::str::FromStr for Sid {
    type Err = InvalidSid;
    fn from_str(s: &str) -> Result<Self, InvalidSid> {
        let bytes: [u8; 22] = s.as_bytes().try_into().map_err(|_| InvalidSid)?;
        if bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            Ok(Self(bytes))
        } else {
            Err(InvalidSid)
        }
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Sid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
