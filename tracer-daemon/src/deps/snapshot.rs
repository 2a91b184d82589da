//! The dependency graph as data: named nodes and edges with counts and latency histograms. It
//! is the JSON of `GET /graph.json` (what the page draws and the fleet view merges), and the
//! source of the Jaeger `/dependencies` answer, DOT and the service-graph metrics.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::hist::Latency;

/// Version of the `graph.json` layout; a fleet merge refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// What a node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// An untraced caller, named by IP.
    Client,
    /// An untraced callee, named by DNS name or address (or the name an app span gives).
    Peer,
    /// A traced service, named by its service name.
    Service,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Client => "client",
            NodeKind::Peer => "peer",
            NodeKind::Service => "service",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// A service: endpoints its requests arrived on (`ip:port`); a peer: the addresses its name
    /// stands for; a client: its IP.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Calls it received, made, and received that failed (derived from the edges).
    #[serde(default)]
    pub calls_in: u64,
    #[serde(default)]
    pub calls_out: u64,
    #[serde(default)]
    pub errors_in: u64,
}

impl Node {
    pub fn new(name: &str, kind: NodeKind) -> Self {
        Node { name: name.to_owned(), kind, addresses: Vec::new(), calls_in: 0, calls_out: 0, errors_in: 0 }
    }

    /// Joins another sighting of the same name: a traced service wins over a peer, a peer over
    /// a client; addresses are united (sorted, at most `max`).
    pub fn absorb(&mut self, kind: NodeKind, addresses: impl IntoIterator<Item = String>, max: usize) {
        self.kind = self.kind.max(kind);
        let mut all: BTreeSet<String> = self.addresses.drain(..).collect();
        all.extend(addresses);
        self.addresses = all.into_iter().take(max).collect();
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub protocol: String,
    /// Grafana's `connection_type`: empty between two traced services, `database` to an
    /// untraced database, `virtual_node` when either end is untraced.
    #[serde(default)]
    pub connection_type: String,
    pub call_count: u64,
    pub error_count: u64,
    /// Calls seen from both sides, from the client side only, from the server side only.
    pub paired: u64,
    pub client_only: u64,
    pub server_only: u64,
    /// The calls are database calls (`db.system`).
    #[serde(default)]
    pub database: bool,
    /// Latency seen by the caller (calls with a client side).
    pub client: Latency,
    /// Latency seen by the callee; every call, with the caller's figure for untraced callees.
    pub server: Latency,
    /// Unix epoch microseconds of the first and last call's start.
    pub first_us: i64,
    pub last_us: i64,
    /// Median and 99th percentile latency (seconds), from `client` when it has calls, else
    /// `server` (derived).
    #[serde(default)]
    pub p50_seconds: Option<f64>,
    #[serde(default)]
    pub p99_seconds: Option<f64>,
}

impl Edge {
    pub fn new(parent: &str, child: &str, protocol: &str, first_us: i64) -> Self {
        Edge {
            parent: parent.to_owned(),
            child: child.to_owned(),
            protocol: protocol.to_owned(),
            connection_type: String::new(),
            call_count: 0,
            error_count: 0,
            paired: 0,
            client_only: 0,
            server_only: 0,
            database: false,
            client: Latency::default(),
            server: Latency::default(),
            first_us,
            last_us: first_us,
            p50_seconds: None,
            p99_seconds: None,
        }
    }

    pub fn add_counts(
        &mut self,
        calls: u64,
        errors: u64,
        paired: u64,
        client_only: u64,
        server_only: u64,
        database: bool,
    ) {
        self.call_count += calls;
        self.error_count += errors;
        self.paired += paired;
        self.client_only += client_only;
        self.server_only += server_only;
        self.database |= database;
    }

    /// Adds another edge's counts and histograms (same ends and protocol).
    pub fn add(&mut self, o: &Edge) {
        self.add_counts(o.call_count, o.error_count, o.paired, o.client_only, o.server_only, o.database);
        self.client.add(&o.client);
        self.server.add(&o.server);
        self.first_us = self.first_us.min(o.first_us);
        self.last_us = self.last_us.max(o.last_us);
    }

    /// The histogram the page and the quantiles use.
    pub fn latency(&self) -> &Latency {
        if self.client.count() > 0 { &self.client } else { &self.server }
    }

    /// Failed calls over calls (0 without calls).
    pub fn error_rate(&self) -> f64 {
        if self.call_count == 0 { 0.0 } else { self.error_count as f64 / self.call_count as f64 }
    }
}

/// Counts of calls the graph could not place, and of merge decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropped {
    /// Calls dropped because their edge would exceed the edge limit.
    pub edge_limit: u64,
    /// Calls dropped because a node would exceed the node limit.
    pub node_limit: u64,
    /// Calls counted before their pairing window ended (too many waiting).
    pub pairing_evicted: u64,
    /// Fleet merge: server-side edges left out because the caller's daemon counted the calls.
    #[serde(default)]
    pub reconciled: u64,
}

impl Dropped {
    pub fn add(&mut self, o: &Dropped) {
        self.edge_limit += o.edge_limit;
        self.node_limit += o.node_limit;
        self.pairing_evicted += o.pairing_evicted;
        self.reconciled += o.reconciled;
    }
}

/// The whole graph, named.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub version: u32,
    /// Upper bounds of the histogram buckets (seconds), `+Inf` implied.
    pub buckets_seconds: Vec<f64>,
    /// Daemons merged into this graph (`host:port` as fetched); empty for one daemon's own.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Unix epoch microseconds: when the graph started, when this snapshot was taken.
    pub started_us: i64,
    pub generated_us: i64,
    /// The daemon's host addresses (seen on its client spans): calls from these addresses are
    /// counted by this daemon's callers (used by the fleet merge).
    #[serde(default)]
    pub host_ips: Vec<String>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    #[serde(default)]
    pub dropped: Dropped,
    /// Calls waiting for their other side, not counted yet.
    #[serde(default)]
    pub pending_calls: u64,
}

/// A time window over edges (Unix epoch microseconds, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from_us: i64,
    pub to_us: i64,
}

impl Snapshot {
    /// Recomputes what is derived (connection types, node totals, quantiles) and sorts nodes
    /// and edges by name, so equal graphs serialise equally.
    pub fn normalize(&mut self) {
        let kinds: BTreeMap<String, NodeKind> = self.nodes.iter().map(|n| (n.name.clone(), n.kind)).collect();
        let kind = |n: &str| kinds.get(n).copied().unwrap_or(NodeKind::Peer);
        let mut totals: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for e in &mut self.edges {
            let (pk, ck) = (kind(&e.parent), kind(&e.child));
            e.connection_type = if pk == NodeKind::Service && ck == NodeKind::Service {
                String::new()
            } else if e.database && ck != NodeKind::Service {
                "database".to_owned()
            } else {
                "virtual_node".to_owned()
            };
            // Nanosecond resolution keeps the JSON short and stable.
            let q = |v: Option<f64>| v.map(|s| (s * 1e9).round() / 1e9);
            let (p50, p99) = (q(e.latency().quantile(0.5)), q(e.latency().quantile(0.99)));
            e.p50_seconds = p50;
            e.p99_seconds = p99;
        }
        for e in &self.edges {
            totals.entry(&e.parent).or_default().1 += e.call_count;
            let t = totals.entry(&e.child).or_default();
            t.0 += e.call_count;
            t.2 += e.error_count;
        }
        for n in &mut self.nodes {
            let (calls_in, calls_out, errors_in) = totals.get(n.name.as_str()).copied().unwrap_or_default();
            n.calls_in = calls_in;
            n.calls_out = calls_out;
            n.errors_in = errors_in;
        }
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.edges.sort_by(|a, b| (&a.parent, &a.child, &a.protocol).cmp(&(&b.parent, &b.child, &b.protocol)));
    }

    /// The edges with calls inside `w` (first call at or before its end, last call at or after
    /// its start) and their nodes. Counts stay the totals since each edge appeared: the graph
    /// keeps no history per interval.
    pub fn within(&self, w: Window) -> Snapshot {
        let mut out = self.clone();
        out.edges.retain(|e| e.first_us <= w.to_us && e.last_us >= w.from_us);
        let used: BTreeSet<&str> = out.edges.iter().flat_map(|e| [e.parent.as_str(), e.child.as_str()]).collect();
        let keep: Vec<Node> = self.nodes.iter().filter(|n| used.contains(n.name.as_str())).cloned().collect();
        out.nodes = keep;
        out.normalize();
        out
    }

    /// Jaeger's dependencies answer: `{"data": [{"parent", "child", "callCount"}], ...}`, one
    /// link per (parent, child) with the calls of every protocol added.
    pub fn jaeger_dependencies(&self) -> serde_json::Value {
        let mut links: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for e in &self.edges {
            *links.entry((&e.parent, &e.child)).or_default() += e.call_count;
        }
        let data: Vec<serde_json::Value> = links
            .iter()
            .map(|((parent, child), calls)| json!({"parent": parent, "child": child, "callCount": calls}))
            .collect();
        json!({"data": data, "total": data.len(), "limit": 0, "offset": 0, "errors": null})
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// An edge by its ends and protocol.
    pub fn edge(&self, parent: &str, child: &str, protocol: &str) -> Option<&Edge> {
        self.edges.iter().find(|e| e.parent == parent && e.child == child && e.protocol == protocol)
    }
}

/// The window of Jaeger's `endTs` and `lookback` query parameters (milliseconds): `endTs`
/// defaults to `now_us`, `lookback` to everything before it.
pub fn window_from_query(
    end_ts_ms: Option<&str>,
    lookback_ms: Option<&str>,
    now_us: i64,
) -> Result<Option<Window>, String> {
    let parse = |name: &str, v: Option<&str>| -> Result<Option<i64>, String> {
        match v {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .map(Some)
                .ok_or_else(|| format!("{name} must be a non-negative number of milliseconds")),
        }
    };
    let end = parse("endTs", end_ts_ms)?;
    let lookback = parse("lookback", lookback_ms)?;
    if end.is_none() && lookback.is_none() {
        return Ok(None);
    }
    let to_us = end.map(|ms| ms.saturating_mul(1000)).unwrap_or(now_us);
    let from_us = lookback.map(|ms| to_us.saturating_sub(ms.saturating_mul(1000))).unwrap_or(i64::MIN);
    Ok(Some(Window { from_us, to_us }))
}
