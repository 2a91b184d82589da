//! tracer: a per-host eBPF daemon that turns socket and client-library activity into Jaeger
//! traces. Stages follow the data flow of DESIGN.md, one module each.

pub mod model;
pub mod protocol;
pub mod api;
pub mod config;
pub mod conn;
pub mod daemon;
pub mod metrics;
pub mod pipeline;
pub mod probes;
pub mod reader;
