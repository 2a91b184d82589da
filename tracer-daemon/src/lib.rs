//! tracer: a per-host eBPF daemon that turns socket and client-library activity into Jaeger
//! traces. Stages follow the data flow of DESIGN.md, one module each.

pub mod agent;
pub mod api;
pub mod assemble;
pub mod config;
pub mod conn;
pub mod daemon;
pub mod deps;
pub mod export;
pub mod jaeger;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod net;
pub mod pipeline;
pub mod probes;
pub mod process;
pub mod protocol;
pub mod reader;
pub mod render;
pub mod stitch;
pub mod store;
pub mod supervise;
pub mod uprobes;
