//! Decoding a `Transfer-Encoding: chunked` request body (RFC 9112 §7.1).
//! Chunk extensions and trailer fields are read and ignored.

use bytes::{Bytes, BytesMut};

/// Most bytes of one chunk-size line or trailer section (extensions included).
const MAX_LINE: usize = 4096;
/// Most bytes of the whole trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// A malformed chunked body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunked body: {0}")]
pub(crate) struct ChunkError(&'static str);

/// What one call of [`ChunkedDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The body is complete (last chunk and trailers consumed).
    Done,
    /// More input is needed.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: extensions up to CR.
    Extension {
        size: u64,
    },
    /// LF ending the size line.
    SizeLf {
        size: u64,
    },
    /// Chunk data left to read.
    Data {
        left: u64,
    },
    /// CR after chunk data.
    DataCr,
    /// LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// LF of a trailer line.
    TrailerLf,
    /// LF of the final empty line.
    EndLf,
    Done,
}

/// Incremental decoder: feed it the connection's buffer, it takes what it
/// understands and leaves the rest (the bytes of a pipelined next request too).
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line or of the trailers, against the limits.
    line: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
        }
    }

    /// Consumes bytes from the front of `buf` until it has body data, the end, or runs out.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        let mut used = 0;
        let result = loop {
            if let State::Data { left } = self.state {
                let _ = buf.split_to(used);
                used = 0;
                if buf.is_empty() {
                    break Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                return Ok(Decoded::Data(buf.split_to(take).freeze()));
            }
            if self.state == State::Done {
                break Ok(Decoded::Done);
            }
            let Some(&byte) = buf.get(used) else {
                break Ok(Decoded::NeedMore);
            };
            used += 1;
            self.step(byte)?;
        };
        let _ = buf.split_to(used);
        result
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkError> {
        self.line += 1;
        let in_trailers = matches!(
            self.state,
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf
        );
        if (!in_trailers && self.line > MAX_LINE) || self.line > MAX_TRAILERS {
            return Err(ChunkError("line too long"));
        }
        self.state = match self.state {
            State::Size { size, digits } => match hex(byte) {
                Some(d) if digits < 16 => State::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return Err(ChunkError("chunk size too large")),
                None if digits == 0 => return Err(ChunkError("missing chunk size")),
                None => match byte {
                    b';' | b' ' | b'\t' => State::Extension { size },
                    b'\r' => State::SizeLf { size },
                    _ => return Err(ChunkError("bad chunk size")),
                },
            },
            State::Extension { size } => match byte {
                b'\r' => State::SizeLf { size },
                b'\n' => return Err(ChunkError("bare LF in chunk extension")),
                _ => State::Extension { size },
            },
            State::SizeLf { size } => {
                if byte != b'\n' {
                    return Err(ChunkError("expected LF after chunk size"));
                }
                self.line = 0;
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data { left: size }
                }
            }
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => {
                self.line = 0;
                State::Size { size: 0, digits: 0 }
            }
            State::DataCr | State::DataLf => return Err(ChunkError("expected CRLF after chunk")),
            State::TrailerStart => match byte {
                b'\r' => State::EndLf,
                b'\n' => return Err(ChunkError("bare LF in trailers")),
                _ => State::Trailer,
            },
            State::Trailer => match byte {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(ChunkError("bare LF in trailers")),
                _ => State::Trailer,
            },
            State::TrailerLf if byte == b'\n' => State::TrailerStart,
            State::EndLf if byte == b'\n' => State::Done,
            State::TrailerLf | State::EndLf => return Err(ChunkError("expected LF")),
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces cut at `cuts`; returns the body and the bytes left after it.
    fn run(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::NeedMore => break,
                    Decoded::Done => {
                        let mut rest = buf.to_vec();
                        rest.extend_from_slice(&input[fed..]);
                        return Ok((body, rest));
                    }
                }
            }
        }
        Err(ChunkError("incomplete"))
    }

    const BODY: &[u8] =
        b"5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\nMore: y\r\n\r\nGET /next";

    #[test]
    fn whole() {
        let (body, rest) = run(BODY, &[]).unwrap();
        assert_eq!(body, b"hello 0123456789");
        assert_eq!(rest, b"GET /next");
    }

    #[test]
    fn split_at_every_boundary() {
        for cut in 0..=BODY.len() {
            let (body, rest) = run(BODY, &[cut]).unwrap();
            assert_eq!(body, b"hello 0123456789", "cut at {cut}");
            assert_eq!(rest, b"GET /next", "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let cuts: Vec<usize> = (1..BODY.len()).collect();
        let (body, rest) = run(BODY, &cuts).unwrap();
        assert_eq!(body, b"hello 0123456789");
        assert_eq!(rest, b"GET /next");
    }

    #[test]
    fn no_trailers() {
        let (body, rest) = run(b"3\r\nabc\r\n0\r\n\r\n", &[]).unwrap();
        assert_eq!(body, b"abc");
        assert!(rest.is_empty());
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX\r\n",
            b"3\nabc",
            b"11111111111111111\r\n",
            b"0\r\nTrailer\n",
        ] {
            assert!(run(bad, &[]).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_LINE));
        assert!(run(long.as_bytes(), &[]).is_err());
    }
}
