//! HTTP/2 (RFC 9113, cleartext with prior knowledge, as gRPC uses it) and gRPC over it: frame
//! headers (`frame`), HPACK that fails closed (`hpack`, `huffman`), and the per-stream session
//! (`session`).

pub mod frame;
pub mod hpack;
mod huffman;
pub(crate) mod session;
