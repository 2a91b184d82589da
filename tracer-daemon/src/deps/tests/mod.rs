//! Dependency-graph tests with synthetic spans: the counting rules, naming, bounds, outputs and
//! the fleet merge. Spans are built as span assembly and the agent receiver produce them.

mod fleet;
mod graph;
mod output;

use std::sync::Arc;

use super::{Graph, GraphConfig, Snapshot};
use crate::model::{
    Attributes, Body, JaegerSpan, Link, Process, Span, SpanKind, Status, Tag, TagValue, TraceId, Traced, attrs,
};

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

/// A span under construction, as tags; `kernel` spans become typed spans the way span
/// assembly builds them, the others enter as apps' spans do.
pub struct B(pub JaegerSpan, bool);

impl B {
    pub fn new(kind: &str, service: &str, trace: u64, id: u64, parent: u64) -> B {
        B(
            JaegerSpan {
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
            },
            false,
        )
    }

    /// Built by span assembly from kernel events.
    pub fn kernel(mut self) -> B {
        self.1 = true;
        self
    }

    pub fn tag(mut self, key: &str, value: &str) -> B {
        self.0.tags.push(Tag::str(key.to_owned(), value));
        self
    }

    pub fn long(mut self, key: &str, value: i64) -> B {
        self.0.tags.push(Tag::long(key.to_owned(), value));
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
        if self.1 { traced(self.0) } else { Span::from_app(self.0) }
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
        .kernel()
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
        .kernel()
        .tag("net.peer.ip", &cip)
        .long("net.peer.port", cport)
        .tag("net.host.ip", &lip)
        .long("net.host.port", lport)
}

/// The kernel spans of one same-host call: client of `caller` (span `id`) and server of
/// `callee` (span `id + 1`) on loopback.
pub fn same_host_call(
    g: &mut Graph,
    caller: &str,
    callee: &str,
    listen: &str,
    trace: u64,
    id: u64,
    proto: impl Fn(B) -> B,
) {
    let client = proto(kclient(caller, trace, id, 0, "127.0.0.1", listen)).span();
    let server = proto(kserver(callee, trace, id + 1, id, listen, "127.0.0.1:45000").link("same-host-tuple")).span();
    // The server's span usually finishes first.
    g.observe(&server);
    g.observe(&client);
}

/// The typed span span assembly would have built with these tags.
fn traced(j: JaegerSpan) -> Span {
    let get = |k: &str| j.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
    let text = |k: &str| match get(k) {
        Some(TagValue::Str(s)) => Some(s),
        _ => None,
    };
    let long = |k: &str| match get(k) {
        Some(TagValue::Long(v)) => Some(v),
        _ => None,
    };
    let addr = |ip: &str, port: &str| Some(std::net::SocketAddr::new(text(ip)?.parse().ok()?, long(port)? as u16));
    let attrs = match text("db.system").as_deref() {
        Some("redis") => Attributes::Redis(Default::default()),
        Some("mysql") => Attributes::Mysql(Default::default()),
        _ if text("rpc.system").as_deref() == Some("grpc") => {
            Attributes::Http2(attrs::Http2 { grpc: Some(attrs::Grpc::default()), ..Default::default() })
        }
        _ => Attributes::Http(attrs::Http { method: "GET".into(), host: text("http.host"), ..Default::default() }),
    };
    let link = text("tracer.link").and_then(|l| Link::ALL.into_iter().find(|x| x.as_str() == l));
    let error = matches!(get("error"), Some(TagValue::Bool(true)));
    let traced = Traced {
        kind: SpanKind::parse(j.kind().expect("kernel spans have a kind")).expect("client or server"),
        pid: 1,
        tid: 0,
        local: addr("net.host.ip", "net.host.port"),
        peer: addr("net.peer.ip", "net.peer.port"),
        link,
        ambiguous: false,
        status: if error { Status::Error { message: "failed".into(), log_at_us: None } } else { Status::Ok },
        attrs,
        library: None,
        truncated: false,
        data_lost_at_us: None,
        capture_degraded: false,
    };
    Span {
        trace_id: j.trace_id,
        span_id: j.span_id,
        parent_span_id: j.parent_span_id,
        operation: j.operation,
        flags: j.flags,
        start_us: j.start_us,
        duration_us: j.duration_us,
        process: j.process,
        body: Body::Traced(Box::new(traced)),
    }
}
