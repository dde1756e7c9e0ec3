//! A minimal HTTP/1.1 client connection: requests, response heads, bodies with
//! Content-Length or chunked encoding (also read incrementally, for SSE).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub pos: usize,
}

pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub headers: String,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
            pos: 0,
        }
    }

    /// Read more bytes into the buffer; Err on EOF.
    pub async fn fill(&mut self) -> Result<(), String> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 65536 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16384);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => {
                crate::stats::mark_read();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn head(&mut self) -> Result<Head, String> {
        loop {
            if let Some(end) = find(self.pending(), b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.pending()[..end]).into_owned();
                self.pos += end + 4;
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad status line")?;
                let lower = text.to_ascii_lowercase();
                let content_length = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok());
                let chunked = lower
                    .lines()
                    .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
                return Ok(Head {
                    status,
                    content_length,
                    chunked,
                    headers: lower,
                });
            }
            self.fill().await?;
        }
    }

    /// The whole body of a response whose head was read.
    pub async fn body(&mut self, head: &Head) -> Result<Vec<u8>, String> {
        if let Some(n) = head.content_length {
            while self.pending().len() < n {
                self.fill().await?;
            }
            let out = self.pending()[..n].to_vec();
            self.pos += n;
            Ok(out)
        } else if head.chunked {
            let mut out = Vec::new();
            while let Some(chunk) = self.chunk().await? {
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        } else {
            Ok(Vec::new())
        }
    }

    /// Appends the next chunk of a chunked body to `out`; false at the last chunk.
    pub async fn chunk_into(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        match self.next_chunk().await? {
            Some(range) => {
                out.extend_from_slice(&self.buf[range]);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads the next chunk of a chunked body whole and steps past it: where its
    /// data is in `buf` (valid until the next read); None at the last chunk.
    pub async fn next_chunk(&mut self) -> Result<Option<std::ops::Range<usize>>, String> {
        loop {
            if let Some(eol) = find(self.pending(), b"\r\n") {
                let line =
                    std::str::from_utf8(&self.pending()[..eol]).map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                let need = eol + 2 + size + 2;
                while self.pending().len() < need {
                    self.fill().await?;
                }
                let start = self.pos + eol + 2;
                self.pos += need;
                return Ok((size != 0).then_some(start..start + size));
            }
            self.fill().await?;
        }
    }

    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut data = Vec::new();
        Ok(self.chunk_into(&mut data).await?.then_some(data))
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        // Per SSE event and chunk: no searcher to build, one memchr per candidate.
        [first, second] => {
            memchr::memchr_iter(*first, hay).find(|&at| hay.get(at + 1) == Some(second))
        }
        _ => memchr::memmem::find(hay, needle),
    }
}

pub fn get(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

pub fn post(path: &str, host: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
