//! The one adapter for spans apps send over OTLP: an export request becomes app [`Span`]s with
//! Jaeger-style tags (`span.kind`, `error`, `otel.status_code`), logs from events and references
//! from links, the resource becoming the [`Process`]. Spans with invalid ids are rejected and
//! counted, as OTLP's partial success reports them.

use std::sync::Arc;

use super::keys as k;
use super::otlp::proto;
use crate::model::{AppSpan, Body, Log, Process, RefKind, Span, SpanKind, SpanRef, Tag, TagValue, TraceId};
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1::{AnyValue, KeyValue, any_value::Value};
use proto::trace::v1::{self as trace, span::SpanKind as Kind, status::StatusCode};

/// The service name of a resource without `service.name` (the SDKs' default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// What a request held.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<Span>,
    /// Spans refused (invalid ids).
    pub rejected: i64,
    /// Why the first refused span was refused.
    pub error: Option<String>,
}

/// An `ExportTraceServiceRequest` from an OTLP/HTTP body: protobuf, or JSON when `json`.
pub fn decode_body(json: bool, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    if json {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    } else {
        prost::Message::decode(body).map_err(|e: prost::DecodeError| e.to_string())
    }
}

/// The spans of `req`, each process carrying `extra` tags (the agent's host tags).
pub fn decode(req: ExportTraceServiceRequest, extra: &[Tag]) -> Decoded {
    let mut out = Decoded::default();
    for rs in req.resource_spans {
        let process = Arc::new(process(rs.resource.map(|r| r.attributes).unwrap_or_default(), extra));
        for ss in rs.scope_spans {
            for s in ss.spans {
                match span(s, &process) {
                    Ok(s) => out.spans.push(s),
                    Err(why) => {
                        out.rejected += 1;
                        out.error.get_or_insert_with(|| why.to_owned());
                    }
                }
            }
        }
    }
    out
}

fn process(attributes: Vec<KeyValue>, extra: &[Tag]) -> Process {
    let mut service_name = None;
    let mut tags = Vec::with_capacity(attributes.len() + extra.len());
    for kv in attributes {
        if kv.key == k::SERVICE_NAME
            && let Some(Value::StringValue(s)) = kv.value.as_ref().and_then(|v| v.value.as_ref())
        {
            service_name = Some(s.clone());
            continue;
        }
        if extra.iter().any(|t| t.key == kv.key) {
            continue;
        }
        tags.push(tag(kv));
    }
    tags.extend(extra.iter().cloned());
    Process { service_name: service_name.unwrap_or_else(|| UNKNOWN_SERVICE.to_owned()), tags }
}

/// A tag from an attribute; arrays and maps become their JSON text.
pub fn tag(kv: KeyValue) -> Tag {
    Tag { key: kv.key.into(), value: tag_value(kv.value) }
}

fn tag_value(v: Option<AnyValue>) -> TagValue {
    match v.and_then(|v| v.value) {
        Some(Value::StringValue(s)) => TagValue::Str(s),
        Some(Value::BoolValue(b)) => TagValue::Bool(b),
        Some(Value::IntValue(i)) => TagValue::Long(i),
        Some(Value::DoubleValue(d)) => TagValue::Double(d),
        Some(Value::BytesValue(b)) => TagValue::Binary(b),
        Some(other) => TagValue::Str(json(&other).to_string()),
        None => TagValue::Str(String::new()),
    }
}

fn json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let any = |a: &AnyValue| a.value.as_ref().map_or(J::Null, json);
    match v {
        Value::StringValue(s) => J::from(s.as_str()),
        Value::BoolValue(b) => J::from(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => J::from(*d),
        Value::BytesValue(b) => J::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(any).collect()),
        Value::KvlistValue(l) => {
            J::Object(l.values.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, any))).collect())
        }
        Value::StringValueStrindex(i) => J::from(*i),
    }
}

fn trace_id(b: &[u8]) -> Option<TraceId> {
    let b: [u8; 16] = b.try_into().ok()?;
    let high = u64::from_be_bytes(b[..8].try_into().ok()?);
    let low = u64::from_be_bytes(b[8..].try_into().ok()?);
    (high != 0 || low != 0).then_some(TraceId { high, low })
}

fn span_id(b: &[u8]) -> Option<u64> {
    let b: [u8; 8] = b.try_into().ok()?;
    Some(u64::from_be_bytes(b)).filter(|id| *id != 0)
}

fn span_kind(kind: i32) -> Option<SpanKind> {
    match Kind::try_from(kind).ok()? {
        Kind::Unspecified => None,
        Kind::Internal => Some(SpanKind::Internal),
        Kind::Server => Some(SpanKind::Server),
        Kind::Client => Some(SpanKind::Client),
        Kind::Producer => Some(SpanKind::Producer),
        Kind::Consumer => Some(SpanKind::Consumer),
    }
}

fn ns_to_us(ns: u64) -> i64 {
    i64::try_from(ns / 1000).unwrap_or(i64::MAX)
}

fn span(s: trace::Span, process: &Arc<Process>) -> Result<Span, &'static str> {
    let tid = trace_id(&s.trace_id).ok_or("trace_id must be 16 bytes, not all zero")?;
    let sid = span_id(&s.span_id).ok_or("span_id must be 8 bytes, not all zero")?;
    let parent = if s.parent_span_id.is_empty() {
        0
    } else {
        span_id(&s.parent_span_id).ok_or("parent_span_id must be empty or 8 bytes, not all zero")?
    };
    let kind = span_kind(s.kind);
    let mut tags = Vec::with_capacity(s.attributes.len() + 3);
    if let Some(kind) = kind {
        tags.push(Tag::str(k::SPAN_KIND, kind.as_str()));
    }
    tags.extend(s.attributes.into_iter().map(tag));
    if let Some(st) = s.status {
        match StatusCode::try_from(st.code) {
            Ok(StatusCode::Error) => {
                tags.push(Tag::bool(k::ERROR, true));
                tags.push(Tag::str(k::OTEL_STATUS_CODE, "ERROR"));
                if !st.message.is_empty() {
                    tags.push(Tag::str(k::OTEL_STATUS_DESCRIPTION, st.message));
                }
            }
            Ok(StatusCode::Ok) => tags.push(Tag::str(k::OTEL_STATUS_CODE, "OK")),
            _ => {}
        }
    }
    let logs = s
        .events
        .into_iter()
        .map(|e| {
            let mut fields = Vec::with_capacity(e.attributes.len() + 1);
            fields.push(Tag::str(k::LOG_EVENT, e.name));
            fields.extend(e.attributes.into_iter().map(tag));
            Log { timestamp_us: ns_to_us(e.time_unix_nano), fields }
        })
        .collect();
    let references = s
        .links
        .into_iter()
        .filter_map(|l| {
            Some(SpanRef {
                kind: RefKind::FollowsFrom,
                trace_id: trace_id(&l.trace_id)?,
                span_id: span_id(&l.span_id)?,
            })
        })
        .collect();
    let start_us = ns_to_us(s.start_time_unix_nano);
    let duration_us = ns_to_us(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano));
    // The W3C flags' sampled bit; an exported span was sampled when the flags are not given.
    let flags = if s.flags & 0xff == 0 { 1 } else { i32::try_from(s.flags & 0xff).unwrap_or(1) };
    Ok(Span {
        trace_id: tid,
        span_id: sid,
        parent_span_id: parent,
        operation: s.name,
        flags,
        start_us,
        duration_us,
        process: process.clone(),
        body: Body::App(Box::new(AppSpan { kind, tags, logs, references })),
    })
}
