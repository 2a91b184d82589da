//! What the dependency graph reads from one finished span: its side of a call (client or
//! server), the key both sides of that call share, the protocol, whether it failed, and how it
//! names the other end.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use crate::model::{Span, TagValue, TraceId};

/// A node or protocol name, shared between the graph's tables.
pub type Name = Arc<str>;

/// Longest service, peer or DNS name kept (bytes); longer names are cut at a char boundary.
const MAX_NAME: usize = 200;
/// Longest protocol name kept (bytes).
const MAX_PROTOCOL: usize = 32;

/// Where a span came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Assembled by this daemon from kernel events (carries `net.*` tuple tags).
    Kernel,
    /// Sent by an application's own tracing client to the agent listeners.
    App,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// The same call seen from either side: (trace id, id of the client-side span).
pub type CallKey = (TraceId, u64);

/// The callee as a client span names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Callee {
    /// The address the client connected to.
    Addr(SocketAddr),
    /// A name the span gives (`peer.service`, `net.peer.name`, `db.name`…).
    Named(Name),
}

/// One side of a call.
#[derive(Clone, Debug)]
pub struct Side {
    pub role: Role,
    pub source: Source,
    /// The emitting process's service name.
    pub service: Name,
    /// `http`, `redis`, `mysql`, or what the span's `db.system` / `rpc.system` says.
    pub protocol: Name,
    /// The span describes a database call (`db.system` is set).
    pub database: bool,
    pub error: bool,
    /// Unix epoch microseconds.
    pub start_us: i64,
    pub duration_us: i64,
    /// Client side: the callee.
    pub callee: Option<Callee>,
    /// Client side: a DNS name the request used for the callee's address (`http.host`).
    pub dns: Option<(SocketAddr, Name)>,
    /// Client side: this host's address on the connection (`net.host.ip`).
    pub host_ip: Option<IpAddr>,
    /// Server side: the caller's address, without its (ephemeral) port.
    pub caller_ip: Option<IpAddr>,
    /// Server side: the local endpoint the request arrived on (the listener's address).
    pub listen: Option<SocketAddr>,
}

/// Why a span does not describe a call between two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// No `span.kind`, or a kind other than client / server (internal, producer, consumer).
    Kind,
}

fn tag<'a>(span: &'a Span, key: &str) -> Option<&'a TagValue> {
    span.tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

fn tag_str<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match tag(span, key) {
        Some(TagValue::Str(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

fn tag_long(span: &Span, key: &str) -> Option<i64> {
    match tag(span, key) {
        Some(TagValue::Long(v)) => Some(*v),
        Some(TagValue::Str(s)) => s.parse().ok(),
        _ => None,
    }
}

fn port_tag(span: &Span, keys: &[&str]) -> Option<u16> {
    keys.iter().find_map(|k| tag_long(span, k)).and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0)
}

/// Cuts a name to `max` bytes at a char boundary.
pub fn bounded(s: &str, max: usize) -> Name {
    if s.len() <= max {
        return Arc::from(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Arc::from(&s[..end])
}

/// An IP address in its canonical form (IPv4-mapped IPv6 as IPv4).
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn ip_tag(span: &Span, key: &str) -> Option<IpAddr> {
    match tag(span, key)? {
        TagValue::Str(s) => s.parse::<IpAddr>().ok().map(canonical),
        // Jaeger clients send `peer.ipv4` as a 32-bit integer.
        TagValue::Long(v) => u32::try_from(*v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        _ => None,
    }
}

/// Whether the span failed: `error` true, or an OpenTelemetry status of `ERROR`.
fn failed(span: &Span) -> bool {
    match tag(span, "error") {
        Some(TagValue::Bool(b)) => return *b,
        Some(TagValue::Str(s)) if s.eq_ignore_ascii_case("true") => return true,
        _ => {}
    }
    tag_str(span, "otel.status_code").is_some_and(|s| s.eq_ignore_ascii_case("error"))
}

/// The protocol and whether it is a database.
fn protocol(span: &Span) -> (Name, bool) {
    if let Some(db) = tag_str(span, "db.system") {
        return (bounded(&db.to_ascii_lowercase(), MAX_PROTOCOL), true);
    }
    if ["http.method", "http.request.method", "http.status_code", "http.response.status_code"]
        .iter()
        .any(|k| tag(span, k).is_some())
    {
        return (Arc::from("http"), false);
    }
    for key in ["rpc.system", "messaging.system"] {
        if let Some(v) = tag_str(span, key) {
            return (bounded(&v.to_ascii_lowercase(), MAX_PROTOCOL), false);
        }
    }
    (Arc::from("other"), false)
}

/// The host part of a `Host` header when it is a DNS name: not an IP literal, not `localhost`
/// (which names a different machine on every host), only DNS characters. Lowercase, with the
/// port kept when the header gave one.
pub fn dns_name(host_header: &str) -> Option<Name> {
    let value = host_header.trim().to_ascii_lowercase();
    if value.is_empty() || value.len() > 253 || value.starts_with('[') {
        return None;
    }
    let host = match value.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        Some(_) => return None,
        None => value.as_str(),
    };
    let host = host.trim_end_matches('.');
    if host.is_empty()
        || host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return None;
    }
    Some(Arc::from(value.as_str()))
}

/// The span's side of a call, and the key that pairs it with the other side (`None`: the span
/// can never be paired, it is a server span that starts its trace).
pub fn read(span: &Span, source: Source) -> Result<(Option<CallKey>, Side), Ignored> {
    let role = match span.kind().map(str::to_ascii_lowercase).as_deref() {
        Some("client") => Role::Client,
        Some("server") => Role::Server,
        _ => return Err(Ignored::Kind),
    };
    let (protocol, database) = protocol(span);
    let mut side = Side {
        role,
        source,
        service: bounded(&span.process.service_name, MAX_NAME),
        protocol,
        database,
        error: failed(span),
        start_us: span.start_us,
        duration_us: span.duration_us.max(0),
        callee: None,
        dns: None,
        host_ip: None,
        caller_ip: None,
        listen: None,
    };
    let peer_addr = match (ip_tag(span, "net.peer.ip").or_else(|| ip_tag(span, "peer.ipv4")), port_tag(span, &["net.peer.port", "peer.port"])) {
        (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
        _ => None,
    };
    let key = match role {
        Role::Client => {
            side.callee = Some(callee(span, source, peer_addr));
            side.host_ip = ip_tag(span, "net.host.ip");
            if let (Some(addr), Some(name)) = (peer_addr, tag_str(span, "http.host").and_then(dns_name)) {
                side.dns = Some((addr, name));
            }
            // A client span that adopted a context carried by its own request (an instrumented
            // app's header) describes the same call as the app's span named in that context:
            // the server side adopts the same parent.
            let adopted = source == Source::Kernel
                && matches!(span.tag_str("tracer.link"), Some("traceparent" | "uber-trace-id" | "sql-comment"));
            let id = if adopted && span.parent_span_id != 0 { span.parent_span_id } else { span.span_id };
            Some((span.trace_id, id))
        }
        Role::Server => {
            side.caller_ip = ip_tag(span, "net.peer.ip").or_else(|| ip_tag(span, "peer.ipv4"));
            if let (Some(ip), Some(port)) = (ip_tag(span, "net.host.ip"), port_tag(span, &["net.host.port"])) {
                side.listen = Some(SocketAddr::new(ip, port));
            }
            (span.parent_span_id != 0).then_some((span.trace_id, span.parent_span_id))
        }
    };
    Ok((key, side))
}

fn callee(span: &Span, source: Source, peer_addr: Option<SocketAddr>) -> Callee {
    if source == Source::Kernel
        && let Some(addr) = peer_addr
    {
        return Callee::Addr(addr);
    }
    // An application names its peer: the logical name first, then the host it dialled.
    if let Some(name) = tag_str(span, "peer.service") {
        return match name.parse::<SocketAddr>() {
            Ok(a) => Callee::Addr(SocketAddr::new(canonical(a.ip()), a.port())),
            Err(_) => Callee::Named(bounded(name, MAX_NAME)),
        };
    }
    if let Some(host) = ["net.peer.name", "server.address", "peer.hostname"].iter().find_map(|k| tag_str(span, k)) {
        let name = match port_tag(span, &["net.peer.port", "server.port", "peer.port"]) {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        return Callee::Named(bounded(&name, MAX_NAME));
    }
    if let Some(addr) = peer_addr {
        return Callee::Addr(addr);
    }
    if let Some(db) = tag_str(span, "db.name") {
        return Callee::Named(bounded(db, MAX_NAME));
    }
    Callee::Named(Arc::from("unknown"))
}
