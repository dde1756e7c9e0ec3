//! Request heads: the request line and headers, parsed with `httparse`, and
//! what they say about the body and the connection.

use bytes::BytesMut;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

/// Why a request head was refused; each maps to a status and closes the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x, a bad token, a bad URI, conflicting framing headers...
    #[error("bad request: {0}")]
    Invalid(&'static str),
    /// The head is larger than the limit or has too many headers.
    #[error("request head too large")]
    TooLarge,
    /// A transfer-coding other than `chunked`.
    #[error("unsupported transfer-coding")]
    UnsupportedCoding,
}

impl HeadError {
    /// The status answering this error.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            HeadError::Invalid(_) => http::StatusCode::BAD_REQUEST,
            HeadError::TooLarge => http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::UnsupportedCoding => http::StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head. Header values are copied out of the read buffer, so
/// the buffer can be freed while the request is served.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodyKind,
    /// The connection may carry another request after this one.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub(crate) expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub(crate) upgrade: bool,
}

/// Parses a head from the start of `buf`. `Ok(None)`: incomplete, read more
/// (unless `buf` already holds `max_size` bytes, which is [`HeadError::TooLarge`]).
/// On success the head's bytes are removed from `buf`; what follows stays.
pub(crate) fn parse(
    buf: &mut BytesMut,
    max_headers: usize,
    max_size: usize,
) -> Result<Option<RequestHead>, HeadError> {
    // Empty lines before a request line are allowed (RFC 9112 §2.2).
    let blank = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if blank > 0 {
        let _ = buf.split_to(blank);
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let slots = &mut slots[..max_headers.min(256)];
    let mut request = httparse::Request::new(slots);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max_size => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Invalid("malformed request head")),
    };
    if len > max_size {
        return Err(HeadError::TooLarge);
    }
    let head = build(&request)?;
    let _ = buf.split_to(len);
    Ok(Some(head))
}

fn build(request: &httparse::Request<'_, '_>) -> Result<RequestHead, HeadError> {
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Invalid("bad method"))?;
    let uri = request
        .path
        .unwrap_or_default()
        .parse::<Uri>()
        .map_err(|_| HeadError::Invalid("bad request target"))?;
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(HeadError::Invalid("unsupported HTTP version")),
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for h in request.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Invalid("bad header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| HeadError::Invalid("bad header value"))?;
        headers.append(name, value);
    }
    let body = body_kind(&headers, version)?;
    let keep_alive = match version {
        Version::HTTP_11 => !has_token(&headers, header::CONNECTION, "close"),
        _ => has_token(&headers, header::CONNECTION, "keep-alive"),
    };
    let expect_continue = version == Version::HTTP_11
        && body != BodyKind::Length(0)
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade =
        has_token(&headers, header::CONNECTION, "upgrade") && headers.contains_key(header::UPGRADE);
    Ok(RequestHead {
        method,
        uri,
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
        upgrade,
    })
}

/// Content-Length or chunked; both, or a bad value, is a bad request (RFC 9112 §6.3).
fn body_kind(headers: &HeaderMap, version: Version) -> Result<BodyKind, HeadError> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(HeadError::Invalid(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(HeadError::Invalid(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        let mut tokens = Vec::new();
        for value in codings {
            let value = value
                .to_str()
                .map_err(|_| HeadError::Invalid("bad Transfer-Encoding"))?;
            tokens.extend(value.split(',').map(str::trim).filter(|t| !t.is_empty()));
        }
        return match tokens.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok(BodyKind::Chunked),
            // Chunked must come last; anything else cannot be framed.
            [.., last] if !last.eq_ignore_ascii_case("chunked") => Err(HeadError::Invalid(
                "Transfer-Encoding does not end with chunked",
            )),
            [] => Err(HeadError::Invalid("empty Transfer-Encoding")),
            _ => Err(HeadError::UnsupportedCoding),
        };
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let n = parse_length(part.trim_ascii())?;
            if length.is_some_and(|seen| seen != n) {
                return Err(HeadError::Invalid("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(BodyKind::Length(length.unwrap_or(0)))
}

fn parse_length(digits: &[u8]) -> Result<u64, HeadError> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Invalid("bad Content-Length"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Whether a comma-separated header (any of its lines) holds `token`, case-insensitively.
pub(crate) fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        parse(&mut BytesMut::from(raw), 64, 16 * 1024)
    }

    fn complete(raw: &str) -> RequestHead {
        match parse_str(raw) {
            Ok(Some(head)) => head,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let mut buf = BytesMut::from("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\nNEXT");
        let head = parse(&mut buf, 64, 1024).unwrap().unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri.path(), "/a");
        assert_eq!(head.uri.query(), Some("b=c"));
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers["host"], "x");
        assert_eq!(head.body, BodyKind::Length(0));
        assert!(head.keep_alive && !head.expect_continue && !head.upgrade);
        assert_eq!(&buf[..], b"NEXT", "bytes after the head stay buffered");
    }

    #[test]
    fn partial_until_complete() {
        let raw = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        for end in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..end]);
            assert_eq!(parse(&mut buf, 64, 1024).unwrap().map(|h| h.body), None);
        }
        let mut buf = BytesMut::from(&raw[..]);
        let head = parse(&mut buf, 64, 1024).unwrap().unwrap();
        assert_eq!(head.body, BodyKind::Length(3));
    }

    #[test]
    fn absolute_form_and_leading_blank_lines() {
        let head = complete("\r\n\r\nGET http://example.com:8080/p?q HTTP/1.1\r\n\r\n");
        assert_eq!(head.uri.host(), Some("example.com"));
        assert_eq!(head.uri.path(), "/p");
    }

    #[test]
    fn keep_alive_per_version() {
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_headers() {
        assert_eq!(
            complete("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").body,
            BodyKind::Chunked
        );
        assert_eq!(
            complete("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").body,
            BodyKind::Length(5)
        );
        let bad = [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for raw in bad {
            assert!(
                matches!(parse_str(raw), Err(HeadError::Invalid(_))),
                "{raw:?}"
            );
        }
        assert_eq!(
            parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err(),
            HeadError::UnsupportedCoding
        );
    }

    #[test]
    fn expect_and_upgrade() {
        let head = complete("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n");
        assert!(head.expect_continue);
        assert!(!complete("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        let head = complete(
            "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(head.upgrade);
    }

    #[test]
    fn garbage_and_limits() {
        assert!(matches!(
            parse_str("\x16\x03\x01garbage\r\n\r\n"),
            Err(HeadError::Invalid(_))
        ));
        assert!(matches!(
            parse_str("GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::Invalid(_))
        ));
        let mut big = BytesMut::from(format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000)).as_str());
        assert_eq!(parse(&mut big, 64, 1024).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..10).map(|i| format!("H{i}: v\r\n")).collect();
        let mut buf = BytesMut::from(format!("GET / HTTP/1.1\r\n{many}\r\n").as_str());
        assert_eq!(parse(&mut buf, 5, 1024).unwrap_err(), HeadError::TooLarge);
    }
}
