//! The export stage: finished spans in, Jaeger Thrift batches out (HTTP to collectors or UDP
//! `emitBatch`), or console trees / JSON lines when no collector is set.
//!
//! ```text
//! SpanSender::try_send ──► span queue ──► batcher ──► batch queue ──► sender ──► Exporter
//!  (never blocks;          (bounded,      (per        (bounded;        (retry,     (http, udp,
//!   full: drop+count)       queue_size)    process)    batcher waits)   backoff)    console, json, memory)
//! ```
//!
//! # Wiring it into the daemon
//!
//! ```no_run
//! use std::sync::Arc;
//! use clap::Parser;
//! use tracer_daemon::{agent, api, export, metrics::Registry};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     export: export::ExportConfig, // in the YAML file: under the key `export`
//! }
//!
//! # async fn run() -> anyhow::Result<()> {
//! let cli = Cli::parse();
//! let metrics = Registry::new();
//! let host = export::HostInfo::detect().with_tags(cli.export.parsed_host_tags()?);
//! let handle = export::Pipeline::spawn(&cli.export, host.clone(), metrics.clone())?;
//!
//! // Span producers clone the sender; try_send never blocks (a full queue drops and counts).
//! let sender: export::SpanSender = handle.sender.clone();
//!
//! // The agent role: UDP 6831/6832 emitBatch receivers and the HTTP 5778 sampling endpoint.
//! let agent = agent::spawn(&cli.export, &host, sender.clone(), metrics.clone()).await?;
//!
//! // /metrics on the daemon's own API port.
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! let router = Arc::new(api::Router::new().metrics(metrics.clone()));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:9102").await?;
//! tokio::spawn(api::serve(listener, router, stop_rx));
//!
//! // On SIGTERM / SIGINT: stop receiving, then flush within the deadline.
//! export::wait_for_signal().await;
//! agent.shutdown().await;
//! let _ = stop_tx.send(true);
//! handle.shutdown(cli.export.flush_deadline()).await;
//! # Ok(()) }
//! ```

pub mod batch;
pub mod console;
pub mod json;
pub mod memory;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod pipeline;
pub mod post;
pub mod queue;
pub mod transport_http;
pub mod transport_udp;
pub mod zipkin;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub use crate::config::export::{BatchLimits, ConfigError, Destination, ExportConfig, OutputMode, RetryPolicy};
pub use crate::net::host::HostInfo;
pub use memory::MemoryExporter;
pub use pipeline::{ExportHandle, ExportMetrics, Pipeline, wait_for_signal};
pub use queue::SpanSender;

use crate::model::{JaegerSpan, Process, Span};
use crate::render::otlp::OtlpSpan;

/// Spans of one process, delivered together, as the destination's renderer made them.
/// `process` carries the host tags.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<S = JaegerSpan> {
    pub process: Arc<Process>,
    pub spans: Vec<S>,
    /// Each span's encoded size under the lane's size function (Thrift compact for a UDP lane,
    /// binary for an HTTP one), as the batcher measured it; empty when the lane measures none.
    pub sizes: Vec<usize>,
}

impl<S> Batch<S> {
    /// A batch whose sizes were not measured.
    pub fn new(process: Arc<Process>, spans: Vec<S>) -> Self {
        Batch { process, spans, sizes: Vec::new() }
    }
}

/// A span rendered for one kind of destination: Jaeger's model for the Thrift, console and
/// JSON exporters, OTLP's for the OTLP ones. The batcher renders each span once per destination.
pub trait Rendered: Clone + Send + Sync + 'static {
    fn render(span: &Span) -> Self;
    /// The process the span is batched (and sent) under.
    fn process(&self) -> &Arc<Process>;
}

impl Rendered for JaegerSpan {
    fn render(span: &Span) -> Self {
        crate::render::jaeger::render(span)
    }
    fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

impl Rendered for OtlpSpan {
    fn render(span: &Span) -> Self {
        crate::render::otlp::render(span)
    }
    fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

/// What one successful export delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Spans that reached the destination (spans dropped inside the exporter excluded).
    pub spans: usize,
    /// Requests or packets sent.
    pub requests: usize,
    /// Payload bytes sent.
    pub bytes: usize,
}

/// A failed export attempt.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Could not connect, or the connection broke: refused, reset, unreachable.
    #[error("{endpoint}: {source}")]
    Io { endpoint: String, source: std::io::Error },
    #[error("{endpoint}: timed out")]
    Timeout { endpoint: String },
    /// The collector answered with a non-2xx status.
    #[error("{endpoint}: HTTP {status}")]
    Status { endpoint: String, status: u16 },
    #[error("{endpoint}: invalid response: {why}")]
    Protocol { endpoint: String, why: String },
    #[error("{endpoint}: TLS: {why}")]
    Tls { endpoint: String, why: String },
    #[error("encoding: {0}")]
    Encode(String),
    /// An OTLP destination refused the batch: retryable only for the statuses (429, 502, 503,
    /// 504) or gRPC codes OTLP names, after `retry_after` when the server gave one.
    #[error("{endpoint}: {what}")]
    Refused { endpoint: String, what: String, retryable: bool, retry_after: Option<std::time::Duration> },
}

impl ExportError {
    /// Whether retrying later may succeed: connection failures, timeouts and 5xx do; 4xx,
    /// TLS and encoding failures do not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ExportError::Io { .. } | ExportError::Timeout { .. } | ExportError::Protocol { .. } => true,
            ExportError::Status { status, .. } => crate::net::backoff::status_is_retryable(*status),
            ExportError::Tls { .. } | ExportError::Encode(_) => false,
            ExportError::Refused { retryable, .. } => *retryable,
        }
    }

    /// The delay the destination asked for before the next attempt (`Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ExportError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A destination for batches. The pipeline calls `export` for each batch and retries
/// retryable errors with backoff; `tick` runs periodically and `finish` once at shutdown, for
/// exporters that hold spans back (the console groups spans into traces).
pub trait Exporter: Send + 'static {
    /// The span as this exporter's renderer makes it.
    type Span: Rendered;

    /// A short name for logs and the `exporter` metric label.
    fn name(&self) -> &'static str;

    /// Delivers one batch (one attempt; an HTTP exporter tries each collector once).
    fn export(&mut self, batch: &Batch<Self::Span>) -> impl Future<Output = Result<Delivered, ExportError>> + Send;

    /// Called about every 100 ms.
    fn tick(&mut self, _now: Instant) {}

    /// Called once when the pipeline stops, after the last batch.
    fn finish(&mut self) {}
}
