//! The live dependency graph of one daemon: pairs the two sides of each call, counts every call
//! once on its edge (caller, callee, protocol) with errors and latency histograms, and keeps
//! what names the nodes (listeners of traced services, DNS names, host addresses). Pure and
//! deterministic: time only moves through `advance`. The counting rule is in the module
//! documentation of `deps`.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use super::{
    hist::{BUCKETS_SECONDS, Latency},
    snapshot::{Dropped, Edge, FORMAT_VERSION, Node, NodeKind, Snapshot},
    span::{self, CallKey, Callee, Name, Role, Side, Source},
};
use crate::model::{
    Span,
    hash::{FastMap, FastSet},
};

/// Host addresses kept (the daemon's own IPs seen on client spans).
const MAX_HOST_IPS: usize = 64;
/// Addresses listed per node in a snapshot.
const MAX_NODE_ADDRESSES: usize = 16;

pub use crate::config::deps::GraphConfig;

/// A node before naming: names of addresses are resolved when a snapshot is taken, so an
/// address that later turns out to be a traced service's listener joins that service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum NodeRef {
    /// A traced process's service name.
    Service(Name),
    /// An untraced callee by the address the client connected to.
    Addr(SocketAddr),
    /// An untraced callee by the name an app span gives.
    Named(Name),
    /// An untraced caller by IP (`None`: unknown).
    Caller(Option<IpAddr>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EdgeKey {
    parent: NodeRef,
    child: NodeRef,
    protocol: Name,
}

#[derive(Clone, Debug, Default)]
struct EdgeStats {
    calls: u64,
    errors: u64,
    paired: u64,
    client_only: u64,
    server_only: u64,
    database: bool,
    client: Latency,
    server: Latency,
    first_us: i64,
    last_us: i64,
    /// When a call last landed on the edge (graph clock, µs) and its place in `by_seen`.
    seen: (i64, u64),
}

/// A call whose sides are being collected.
struct Pending {
    client: Option<Side>,
    server: Option<Side>,
    /// Counted already (both sides met); later sides of the same call are duplicates.
    settled: bool,
    generation: u64,
}

/// Counts about what the graph did with the spans it was fed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// Calls counted with both sides seen.
    pub paired: u64,
    /// Calls counted from the client side alone (untraced or remote callee).
    pub client_only: u64,
    /// Calls counted from the server side alone (untraced or remote caller).
    pub server_only: u64,
    /// Spans that added nothing: a further span of a call already counted.
    pub duplicates: u64,
    /// Spans that are not a client or server side of a call.
    pub ignored: u64,
    /// Apps' own spans left out because the kernel probes trace that service on this host.
    pub covered_by_kernel: u64,
    /// Calls dropped: their edge would exceed `max_edges`.
    pub dropped_edge_limit: u64,
    /// Calls dropped: a node would exceed `max_nodes`.
    pub dropped_node_limit: u64,
    /// Calls counted before their window ended because `max_pending` was reached.
    pub pairing_evicted: u64,
    /// Edges removed (with the nodes only they used) because no call landed on them for
    /// `edge_idle_ms`.
    pub evicted_idle: u64,
    /// Edges removed, least recently seen first, to make room for a new edge within
    /// `max_edges` / `max_nodes`.
    pub evicted_full: u64,
}

/// Why an edge left the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeEviction {
    Idle,
    Full,
}

impl EdgeEviction {
    pub const ALL: [EdgeEviction; 2] = [EdgeEviction::Idle, EdgeEviction::Full];

    pub fn as_str(self) -> &'static str {
        match self {
            EdgeEviction::Idle => "idle",
            EdgeEviction::Full => "full",
        }
    }

    pub fn count(self, s: &GraphStats) -> u64 {
        match self {
            EdgeEviction::Idle => s.evicted_idle,
            EdgeEviction::Full => s.evicted_full,
        }
    }
}

/// The dependency graph. Feed it with `observe` (the daemon's spans) and `observe_app` (apps'
/// own spans); `advance` moves its clock; `snapshot` names the nodes and returns the edges.
pub struct Graph {
    cfg: GraphConfig,
    /// Unix epoch microseconds, from `advance`.
    now_us: i64,
    started_us: Option<i64>,
    edges: FastMap<EdgeKey, EdgeStats>,
    /// Edges by when a call last landed on them, oldest first.
    by_seen: BTreeMap<(i64, u64), EdgeKey>,
    next_seen: u64,
    /// Nodes → how many edges have them as an end.
    nodes: FastMap<NodeRef, usize>,
    pending: FastMap<CallKey, Pending>,
    /// Pending calls in order of arrival: (deadline µs, key, generation).
    order: VecDeque<(i64, CallKey, u64)>,
    next_generation: u64,
    /// Local endpoints requests of a traced service arrived on → that service.
    listeners: FastMap<SocketAddr, Name>,
    /// Addresses → the first DNS name a request to them used.
    dns: FastMap<SocketAddr, Name>,
    /// Services the kernel probes trace on this host.
    kernel_services: FastSet<Name>,
    /// This host's addresses, as seen on the daemon's client spans.
    host_ips: BTreeSet<IpAddr>,
    stats: GraphStats,
}

impl Graph {
    pub fn new(cfg: GraphConfig) -> Self {
        Graph {
            cfg,
            now_us: 0,
            started_us: None,
            edges: FastMap::default(),
            by_seen: BTreeMap::new(),
            next_seen: 1,
            nodes: FastMap::default(),
            pending: FastMap::default(),
            order: VecDeque::new(),
            next_generation: 0,
            listeners: FastMap::default(),
            dns: FastMap::default(),
            kernel_services: FastSet::default(),
            host_ips: BTreeSet::new(),
            stats: GraphStats::default(),
        }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.cfg
    }

    pub fn stats(&self) -> GraphStats {
        self.stats
    }

    /// Edges and nodes held (before naming merges any), and calls waiting for a side.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.edges.len(), self.nodes.len(), self.pending.len())
    }

    /// An estimate of the graph's heap bytes: edges with their histograms, nodes, calls
    /// waiting for a side, naming tables (names are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.edges.capacity() * (size_of::<(EdgeKey, EdgeStats)>() + 1)
            + self.by_seen.len() * (size_of::<((i64, u64), EdgeKey)>() + 16)
            + self.nodes.capacity() * (size_of::<(NodeRef, usize)>() + 1)
            + self.pending.capacity() * (size_of::<(CallKey, Pending)>() + 1)
            + self.order.capacity() * size_of::<(i64, CallKey, u64)>()
            + self.listeners.capacity() * (size_of::<(SocketAddr, Name)>() + 1)
            + self.dns.capacity() * (size_of::<(SocketAddr, Name)>() + 1)
            + self.kernel_services.capacity() * (size_of::<Name>() + 1)
    }

    /// A span assembled by this daemon from kernel events.
    pub fn observe(&mut self, span: &Span) {
        self.take(span, Source::Kernel);
    }

    /// A span an application's own tracing client sent to the agent listeners.
    pub fn observe_app(&mut self, span: &Span) {
        self.take(span, Source::App);
    }

    /// Moves the clock to `now_us` (Unix epoch microseconds; it never goes back) and counts
    /// the calls whose pairing window is over with the side they have.
    pub fn advance(&mut self, now_us: i64) {
        self.now_us = self.now_us.max(now_us);
        self.started_us.get_or_insert(now_us);
        while let Some(&(deadline, key, generation)) = self.order.front() {
            if deadline > self.now_us {
                break;
            }
            self.order.pop_front();
            self.expire(key, generation);
        }
        if self.cfg.edge_idle_ms > 0 {
            let idle_us = self.cfg.edge_idle_ms.saturating_mul(1000).min(i64::MAX as u64) as i64;
            while let Some((&(seen, _), _)) = self.by_seen.first_key_value() {
                if seen.saturating_add(idle_us) > self.now_us {
                    break;
                }
                self.evict_oldest_edge();
                self.stats.evicted_idle += 1;
            }
        }
    }

    /// Removes the least recently seen edge and the nodes no other edge uses.
    fn evict_oldest_edge(&mut self) -> bool {
        let Some((_, key)) = self.by_seen.pop_first() else { return false };
        self.edges.remove(&key);
        let ends: &[&NodeRef] = if key.parent == key.child { &[&key.parent] } else { &[&key.parent, &key.child] };
        for n in ends {
            if let Some(c) = self.nodes.get_mut(*n) {
                *c -= 1;
                if *c == 0 {
                    self.nodes.remove(*n);
                }
            }
        }
        true
    }

    /// Nodes of `key` not in the graph yet.
    fn new_nodes(&self, key: &EdgeKey) -> usize {
        let n = [&key.parent, &key.child].iter().filter(|n| !self.nodes.contains_key(**n)).count();
        if key.parent == key.child { n.min(1) } else { n }
    }

    fn expire(&mut self, key: CallKey, generation: u64) {
        if self.pending.get(&key).is_some_and(|p| p.generation == generation)
            && let Some(p) = self.pending.remove(&key)
            && !p.settled
        {
            self.settle(p.client, p.server);
        }
    }

    fn take(&mut self, span: &Span, source: Source) {
        let Ok((key, side)) = span::read(span, source) else {
            self.stats.ignored += 1;
            return;
        };
        self.learn(&side);
        let Some(key) = key else {
            // A server span that starts its trace: nothing will pair with it.
            self.settle(None, Some(side));
            return;
        };
        if let Some(p) = self.pending.get_mut(&key) {
            if p.settled {
                self.stats.duplicates += 1;
                return;
            }
            let slot = match side.role {
                Role::Client => &mut p.client,
                Role::Server => &mut p.server,
            };
            match slot {
                None => *slot = Some(side),
                Some(held) => {
                    // The same side seen twice (the kernel's span and the app's own): the
                    // kernel's measurement stands, a failure seen by either counts.
                    held.error |= side.error;
                    if held.source == Source::App && side.source == Source::Kernel {
                        let error = held.error;
                        *held = side;
                        held.error = error;
                    }
                    self.stats.duplicates += 1;
                }
            }
            if p.client.is_some() && p.server.is_some() {
                let (client, server) = (p.client.take(), p.server.take());
                p.settled = true;
                self.settle(client, server);
            }
            return;
        }
        if self.pending.len() >= self.cfg.max_pending.max(1)
            && let Some((_, oldest, generation)) = self.order.pop_front()
        {
            self.stats.pairing_evicted += 1;
            self.expire(oldest, generation);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let deadline = self.now_us.saturating_add(self.cfg.pair_window_ms.saturating_mul(1000) as i64);
        let (client, server) = match side.role {
            Role::Client => (Some(side), None),
            Role::Server => (None, Some(side)),
        };
        self.pending.insert(key, Pending { client, server, settled: false, generation });
        self.order.push_back((deadline, key, generation));
    }

    /// Remembers what names nodes: listeners of traced services, DNS names, host addresses.
    fn learn(&mut self, side: &Side) {
        let room = |len: usize| len < self.cfg.max_names;
        if side.source == Source::Kernel
            && !self.kernel_services.contains(&side.service)
            && self.kernel_services.len() < self.cfg.max_names
        {
            self.kernel_services.insert(side.service.clone());
        }
        // The latest wins: a port reused by another service names the new one.
        if let Some(addr) = side.listen
            && (self.listeners.contains_key(&addr) || room(self.listeners.len()))
        {
            self.listeners.insert(addr, side.service.clone());
        }
        if let Some((addr, name)) = &side.dns
            && !self.dns.contains_key(addr)
            && room(self.dns.len())
        {
            self.dns.insert(*addr, name.clone());
        }
        if let (Source::Kernel, Some(ip)) = (side.source, side.host_ip)
            && self.host_ips.len() < MAX_HOST_IPS
        {
            self.host_ips.insert(ip);
        }
    }

    /// Counts one call from the sides seen.
    fn settle(&mut self, client: Option<Side>, server: Option<Side>) {
        let covered = |s: &Side| s.source == Source::App && self.kernel_services.contains(&s.service);
        let (parent, child, lead) = match (&client, &server) {
            (Some(c), Some(s)) => {
                self.stats.paired += 1;
                (NodeRef::Service(c.service.clone()), NodeRef::Service(s.service.clone()), c)
            }
            (Some(c), None) => {
                if covered(c) {
                    self.stats.covered_by_kernel += 1;
                    return;
                }
                self.stats.client_only += 1;
                let child = match c.callee.clone() {
                    Some(Callee::Addr(a)) => NodeRef::Addr(a),
                    Some(Callee::Named(n)) if self.kernel_services.contains(&n) => NodeRef::Service(n),
                    Some(Callee::Named(n)) => NodeRef::Named(n),
                    None => NodeRef::Named(Arc::from("unknown")),
                };
                (NodeRef::Service(c.service.clone()), child, c)
            }
            (None, Some(s)) => {
                if covered(s) {
                    self.stats.covered_by_kernel += 1;
                    return;
                }
                self.stats.server_only += 1;
                (NodeRef::Caller(s.caller_ip), NodeRef::Service(s.service.clone()), s)
            }
            (None, None) => return,
        };
        // The protocol as the client saw it, unless only the server could tell.
        let protocol = match (&client, &server) {
            (Some(c), Some(s)) if &*c.protocol == "other" => s.protocol.clone(),
            _ => lead.protocol.clone(),
        };
        let key = EdgeKey { parent, child, protocol };
        if !self.edges.contains_key(&key) {
            // Room is made by evicting the least recently seen edges: a graph filled once (an
            // internet-facing service's callers) keeps taking new edges.
            while self.edges.len() >= self.cfg.max_edges.max(1) && self.evict_oldest_edge() {
                self.stats.evicted_full += 1;
            }
            while self.nodes.len() + self.new_nodes(&key) > self.cfg.max_nodes.max(2) && self.evict_oldest_edge() {
                self.stats.evicted_full += 1;
            }
            *self.nodes.entry(key.parent.clone()).or_default() += 1;
            if key.child != key.parent {
                *self.nodes.entry(key.child.clone()).or_default() += 1;
            }
        }
        let seen = (self.now_us, self.next_seen);
        self.next_seen += 1;
        let sides = [client.as_ref(), server.as_ref()];
        let start = sides.iter().flatten().map(|s| s.start_us).min().unwrap_or(self.now_us);
        let e = self.edges.entry(key.clone()).or_insert_with(|| EdgeStats {
            first_us: start,
            last_us: start,
            ..Default::default()
        });
        if e.seen != (0, 0) {
            self.by_seen.remove(&e.seen);
        }
        e.seen = seen;
        self.by_seen.insert(seen, key);
        e.calls += 1;
        if sides.iter().flatten().any(|s| s.error) {
            e.errors += 1;
        }
        e.database |= sides.iter().flatten().any(|s| s.database);
        match (&client, &server) {
            (Some(_), Some(_)) => e.paired += 1,
            (Some(_), None) => e.client_only += 1,
            _ => e.server_only += 1,
        }
        // Every call lands in the server histogram (the client's measurement stands in for an
        // untraced callee), so `_server_seconds_count` counts calls as Grafana expects.
        if let Some(c) = &client {
            e.client.observe_us(c.duration_us);
        }
        match (&server, &client) {
            (Some(s), _) | (None, Some(s)) => e.server.observe_us(s.duration_us),
            (None, None) => {}
        }
        e.first_us = e.first_us.min(start);
        e.last_us = e.last_us.max(start);
    }

    /// Names every node and returns the graph: edges whose ends get the same names are added
    /// together. Untraced callees are named by the traced service listening on their address
    /// when there is one on this host, else by the DNS name a request used, else by address.
    pub fn snapshot(&self) -> Snapshot {
        let mut listen_of: BTreeMap<&str, BTreeSet<SocketAddr>> = BTreeMap::new();
        for (addr, svc) in &self.listeners {
            listen_of.entry(svc).or_default().insert(*addr);
        }
        let name = |n: &NodeRef| -> (String, NodeKind, Vec<String>) {
            match n {
                NodeRef::Service(s) => {
                    let addrs =
                        listen_of.get(&**s).map(|a| a.iter().take(MAX_NODE_ADDRESSES).map(|a| a.to_string()).collect());
                    (s.to_string(), NodeKind::Service, addrs.unwrap_or_default())
                }
                NodeRef::Addr(a) => match (self.listeners.get(a), self.dns.get(a)) {
                    (Some(svc), _) => (svc.to_string(), NodeKind::Service, vec![a.to_string()]),
                    (None, Some(dns)) => (dns.to_string(), NodeKind::Peer, vec![a.to_string()]),
                    (None, None) => (a.to_string(), NodeKind::Peer, vec![a.to_string()]),
                },
                NodeRef::Named(s) if self.kernel_services.contains(s) => (s.to_string(), NodeKind::Service, Vec::new()),
                NodeRef::Named(s) => (s.to_string(), NodeKind::Peer, Vec::new()),
                NodeRef::Caller(Some(ip)) => (ip.to_string(), NodeKind::Client, vec![ip.to_string()]),
                NodeRef::Caller(None) => ("unknown".to_owned(), NodeKind::Client, Vec::new()),
            }
        };
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut edges: BTreeMap<(String, String, String), Edge> = BTreeMap::new();
        for (key, st) in &self.edges {
            let mut ends = Vec::with_capacity(2);
            for n in [&key.parent, &key.child] {
                let (nm, kind, addrs) = name(n);
                let node = nodes.entry(nm.clone()).or_insert_with(|| Node::new(&nm, kind));
                node.absorb(kind, addrs, MAX_NODE_ADDRESSES);
                ends.push(nm);
            }
            let child = ends.pop().unwrap_or_default();
            let parent = ends.pop().unwrap_or_default();
            let e = edges
                .entry((parent.clone(), child.clone(), key.protocol.to_string()))
                .or_insert_with(|| Edge::new(&parent, &child, &key.protocol, st.first_us));
            e.add_counts(st.calls, st.errors, st.paired, st.client_only, st.server_only, st.database);
            e.client.add(&st.client);
            e.server.add(&st.server);
            e.first_us = e.first_us.min(st.first_us);
            e.last_us = e.last_us.max(st.last_us);
        }
        let mut snap = Snapshot {
            version: FORMAT_VERSION,
            buckets_seconds: BUCKETS_SECONDS.to_vec(),
            sources: Vec::new(),
            started_us: self.started_us.unwrap_or(self.now_us),
            generated_us: self.now_us,
            host_ips: self.host_ips.iter().map(|ip| ip.to_string()).collect(),
            nodes: nodes.into_values().collect(),
            edges: edges.into_values().collect(),
            dropped: Dropped {
                edge_limit: self.stats.dropped_edge_limit,
                node_limit: self.stats.dropped_node_limit,
                pairing_evicted: self.stats.pairing_evicted,
                reconciled: 0,
            },
            pending_calls: self.pending.values().filter(|p| !p.settled).count() as u64,
        };
        snap.normalize();
        snap
    }
}
