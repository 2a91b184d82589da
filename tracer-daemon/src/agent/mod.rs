//! The Jaeger agent role: UDP receivers for apps' `emitBatch` (compact on 6831, binary on
//! 6832) that forward spans through the export pipeline with this host's tags, and the HTTP
//! sampling endpoint on 5778.

pub mod kernel_drops;
mod limited;
pub mod otlp;
pub mod own_sampling;
pub mod sampling;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::config::export::ConfigError;
use crate::config::export::ExportConfig;
use crate::export::SpanSender;
use crate::jaeger::Protocol;
use crate::jaeger::decode::{DecodeError, decode_emit_batch};
use crate::logging::LogLimiter;
use crate::metrics::{Counter, Registry};
use crate::model::{Process, Span, Tag};
use crate::net::host::HostInfo;
use crate::supervise::Stages;

/// Sees each span an app sent before it is queued for export (the dependency graph).
pub type SpanObserver = Arc<dyn Fn(&Arc<Span>) + Send + Sync>;

/// Receive buffer: the largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// Distinct client processes whose tagged copy is kept per listener.
const PROCESS_CACHE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The running listeners and the addresses they are bound to (`None` when turned off).
pub struct AgentHandle {
    pub compact_addr: Option<SocketAddr>,
    pub binary_addr: Option<SocketAddr>,
    pub sampling_addr: Option<SocketAddr>,
    pub otlp_grpc_addr: Option<SocketAddr>,
    pub otlp_http_addr: Option<SocketAddr>,
    pub zipkin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl AgentHandle {
    /// Stops the listeners and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[derive(Clone)]
struct AgentMetrics {
    packets: Counter,
    batches: Counter,
    spans: Counter,
    malformed: Counter,
    unsupported: Counter,
    spans_dropped: Counter,
}

impl AgentMetrics {
    fn new(reg: &Registry, proto: &str) -> Self {
        let p = [("protocol", proto)];
        let dropped = |reason: &str| {
            reg.counter(
                "tracer_agent_packets_dropped_total",
                "UDP packets from Jaeger clients that were ignored, by reason.",
                &[("protocol", proto), ("reason", reason)],
            )
        };
        AgentMetrics {
            packets: reg.counter(
                "tracer_agent_packets_received_total",
                "UDP packets received from Jaeger clients.",
                &p,
            ),
            batches: reg.counter("tracer_agent_batches_received_total", "emitBatch calls decoded.", &p),
            spans: reg.counter("tracer_agent_spans_received_total", "Spans received from Jaeger clients.", &p),
            malformed: dropped("malformed"),
            unsupported: dropped("unsupported"),
            spans_dropped: reg.counter(
                "tracer_agent_spans_dropped_total",
                "Spans from Jaeger clients the export queue refused.",
                &p,
            ),
        }
    }
}

/// Turns packets into queued spans.
struct Forwarder {
    proto: Protocol,
    sender: SpanSender,
    agent_tags: Vec<Tag>,
    metrics: AgentMetrics,
    /// Client processes and their copies with the agent tags.
    processes: Vec<(Arc<Process>, Arc<Process>)>,
    warn: LogLimiter,
    observer: Option<SpanObserver>,
}

impl Forwarder {
    fn tagged(&mut self, process: &Process) -> Arc<Process> {
        if let Some((_, tagged)) = self.processes.iter().find(|(p, _)| **p == *process) {
            return tagged.clone();
        }
        let mut p = process.clone();
        p.tags.retain(|t| !self.agent_tags.iter().any(|a| a.key == t.key));
        p.tags.extend(self.agent_tags.iter().cloned());
        let tagged = Arc::new(p);
        if self.processes.len() >= PROCESS_CACHE {
            self.processes.remove(0);
        }
        self.processes.push((Arc::new(process.clone()), tagged.clone()));
        tagged
    }

    fn packet(&mut self, bytes: &[u8], peer: SocketAddr) {
        self.metrics.packets.inc();
        match decode_emit_batch(self.proto, bytes) {
            Ok(batch) => {
                self.metrics.batches.inc();
                self.metrics.spans.add(batch.spans.len() as u64);
                let process = self.tagged(&batch.process);
                for mut span in batch.spans {
                    span.process = process.clone();
                    let span = Arc::new(Span::from_app(span));
                    if let Some(observe) = &self.observer {
                        observe(&span);
                    }
                    if !self.sender.try_send_shared(span) {
                        self.metrics.spans_dropped.inc();
                    }
                }
            }
            Err(e) => {
                match e {
                    DecodeError::Method(_) => self.metrics.unsupported.inc(),
                    _ => self.metrics.malformed.inc(),
                }
                if let Some(suppressed) = self.warn.allow(Instant::now()) {
                    tracing::warn!(protocol = ?self.proto, %peer, bytes = bytes.len(), error = %e, suppressed,
                        "ignored a packet from a Jaeger client");
                }
            }
        }
    }
}

async fn receive(socket: UdpSocket, mut fwd: Forwarder, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut warn = LogLimiter::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, peer)) => fwd.packet(&buf[..n], peer),
                Err(e) => {
                    if let Some(suppressed) = warn.allow(Instant::now()) {
                        tracing::warn!(error = %e, suppressed, "UDP receive failed");
                    }
                }
            },
        }
    }
}

/// Starts the agent listeners configured in `cfg` (an empty address turns one off): spans
/// received go to `sender`, their process tagged with `agent.hostname`, `agent.ip` and
/// `agent.version`; the pipeline then adds `hostname` / `ip` where the client left them out.
pub async fn spawn(
    cfg: &ExportConfig,
    host: &HostInfo,
    sender: SpanSender,
    metrics: Arc<Registry>,
) -> Result<AgentHandle, AgentError> {
    spawn_observed(cfg, host, sender, metrics, None).await
}

/// `spawn`, with `observer` called on every span received before it is queued.
pub async fn spawn_observed(
    cfg: &ExportConfig,
    host: &HostInfo,
    sender: SpanSender,
    metrics: Arc<Registry>,
    observer: Option<SpanObserver>,
) -> Result<AgentHandle, AgentError> {
    spawn_supervised(cfg, host, sender, metrics, observer, &Stages::new()).await
}

/// `spawn_observed`, with each listener a stage of `stages`.
pub async fn spawn_supervised(
    cfg: &ExportConfig,
    host: &HostInfo,
    sender: SpanSender,
    metrics: Arc<Registry>,
    observer: Option<SpanObserver>,
    stages: &Stages,
) -> Result<AgentHandle, AgentError> {
    let (stop, stop_rx) = watch::channel(false);
    let mut handle = AgentHandle {
        compact_addr: None,
        binary_addr: None,
        sampling_addr: None,
        otlp_grpc_addr: None,
        otlp_http_addr: None,
        zipkin_addr: None,
        stop,
        tasks: Vec::new(),
    };
    let strategies =
        Arc::new(sampling::Strategies::load(cfg.sampling_strategies_file.as_deref(), cfg.sampling.as_ref())?);
    for (addr, proto, what) in [
        (&cfg.agent_compact_addr, Protocol::Compact, "compact emitBatch"),
        (&cfg.agent_binary_addr, Protocol::Binary, "binary emitBatch"),
    ] {
        if addr.trim().is_empty() {
            continue;
        }
        let bind_err = |e| AgentError::Bind { what, addr: addr.clone(), source: e };
        let socket = UdpSocket::bind(addr.as_str()).await.map_err(bind_err)?;
        let local = socket.local_addr().map_err(bind_err)?;
        let label = if proto == Protocol::Compact { "compact" } else { "binary" };
        let fwd = Forwarder {
            proto,
            sender: sender.clone(),
            agent_tags: host.agent_tags(),
            metrics: AgentMetrics::new(&metrics, label),
            processes: Vec::new(),
            warn: LogLimiter::new(Duration::from_secs(10)),
            observer: observer.clone(),
        };
        match kernel_drops::socket_inode(&socket) {
            Ok(inode) => kernel_drops::register(&metrics, label, inode),
            Err(e) => {
                tracing::warn!(error = %e, protocol = label, "the kernel's drop count of this socket is unavailable")
            }
        }
        tracing::info!(addr = %local, protocol = label, "agent listening for emitBatch");
        let stage = format!("agent {label} receiver");
        handle.tasks.push(stages.spawn(&stage, receive(socket, fwd, stop_rx.clone())));
        match proto {
            Protocol::Compact => handle.compact_addr = Some(local),
            Protocol::Binary => handle.binary_addr = Some(local),
        }
    }
    if !cfg.sampling_addr.trim().is_empty() {
        let addr = &cfg.sampling_addr;
        let bind_err = |e| AgentError::Bind { what: "sampling HTTP", addr: addr.clone(), source: e };
        let listener = TcpListener::bind(addr.as_str()).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let router = Arc::new(sampling::router(strategies, &metrics));
        tracing::info!(addr = %local, "agent serving sampling strategies");
        let drops = api::DropCounters::register(&metrics, "sampling");
        let serve = api::serve_with(listener, router, stop_rx.clone(), api::Limits::ADMIN, drops);
        handle.tasks.push(stages.spawn("agent sampling server", serve));
        handle.sampling_addr = Some(local);
    }
    let otlp = otlp::Setup {
        sender: sender.clone(),
        agent_tags: host.agent_tags(),
        observer: observer.clone(),
        metrics: &metrics,
        max_bytes: cfg.otlp_max_body_bytes,
        max_connections: cfg.otlp_max_connections,
        request_timeout: Duration::from_millis(cfg.otlp_request_timeout_ms),
        stages: stages.clone(),
    };
    for (addr, grpc) in [(&cfg.otlp_grpc_addr, true), (&cfg.otlp_http_addr, false)] {
        if addr.trim().is_empty() {
            continue;
        }
        let what = if grpc { "OTLP/gRPC" } else { "OTLP/HTTP" };
        let bind_err = |e| AgentError::Bind { what, addr: addr.clone(), source: e };
        let listener = TcpListener::bind(addr.as_str()).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        tracing::info!(addr = %local, protocol = what, "agent listening for OTLP");
        if grpc {
            handle.tasks.push(otlp.grpc(listener, stop_rx.clone()));
            handle.otlp_grpc_addr = Some(local);
        } else {
            handle.tasks.push(otlp.http(listener, stop_rx.clone()));
            handle.otlp_http_addr = Some(local);
        }
    }
    if !cfg.zipkin_addr.trim().is_empty() {
        let addr = &cfg.zipkin_addr;
        let bind_err = |e| AgentError::Bind { what: "Zipkin", addr: addr.clone(), source: e };
        let listener = TcpListener::bind(addr.as_str()).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        tracing::info!(addr = %local, "agent listening for Zipkin v2 spans");
        handle.tasks.push(otlp.zipkin(listener, stop_rx.clone()));
        handle.zipkin_addr = Some(local);
    }
    Ok(handle)
}

#[cfg(test)]
mod tests;
