//! What the dependency graph reads from one finished span: its side of a call (client or
//! server), the key both sides of that call share, the protocol, whether it failed, and how it
//! names the other end.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use crate::{
    model::{AppSpan, Attributes, Body, Span, SpanKind, Tag, TagValue, TraceId, Traced},
    render::keys as k,
};

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

/// An app span's tags, as its tracing client sent them.
type Tags = [Tag];

fn tag<'a>(span: &'a Tags, key: &str) -> Option<&'a TagValue> {
    span.iter().find(|t| t.key == key).map(|t| &t.value)
}

fn tag_str<'a>(span: &'a Tags, key: &str) -> Option<&'a str> {
    match tag(span, key) {
        Some(TagValue::Str(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

fn tag_long(span: &Tags, key: &str) -> Option<i64> {
    match tag(span, key) {
        Some(TagValue::Long(v)) => Some(*v),
        Some(TagValue::Str(s)) => s.parse().ok(),
        _ => None,
    }
}

fn port_tag(span: &Tags, keys: &[&str]) -> Option<u16> {
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

fn ip_tag(span: &Tags, key: &str) -> Option<IpAddr> {
    match tag(span, key)? {
        TagValue::Str(s) => s.parse::<IpAddr>().ok().map(canonical),
        // Jaeger clients send `peer.ipv4` as a 32-bit integer.
        TagValue::Long(v) => u32::try_from(*v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        _ => None,
    }
}

/// Whether the span failed: `error` true, or an OpenTelemetry status of `ERROR`.
fn failed(span: &Tags) -> bool {
    match tag(span, k::ERROR) {
        Some(TagValue::Bool(b)) => return *b,
        Some(TagValue::Str(s)) if s.eq_ignore_ascii_case("true") => return true,
        _ => {}
    }
    tag_str(span, k::OTEL_STATUS_CODE).is_some_and(|s| s.eq_ignore_ascii_case("error"))
}

/// The protocol and whether it is a database.
fn protocol(span: &Tags) -> (Name, bool) {
    if let Some(db) = tag_str(span, k::DB_SYSTEM) {
        return (bounded(&db.to_ascii_lowercase(), MAX_PROTOCOL), true);
    }
    if [k::HTTP_METHOD, k::HTTP_REQUEST_METHOD, k::HTTP_STATUS_CODE, k::HTTP_RESPONSE_STATUS_CODE]
        .iter()
        .any(|k| tag(span, k).is_some())
    {
        return (Arc::from("http"), false);
    }
    for key in [k::RPC_SYSTEM, k::MESSAGING_SYSTEM] {
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
    let role = match span.kind() {
        Some(SpanKind::Client) => Role::Client,
        Some(SpanKind::Server) => Role::Server,
        _ => return Err(Ignored::Kind),
    };
    match &span.body {
        Body::Traced(t) => Ok(read_traced(span, t, role, source)),
        Body::App(a) => Ok(read_app(span, a, role, source)),
    }
}

fn side(span: &Span, role: Role, source: Source, (protocol, database): (Name, bool), error: bool) -> Side {
    Side {
        role,
        source,
        service: bounded(&span.process.service_name, MAX_NAME),
        protocol,
        database,
        error,
        start_us: span.start_us,
        duration_us: span.duration_us.max(0),
        callee: None,
        dns: None,
        host_ip: None,
        caller_ip: None,
        listen: None,
    }
}

fn canonical_addr(a: SocketAddr) -> Option<SocketAddr> {
    (a.port() != 0).then(|| SocketAddr::new(canonical(a.ip()), a.port()))
}

/// A span this daemon built: its facts are typed.
fn read_traced(span: &Span, t: &Traced, role: Role, source: Source) -> (Option<CallKey>, Side) {
    let protocol = match t.attrs.db_system() {
        Some(db) => (Arc::from(db), true),
        None => (Arc::from(t.attrs.protocol()), false),
    };
    let mut side = side(span, role, source, protocol, t.status.is_error());
    let peer_addr = t.peer.and_then(canonical_addr);
    let key = match role {
        Role::Client => {
            side.callee = Some(match peer_addr {
                Some(addr) => Callee::Addr(addr),
                None => traced_callee_name(&t.attrs),
            });
            side.host_ip = t.local.map(|l| canonical(l.ip()));
            if let (Some(addr), Some(name)) = (peer_addr, t.attrs.http_host().and_then(dns_name)) {
                side.dns = Some((addr, name));
            }
            // A client span that adopted a context carried by its own request (an instrumented
            // app's header) describes the same call as the app's span named in that context:
            // the server side adopts the same parent.
            let adopted = source == Source::Kernel && t.link.is_some_and(|l| l.is_adopted());
            let id = if adopted && span.parent_span_id != 0 { span.parent_span_id } else { span.span_id };
            Some((span.trace_id, id))
        }
        Role::Server => {
            side.caller_ip = t.peer.map(|p| canonical(p.ip()));
            side.listen = t.local.and_then(canonical_addr);
            (span.parent_span_id != 0).then_some((span.trace_id, span.parent_span_id))
        }
    };
    (key, side)
}

/// How a client span with no connection (a library call that touched no socket) names its peer.
fn traced_callee_name(attrs: &Attributes) -> Callee {
    if let Attributes::Mysql(m) = attrs {
        if let Some(host) = &m.peer_name {
            return Callee::Named(bounded(host, MAX_NAME));
        }
        if let Some(db) = &m.database {
            return Callee::Named(bounded(db, MAX_NAME));
        }
    }
    Callee::Named(Arc::from("unknown"))
}

/// An app's span: what its tags say, by the conventions Jaeger clients and OpenTelemetry use.
fn read_app(span: &Span, app: &AppSpan, role: Role, source: Source) -> (Option<CallKey>, Side) {
    let tags = app.tags.as_slice();
    let mut side = side(span, role, source, protocol(tags), failed(tags));
    let peer_ip = ip_tag(tags, k::NET_PEER_IP).or_else(|| ip_tag(tags, k::PEER_IPV4));
    let peer_addr = match (peer_ip, port_tag(tags, &[k::NET_PEER_PORT, k::PEER_PORT])) {
        (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
        _ => None,
    };
    let key = match role {
        Role::Client => {
            side.callee = Some(callee(tags, peer_addr));
            side.host_ip = ip_tag(tags, k::NET_HOST_IP);
            if let (Some(addr), Some(name)) = (peer_addr, tag_str(tags, k::HTTP_HOST).and_then(dns_name)) {
                side.dns = Some((addr, name));
            }
            Some((span.trace_id, span.span_id))
        }
        Role::Server => {
            side.caller_ip = peer_ip;
            if let (Some(ip), Some(port)) = (ip_tag(tags, k::NET_HOST_IP), port_tag(tags, &[k::NET_HOST_PORT])) {
                side.listen = Some(SocketAddr::new(ip, port));
            }
            (span.parent_span_id != 0).then_some((span.trace_id, span.parent_span_id))
        }
    };
    (key, side)
}

fn callee(tags: &Tags, peer_addr: Option<SocketAddr>) -> Callee {
    // An application names its peer: the logical name first, then the host it dialled.
    if let Some(name) = tag_str(tags, k::PEER_SERVICE) {
        return match name.parse::<SocketAddr>() {
            Ok(a) => Callee::Addr(SocketAddr::new(canonical(a.ip()), a.port())),
            Err(_) => Callee::Named(bounded(name, MAX_NAME)),
        };
    }
    if let Some(host) =
        [k::NET_PEER_NAME, k::SERVER_ADDRESS, k::PEER_HOSTNAME].iter().find_map(|key| tag_str(tags, key))
    {
        let name = match port_tag(tags, &[k::NET_PEER_PORT, k::SERVER_PORT, k::PEER_PORT]) {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        return Callee::Named(bounded(&name, MAX_NAME));
    }
    if let Some(addr) = peer_addr {
        return Callee::Addr(addr);
    }
    if let Some(db) = tag_str(tags, k::DB_NAME) {
        return Callee::Named(bounded(db, MAX_NAME));
    }
    Callee::Named(Arc::from("unknown"))
}
