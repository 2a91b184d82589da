//! Renderers: typed spans become the tags and attributes of a wire format, with every key from
//! [`keys`].

pub mod jaeger;
pub mod keys;
pub mod otlp;
pub mod otlp_in;
pub mod text;
pub mod zipkin;
