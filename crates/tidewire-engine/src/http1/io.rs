//! Small helpers over a shared `TcpStream`: writes through `&TcpStream`,
//! watching for the client going away, and closing politely.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;

use super::body::BodyShared;

/// Bytes reserved for a read that readiness announced.
const SMALL_READ: usize = 512;
/// How long a closing connection waits for the client to finish sending.
const LINGER: Duration = Duration::from_secs(1);

/// Reads what the socket holds into `buf`'s spare room (`Ok(0)`: EOF).
///
/// A read that leaves room in `buf` emptied the socket's receive queue, so the
/// readiness is cleared then and there: the next wait really waits, instead of
/// waking at once and paying a `recv` that only says `WouldBlock`. (A later
/// arrival raises readiness anew, so nothing is missed.)
pub(crate) fn read_some(io: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let mut got = None;
    let result = io.try_io(Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        let n = io.try_read_buf(buf)?;
        got = Some(n);
        if n > 0 && n < room {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match got {
        Some(n) => Ok(n),
        None => result,
    }
}

/// Writes all of `data`, waiting for writability as needed.
pub(crate) async fn write_all(io: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match io.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `parts` in order, gathered (one `writev` when the socket
/// takes it all), waiting for writability as needed.
pub(crate) async fn write_all_gathered<const N: usize>(
    io: &TcpStream,
    mut parts: [&[u8]; N],
) -> io::Result<()> {
    let mut first = 0;
    loop {
        while parts.get(first).is_some_and(|p| p.is_empty()) {
            first += 1;
        }
        if first == N {
            return Ok(());
        }
        let slices: [io::IoSlice<'_>; N] = std::array::from_fn(|i| io::IoSlice::new(parts[i]));
        match io.try_write_vectored(&slices[first..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                for part in &mut parts[first..] {
                    let done = n.min(part.len());
                    *part = &part[done..];
                    n -= done;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.writable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// Resolves when the client closes the connection (EOF or an error) while a
/// request is being served. Bytes it sends meanwhile (a pipelined request)
/// are kept in `extra`, up to `limit`; nothing is allocated until readiness
/// fires. While the request body is still arriving, the body reads the
/// connection, so this waits for the body to be complete first.
pub(crate) async fn client_gone(
    io: &TcpStream,
    extra: &mut BytesMut,
    body: Option<&BodyShared>,
    limit: usize,
) {
    if let Some(body) = body {
        body.completed().await;
    }
    loop {
        if extra.len() >= limit {
            // Enough buffered; the rest waits in the socket until the next request.
            std::future::pending::<()>().await;
        }
        if io.readable().await.is_err() {
            return;
        }
        extra.reserve(SMALL_READ);
        match read_some(io, extra) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Ends a connection: our side's FIN first, then (briefly) whatever the client
/// still sends is discarded, so closing does not reset a response it has not read.
pub(crate) async fn close(io: Arc<TcpStream>) {
    let Ok(mut stream) = Arc::try_unwrap(io) else {
        // Someone (a request body kept by the service) still holds it: it closes when dropped.
        return;
    };
    let _ = tokio::time::timeout(LINGER, async {
        stream.shutdown().await?;
        let mut scrap = [0u8; 256];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut scrap) {
                Ok(0) => return Ok::<(), io::Error>(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
}
