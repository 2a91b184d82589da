//! Service-graph metrics in the shape Grafana's service graph reads (the names and labels of
//! Tempo's metrics-generator), computed from the graph at scrape time:
//!
//! - `traces_service_graph_request_total{client,server,connection_type,protocol}` — calls;
//! - `traces_service_graph_request_failed_total{…}` — failed calls;
//! - `traces_service_graph_request_server_seconds_{bucket,sum,count}{…}` — latency seen by the
//!   callee (every call; the caller's figure when the callee is untraced);
//! - `traces_service_graph_request_client_seconds_{bucket,sum,count}{…}` — latency seen by the
//!   caller (calls whose client side was seen).
//!
//! `protocol` is an extra dimension, as Tempo's `dimensions` setting adds; Grafana's queries
//! sum by `client` and `server`. The graph's own state is in `tracer_deps_*`.

use super::{SharedGraph, hist::BUCKETS_SECONDS, snapshot::Snapshot};
use crate::metrics::{Kind, Registry, Sample};

const REQUESTS: &str = "traces_service_graph_request_total";
const FAILED: &str = "traces_service_graph_request_failed_total";
const SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
const CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";

fn fmt_bound(b: f64) -> String {
    format!("{b}")
}

fn histogram(out: &mut Vec<Sample>, name: &str, help: &str, labels: &[(&str, &str)], h: &super::hist::Latency) {
    let cumulative = h.cumulative();
    for (i, count) in cumulative.iter().enumerate() {
        let le = BUCKETS_SECONDS.get(i).map(|b| fmt_bound(*b)).unwrap_or_else(|| "+Inf".to_owned());
        let mut l = labels.to_vec();
        l.push(("le", &le));
        out.push(Sample::new(&format!("{name}_bucket"), help, Kind::Histogram, &l, *count as f64));
    }
    out.push(Sample::new(&format!("{name}_sum"), help, Kind::Histogram, labels, h.sum_seconds()));
    out.push(Sample::new(&format!("{name}_count"), help, Kind::Histogram, labels, h.count() as f64));
}

/// The service-graph samples of a snapshot.
pub fn samples(snap: &Snapshot, out: &mut Vec<Sample>) {
    for e in &snap.edges {
        let labels = [
            ("client", e.parent.as_str()),
            ("server", e.child.as_str()),
            ("connection_type", e.connection_type.as_str()),
            ("protocol", e.protocol.as_str()),
        ];
        out.push(Sample::new(
            REQUESTS,
            "Total count of requests between two nodes.",
            Kind::Counter,
            &labels,
            e.call_count as f64,
        ));
        out.push(Sample::new(
            FAILED,
            "Total count of failed requests between two nodes.",
            Kind::Counter,
            &labels,
            e.error_count as f64,
        ));
        histogram(
            out,
            SERVER_SECONDS,
            "Time for a request between two nodes as seen from the server.",
            &labels,
            &e.server,
        );
        histogram(
            out,
            CLIENT_SECONDS,
            "Time for a request between two nodes as seen from the client.",
            &labels,
            &e.client,
        );
    }
    let dropped = "Calls the dependency graph could not count, by reason.";
    for (reason, n) in [("edge_limit", snap.dropped.edge_limit), ("node_limit", snap.dropped.node_limit)] {
        out.push(Sample::new(
            "tracer_deps_dropped_calls_total",
            dropped,
            Kind::Counter,
            &[("reason", reason)],
            n as f64,
        ));
    }
    out.push(Sample::new(
        "tracer_deps_pairing_evicted_total",
        "Calls counted before their pairing window ended because too many calls were waiting.",
        Kind::Counter,
        &[],
        snap.dropped.pairing_evicted as f64,
    ));
    out.push(Sample::new(
        "tracer_deps_edges",
        "Edges in the dependency graph.",
        Kind::Gauge,
        &[],
        snap.edges.len() as f64,
    ));
    out.push(Sample::new(
        "tracer_deps_nodes",
        "Nodes in the dependency graph.",
        Kind::Gauge,
        &[],
        snap.nodes.len() as f64,
    ));
    out.push(Sample::new(
        "tracer_deps_pending_calls",
        "Calls waiting for their other side before they are counted.",
        Kind::Gauge,
        &[],
        snap.pending_calls as f64,
    ));
}

/// Adds a collector to `registry` that computes the samples from `graph` on every scrape.
pub fn register(registry: &Registry, graph: SharedGraph) {
    registry.add_collector(move |out| {
        samples(&graph.snapshot(), out);
        let (stats, bytes) = graph.with(|g| (g.stats(), g.heap_bytes()));
        out.push(Sample::new(
            crate::metrics::Structure::METRIC,
            crate::metrics::Structure::HELP,
            Kind::Gauge,
            &[("structure", crate::metrics::Structure::Graph.as_str())],
            bytes as f64,
        ));
        for r in super::graph::EdgeEviction::ALL {
            out.push(Sample::new(
                "tracer_deps_evicted_edges_total",
                "Edges removed from the dependency graph with the nodes only they used: idle for deps.edge_idle_ms, or the least recently seen to make room (full), by reason.",
                Kind::Counter,
                &[("reason", r.as_str())],
                r.count(&stats) as f64,
            ));
        }
    });
}
