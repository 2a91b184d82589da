//! Jaeger rendering: a typed [`Span`] becomes a [`JaegerSpan`] with the conventional tags and
//! an error log. Apps' spans pass through with the tags they came with.

use std::net::SocketAddr;

use super::{keys as k, text};
use crate::model::{
    AppSpan, Attributes, Body, JaegerSpan, Log, Span, SpanKind, Status, Tag, Traced,
    attrs::{Http, Http2, LibraryCall, Mysql, Redis},
};

/// The span as Jaeger's model has it (the span itself stays as it is: the store and every
/// destination render the same shared span).
pub fn render(span: &Span) -> JaegerSpan {
    let Span { trace_id, span_id, parent_span_id, operation, flags, start_us, duration_us, process, body } = span;
    let (tags, logs, references) = match body {
        Body::Traced(t) => {
            let (tags, logs) = traced(t);
            (tags, logs, Vec::new())
        }
        Body::App(a) => {
            let AppSpan { tags, logs, references, .. } = &**a;
            (tags.clone(), logs.clone(), references.clone())
        }
    };
    JaegerSpan {
        trace_id: *trace_id,
        span_id: *span_id,
        parent_span_id: *parent_span_id,
        operation: operation.clone(),
        flags: *flags,
        start_us: *start_us,
        duration_us: *duration_us,
        tags,
        logs,
        references,
        process: process.clone(),
    }
}

/// The tags and logs of a span the daemon built.
pub fn traced(t: &Traced) -> (Vec<Tag>, Vec<Log>) {
    let mut tags = Vec::with_capacity(18);
    tags.push(Tag::str(k::SPAN_KIND, t.kind.as_str()));
    attribute_tags(&t.attrs, t.truncated, &mut tags);
    evidence_tags(t, &mut tags);
    let mut logs = Vec::new();
    if let Status::Error { message, log_at_us } = &t.status {
        tags.push(Tag::bool(k::ERROR, true));
        tags.push(Tag::str(k::ERROR_MESSAGE, message.clone()));
        if let Some(ts) = log_at_us {
            logs.push(Log {
                timestamp_us: *ts,
                fields: vec![Tag::str(k::LOG_EVENT, "error"), Tag::str(k::LOG_MESSAGE, message.clone())],
            });
        }
    }
    if let Some(lib) = &t.library {
        library_tags(lib, &t.attrs, &mut tags);
    }
    if let Some(ts) = t.data_lost_at_us {
        logs.push(Log {
            timestamp_us: ts,
            fields: vec![Tag::str(k::LOG_EVENT, k::EVENT_DATA_LOST), Tag::str(k::LOG_MESSAGE, k::DATA_LOST_MESSAGE)],
        });
    }
    (tags, logs)
}

/// The connection's endpoints, the thread and the link evidence of a span the daemon built.
pub(super) fn evidence_tags(t: &Traced, tags: &mut Vec<Tag>) {
    if let (Some(local), Some(peer)) = (t.local, t.peer) {
        address_tags(t.kind, local, peer, tags);
    }
    if t.tid != 0 {
        tags.push(Tag::long(k::THREAD_ID, i64::from(t.tid)));
    }
    if let Some(link) = t.link {
        tags.push(Tag::str(k::TRACER_LINK, link.as_str()));
    }
    if t.ambiguous {
        tags.push(Tag::bool(k::TRACER_LINK_AMBIGUOUS, true));
    }
    if t.data_lost_at_us.is_some() {
        tags.push(Tag::bool(k::TRACER_DATA_LOST, true));
    }
    if t.capture_degraded {
        tags.push(Tag::bool(k::TRACER_CAPTURE_DEGRADED, true));
    }
}

fn address_tags(kind: SpanKind, local: SocketAddr, peer: SocketAddr, tags: &mut Vec<Tag>) {
    tags.push(Tag::str(k::NET_PEER_IP, text::ip(peer.ip())));
    tags.push(Tag::long(k::NET_PEER_PORT, i64::from(peer.port())));
    tags.push(Tag::str(k::NET_HOST_IP, text::ip(local.ip())));
    tags.push(Tag::long(k::NET_HOST_PORT, i64::from(local.port())));
    if kind == SpanKind::Client {
        // A peer that is not traced is named by its address.
        tags.push(Tag::str(k::PEER_SERVICE, text::socket_addr(peer)));
    }
}

/// The protocol's tags (and `tracer.truncated`), in the order the parsers learn them.
pub fn attribute_tags(attrs: &Attributes, truncated: bool, tags: &mut Vec<Tag>) {
    match attrs {
        Attributes::Http(h) => http(h, tags),
        Attributes::Http2(h) => http2(h, tags),
        Attributes::Redis(r) => redis(r, tags),
        Attributes::Mysql(m) => mysql(m, tags),
    }
    if truncated {
        tags.push(Tag::bool(k::TRACER_TRUNCATED, true));
    }
}

fn opt_str(tags: &mut Vec<Tag>, key: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        tags.push(Tag::str(key, v.clone()));
    }
}

fn opt_long(tags: &mut Vec<Tag>, key: &'static str, v: Option<i64>) {
    if let Some(v) = v {
        tags.push(Tag::long(key, v));
    }
}

fn http(h: &Http, tags: &mut Vec<Tag>) {
    tags.push(Tag::str(k::HTTP_METHOD, h.method.clone()));
    tags.push(Tag::str(k::HTTP_TARGET, h.target.clone()));
    opt_str(tags, k::HTTP_HOST, &h.host);
    tags.push(Tag::str(k::HTTP_FLAVOR, h.flavor));
    opt_long(tags, k::HTTP_REQUEST_CONTENT_LENGTH, h.request_content_length);
    opt_long(tags, k::HTTP_STATUS_CODE, h.status_code.map(i64::from));
    opt_long(tags, k::HTTP_RESPONSE_CONTENT_LENGTH, h.response_content_length);
}

fn http2(h: &Http2, tags: &mut Vec<Tag>) {
    match &h.grpc {
        Some(g) => {
            tags.push(Tag::str(k::RPC_SYSTEM, "grpc"));
            opt_str(tags, k::RPC_SERVICE, &g.service);
            opt_str(tags, k::RPC_METHOD, &g.method);
            opt_long(tags, k::RPC_GRPC_STATUS_CODE, g.status_code);
            opt_str(tags, k::RPC_GRPC_MESSAGE, &g.message);
            opt_long(tags, k::RPC_GRPC_REQUEST_MESSAGES, g.request_messages.map(i64::from));
            opt_long(tags, k::RPC_GRPC_RESPONSE_MESSAGES, g.response_messages.map(i64::from));
            opt_str(tags, k::NET_PEER_NAME, &h.authority);
        }
        None => {
            opt_str(tags, k::HTTP_METHOD, &h.method);
            opt_str(tags, k::HTTP_TARGET, &h.path);
            opt_str(tags, k::HTTP_HOST, &h.authority);
        }
    }
    tags.push(Tag::str(k::HTTP_FLAVOR, "2.0"));
    opt_long(tags, k::HTTP_STATUS_CODE, h.status_code.map(i64::from));
    tags.push(Tag::long(k::HTTP2_STREAM_ID, i64::from(h.stream_id)));
    if h.headers_incomplete {
        tags.push(Tag::bool(k::HTTP2_HEADERS_INCOMPLETE, true));
    }
}

fn redis(r: &Redis, tags: &mut Vec<Tag>) {
    tags.push(Tag::str(k::DB_SYSTEM, "redis"));
    opt_str(tags, k::DB_OPERATION, &r.operation);
    opt_str(tags, k::DB_STATEMENT, &r.statement);
}

fn mysql(m: &Mysql, tags: &mut Vec<Tag>) {
    tags.push(Tag::str(k::DB_SYSTEM, "mysql"));
    opt_str(tags, k::DB_NAME, &m.database);
    opt_str(tags, k::DB_USER, &m.user);
    opt_str(tags, k::DB_OPERATION, &m.operation);
    opt_str(tags, k::DB_STATEMENT, &m.statement);
    opt_long(tags, k::DB_MYSQL_ROWS, m.rows);
    opt_long(tags, k::DB_MYSQL_ERROR_CODE, m.error_code);
    opt_str(tags, k::NET_PEER_NAME, &m.peer_name);
    opt_long(tags, k::DB_MYSQL_CONNECT_PORT, m.connect_port);
}

pub(super) fn library_tags(lib: &LibraryCall, attrs: &Attributes, tags: &mut Vec<Tag>) {
    tags.push(Tag::str(k::CODE_FUNCTION, lib.function));
    let key = if lib.system == "mysql" { k::DB_MYSQL_LIBRARY } else { k::DB_REDIS_LIBRARY };
    tags.push(Tag::str(key, lib.library));
    tags.push(Tag::str(k::TRACER_SOURCE, "uprobe"));
    if let Some(t) = lib.reply_type {
        tags.push(Tag::str(k::DB_REDIS_REPLY_TYPE, t));
    }
    opt_long(tags, k::DB_MYSQL_RETURN_CODE, lib.return_code);
    // The server's error number seen on the wire is the same fact.
    let wire_code = matches!(attrs, Attributes::Mysql(m) if m.error_code.is_some());
    if !wire_code {
        opt_long(tags, k::DB_MYSQL_ERROR_CODE, lib.error_code);
    }
}
