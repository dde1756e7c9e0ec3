//! Response framing: which body framing a response gets, its head bytes, and
//! the bytes around each chunk.

use std::io::Write as _;

use http::{header, HeaderMap, Method, StatusCode, Version};

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body is sent (HEAD, 1xx, 204, 304); the head may still announce a length.
    None,
    /// `content-length: n`, then exactly `n` bytes.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 clients, unknown length).
    Close,
}

/// What the head needs to know about the request it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo {
    pub(crate) head: bool,
    pub(crate) version: Version,
    /// The request allows reusing the connection.
    pub(crate) keep_alive: bool,
}

/// Picks the framing. `service_length` is a `content-length` set by the service,
/// `exact` the body's exact size hint, if any.
pub(crate) fn framing(
    status: StatusCode,
    request: RequestInfo,
    service_length: Option<u64>,
    exact: Option<u64>,
) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || request.head
    {
        return Framing::None;
    }
    match service_length.or(exact) {
        Some(n) => Framing::Length(n),
        None if request.version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::Close,
    }
}

/// A `content-length` header the service set, when it is one valid number.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()?.trim().parse().ok()
}

/// Writes the status line and headers (with `date`, framing and `connection`
/// headers as needed) into `out`. `keep_alive`: whether the connection stays open after.
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    request: RequestInfo,
    framing: Framing,
    exact: Option<u64>,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // Framing is ours to decide; `connection` is written below.
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        if name == header::CONTENT_LENGTH && framing != Framing::None {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // A HEAD answer announces the length a GET would get, when known.
        Framing::None
            if request.head && !headers.contains_key(header::CONTENT_LENGTH) && exact.is_some() =>
        {
            let _ = write!(out, "content-length: {}\r\n", exact.unwrap_or(0));
        }
        Framing::None | Framing::Close => {}
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The service's own `connection: upgrade` was skipped above.
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if !keep_alive && request.version == Version::HTTP_11 {
        out.extend_from_slice(b"connection: close\r\n");
    } else if keep_alive && request.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        super::date::append(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether the connection can carry another request after this response.
pub(crate) fn keeps_alive(request: RequestInfo, headers: &HeaderMap, framing: Framing) -> bool {
    request.keep_alive
        && framing != Framing::Close
        && !super::head::has_token(headers, header::CONNECTION, "close")
}

/// The size line of a chunk (`ff\r\n`), formatted on the stack: a streamed
/// response writes one per frame, so it is neither allocated nor `fmt`-formatted.
pub(crate) struct ChunkSize {
    line: [u8; 2 * std::mem::size_of::<usize>() + 2],
    start: usize,
}

impl ChunkSize {
    pub(crate) fn new(len: usize) -> Self {
        let mut line = [0u8; 2 * std::mem::size_of::<usize>() + 2];
        let mut at = line.len() - 2;
        line[at..].copy_from_slice(b"\r\n");
        let mut left = len;
        loop {
            at -= 1;
            line[at] = b"0123456789abcdef"[left & 0xf];
            left >>= 4;
            if left == 0 {
                break;
            }
        }
        Self { line, start: at }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.line[self.start..]
    }
}

/// Ends a chunk's data.
pub(crate) const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk, with no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A complete short plain-text error response that closes the connection.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + message.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\ndate: ",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error"),
        message.len() + 1
    );
    super::date::append(&mut out);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
    out
}

/// Whether a request is `HEAD`.
pub(crate) fn is_head(method: &Method) -> bool {
    method == Method::HEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const GET11: RequestInfo = RequestInfo {
        head: false,
        version: Version::HTTP_11,
        keep_alive: true,
    };

    fn head_text(
        status: StatusCode,
        headers: &HeaderMap,
        req: RequestInfo,
        exact: Option<u64>,
    ) -> String {
        let framing = framing(status, req, declared_length(headers), exact);
        let keep = keeps_alive(req, headers, framing);
        let mut out = Vec::new();
        encode_head(&mut out, status, headers, req, framing, exact, keep);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn framing_choice() {
        let head_req = RequestInfo {
            head: true,
            ..GET11
        };
        let v10 = RequestInfo {
            version: Version::HTTP_10,
            keep_alive: false,
            ..GET11
        };
        assert_eq!(
            framing(StatusCode::OK, GET11, None, Some(5)),
            Framing::Length(5)
        );
        assert_eq!(
            framing(StatusCode::OK, GET11, Some(7), Some(5)),
            Framing::Length(7)
        );
        assert_eq!(framing(StatusCode::OK, GET11, None, None), Framing::Chunked);
        assert_eq!(framing(StatusCode::OK, v10, None, None), Framing::Close);
        assert_eq!(
            framing(StatusCode::OK, head_req, None, Some(5)),
            Framing::None
        );
        for status in [
            StatusCode::CONTINUE,
            StatusCode::SWITCHING_PROTOCOLS,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
        ] {
            assert_eq!(framing(status, GET11, None, Some(3)), Framing::None);
        }
    }

    #[test]
    fn head_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        let text = head_text(StatusCode::OK, &headers, GET11, Some(2));
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\ndate: "
            ),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"));
        assert!(!text.contains("gzip"));

        let text = head_text(StatusCode::OK, &HeaderMap::new(), GET11, None);
        assert!(text.contains("transfer-encoding: chunked\r\n"));

        let v10 = RequestInfo {
            version: Version::HTTP_10,
            keep_alive: false,
            ..GET11
        };
        let text = head_text(StatusCode::OK, &HeaderMap::new(), v10, None);
        assert!(!text.contains("transfer-encoding") && !text.contains("content-length"));
        let v10ka = RequestInfo {
            keep_alive: true,
            ..v10
        };
        assert!(head_text(StatusCode::OK, &HeaderMap::new(), v10ka, Some(1))
            .contains("connection: keep-alive\r\n"));

        let closing = RequestInfo {
            keep_alive: false,
            ..GET11
        };
        assert!(
            head_text(StatusCode::OK, &HeaderMap::new(), closing, Some(1))
                .contains("connection: close\r\n")
        );

        let head_req = RequestInfo {
            head: true,
            ..GET11
        };
        assert!(
            head_text(StatusCode::OK, &HeaderMap::new(), head_req, Some(9))
                .contains("content-length: 9\r\n")
        );

        let text = head_text(StatusCode::NO_CONTENT, &HeaderMap::new(), GET11, Some(0));
        assert!(!text.contains("content-length"));

        let text = head_text(StatusCode::NOT_FOUND, &HeaderMap::new(), GET11, Some(0));
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
    }

    #[test]
    fn chunks() {
        assert_eq!(ChunkSize::new(255).as_bytes(), b"ff\r\n");
        for len in [0, 1, 9, 10, 15, 16, 4095, 4096, 0xdead_beef, usize::MAX] {
            assert_eq!(
                ChunkSize::new(len).as_bytes(),
                format!("{len:x}\r\n").as_bytes(),
                "{len}"
            );
        }
        assert!(
            String::from_utf8(error_response(StatusCode::BAD_REQUEST, "bad"))
                .unwrap()
                .ends_with("\r\n\r\nbad\n")
        );
    }
}
