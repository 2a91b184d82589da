//! HTTP/2 (RFC 9113) and gRPC over it.
pub mod hpack;
mod huffman;
