//! OTLP rendering: a typed [`Span`] becomes an OTLP span (ids as 16 and 8 bytes, kind, status,
//! attributes after the semantic conventions, events from error logs and span logs, links from
//! references), and a [`Process`] becomes the resource its spans are sent under.

use std::sync::Arc;

pub use opentelemetry_proto::tonic as proto;
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use proto::resource::v1::Resource;
use proto::trace::v1::{
    self as trace, ResourceSpans, ScopeSpans,
    span::{Event, Link as SpanLink, SpanKind as Kind},
    status::StatusCode,
};

use super::{jaeger, keys as k};
use crate::model::{AppSpan, Body, Process, RefKind, Span, SpanKind, Status, Tag, TagValue, TraceId, Traced};

/// A span as OTLP has it, with the process whose resource it is sent under.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpSpan {
    pub process: Arc<Process>,
    pub span: trace::Span,
}

/// The span as OTLP's model has it (the span itself stays as it is).
pub fn render(span: &Span) -> OtlpSpan {
    let Span { trace_id, span_id, parent_span_id, operation, flags, start_us, duration_us, process, body } = span;
    let (trace_id, span_id, parent_span_id, flags, start_us, duration_us) =
        (*trace_id, *span_id, *parent_span_id, *flags, *start_us, *duration_us);
    let mut out = trace::Span {
        trace_id: trace_id_bytes(trace_id),
        span_id: span_id_bytes(span_id),
        parent_span_id: span_id_bytes(parent_span_id),
        // The W3C trace flags (sampled) in the low byte.
        flags: u32::try_from(flags & 0xff).unwrap_or(0),
        name: operation.clone(),
        start_time_unix_nano: us_to_ns(start_us),
        end_time_unix_nano: us_to_ns(start_us.saturating_add(duration_us.max(0))),
        ..Default::default()
    };
    match body {
        Body::Traced(t) => traced(t, &mut out),
        Body::App(a) => app(a, trace_id, &mut out),
    }
    OtlpSpan { process: process.clone(), span: out }
}

/// Big-endian, high half first: the 16 bytes OTLP wants.
pub fn trace_id_bytes(t: TraceId) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&t.high.to_be_bytes());
    v.extend_from_slice(&t.low.to_be_bytes());
    v
}

/// 8 bytes, big-endian; empty for 0 (no parent).
pub fn span_id_bytes(id: u64) -> Vec<u8> {
    if id == 0 { Vec::new() } else { id.to_be_bytes().to_vec() }
}

fn us_to_ns(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0).saturating_mul(1000)
}

/// The OTLP span kind.
pub fn kind(kind: Option<SpanKind>) -> Kind {
    match kind {
        None => Kind::Unspecified,
        Some(SpanKind::Client) => Kind::Client,
        Some(SpanKind::Server) => Kind::Server,
        Some(SpanKind::Internal) => Kind::Internal,
        Some(SpanKind::Producer) => Kind::Producer,
        Some(SpanKind::Consumer) => Kind::Consumer,
    }
}

/// A tag's value, typed.
pub fn value(v: &TagValue) -> AnyValue {
    let value = match v {
        TagValue::Str(s) => Value::StringValue(s.clone()),
        TagValue::Double(d) => Value::DoubleValue(*d),
        TagValue::Bool(b) => Value::BoolValue(*b),
        TagValue::Long(l) => Value::IntValue(*l),
        TagValue::Binary(b) => Value::BytesValue(b.clone()),
    };
    AnyValue { value: Some(value) }
}

pub fn key_value(t: &Tag) -> KeyValue {
    KeyValue { key: t.key.to_string(), value: Some(value(&t.value)), ..Default::default() }
}

fn str_kv(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

fn error_status(message: String) -> Option<trace::Status> {
    Some(trace::Status { message, code: StatusCode::Error as i32 })
}

/// A span the daemon built: the protocol's attributes, addresses, link evidence, library details.
fn traced(t: &Traced, out: &mut trace::Span) {
    out.kind = kind(Some(t.kind)) as i32;
    let mut tags = Vec::with_capacity(16);
    jaeger::attribute_tags(&t.attrs, t.truncated, &mut tags);
    jaeger::evidence_tags(t, &mut tags);
    if let Some(lib) = &t.library {
        jaeger::library_tags(lib, &t.attrs, &mut tags);
    }
    out.attributes = tags.iter().map(key_value).collect();
    if let Some(ts) = t.data_lost_at_us {
        out.events.push(Event {
            time_unix_nano: us_to_ns(ts),
            name: k::EVENT_DATA_LOST.to_owned(),
            attributes: vec![str_kv(k::LOG_MESSAGE, k::DATA_LOST_MESSAGE.to_owned())],
            dropped_attributes_count: 0,
        });
    }
    if let Status::Error { message, log_at_us } = &t.status {
        out.status = error_status(message.clone());
        if let Some(ts) = log_at_us {
            out.events.push(Event {
                time_unix_nano: us_to_ns(*ts),
                name: k::EVENT_ERROR.to_owned(),
                attributes: vec![str_kv(k::LOG_MESSAGE, message.clone())],
                dropped_attributes_count: 0,
            });
        }
    }
}

/// An app's span: its tags become attributes (the status tags become the status), its logs
/// events, its references the parent and links.
fn app(a: &AppSpan, trace_id: TraceId, out: &mut trace::Span) {
    let AppSpan { kind: app_kind, tags, logs, references } = a;
    out.kind = kind(*app_kind) as i32;
    let mut error = false;
    let mut ok = false;
    let mut description: Option<String> = None;
    let mut error_message: Option<String> = None;
    for t in tags {
        match (&*t.key, &t.value) {
            (k::SPAN_KIND, _) => {}
            (k::ERROR, TagValue::Bool(b)) => error |= *b,
            (k::ERROR, TagValue::Str(s)) => error |= s.eq_ignore_ascii_case("true"),
            (k::OTEL_STATUS_CODE, TagValue::Str(s)) => {
                error |= s.eq_ignore_ascii_case("error");
                ok |= s.eq_ignore_ascii_case("ok");
            }
            (k::OTEL_STATUS_DESCRIPTION, TagValue::Str(s)) => description = Some(s.clone()),
            _ => {
                if t.key == k::ERROR_MESSAGE
                    && let TagValue::Str(s) = &t.value
                {
                    error_message = Some(s.clone());
                }
                out.attributes.push(key_value(t));
            }
        }
    }
    if error {
        out.status = error_status(description.or(error_message).unwrap_or_default());
    } else if ok {
        out.status = Some(trace::Status { message: String::new(), code: StatusCode::Ok as i32 });
    }
    for log in logs {
        let mut name = None;
        let mut attributes = Vec::with_capacity(log.fields.len());
        for f in &log.fields {
            match (&f.value, name.is_none() && f.key == k::LOG_EVENT) {
                (TagValue::Str(s), true) => name = Some(s.clone()),
                _ => attributes.push(key_value(f)),
            }
        }
        out.events.push(Event {
            time_unix_nano: us_to_ns(log.timestamp_us),
            name: name.unwrap_or_else(|| k::EVENT_LOG.to_owned()),
            attributes,
            dropped_attributes_count: 0,
        });
    }
    let mut parent = u64::from_be_bytes(out.parent_span_id.as_slice().try_into().unwrap_or([0; 8]));
    for r in references {
        let same_trace = r.trace_id == trace_id;
        if r.kind == RefKind::ChildOf && same_trace && (parent == 0 || parent == r.span_id) {
            if parent == 0 {
                parent = r.span_id;
                out.parent_span_id = span_id_bytes(parent);
            }
            continue;
        }
        out.links.push(SpanLink {
            trace_id: trace_id_bytes(r.trace_id),
            span_id: span_id_bytes(r.span_id),
            ..Default::default()
        });
    }
}

/// The resource of a process: `service.name`, the host as `host.name` / `host.ip`, and the
/// process tags (`process.pid`, `container.*`, `k8s.*`, …) under their own keys.
pub fn resource(p: &Process) -> Resource {
    let mut attributes = Vec::with_capacity(p.tags.len() + 1);
    attributes.push(str_kv(k::SERVICE_NAME, p.service_name.clone()));
    for t in &p.tags {
        let key = match &*t.key {
            k::SERVICE_NAME => continue,
            k::JAEGER_HOSTNAME => k::HOST_NAME,
            k::JAEGER_IP => k::HOST_IP,
            other => other,
        };
        if attributes.iter().any(|a: &KeyValue| a.key == key) {
            continue;
        }
        attributes.push(KeyValue { key: key.to_owned(), value: Some(value(&t.value)), ..Default::default() });
    }
    Resource { attributes, ..Default::default() }
}

/// One export request: the spans of one process under its resource.
pub fn request(process: &Process, spans: &[OtlpSpan]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(process)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: k::SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans: spans.iter().map(|s| s.span.clone()).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
