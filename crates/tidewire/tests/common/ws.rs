//! The few bytes of a WebSocket client these tests need, over real TCP.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// One masked client text frame (mask 0: the payload goes as is).
pub fn client_frame(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() < 126);
    out.extend_from_slice(&[0x81, 0x80 | text.len() as u8, 0, 0, 0, 0]);
    out.extend_from_slice(text.as_bytes());
}

/// A connection that has sent its Engine.IO WebSocket upgrade request.
pub async fn upgrade(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}
