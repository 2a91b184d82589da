//! Jaeger's JSON model of traces (`model/json` of Jaeger's query service) and its response
//! envelope, as Jaeger UI and Grafana's Jaeger data source read them.

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use serde_json::Value;

use crate::model::{JaegerSpan, Log, Process, RefKind, SpanRef, Tag, TagValue, TraceId};

/// Integers beyond this lose precision in JavaScript; they are sent as strings.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// `{data, total, limit, offset, errors}`.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<ApiError>>,
}

impl<T: Serialize> Envelope<T> {
    pub fn new(data: T, total: usize) -> Self {
        Envelope { data, total, limit: 0, offset: 0, errors: None }
    }
}

#[derive(Debug, Serialize)]
pub struct ApiError {
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// One error answer: `data: null` and the error.
pub fn error_envelope(code: u16, msg: impl Into<String>, trace_id: Option<String>) -> Envelope<Option<()>> {
    Envelope {
        data: None,
        total: 0,
        limit: 0,
        offset: 0,
        errors: Some(vec![ApiError { code, msg: msg.into(), trace_id }]),
    }
}

#[derive(Debug, Serialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
}

#[derive(Debug, Serialize)]
pub struct JsonLog {
    pub timestamp: i64,
    pub fields: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
pub struct Reference {
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Serialize)]
pub struct JsonProcess {
    #[serde(rename = "serviceName")]
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
pub struct JsonSpan {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: i32,
    #[serde(rename = "operationName")]
    pub operation_name: String,
    pub references: Vec<Reference>,
    /// Unix epoch µs.
    #[serde(rename = "startTime")]
    pub start_time: i64,
    /// µs.
    pub duration: i64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<JsonLog>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

#[derive(Debug, Serialize)]
pub struct JsonTrace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<JsonSpan>,
    pub processes: BTreeMap<String, JsonProcess>,
    pub warnings: Option<Vec<String>>,
}

pub fn span_id_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// A trace id from 1 to 32 hex digits (as Jaeger accepts them, leading zeros optional).
pub fn parse_trace_id(s: &str) -> Option<TraceId> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (high, low) = if s.len() > 16 { s.split_at(s.len() - 16) } else { ("", s) };
    let high = if high.is_empty() { 0 } else { u64::from_str_radix(high, 16).ok()? };
    Some(TraceId { high, low: u64::from_str_radix(low, 16).ok()? })
}

pub fn key_value(t: &Tag) -> KeyValue {
    let (kind, value) = match &t.value {
        TagValue::Str(s) => ("string", Value::from(s.as_str())),
        TagValue::Bool(b) => ("bool", Value::from(*b)),
        TagValue::Long(n) if n.unsigned_abs() > MAX_SAFE_INTEGER as u64 => ("int64", Value::from(n.to_string())),
        TagValue::Long(n) => ("int64", Value::from(*n)),
        TagValue::Double(f) => ("float64", serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)),
        TagValue::Binary(b) => ("binary", Value::from(base64(b))),
    };
    KeyValue { key: t.key.to_string(), kind, value }
}

fn log(l: &Log) -> JsonLog {
    JsonLog { timestamp: l.timestamp_us, fields: l.fields.iter().map(key_value).collect() }
}

fn reference(r: &SpanRef) -> Reference {
    Reference {
        ref_type: match r.kind {
            RefKind::ChildOf => "CHILD_OF",
            RefKind::FollowsFrom => "FOLLOWS_FROM",
        },
        trace_id: r.trace_id.to_hex(),
        span_id: span_id_hex(r.span_id),
    }
}

/// The span's references: its own, with the parent as `CHILD_OF` first when not among them.
fn references(s: &JaegerSpan) -> Vec<Reference> {
    let mut out = Vec::with_capacity(s.references.len() + 1);
    if s.parent_span_id != 0 && !s.references.iter().any(|r| r.span_id == s.parent_span_id) {
        out.push(reference(&SpanRef { kind: RefKind::ChildOf, trace_id: s.trace_id, span_id: s.parent_span_id }));
    }
    out.extend(s.references.iter().map(reference));
    out
}

/// A trace in Jaeger's JSON: spans in start order, processes numbered `p1`, `p2`, … in order of
/// first appearance.
pub fn trace(id: TraceId, spans: &[JaegerSpan]) -> JsonTrace {
    let mut order: Vec<&JaegerSpan> = spans.iter().collect();
    order.sort_by_key(|s| (s.start_us, s.span_id));
    let mut seen: Vec<&Arc<Process>> = Vec::new();
    let mut processes = BTreeMap::new();
    let mut out = Vec::with_capacity(order.len());
    for s in order {
        let n = match seen.iter().position(|p| Arc::ptr_eq(p, &s.process) || ***p == *s.process) {
            Some(i) => i + 1,
            None => {
                seen.push(&s.process);
                processes.insert(
                    format!("p{}", seen.len()),
                    JsonProcess {
                        service_name: s.process.service_name.clone(),
                        tags: s.process.tags.iter().map(key_value).collect(),
                    },
                );
                seen.len()
            }
        };
        out.push(JsonSpan {
            trace_id: s.trace_id.to_hex(),
            span_id: span_id_hex(s.span_id),
            flags: s.flags,
            operation_name: s.operation.clone(),
            references: references(s),
            start_time: s.start_us,
            duration: s.duration_us,
            tags: s.tags.iter().map(key_value).collect(),
            logs: s.logs.iter().map(log).collect(),
            process_id: format!("p{n}"),
            warnings: None,
        });
    }
    JsonTrace { trace_id: id.to_hex(), spans: out, processes, warnings: None }
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
