//! Jaeger's query API (v1, as Jaeger's query service serves it to Jaeger UI and Grafana) over
//! the trace store, on the admin endpoint. Read-only.
//!
//! | route | answer (`data` of the envelope) |
//! |---|---|
//! | `GET /api/services` | service names |
//! | `GET /api/services/{service}/operations` | operation names |
//! | `GET /api/operations?service=S[&spanKind=K]` | `[{name, spanKind}]` |
//! | `GET /api/traces?service=…` | traces matching a search (below) |
//! | `GET /api/traces/{traceID}` | one trace; 404 with `errors` when not held |
//! | `GET /traces` | the search and trace page ([`super::page`]) |
//!
//! Search parameters: `service`, `operation`, `tags` (a JSON object `{"k":"v"}` or `k:v`, as
//! Jaeger UI sends them; also repeated `tag=k:v`), `start` / `end` (Unix epoch µs),
//! `lookback` (a Go duration such as `1h`, used when `start` is absent), `minDuration` /
//! `maxDuration` (Go durations: `1.2s`, `500ms`), `limit` (default 20, at most 1000), and
//! `traceID` (repeated: those traces only).

use std::sync::Arc;

use super::{
    Query, SharedStore,
    json::{self, Envelope},
};
use crate::{
    api::{Request, Response, Router},
    model::{Span, TraceId},
};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1000;
/// Tag conditions accepted in one search.
pub const MAX_TAGS: usize = 32;

fn bad_request(msg: impl Into<String>) -> Response {
    Response::json_value(400, &json::error_envelope(400, msg, None))
}

fn now_us() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Adds the query routes to `router`.
pub fn routes(router: Router, store: SharedStore) -> Router {
    let (s1, s2, s3, s4, s5) = (store.clone(), store.clone(), store.clone(), store.clone(), store);
    router
        .route("GET", "/api/services", move |_| services(&s1))
        .route_prefix("GET", "/api/services/", move |req| service_operations(&s2, req))
        .route("GET", "/api/operations", move |req| operations(&s3, req))
        .route("GET", "/api/traces", move |req| search(&s4, req, now_us()))
        .route_prefix("GET", "/api/traces/", move |req| trace_by_id(&s5, req))
        .route("GET", "/traces", |_| super::page::response())
}

pub fn services(store: &SharedStore) -> Response {
    let names = store.lock().services();
    let n = names.len();
    Response::json_value(200, &Envelope::new(names, n))
}

pub fn service_operations(store: &SharedStore, req: &Request) -> Response {
    let rest = req.path.strip_prefix("/api/services/").unwrap_or("");
    let Some(service) = rest.strip_suffix("/operations").filter(|s| !s.is_empty()) else {
        return Response::json_value(404, &json::error_envelope(404, "no such route", None));
    };
    let mut names: Vec<String> = store.lock().operations(service, None).into_iter().map(|(op, _)| op).collect();
    names.dedup();
    let n = names.len();
    Response::json_value(200, &Envelope::new(names, n))
}

#[derive(serde::Serialize)]
struct Operation {
    name: String,
    #[serde(rename = "spanKind")]
    span_kind: String,
}

pub fn operations(store: &SharedStore, req: &Request) -> Response {
    let Some(service) = req.query_param("service").filter(|s| !s.is_empty()) else {
        return bad_request("parameter 'service' is required");
    };
    let kind = req.query_param("spanKind").filter(|k| !k.is_empty());
    let ops: Vec<Operation> = store
        .lock()
        .operations(service, kind)
        .into_iter()
        .map(|(name, span_kind)| Operation { name, span_kind })
        .collect();
    let n = ops.len();
    Response::json_value(200, &Envelope::new(ops, n))
}

pub fn trace_by_id(store: &SharedStore, req: &Request) -> Response {
    let raw = req.path.strip_prefix("/api/traces/").unwrap_or("");
    let Some(id) = json::parse_trace_id(raw) else {
        return bad_request(format!("malformed trace id {raw:?}"));
    };
    let found = store.lock().trace(id).map(|t| t.spans.clone());
    match found {
        Some(spans) => Response::json_value(200, &Envelope::new(vec![json::trace(id, &store.render(&spans))], 1)),
        None => Response::json_value(404, &json::error_envelope(404, "trace not found", Some(id.to_hex()))),
    }
}

pub fn search(store: &SharedStore, req: &Request, now_us: i64) -> Response {
    let ids: Vec<&str> = req.query.iter().filter(|(k, _)| k == "traceID").map(|(_, v)| v.as_str()).collect();
    if !ids.is_empty() {
        return by_ids(store, &ids);
    }
    let q = match parse_query(req, now_us) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    let found: Vec<(TraceId, Vec<Arc<Span>>)> =
        store.lock().search(&q).into_iter().map(|t| (t.id, t.spans.clone())).collect();
    let traces: Vec<json::JsonTrace> = found.iter().map(|(id, spans)| json::trace(*id, &store.render(spans))).collect();
    let n = traces.len();
    Response::json_value(200, &Envelope::new(traces, n))
}

fn by_ids(store: &SharedStore, ids: &[&str]) -> Response {
    let mut parsed = Vec::new();
    for raw in ids.iter().take(MAX_LIMIT) {
        match json::parse_trace_id(raw) {
            Some(id) => parsed.push(id),
            None => return bad_request(format!("malformed trace id {raw:?}")),
        }
    }
    let found: Vec<(TraceId, Vec<Arc<Span>>)> = {
        let s = store.lock();
        parsed.iter().filter_map(|id| s.trace(*id).map(|t| (*id, t.spans.clone()))).collect()
    };
    let traces: Vec<json::JsonTrace> = found.iter().map(|(id, spans)| json::trace(*id, &store.render(spans))).collect();
    let n = traces.len();
    Response::json_value(200, &Envelope::new(traces, n))
}

fn non_empty<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_param(name).map(str::trim).filter(|v| !v.is_empty())
}

fn micros(req: &Request, name: &str) -> Result<Option<i64>, String> {
    non_empty(req, name)
        .map(|v| v.parse::<i64>().map_err(|_| format!("{name}: {v:?} is not an integer of microseconds")))
        .transpose()
}

fn duration(req: &Request, name: &str) -> Result<Option<i64>, String> {
    non_empty(req, name)
        .map(|v| go_duration_us(v).ok_or_else(|| format!("{name}: {v:?} is not a duration")))
        .transpose()
}

/// A search from Jaeger's query parameters.
pub fn parse_query(req: &Request, now_us: i64) -> Result<Query, String> {
    let mut tags = Vec::new();
    for (k, v) in &req.query {
        match k.as_str() {
            "tags" if !v.trim().is_empty() => tags.extend(parse_tags(v)?),
            "tag" if !v.trim().is_empty() => tags.push(key_colon_value(v)?),
            _ => {}
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tag conditions"));
    }
    let end_us = micros(req, "end")?;
    let mut start_us = micros(req, "start")?;
    if start_us.is_none()
        && let Some(lb) = non_empty(req, "lookback").filter(|v| *v != "custom")
    {
        let lb = go_duration_us(lb).ok_or_else(|| format!("lookback: {lb:?} is not a duration"))?;
        start_us = Some(end_us.unwrap_or(now_us).saturating_sub(lb));
    }
    let limit = match non_empty(req, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(0) => DEFAULT_LIMIT,
            Ok(n) => n.min(MAX_LIMIT),
            Err(_) => return Err(format!("limit: {v:?} is not a count")),
        },
    };
    Ok(Query {
        service: non_empty(req, "service").map(str::to_owned),
        operation: non_empty(req, "operation").map(str::to_owned),
        tags,
        start_us,
        end_us,
        min_duration_us: duration(req, "minDuration")?,
        max_duration_us: duration(req, "maxDuration")?,
        limit,
    })
}

fn key_colon_value(v: &str) -> Result<(String, String), String> {
    match v.split_once(':') {
        Some((k, val)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), val.trim().to_owned())),
        _ => Err(format!("tag {v:?} is not key:value")),
    }
}

/// `{"k":"v",…}` (values of other JSON types compared as their text) or `k:v`.
pub fn parse_tags(v: &str) -> Result<Vec<(String, String)>, String> {
    let v = v.trim();
    if !v.starts_with('{') {
        return Ok(vec![key_colon_value(v)?]);
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(v).map_err(|e| format!("tags: not a JSON object: {e}"))?;
    Ok(map
        .into_iter()
        .map(|(k, val)| {
            let text = match val {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}

/// A Go duration (`1h30m`, `1.2s`, `500ms`, `250us`, `100ns`) in whole microseconds.
pub fn go_duration_us(s: &str) -> Option<i64> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ns += n * scale;
    }
    let us = (total_ns / 1e3).floor();
    (us.is_finite() && us < i64::MAX as f64).then_some(us as i64)
}
