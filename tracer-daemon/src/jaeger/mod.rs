//! Jaeger's Thrift types on the wire (`jaeger.thrift`, `agent.thrift`): encoding of the span
//! model into batches and `emitBatch` messages, and decoding of what Jaeger clients send. Both
//! directions live here so the field ids and enum values are written down once.

pub mod compact;
pub mod decode;
pub mod encode;

pub use encode::{ClientStats, Protocol};
