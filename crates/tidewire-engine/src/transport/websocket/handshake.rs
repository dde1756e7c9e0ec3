//! Server side of the RFC 6455 opening handshake: the one piece of it that is
//! cryptographic rather than plain header checking.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Fixed by RFC 6455 section 1.3 so that a reply can only come from a server
/// that actually speaks WebSocket, not from a cache or an HTTP server that
/// echoes headers back.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key
/// (RFC 6455 section 4.2.2).
///
/// The key is hashed exactly as received, without decoding it or trimming it:
/// the client computes the expected value from the same bytes it sent, and
/// any normalisation here would make an honest client reject the handshake.
/// Surrounding whitespace is already stripped by the HTTP parser.
pub(crate) fn accept_key(client_key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key);
    sha.update(WEBSOCKET_GUID);
    STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example() {
        // RFC 6455 sections 1.3 and 4.2.2 (the value printed in the RFC;
        // also what any SHA-1 + base64 implementation gives for this input).
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn second_known_pair() {
        // The pair commonly used to illustrate the handshake (e.g. in the
        // WebSocket article of Wikipedia); guards against a test that only
        // passes for one input.
        assert_eq!(
            accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
            "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        );
    }

    #[test]
    fn output_is_padded_base64_of_a_sha1_digest() {
        for key in [&b""[..], b"a", b"not base64 at all \xff", &[0u8; 64]] {
            let accept = accept_key(key);
            // 20 digest bytes -> 28 base64 characters ending in one '='.
            assert_eq!(accept.len(), 28, "{accept}");
            assert!(accept.ends_with('='));
            let decoded = STANDARD.decode(&accept).expect("valid base64");
            assert_eq!(decoded.len(), 20);
        }
    }

    #[test]
    fn key_is_not_normalised() {
        let key = b"dGhlIHNhbXBsZSBub25jZQ==";
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(key);
        assert_ne!(accept_key(key), accept_key(&spaced));
        assert_ne!(accept_key(key), accept_key(b"DGHLIHNHBXBSZSBUB25JZQ=="));
    }
}
