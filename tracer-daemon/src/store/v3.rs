//! Jaeger's query API v3 (its HTTP gateway, which Jaeger UI 2.16+ uses): services, operations,
//! traces as OTLP JSON (`{"result": {"resourceSpans": […]}}`) and the trace summaries that
//! Jaeger UI 2.19+ lists search results from; trace ids as 32 hex digits.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v3/services` | `{"services": […]}` |
//! | `GET /api/v3/operations?service=S[&span_kind=K]` (or `spanKind`) | `{"operations": [{name, spanKind}]}` |
//! | `GET`/`POST /api/v3/traces` (a search) | OTLP JSON of the matching traces |
//! | `GET /api/v3/traces/{trace_id}` | OTLP JSON of one trace |
//! | `GET`/`POST /api/v3/trace-summaries` (a search) | `{"summaries": [TraceSummary]}` |
//!
//! Search fields, in the query string as `query.<field>` with the field in snake case
//! (`query.service_name`) or camel case (`query.serviceName`, as Jaeger UI 2.19+ sends them),
//! or in a POST body `{"query": {…}}` with either spelling: `service_name` (required),
//! `operation_name`, `attributes` (a JSON object; a JSON string of one in the query string),
//! `start_time_min` / `start_time_max` (RFC 3339), `duration_min` / `duration_max` (Go
//! durations), `search_depth` (or `num_traces`).
//!
//! A trace summary: `traceId`, `rootServiceName` and `rootOperationName` (the earliest span
//! without a parent; empty when the trace holds none), `minStartTimeUnixNano` and
//! `maxEndTimeUnixNano` (decimal strings), `spanCount`, `errorSpanCount`, `orphanSpanCount`
//! (spans whose parent is not in the trace) and `services` (`{name, spanCount,
//! errorSpanCount}` per service, sorted by name). A search that finds nothing gives an empty
//! list of summaries, and a 404 from `/api/v3/traces`.
//! Errors are `{"error": {"httpCode", "message"}}`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Query, SharedStore, Summary, Trace, api, json as j1};
use crate::{
    api::{Request, Response, Router},
    model::{JaegerSpan, Process, RefKind, Span, Tag, TagValue, TraceId},
};

fn error(code: u16, message: impl Into<String>) -> Response {
    Response::json_value(code, &json!({"error": {"httpCode": code, "message": message.into()}}))
}

pub fn routes(router: Router, store: SharedStore) -> Router {
    let (s1, s2, s3, s4, s5, s6, s7) =
        (store.clone(), store.clone(), store.clone(), store.clone(), store.clone(), store.clone(), store);
    router
        .route("GET", "/api/v3/services", move |_| {
            Response::json_value(200, &json!({"services": s1.lock().services()}))
        })
        .route("GET", "/api/v3/operations", move |req| operations(&s2, req))
        .route("GET", "/api/v3/traces", move |req| search(&s3, req))
        .route("POST", "/api/v3/traces", move |req| search(&s4, req))
        .route_prefix("GET", "/api/v3/traces/", move |req| trace_by_id(&s5, req))
        .route("GET", "/api/v3/trace-summaries", move |req| summaries(&s6, req))
        .route("POST", "/api/v3/trace-summaries", move |req| summaries(&s7, req))
}

pub fn operations(store: &SharedStore, req: &Request) -> Response {
    let Some(service) = req.query_param("service").filter(|s| !s.is_empty()) else {
        return error(400, "parameter 'service' is required");
    };
    let kind = req.query_param("span_kind").or_else(|| req.query_param("spanKind")).filter(|k| !k.is_empty());
    let ops: Vec<Value> = store
        .lock()
        .operations(service, kind)
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "spanKind": kind}))
        .collect();
    Response::json_value(200, &json!({"operations": ops}))
}

pub fn trace_by_id(store: &SharedStore, req: &Request) -> Response {
    let raw = req.path.strip_prefix("/api/v3/traces/").unwrap_or("");
    let Some(id) = j1::parse_trace_id(raw) else { return error(400, format!("malformed trace id {raw:?}")) };
    let found = store.lock().trace(id).map(|t| t.spans.clone());
    match found {
        Some(spans) => Response::json_value(200, &json!({"result": traces_data(&[store.render(&spans)])})),
        None => error(404, "trace not found"),
    }
}

pub fn search(store: &SharedStore, req: &Request) -> Response {
    let q = match parse_query(req) {
        Ok(q) => q,
        Err(why) => return error(400, why),
    };
    let found: Vec<Vec<Arc<Span>>> = store.lock().search(&q).into_iter().map(|t| t.spans.clone()).collect();
    if found.is_empty() {
        return error(404, "No traces found");
    }
    let found: Vec<Vec<JaegerSpan>> = found.iter().map(|spans| store.render(spans)).collect();
    Response::json_value(200, &json!({"result": traces_data(&found)}))
}

/// The summaries of the traces a search finds, newest first; computed under the store's lock
/// from the typed spans, so nothing is rendered.
pub fn summaries(store: &SharedStore, req: &Request) -> Response {
    let q = match parse_query(req) {
        Ok(q) => q,
        Err(why) => return error(400, why),
    };
    let found: Vec<Summary> = store.lock().search(&q).into_iter().map(Trace::summary).collect();
    let rows: Vec<Value> = found.iter().map(summary_json).collect();
    Response::json_value(200, &json!({"summaries": rows}))
}

fn summary_json(s: &Summary) -> Value {
    let services: Vec<Value> =
        s.services.iter().map(|v| json!({"name": v.name, "spanCount": v.spans, "errorSpanCount": v.errors})).collect();
    json!({
        "traceId": trace_id_32(s.id),
        "rootServiceName": s.root_service,
        "rootOperationName": s.root_operation,
        "minStartTimeUnixNano": nanos(s.start_us),
        "maxEndTimeUnixNano": nanos(s.end_us),
        "spanCount": s.spans,
        "errorSpanCount": s.errors,
        "orphanSpanCount": s.orphans,
        "services": services,
    })
}

/// `start_time_min` → `startTimeMin`.
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Where a search's fields are read from.
enum Fields<'a> {
    /// `?query.service_name=…` or `?query.serviceName=…`.
    Url(&'a Request),
    /// The `query` object of a POST body.
    Body(Map<String, Value>),
}

impl Fields<'_> {
    fn of(req: &Request) -> Result<Fields<'_>, String> {
        if req.method != "POST" {
            return Ok(Fields::Url(req));
        }
        let body: Value =
            serde_json::from_slice(&req.body).map_err(|e| format!("the body is not a JSON object: {e}"))?;
        match body.get("query") {
            Some(Value::Object(q)) => Ok(Fields::Body(q.clone())),
            None | Some(Value::Null) => Ok(Fields::Body(Map::new())),
            Some(_) => Err("\"query\" must be a JSON object".into()),
        }
    }

    /// A field by its snake-case name, trimmed, `None` when absent or empty.
    fn get(&self, snake: &str) -> Option<String> {
        let value = match self {
            Fields::Url(req) => {
                let name = |field: &str| format!("query.{field}");
                req.query_param(&name(snake)).or_else(|| req.query_param(&name(&camel(snake)))).map(str::to_owned)
            }
            Fields::Body(q) => match q.get(snake).or_else(|| q.get(&camel(snake)))? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            },
        };
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }
}

pub fn parse_query(req: &Request) -> Result<Query, String> {
    let f = Fields::of(req)?;
    let Some(service) = f.get("service_name") else {
        return Err("query.service_name is required".into());
    };
    let time = |name: &str| {
        f.get(name).map(|v| rfc3339_us(&v).ok_or(format!("query.{name}: {v:?} is not RFC 3339"))).transpose()
    };
    let duration = |name: &str| {
        f.get(name).map(|v| api::go_duration_us(&v).ok_or(format!("query.{name}: {v:?} is not a duration"))).transpose()
    };
    let tags = match f.get("attributes") {
        Some(v) => api::parse_tags(&v)?,
        None => Vec::new(),
    };
    if tags.len() > api::MAX_TAGS {
        return Err(format!("at most {} attributes", api::MAX_TAGS));
    }
    let limit = match f.get("search_depth").or_else(|| f.get("num_traces")) {
        None => api::DEFAULT_LIMIT,
        Some(v) => {
            v.parse::<usize>().map_err(|_| format!("search depth {v:?} is not a count"))?.clamp(1, api::MAX_LIMIT)
        }
    };
    Ok(Query {
        service: Some(service),
        operation: f.get("operation_name"),
        tags,
        start_us: time("start_time_min")?,
        end_us: time("start_time_max")?,
        min_duration_us: duration("duration_min")?,
        max_duration_us: duration("duration_max")?,
        limit,
    })
}

/// `2024-01-15T10:30:00.123456Z` or with a `±hh:mm` offset, as Unix epoch µs.
pub fn rfc3339_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_us = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        if n == 0 {
            return None;
        }
        let digits = format!("{:0<6}", &f[..n.min(6)]);
        frac_us = digits.parse::<i64>().ok()?;
        rest = &f[n..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1_000_000 + frac_us)
}

fn any_value(v: &TagValue) -> Value {
    match v {
        TagValue::Str(s) => json!({"stringValue": s}),
        TagValue::Bool(b) => json!({"boolValue": b}),
        // OTLP JSON writes 64-bit integers as strings.
        TagValue::Long(n) => json!({"intValue": n.to_string()}),
        TagValue::Double(f) => json!({"doubleValue": f}),
        TagValue::Binary(b) => json!({"bytesValue": j1::base64(b)}),
    }
}

fn attributes<'a>(tags: impl IntoIterator<Item = &'a Tag>) -> Vec<Value> {
    tags.into_iter().map(|t| json!({"key": t.key, "value": any_value(&t.value)})).collect()
}

fn trace_id_32(id: TraceId) -> String {
    format!("{:016x}{:016x}", id.high, id.low)
}

fn nanos(us: i64) -> String {
    (i128::from(us) * 1000).to_string()
}

/// OTLP span kind numbers.
fn kind_number(kind: Option<&str>) -> u8 {
    match kind {
        Some("internal") => 1,
        Some("server") => 2,
        Some("client") => 3,
        Some("producer") => 4,
        Some("consumer") => 5,
        _ => 0,
    }
}

fn otlp_span(s: &JaegerSpan) -> Value {
    let error = s.tags.iter().any(|t| t.key == "error" && matches!(&t.value, TagValue::Bool(true)));
    let message = s.tag_str("error.message").unwrap_or("");
    let tags = s.tags.iter().filter(|t| t.key != "span.kind" && t.key != "error");
    let events: Vec<Value> = s
        .logs
        .iter()
        .map(|l| {
            let name = l.fields.iter().find(|f| f.key == "event").map_or("log".to_owned(), |f| super::tag_text(&f.value));
            json!({"timeUnixNano": nanos(l.timestamp_us), "name": name, "attributes": attributes(l.fields.iter().filter(|f| f.key != "event"))})
        })
        .collect();
    let links: Vec<Value> = s
        .references
        .iter()
        .filter(|r| !(r.kind == RefKind::ChildOf && r.span_id == s.parent_span_id))
        .map(|r| json!({"traceId": trace_id_32(r.trace_id), "spanId": j1::span_id_hex(r.span_id), "attributes": []}))
        .collect();
    let parent = if s.parent_span_id == 0 { String::new() } else { j1::span_id_hex(s.parent_span_id) };
    let status = if error { json!({"code": 2, "message": message}) } else { json!({}) };
    json!({
        "traceId": trace_id_32(s.trace_id),
        "spanId": j1::span_id_hex(s.span_id),
        "parentSpanId": parent,
        "flags": s.flags,
        "name": s.operation,
        "kind": kind_number(s.kind()),
        "startTimeUnixNano": nanos(s.start_us),
        "endTimeUnixNano": nanos(s.start_us.saturating_add(s.duration_us)),
        "attributes": attributes(tags),
        "events": events,
        "links": links,
        "status": status,
    })
}

fn resource(p: &Process) -> Value {
    let service = Tag::str("service.name", p.service_name.clone());
    json!({"attributes": attributes(std::iter::once(&service).chain(&p.tags))})
}

/// OTLP `TracesData`: one resource per process, its spans under one scope.
pub fn traces_data(traces: &[Vec<JaegerSpan>]) -> Value {
    let mut groups: Vec<(&Process, Vec<Value>)> = Vec::new();
    for spans in traces {
        for s in spans {
            match groups.iter_mut().find(|(p, _)| **p == *s.process) {
                Some((_, out)) => out.push(otlp_span(s)),
                None => groups.push((&s.process, vec![otlp_span(s)])),
            }
        }
    }
    let resource_spans: Vec<Value> = groups
        .into_iter()
        .map(|(p, spans)| json!({"resource": resource(p), "scopeSpans": [{"scope": {"name": "tracer"}, "spans": spans}]}))
        .collect();
    json!({"resourceSpans": resource_spans})
}
