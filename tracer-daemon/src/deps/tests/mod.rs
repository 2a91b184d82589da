//! Dependency-graph tests with synthetic spans: the counting rules, naming, bounds, outputs and
//! the fleet merge. Spans are built as span assembly and the agent receiver produce them.

mod fleet;
mod graph;
mod output;

use std::sync::Arc;

use super::{Graph, GraphConfig, Snapshot};
use crate::model::{Process, Span, Tag, TraceId};

/// The graph's clock at the start of every test (Unix epoch µs).
pub const T0: i64 = 1_700_000_000_000_000;
/// The default pairing window (µs).
pub const WINDOW: i64 = 5_000_000;

pub fn graph() -> Graph {
    graph_with(GraphConfig::default())
}

pub fn graph_with(cfg: GraphConfig) -> Graph {
    let mut g = Graph::new(cfg);
    g.advance(T0);
    g
}

/// The snapshot once every pairing window is over.
pub fn settled(g: &mut Graph) -> Snapshot {
    g.advance(T0 + 10 * WINDOW);
    g.snapshot()
}

/// A span under construction.
pub struct B(pub Span);

impl B {
    pub fn new(kind: &str, service: &str, trace: u64, id: u64, parent: u64) -> B {
        B(Span {
            trace_id: TraceId { high: 0, low: trace },
            span_id: id,
            parent_span_id: parent,
            operation: "op".into(),
            flags: 1,
            start_us: T0,
            duration_us: 1_000,
            tags: vec![Tag::str("span.kind", kind)],
            logs: vec![],
            references: vec![],
            process: Arc::new(Process { service_name: service.into(), tags: vec![] }),
        })
    }

    pub fn tag(mut self, key: &str, value: &str) -> B {
        self.0.tags.push(Tag::str(key, value));
        self
    }

    pub fn long(mut self, key: &str, value: i64) -> B {
        self.0.tags.push(Tag::long(key, value));
        self
    }

    pub fn http(self) -> B {
        self.tag("http.method", "GET")
    }

    pub fn db(self, system: &str) -> B {
        self.tag("db.system", system)
    }

    pub fn error(mut self) -> B {
        self.0.tags.push(Tag::bool("error", true));
        self
    }

    pub fn dur_us(mut self, us: i64) -> B {
        self.0.duration_us = us;
        self
    }

    pub fn link(self, how: &str) -> B {
        self.tag("tracer.link", how)
    }

    pub fn span(self) -> Span {
        self.0
    }
}

fn split(addr: &str) -> (String, i64) {
    let a: std::net::SocketAddr = addr.parse().unwrap();
    (a.ip().to_string(), a.port() as i64)
}

/// A kernel client span of `service` on host `host_ip` calling `peer` (`ip:port`).
pub fn kclient(service: &str, trace: u64, id: u64, parent: u64, host_ip: &str, peer: &str) -> B {
    let (ip, port) = split(peer);
    B::new("client", service, trace, id, parent)
        .tag("net.peer.ip", &ip)
        .long("net.peer.port", port)
        .tag("net.host.ip", host_ip)
        .long("net.host.port", 40_000 + (id % 20_000) as i64)
        .tag("peer.service", peer)
}

/// A kernel server span of `service` listening on `listen`, called from `caller` (`ip:port`).
pub fn kserver(service: &str, trace: u64, id: u64, parent: u64, listen: &str, caller: &str) -> B {
    let (lip, lport) = split(listen);
    let (cip, cport) = split(caller);
    B::new("server", service, trace, id, parent)
        .tag("net.peer.ip", &cip)
        .long("net.peer.port", cport)
        .tag("net.host.ip", &lip)
        .long("net.host.port", lport)
}

/// The kernel spans of one same-host call: client of `caller` (span `id`) and server of
/// `callee` (span `id + 1`) on loopback.
pub fn same_host_call(g: &mut Graph, caller: &str, callee: &str, listen: &str, trace: u64, id: u64, proto: impl Fn(B) -> B) {
    let client = proto(kclient(caller, trace, id, 0, "127.0.0.1", listen)).span();
    let server = proto(kserver(callee, trace, id + 1, id, listen, "127.0.0.1:45000").link("same-host-tuple")).span();
    // The server's span usually finishes first.
    g.observe(&server);
    g.observe(&client);
}
