//! The trace store: every finished span (the daemon's and apps') is also kept here, so the
//! admin endpoint answers Jaeger's query API without a backend.
//!
//! Spans reach the store through a bounded queue ([`Feed`]): the processing loop only clones
//! and `try_send`s; a full queue drops the span and counts it
//! (`tracer_store_dropped_total{reason="queue_full"}`). A task inserts them, typed and shared
//! with the exporters; queries render what they return as Jaeger has it. The
//! store keeps recent traces within `store.max_bytes` (an estimate of the heap they hold),
//! evicting the oldest trace first (`reason="evicted"`).

pub mod api;
pub mod json;
pub mod page;
mod traces;
pub mod v3;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

pub use traces::{Query, ServiceSummary, Summary, Trace, TraceStore, rendered, tag_text};

use crate::{
    metrics::{Counter, Gauge, Registry},
    model::{JaegerSpan, Process, Span},
    net::host::HostInfo,
};

/// Why a span did not stay in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Its trace was the oldest when the budget was exceeded.
    Evicted,
    /// The queue to the store was full.
    QueueFull,
}

impl DropReason {
    pub const ALL: [DropReason; 2] = [DropReason::Evicted, DropReason::QueueFull];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Evicted => "evicted",
            DropReason::QueueFull => "queue_full",
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreCounters {
    /// Traces evicted (counted once per trace).
    pub evicted: Counter,
    /// Spans dropped at the full queue.
    pub queue_full: Counter,
    pub bytes: Gauge,
    pub traces: Gauge,
    pub spans: Gauge,
}

impl StoreCounters {
    pub fn register(registry: &Registry, max_bytes: usize) -> Self {
        let dropped = |r: DropReason| {
            registry.counter(
                "tracer_store_dropped_total",
                "Traces evicted from the trace store (evicted) and spans not stored (queue_full)",
                &[("reason", r.as_str())],
            )
        };
        let [evicted, queue_full] = DropReason::ALL.map(dropped);
        registry
            .gauge("tracer_store_max_bytes", "The trace store's budget (estimated heap bytes)", &[])
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        StoreCounters {
            evicted,
            queue_full,
            bytes: registry.gauge("tracer_store_bytes", "Estimated heap bytes of the traces stored", &[]),
            traces: registry.gauge("tracer_store_traces", "Traces in the trace store", &[]),
            spans: registry.gauge("tracer_store_spans", "Spans in the trace store", &[]),
        }
    }

    pub fn detached() -> Self {
        StoreCounters {
            evicted: Counter::detached(),
            queue_full: Counter::detached(),
            bytes: Gauge::detached(),
            traces: Gauge::detached(),
            spans: Gauge::detached(),
        }
    }
}

/// The store shared by its feeding task and the query routes.
#[derive(Clone)]
pub struct SharedStore {
    store: Arc<Mutex<TraceStore>>,
    /// The host tags the exporters add to processes (`hostname`, `ip`, `--host-tag`), added to
    /// what queries answer too, so that a span says which host's daemon held it.
    host: Option<Arc<HostInfo>>,
}

impl SharedStore {
    pub fn new(store: TraceStore) -> Self {
        SharedStore { store: Arc::new(Mutex::new(store)), host: None }
    }

    /// Answers name this host in each process, as the exporters do.
    pub fn with_host(mut self, host: HostInfo) -> Self {
        self.host = Some(Arc::new(host));
        self
    }

    pub fn lock(&self) -> MutexGuard<'_, TraceStore> {
        // A panic while holding the lock leaves a consistent store (each insert is one step).
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spans taken from the store (outside its lock) as Jaeger's model has them, with the
    /// host's tags on their processes.
    pub fn render(&self, spans: &[Arc<Span>]) -> Vec<JaegerSpan> {
        let mut out = rendered(spans);
        if let Some(host) = &self.host {
            // One completed copy per process of the trace.
            let mut done: Vec<(Arc<Process>, Arc<Process>)> = Vec::new();
            for s in &mut out {
                let completed = match done.iter().find(|(p, _)| Arc::ptr_eq(p, &s.process)) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let c = host.complete(&s.process);
                        done.push((s.process.clone(), c.clone()));
                        c
                    }
                };
                s.process = completed;
            }
        }
        out
    }
}

/// The sending side of the store's queue; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Feed {
    tx: mpsc::Sender<Arc<Span>>,
    queue_full: Counter,
}

impl Feed {
    /// Queues a finished span (shared with the other stages); a full queue drops it and counts.
    pub fn offer(&self, span: &Arc<Span>) {
        if self.tx.try_send(span.clone()).is_err() {
            self.queue_full.inc();
        }
    }
}

/// Starts the task filling `store` from a queue of `queue` spans; returns the queue's sender.
pub fn spawn(store: SharedStore, queue: usize, counters: &StoreCounters) -> Feed {
    spawn_supervised(store, queue, counters, &crate::supervise::Stages::new())
}

/// `spawn`, with the task the stage `store feed` of `stages`.
pub fn spawn_supervised(
    store: SharedStore,
    queue: usize,
    counters: &StoreCounters,
    stages: &crate::supervise::Stages,
) -> Feed {
    let (tx, mut rx) = mpsc::channel::<Arc<Span>>(queue.max(1));
    stages.spawn("store feed", async move {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            let mut s = store.lock();
            for span in batch.drain(..) {
                s.insert(span);
            }
        }
    });
    Feed { tx, queue_full: counters.queue_full.clone() }
}
