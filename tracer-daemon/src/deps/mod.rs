//! Service dependencies: what talks to what, built from finished spans. Edges go caller →
//! callee per protocol with call counts, error counts and latency histograms; the daemon serves
//! them as Jaeger's `/dependencies`, Grafana service-graph metrics, DOT, JSON and a page, and
//! `tracer-daemon fleet` merges several daemons' graphs into one.
//!
//! # Counting each call once
//!
//! A call can be seen as up to four spans: the daemon's client span and server span (kernel
//! probes on both processes), and the apps' own client and server spans when they are
//! instrumented. All of them share one **call key**, (trace id, id of the client-side span):
//!
//! - a client span's key is its own span id, except a kernel client span that adopted a
//!   context carried in its own request (`tracer.link` = `traceparent`, `uber-trace-id`,
//!   `sql-comment`): that context names the app's client span, so the key is its parent;
//! - a server span's key is its parent span id (`same-host-tuple`: the kernel client span;
//!   adopted context: the app's client span; `tcp-option`: a client span on another host). A
//!   server span without parent starts its trace and has no key.
//!
//! Sides with the same key are collected for `pair_window_ms` (default 5 s); then:
//!
//! 1. **Both sides seen** (caller and callee traced on this host): one call on the edge
//!    caller service → callee service, counted as soon as the second side arrives. Later spans
//!    with the key (an app's own span of the same call) are duplicates and add nothing.
//! 2. **Client side only** (the callee is untraced, or on another host): one call caller →
//!    callee, the callee named, when the graph is read, by the traced service listening on that
//!    address on this host if any, else by the DNS name a request to that address used (the
//!    first `http.host` that is a DNS name, port kept), else by the address `ip:port`. An
//!    app's span names the callee by `peer.service`, `net.peer.name` / `server.address`
//!    (+ port), its peer address, `db.name`, or `unknown`.
//! 3. **Server side only** (the caller is untraced, or on another host): one call from the
//!    caller's IP (`net.peer.ip`, without the ephemeral port; `unknown` without it) → service.
//!
//! A failure on either side makes the call failed. The client histogram records the caller's
//! latency when the client side was seen; the server histogram records every call, with the
//! callee's latency, or the caller's when the callee is untraced (so `_server_seconds_count`
//! counts calls, as Grafana's queries expect).
//!
//! Apps' own spans (`observe_app`) of a service the kernel probes trace on this host count only
//! when they pair with another side: alone, the kernel's span of the same call counts it.
//! Spans that are neither client nor server (internal, producer, consumer, no `span.kind`) are
//! ignored.
//!
//! # Across daemons
//!
//! Each daemon sees its own host's side of a cross-host call: the caller's daemon counts it
//! client-side (service → address), the callee's daemon server-side (caller IP → service).
//! The fleet merge (`fleet::merge`) keeps the caller's count: a server-side edge from IP X is
//! left out when another merged daemon lists X among its host addresses and has a client-side
//! edge to the same service and protocol. Addresses are joined to service names through the
//! listener addresses each daemon reports (loopback and unspecified addresses excepted, and
//! only when one service name claims the address). So edges are counted by the caller's daemon
//! when the caller is traced, by the callee's daemon only for untraced callers.
//!
//! Known limits: a process that forwards the trace header it received without making a span
//! of its own gives two calls one key (they pair first come, first served); a callee behind an
//! address no daemon listens on (a Kubernetes Service IP, a proxy) stays named by that address
//! or DNS name, and its server-side edge is then not recognised as the same call.
//!
//! # Wiring
//!
//! ```no_run
//! use tracer_daemon::{api::Router, deps::{self, GraphConfig, SharedGraph}, metrics::Registry};
//! # fn wire(span: tracer_daemon::model::Span) {
//! let registry = Registry::new();
//! let graph = SharedGraph::new(GraphConfig::default());
//! deps::metrics::register(&registry, graph.clone());
//! let router = deps::api::routes(Router::new().metrics(registry.clone()), graph.clone());
//! // For every finished span the daemon assembles, before it goes to the exporter:
//! graph.observe(&span);
//! // For every span an app sent to the agent listeners (optional):
//! graph.observe_app(&span);
//! # let _ = router;
//! # }
//! ```

pub mod api;
pub mod dot;
pub mod fleet;
pub mod fleet_trace;
pub mod graph;
pub mod hist;
pub mod metrics;
pub mod page;
pub mod snapshot;
pub mod span;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

pub use graph::{Graph, GraphConfig, GraphStats};
pub use snapshot::{Edge, Node, NodeKind, Snapshot, Window};

use crate::model::Span;

/// The graph shared between the span path and the HTTP handlers, on the wall clock.
#[derive(Clone)]
pub struct SharedGraph(Arc<Mutex<Graph>>);

/// Unix epoch microseconds now.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

impl SharedGraph {
    pub fn new(cfg: GraphConfig) -> Self {
        let mut g = Graph::new(cfg);
        g.advance(now_us());
        SharedGraph(Arc::new(Mutex::new(g)))
    }

    fn lock(&self) -> MutexGuard<'_, Graph> {
        // A panic while holding the lock leaves plain counts behind; keep serving them.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A span the daemon assembled (cheap: a few map operations under a short lock).
    pub fn observe(&self, span: &Span) {
        let mut g = self.lock();
        g.advance(now_us());
        g.observe(span);
    }

    /// A span an app sent to the agent listeners.
    pub fn observe_app(&self, span: &Span) {
        let mut g = self.lock();
        g.advance(now_us());
        g.observe_app(span);
    }

    /// The graph now, with calls whose pairing window is over counted.
    pub fn snapshot(&self) -> Snapshot {
        let mut g = self.lock();
        g.advance(now_us());
        g.snapshot()
    }

    /// Runs `f` on the graph under the lock (tests, statistics).
    pub fn with<R>(&self, f: impl FnOnce(&mut Graph) -> R) -> R {
        f(&mut self.lock())
    }
}

#[cfg(test)]
mod tests;
