//! The fleet view: fetches several daemons' graphs (`GET /graph.json`), merges them into one
//! and prints it as DOT or JSON (`tracer-daemon fleet --daemon HOST:PORT ...`); one trace from
//! every daemon's store is `fleet trace`, a search across them `fleet search` (`fleet_trace`).
//!
//! Merging: nodes are unified by name; an untraced peer whose addresses are all listener
//! addresses of one traced service (as another daemon reports them) becomes that service;
//! counts and histograms of equal edges are added. A call between two traced hosts is seen by
//! both daemons, client-side by the caller's (service → address) and server-side by the
//! callee's (caller IP → service): the caller's count is kept, and the server-side edge is
//! left out when another merged daemon lists the caller IP among its host addresses and has a
//! client-side edge to that service and protocol (the calls left out are in
//! `dropped.reconciled`). Loopback, unspecified and link-local addresses name a different
//! thing on every host and are never matched across daemons.
//!
//! In Kubernetes, give one `--daemon` naming a headless Service over the DaemonSet's pods
//! (`tracer.NAMESPACE.svc:14271` with `clusterIP: None`): a name with several A / AAAA
//! records stands for each address, and every pod is fetched.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::net::http::{HttpClient, HttpError};
use anyhow::Context as _;

use super::{
    dot,
    hist::BUCKETS_SECONDS,
    snapshot::{Dropped, Edge, FORMAT_VERSION, Node, NodeKind, Snapshot},
};

/// Largest `graph.json` answer read from one daemon (bytes).
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// Addresses listed per node in the merged graph.
const MAX_NODE_ADDRESSES: usize = 64;

/// `tracer-daemon fleet` options.
#[derive(clap::Args, Clone, Debug)]
#[command(subcommand_negates_reqs = true)]
pub struct FleetArgs {
    /// A daemon's admin endpoint as HOST:PORT; repeat for several. A name with several
    /// addresses (a headless Service over the DaemonSet) stands for each of them.
    #[arg(long = "daemon", visible_alias = "from", value_name = "HOST:PORT", required = true)]
    pub daemons: Vec<String>,
    /// Output: `dot`, `json` (the merged graph, as `/graph.json`) or `jaeger` (dependencies
    /// JSON, as `/dependencies`).
    #[arg(long, value_enum, default_value_t = FleetFormat::Dot)]
    pub format: FleetFormat,
    /// Time allowed per daemon to connect and answer (milliseconds).
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Fail when any daemon cannot be read (otherwise those that answer are merged and the
    /// others reported on stderr).
    #[arg(long)]
    pub strict: bool,
    /// Without one: the merged service graph.
    #[command(subcommand)]
    pub query: Option<FleetQuery>,
}

/// What else the fleet is asked for.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum FleetQuery {
    /// One trace, merged from the pieces each daemon's trace store holds (Jaeger's JSON model).
    Trace(super::fleet_trace::FleetTraceArgs),
    /// Traces matching a search on any daemon, each merged from every daemon's pieces.
    Search(super::fleet_trace::FleetSearchArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetFormat {
    Dot,
    Json,
    Jaeger,
}

/// Why one daemon's graph could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{daemon}: cannot resolve: {source}")]
    Resolve { daemon: String, source: std::io::Error },
    #[error("{daemon}: resolves to no address")]
    NoAddress { daemon: String },
    #[error("{addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("{addr}: timed out")]
    Timeout { addr: SocketAddr },
    #[error("{addr}: {why}")]
    Answer { addr: SocketAddr, why: String },
}

/// Whether an address means the same machine from every host.
fn shareable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified() || v4.is_link_local()),
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80),
    }
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
}

/// One daemon's graph prepared for merging: node kinds by name, nodes, edges (peers renamed).
type View = (HashMap<String, NodeKind>, Vec<Node>, Vec<Edge>);

/// One graph per daemon merged into one (see the module documentation). Graphs are expected
/// in this build's layout (`check` them first); the result is normalised.
pub fn merge(graphs: &[Snapshot]) -> Snapshot {
    // Listener addresses of traced services, by the names that claim them.
    let mut claims: HashMap<SocketAddr, BTreeSet<&str>> = HashMap::new();
    for g in graphs {
        for n in g.nodes.iter().filter(|n| n.kind == NodeKind::Service) {
            for a in n.addresses.iter().filter_map(|a| parse_addr(a)).filter(|a| shareable(a.ip())) {
                claims.entry(a).or_default().insert(&n.name);
            }
        }
    }
    let service_at = |a: &SocketAddr| match claims.get(a) {
        Some(names) if names.len() == 1 => names.iter().next().copied(),
        _ => None,
    };

    // Each graph with its peers renamed to the services listening on their addresses.
    let mut views: Vec<View> = Vec::with_capacity(graphs.len());
    for g in graphs {
        let mut rename: HashMap<&str, &str> = HashMap::new();
        for n in g.nodes.iter().filter(|n| n.kind == NodeKind::Peer) {
            let addrs: Vec<SocketAddr> = n.addresses.iter().filter_map(|a| parse_addr(a)).collect();
            let names: BTreeSet<Option<&str>> = addrs.iter().map(service_at).collect();
            if let (false, 1, Some(Some(svc))) = (addrs.is_empty(), names.len(), names.first()) {
                rename.insert(&n.name, svc);
            }
        }
        let to = |name: &str| rename.get(name).map(|s| (*s).to_owned()).unwrap_or_else(|| name.to_owned());
        let nodes: Vec<Node> = g
            .nodes
            .iter()
            .map(|n| match rename.get(n.name.as_str()) {
                Some(svc) => Node { name: (*svc).to_owned(), kind: NodeKind::Service, ..n.clone() },
                None => n.clone(),
            })
            .collect();
        let mut kinds: HashMap<String, NodeKind> = HashMap::new();
        for n in &nodes {
            let k = kinds.entry(n.name.clone()).or_insert(n.kind);
            *k = (*k).max(n.kind);
        }
        let edges = g.edges.iter().map(|e| Edge { parent: to(&e.parent), child: to(&e.child), ..e.clone() }).collect();
        views.push((kinds, nodes, edges));
    }

    // Calls counted by the caller's daemon are left out of the callee's.
    let host_ips: Vec<HashSet<IpAddr>> = graphs
        .iter()
        .map(|g| {
            g.host_ips
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .map(|ip| ip.to_canonical())
                .filter(|ip| shareable(*ip))
                .collect()
        })
        .collect();
    let counted_by_caller = |i: usize, e: &Edge, kinds: &HashMap<String, NodeKind>| -> bool {
        let Some(ip) = e.parent.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()) else { return false };
        if kinds.get(&e.parent) != Some(&NodeKind::Client)
            || kinds.get(&e.child) != Some(&NodeKind::Service)
            || !shareable(ip)
        {
            return false;
        }
        views.iter().enumerate().any(|(j, (_, _, edges))| {
            j != i
                && host_ips[j].contains(&ip)
                && edges.iter().any(|f| f.child == e.child && f.protocol == e.protocol && f.client_only > 0)
        })
    };
    let mut dropped = Dropped::default();
    let mut edges: BTreeMap<(String, String, String), Edge> = BTreeMap::new();
    for (i, (kinds, _, view_edges)) in views.iter().enumerate() {
        for e in view_edges {
            if counted_by_caller(i, e, kinds) {
                dropped.reconciled += e.call_count;
                continue;
            }
            edges
                .entry((e.parent.clone(), e.child.clone(), e.protocol.clone()))
                .and_modify(|m| m.add(e))
                .or_insert_with(|| e.clone());
        }
    }
    let used: BTreeSet<&str> = edges.values().flat_map(|e| [e.parent.as_str(), e.child.as_str()]).collect();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for n in views.iter().flat_map(|(_, nodes, _)| nodes).filter(|n| used.contains(n.name.as_str())) {
        nodes.entry(n.name.clone()).or_insert_with(|| Node::new(&n.name, n.kind)).absorb(
            n.kind,
            n.addresses.iter().cloned(),
            MAX_NODE_ADDRESSES,
        );
    }
    for g in graphs {
        dropped.add(&Dropped { reconciled: 0, ..g.dropped });
    }
    let mut out = Snapshot {
        version: FORMAT_VERSION,
        buckets_seconds: BUCKETS_SECONDS.to_vec(),
        sources: graphs.iter().flat_map(|g| g.sources.iter().cloned()).collect(),
        started_us: graphs.iter().map(|g| g.started_us).min().unwrap_or(0),
        generated_us: graphs.iter().map(|g| g.generated_us).max().unwrap_or(0),
        host_ips: graphs.iter().flat_map(|g| g.host_ips.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect(),
        nodes: nodes.into_values().collect(),
        edges: edges.into_values().collect(),
        dropped,
        pending_calls: graphs.iter().map(|g| g.pending_calls).sum(),
    };
    out.normalize();
    out
}

/// Whether a fetched graph has this build's layout (format version and histogram buckets).
pub fn check(g: &Snapshot) -> Result<(), String> {
    if g.version != FORMAT_VERSION {
        return Err(format!("graph format {} (this build reads {FORMAT_VERSION})", g.version));
    }
    if g.buckets_seconds != BUCKETS_SECONDS {
        return Err("histogram buckets differ from this build's".to_owned());
    }
    if let Some(e) = g.edges.iter().find(|e| !e.client.well_formed() || !e.server.well_formed()) {
        return Err(format!("malformed histogram on {} -> {}", e.parent, e.child));
    }
    Ok(())
}

/// Every address a `HOST:PORT` stands for (each A / AAAA record of a name), sorted.
pub async fn resolve(daemon: &str) -> Result<Vec<SocketAddr>, FleetError> {
    let addrs = tokio::net::lookup_host(daemon)
        .await
        .map_err(|source| FleetError::Resolve { daemon: daemon.to_owned(), source })?;
    let set: BTreeSet<SocketAddr> = addrs.collect();
    if set.is_empty() {
        return Err(FleetError::NoAddress { daemon: daemon.to_owned() });
    }
    Ok(set.into_iter().collect())
}

/// `GET /graph.json` from one daemon (`net`'s HTTP/1.1 client, the connection closed after the
/// answer).
pub async fn fetch(addr: SocketAddr, host: &str, timeout: Duration) -> Result<Snapshot, FleetError> {
    let bad = |why: String| FleetError::Answer { addr, why };
    let client = HttpClient::for_addr(addr, host, timeout);
    let body = client.get_body("/graph.json", MAX_ANSWER).await.map_err(|e| match e {
        HttpError::Io { source, .. } => FleetError::Io { addr, source },
        HttpError::Timeout { .. } => FleetError::Timeout { addr },
        HttpError::Status { status, .. } => {
            bad(format!("HTTP status {status} (is it a tracer daemon's admin endpoint?)"))
        }
        HttpError::Protocol { why, .. } => bad(why),
        other => bad(other.to_string()),
    })?;
    let graph: Snapshot = serde_json::from_slice(&body).map_err(|e| bad(format!("graph.json: {e}")))?;
    check(&graph).map_err(bad)?;
    Ok(graph)
}

/// Fetches every daemon's graph; failures are returned beside the graphs, per address.
pub async fn fetch_all(daemons: &[String], timeout: Duration) -> (Vec<Snapshot>, Vec<FleetError>) {
    let (answers, errors) = ask_each(daemons, move |addr, host| async move { fetch(addr, &host, timeout).await }).await;
    let graphs = answers
        .into_iter()
        .map(|(addr, mut g)| {
            if g.sources.is_empty() {
                g.sources.push(addr.to_string());
            }
            g
        })
        .collect();
    (graphs, errors)
}

/// Asks every address of every daemon (`HOST:PORT`, resolved) with `fetch`, all at once: the
/// answers in address order, whatever order they came in, and what could not be read.
pub async fn ask_each<T, F, Fut>(daemons: &[String], fetch: F) -> (Vec<(SocketAddr, T)>, Vec<FleetError>)
where
    T: Send + 'static,
    F: Fn(SocketAddr, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, FleetError>> + Send + 'static,
{
    let mut errors = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for daemon in daemons {
        match resolve(daemon).await {
            Ok(addrs) => {
                for addr in addrs {
                    let asked = fetch(addr, daemon.clone());
                    tasks.spawn(async move { (addr, asked.await) });
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((addr, Ok(answer))) => answers.push((addr, answer)),
            Ok((_, Err(e))) => errors.push(e),
            Err(e) => errors.push(FleetError::Answer {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                why: format!("fetch task failed: {e}"),
            }),
        }
    }
    answers.sort_by_key(|(addr, _)| *addr);
    (answers, errors)
}

/// The merged graph in the chosen format.
pub fn render(merged: &Snapshot, format: FleetFormat) -> String {
    match format {
        FleetFormat::Dot => dot::render(merged),
        FleetFormat::Json => serde_json::to_string_pretty(merged).unwrap_or_default() + "\n",
        FleetFormat::Jaeger => serde_json::to_string_pretty(&merged.jaeger_dependencies()).unwrap_or_default() + "\n",
    }
}

/// `tracer-daemon fleet`: fetch, merge, print on stdout; unreadable daemons on stderr.
pub async fn fleet_main(args: FleetArgs) -> anyhow::Result<()> {
    match args.query {
        Some(FleetQuery::Trace(trace)) => return super::fleet_trace::trace_main(trace).await,
        Some(FleetQuery::Search(search)) => return super::fleet_trace::search_main(search).await,
        None => {}
    }
    let (graphs, errors) = fetch_all(&args.daemons, Duration::from_millis(args.timeout_ms)).await;
    for e in &errors {
        tracing::warn!(error = %e, "daemon not merged");
    }
    if args.strict && !errors.is_empty() {
        anyhow::bail!("{} daemon(s) could not be read; first: {}", errors.len(), errors[0]);
    }
    if graphs.is_empty() {
        let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
        return Err(anyhow::anyhow!("no daemon could be read ({first})")).context("fleet view");
    }
    let merged = merge(&graphs);
    print!("{}", render(&merged, args.format));
    Ok(())
}
