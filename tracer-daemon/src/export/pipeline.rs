//! The running export pipeline: the batcher and sender tasks, their metrics, delivery with
//! retry, and the flush at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::batch::{Batcher, SizeFn};
use super::console::ConsoleExporter;
use super::json::JsonExporter;
use super::otlp_grpc::OtlpGrpcExporter;
use super::otlp_http::OtlpHttpExporter;
use super::queue::{LaneSender, SpanSender};
use super::transport_http::HttpExporter;
use super::transport_udp::UdpExporter;
use super::zipkin::ZipkinExporter;
use super::{Batch, Exporter, Rendered};
use crate::config::export::{ConfigError, Destination, ExportConfig, RetryPolicy};
use crate::jaeger::encode::{ClientStats, Protocol, span_len};
use crate::logging::LogLimiter;
use crate::metrics::{Counter, Gauge, Histogram, Registry};
use crate::model::JaegerSpan;
use crate::model::Span;
use crate::net::backoff::Backoff;
use crate::net::host::HostInfo;
use crate::render::otlp::OtlpSpan;
use crate::supervise::Stages;

/// How often exporters get `tick` (the console's quiet-trace check).
const TICK: Duration = Duration::from_millis(100);
/// Shortest interval between two warnings about the same kind of failure.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The export stage's metrics, and the state the Jaeger `Batch` trailer reports (`seqNo`,
/// `ClientStats`). Clones share everything.
#[derive(Clone, Debug)]
pub struct ExportMetrics {
    pub spans_sent: Counter,
    pub spans_failed: Counter,
    pub batches_sent: Counter,
    pub batches_failed: Counter,
    pub bytes_sent: Counter,
    pub retries: Counter,
    pub dropped_queue_full: Counter,
    pub dropped_too_large: Counter,
    pub dropped_send_failed: Counter,
    pub dropped_shutdown: Counter,
    /// Spans waiting in the span queue.
    pub queue_depth: Gauge,
    /// Batches waiting for the sender.
    pub pending_batches: Gauge,
    /// Spans accepted and not yet sent, failed or dropped.
    pub in_flight: Gauge,
    pub request_seconds: Histogram,
    seq: Arc<AtomicI64>,
}

impl ExportMetrics {
    /// Registers the export metrics; `exporter` labels the delivery series (`http`, `udp`, ...).
    pub fn new(reg: &Registry, exporter: &str, queue_capacity: usize) -> Self {
        ExportMetrics::labeled(reg, exporter, None, queue_capacity)
    }

    /// The metrics of one destination among several: every series also carries
    /// `destination` when it is given.
    pub fn labeled(reg: &Registry, exporter: &str, destination: Option<&str>, queue_capacity: usize) -> Self {
        let mut plain: Vec<(&str, &str)> = Vec::new();
        if let Some(d) = destination {
            plain.push(("destination", d));
        }
        let mut ex = plain.clone();
        ex.push(("exporter", exporter));
        let (plain, ex) = (plain.as_slice(), ex.as_slice());
        let dropped = |reason: &str| {
            let mut l = plain.to_vec();
            l.push(("reason", reason));
            reg.counter("tracer_export_spans_dropped_total", "Spans dropped by the export stage, by reason.", &l)
        };
        reg.gauge("tracer_export_queue_capacity", "Capacity of the span queue, in spans.", plain)
            .set(i64::try_from(queue_capacity).unwrap_or(i64::MAX));
        ExportMetrics {
            spans_sent: reg.counter("tracer_export_spans_sent_total", "Spans delivered.", ex),
            spans_failed: reg.counter(
                "tracer_export_spans_failed_total",
                "Spans in batches that could not be delivered.",
                ex,
            ),
            batches_sent: reg.counter(
                "tracer_export_batches_sent_total",
                "Batches (requests or packets) delivered.",
                ex,
            ),
            batches_failed: reg.counter("tracer_export_batches_failed_total", "Batches given up after failures.", ex),
            bytes_sent: reg.counter("tracer_export_bytes_sent_total", "Payload bytes delivered.", ex),
            retries: reg.counter(
                "tracer_export_retries_total",
                "Delivery attempts retried after a retryable failure.",
                ex,
            ),
            dropped_queue_full: dropped("queue_full"),
            dropped_too_large: dropped("too_large"),
            dropped_send_failed: dropped("send_failed"),
            dropped_shutdown: dropped("shutdown"),
            queue_depth: reg.gauge("tracer_export_queue_depth", "Spans waiting in the span queue.", plain),
            pending_batches: reg.gauge("tracer_export_pending_batches", "Batches waiting for delivery.", plain),
            in_flight: reg.gauge(
                "tracer_export_spans_in_flight",
                "Spans accepted and not yet delivered or dropped.",
                plain,
            ),
            request_seconds: reg.histogram(
                "tracer_export_request_seconds",
                "Time of one delivery attempt, in seconds.",
                ex,
                &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
            ),
            seq: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Metrics in a private registry (tests, tools).
    pub fn detached() -> Self {
        ExportMetrics::new(&Registry::default(), "test", 0)
    }

    /// The next `Batch.seqNo`: 1, 2, 3, ... per sent batch (per packet with UDP).
    pub fn next_seq(&self) -> i64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The `ClientStats` to report now: cumulative drops since start.
    pub fn client_stats(&self) -> ClientStats {
        let n = |c: &Counter| i64::try_from(c.get()).unwrap_or(i64::MAX);
        ClientStats {
            full_queue_dropped_spans: n(&self.dropped_queue_full),
            too_large_dropped_spans: n(&self.dropped_too_large),
            failed_to_emit_spans: n(&self.dropped_send_failed) + n(&self.dropped_shutdown),
        }
    }
}

/// Builds and starts the export pipeline.
pub struct Pipeline;

/// The size an OTLP span adds to a request, for the batch byte limit.
fn otlp_size() -> Option<SizeFn<OtlpSpan>> {
    Some(Box::new(|s: &OtlpSpan| prost::Message::encoded_len(&s.span)))
}

fn jaeger_size(p: Protocol) -> Option<SizeFn<JaegerSpan>> {
    Some(Box::new(move |s: &JaegerSpan| span_len(p, s)))
}

impl Pipeline {
    /// Starts one lane (queue, batcher, sender) per configured destination; the handle's
    /// sender feeds them all. Needs a running tokio runtime.
    pub fn spawn(cfg: &ExportConfig, host: HostInfo, metrics: Arc<Registry>) -> Result<ExportHandle, ConfigError> {
        Self::spawn_supervised(cfg, host, metrics, &Stages::new())
    }

    /// `spawn`, with each lane's batcher and sender a stage of `stages`
    /// (`export <i> <exporter> batcher` / `… sender`).
    pub fn spawn_supervised(
        cfg: &ExportConfig,
        host: HostInfo,
        metrics: Arc<Registry>,
        stages: &Stages,
    ) -> Result<ExportHandle, ConfigError> {
        let mut lanes = Vec::new();
        for (i, d) in cfg.destinations()?.into_iter().enumerate() {
            // The first destination keeps the unlabelled queue series; the others are told
            // apart by a `destination` label.
            let m = |exporter: &str, url: &str| {
                let label = (i > 0).then_some(url);
                ExportMetrics::labeled(&metrics, exporter, label, cfg.queue_size)
            };
            let h = host.clone();
            lanes.push(match d {
                Destination::Http(urls) => {
                    let m = m("http", &urls.join(","));
                    let ex = HttpExporter::new(&urls, cfg, m.clone())?;
                    start(stages, i, cfg, h, m, jaeger_size(Protocol::Binary), ex)
                }
                Destination::Udp(addr) => {
                    let m = m("udp", &addr);
                    let ex = UdpExporter::new(addr, cfg.udp_max_packet_bytes, m.clone());
                    start(stages, i, cfg, h, m, jaeger_size(Protocol::Compact), ex)
                }
                Destination::Console => {
                    let ex = ConsoleExporter::stdout(Duration::from_millis(cfg.console_quiet_ms));
                    start(stages, i, cfg, h, m("console", "console"), None, ex)
                }
                Destination::Json => start(stages, i, cfg, h, m("json", "json"), None, JsonExporter::stdout()),
                Destination::OtlpGrpc(url) => {
                    let ex = OtlpGrpcExporter::new(&url, cfg)?;
                    start(stages, i, cfg, h, m("otlp_grpc", &url), otlp_size(), ex)
                }
                Destination::OtlpHttp(url) => {
                    let ex = OtlpHttpExporter::new(&url, cfg)?;
                    start(stages, i, cfg, h, m("otlp_http", &url), otlp_size(), ex)
                }
                Destination::Zipkin(url) => {
                    let ex = ZipkinExporter::new(&url, cfg)?;
                    start(stages, i, cfg, h, m("zipkin", &url), None, ex)
                }
            });
        }
        Ok(ExportHandle::join(lanes))
    }

    /// Starts the pipeline with a given exporter (the in-memory one in tests); `bytes_of` is
    /// the protocol whose encoded size counts toward the batch byte limit.
    pub fn spawn_with<E: Exporter<Span = JaegerSpan>>(
        cfg: &ExportConfig,
        host: HostInfo,
        metrics: Arc<Registry>,
        bytes_of: Option<Protocol>,
        exporter: E,
    ) -> Result<ExportHandle, ConfigError> {
        cfg.destinations()?;
        let m = ExportMetrics::new(&metrics, exporter.name(), cfg.queue_size);
        Ok(ExportHandle::join(vec![start(&Stages::new(), 0, cfg, host, m, bytes_of.and_then(jaeger_size), exporter)]))
    }
}

/// One destination's queue, batcher and sender.
struct Lane {
    sender: LaneSender,
    metrics: ExportMetrics,
    stop: watch::Sender<bool>,
    batcher_task: JoinHandle<()>,
    sender_task: JoinHandle<()>,
}

fn start<E: Exporter>(
    stages: &Stages,
    lane: usize,
    cfg: &ExportConfig,
    host: HostInfo,
    m: ExportMetrics,
    size: Option<SizeFn<E::Span>>,
    exporter: E,
) -> Lane {
    let (span_tx, span_rx) = mpsc::channel::<Arc<Span>>(cfg.queue_size.max(1));
    let (batch_tx, batch_rx) = mpsc::channel::<Batch<E::Span>>(cfg.pending_batches.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let sender = LaneSender::new(
        span_tx,
        m.queue_depth.clone(),
        m.in_flight.clone(),
        m.dropped_queue_full.clone(),
        m.dropped_shutdown.clone(),
    );
    let batcher = Batcher::with_size(cfg.batch_limits(), size, host);
    let name = format!("export {lane} {}", exporter.name());
    let batcher_task =
        stages.spawn(&format!("{name} batcher"), run_batcher(span_rx, stop_rx, batcher, batch_tx, m.clone()));
    let sender_task =
        stages.spawn(&format!("{name} sender"), run_sender(batch_rx, exporter, cfg.retry_policy(), m.clone()));
    Lane { sender, metrics: m, stop: stop_tx, batcher_task, sender_task }
}

/// The running pipeline.
pub struct ExportHandle {
    /// Where producers queue finished spans (for every destination).
    pub sender: SpanSender,
    /// The first destination's metrics.
    pub metrics: ExportMetrics,
    lanes: Vec<Lane>,
}

impl ExportHandle {
    fn join(lanes: Vec<Lane>) -> Self {
        let sender = SpanSender::fan_out(lanes.iter().map(|l| l.sender.clone()).collect());
        let metrics = lanes.first().map_or_else(ExportMetrics::detached, |l| l.metrics.clone());
        ExportHandle { sender, metrics, lanes }
    }

    /// Stops taking spans, closes every open batch and delivers what is queued, for at most
    /// `deadline` (all destinations at once); spans still undelivered then are dropped and
    /// counted (`reason="shutdown"`). Returns whether everything was flushed in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        for lane in &self.lanes {
            let _ = lane.stop.send(true);
        }
        let mut all = true;
        for lane in self.lanes {
            all &= lane.shutdown(until, deadline).await;
        }
        all
    }
}

impl Lane {
    async fn shutdown(self, until: tokio::time::Instant, deadline: Duration) -> bool {
        let batcher_abort = self.batcher_task.abort_handle();
        let sender_abort = self.sender_task.abort_handle();
        let both = async {
            let _ = self.batcher_task.await;
            let _ = self.sender_task.await;
        };
        let in_time = tokio::time::timeout_at(until, both).await.is_ok();
        if !in_time {
            batcher_abort.abort();
            sender_abort.abort();
        }
        let left = self.metrics.in_flight.get().max(0);
        if left > 0 {
            self.metrics.dropped_shutdown.add(left as u64);
            self.metrics.in_flight.add(-left);
            tracing::warn!(
                spans = left,
                deadline_ms = deadline.as_millis() as u64,
                "export flush incomplete at shutdown"
            );
        }
        in_time && left == 0
    }
}

async fn send_batches<S>(out: &mpsc::Sender<Batch<S>>, batches: &mut Vec<Batch<S>>, m: &ExportMetrics) -> bool {
    for b in batches.drain(..) {
        m.pending_batches.inc();
        if out.send(b).await.is_err() {
            m.pending_batches.dec();
            return false;
        }
    }
    true
}

async fn run_batcher<S: Rendered>(
    mut rx: mpsc::Receiver<Arc<Span>>,
    mut stop: watch::Receiver<bool>,
    mut batcher: Batcher<S>,
    out: mpsc::Sender<Batch<S>>,
    m: ExportMetrics,
) {
    let mut ready = Vec::new();
    loop {
        let deadline = batcher.next_deadline();
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            span = rx.recv() => match span {
                Some(span) => {
                    m.queue_depth.dec();
                    batcher.push(&span, Instant::now(), &mut ready);
                }
                None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                batcher.expired(Instant::now(), &mut ready);
            }
        }
        if !ready.is_empty() && !send_batches(&out, &mut ready, &m).await {
            return;
        }
    }
    // Shutdown: take what is queued now, close every batch, and let the sender finish.
    rx.close();
    while let Ok(span) = rx.try_recv() {
        m.queue_depth.dec();
        batcher.push(&span, Instant::now(), &mut ready);
    }
    batcher.drain(&mut ready);
    send_batches(&out, &mut ready, &m).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

async fn run_sender<E: Exporter>(
    mut rx: mpsc::Receiver<Batch<E::Span>>,
    mut exporter: E,
    policy: RetryPolicy,
    m: ExportMetrics,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warn = LogLimiter::new(WARN_INTERVAL);
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    m.pending_batches.dec();
                    deliver(&mut exporter, &batch, &policy, &m, &mut warn).await;
                }
                None => break,
            },
            _ = tick.tick() => exporter.tick(Instant::now()),
        }
    }
    exporter.finish();
}

/// Sends one batch, retrying retryable failures with backoff until `policy.max_elapsed`.
async fn deliver<E: Exporter>(
    exporter: &mut E,
    batch: &Batch<E::Span>,
    policy: &RetryPolicy,
    m: &ExportMetrics,
    warn: &mut LogLimiter,
) {
    let first = Instant::now();
    let mut backoff = Backoff::new(*policy);
    let n = batch.spans.len();
    loop {
        let started = Instant::now();
        let result = exporter.export(batch).await;
        m.request_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(d) => {
                m.spans_sent.add(d.spans as u64);
                m.batches_sent.add(d.requests as u64);
                m.bytes_sent.add(d.bytes as u64);
                m.in_flight.add(-(n as i64));
                return;
            }
            Err(e) => {
                // The destination's `Retry-After`, when it gave one, over our own backoff.
                let delay = e.retry_after().unwrap_or_else(|| backoff.next_delay());
                let retry = e.is_retryable() && first.elapsed() + delay <= policy.max_elapsed;
                if let Some(suppressed) = warn.allow(Instant::now()) {
                    tracing::warn!(
                        exporter = exporter.name(), error = %e, spans = n, retry,
                        attempt = backoff.attempts(), suppressed, "export failed"
                    );
                }
                if !retry {
                    m.batches_failed.inc();
                    m.spans_failed.add(n as u64);
                    m.dropped_send_failed.add(n as u64);
                    m.in_flight.add(-(n as i64));
                    return;
                }
                m.retries.inc();
                tokio::time::sleep(delay).await;
                exporter.tick(Instant::now());
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
