// TEMPORARY STUB: replaced by the real codec.
#![allow(dead_code, unused)]
use bytes::{Bytes, BytesMut};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}
pub(crate) enum WsEvent {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<(u16, String)>),
}
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsProtocolError {
    #[error("x")]
    X,
}
impl WsProtocolError {
    pub(crate) fn close_code(&self) -> u16 {
        1002
    }
}
pub(crate) struct FrameDecoder;
impl FrameDecoder {
    pub(crate) fn new(max: usize) -> Self {
        todo!()
    }
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<WsEvent>, WsProtocolError> {
        todo!()
    }
}
pub(crate) fn write_server_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    todo!()
}
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    todo!()
}
