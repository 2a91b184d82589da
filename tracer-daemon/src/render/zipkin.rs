//! Zipkin v2 JSON, both ways: a span in Jaeger's model becomes a Zipkin span (ids in hex,
//! `kind`, endpoints from the peer and host tags, tags as strings, logs as annotations), and a
//! `POST /api/v2/spans` body from an app becomes app [`Span`]s. Zipkin has no span links:
//! references other than the parent are not sent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::keys as k;
use super::otlp_in::{Decoded, UNKNOWN_SERVICE};
use crate::model::{AppSpan, Body, JaegerSpan, Log, Process, Span, SpanKind, Tag, TagValue, TraceId};

/// The path Zipkin v2 spans are posted to.
pub const SPANS_PATH: &str = "/api/v2/spans";

/// A Zipkin v2 span (the JSON model of `zipkin2-api`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    pub trace_id: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Epoch microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub debug: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Values are strings in Zipkin; other JSON values from a sender are kept as their text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Endpoint {
    fn is_empty(&self) -> bool {
        self.service_name.is_none() && self.ipv4.is_none() && self.ipv6.is_none() && self.port.is_none()
    }

    fn set_ip(&mut self, ip: &str) {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => self.ipv4 = Some(v4.to_string()),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => self.ipv4 = Some(v4.to_string()),
                None => self.ipv6 = Some(v6.to_string()),
            },
            Err(_) => {}
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Epoch microseconds.
    pub timestamp: i64,
    pub value: String,
}

/// A tag value as Zipkin's string.
fn text(v: &TagValue) -> String {
    match v {
        TagValue::Str(s) => s.clone(),
        TagValue::Bool(b) => b.to_string(),
        TagValue::Long(i) => i.to_string(),
        TagValue::Double(d) => d.to_string(),
        TagValue::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn port(v: &TagValue) -> Option<u16> {
    match v {
        TagValue::Long(p) => u16::try_from(*p).ok(),
        TagValue::Str(s) => s.parse().ok(),
        _ => None,
    }
}

/// The span as Zipkin v2 has it. The process's service and address are the local endpoint; its
/// other tags (host, pid, container, pod) become span tags, as Zipkin has no process.
pub fn render(s: &JaegerSpan) -> ZipkinSpan {
    let mut local = Endpoint { service_name: Some(s.process.service_name.clone()), ..Endpoint::default() };
    let mut remote = Endpoint::default();
    let mut tags = BTreeMap::new();
    let mut kind = None;
    let (mut error, mut error_message) = (false, None);
    for t in &s.process.tags {
        if t.key == k::JAEGER_IP {
            local.set_ip(&text(&t.value));
        } else {
            tags.insert(t.key.to_string(), serde_json::Value::String(text(&t.value)));
        }
    }
    for t in &s.tags {
        match &*t.key {
            k::SPAN_KIND => kind = zipkin_kind(&text(&t.value)),
            k::ERROR => error = matches!(t.value, TagValue::Bool(true)) || text(&t.value) == "true",
            k::ERROR_MESSAGE => error_message = Some(text(&t.value)),
            k::NET_PEER_IP => remote.set_ip(&text(&t.value)),
            k::NET_PEER_PORT => remote.port = port(&t.value),
            k::PEER_SERVICE => remote.service_name = Some(text(&t.value)),
            k::NET_HOST_PORT => {
                local.port = port(&t.value);
                tags.insert(t.key.to_string(), serde_json::Value::String(text(&t.value)));
            }
            _ => {
                tags.insert(t.key.to_string(), serde_json::Value::String(text(&t.value)));
            }
        }
    }
    if error || error_message.is_some() {
        // Zipkin marks a failed span with an `error` tag holding the message.
        let message = error_message.filter(|m| !m.is_empty()).unwrap_or_else(|| "true".to_owned());
        tags.insert(k::ERROR.to_owned(), serde_json::Value::String(message));
    }
    let annotations =
        s.logs.iter().map(|l| Annotation { timestamp: l.timestamp_us, value: annotation(&l.fields) }).collect();
    ZipkinSpan {
        trace_id: s.trace_id.to_hex(),
        id: format!("{:016x}", s.span_id),
        parent_id: (s.parent_span_id != 0).then(|| format!("{:016x}", s.parent_span_id)),
        name: Some(s.operation.clone()),
        kind,
        timestamp: Some(s.start_us),
        // Zipkin reads a zero duration as unknown.
        duration: Some(s.duration_us.max(1)),
        debug: s.flags & 2 != 0,
        shared: false,
        local_endpoint: Some(local),
        remote_endpoint: (!remote.is_empty()).then_some(remote),
        annotations,
        tags,
    }
}

/// A log's fields as one annotation value: the `event` first, then `key=value` pairs.
fn annotation(fields: &[Tag]) -> String {
    let mut out = fields.iter().find(|f| f.key == k::LOG_EVENT).map(|f| text(&f.value)).unwrap_or_default();
    for f in fields.iter().filter(|f| f.key != k::LOG_EVENT) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&f.key);
        out.push('=');
        out.push_str(&text(&f.value));
    }
    out
}

fn zipkin_kind(kind: &str) -> Option<String> {
    match SpanKind::parse(kind)? {
        SpanKind::Client => Some("CLIENT".to_owned()),
        SpanKind::Server => Some("SERVER".to_owned()),
        SpanKind::Producer => Some("PRODUCER".to_owned()),
        SpanKind::Consumer => Some("CONSUMER".to_owned()),
        SpanKind::Internal => None,
    }
}

fn hex_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 16 && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

fn trace_id(s: &str) -> Option<TraceId> {
    let id = match s.len() {
        1..=16 => TraceId { high: 0, low: hex_u64(s)? },
        17..=32 => {
            let (high, low) = s.split_at(s.len() - 16);
            TraceId { high: hex_u64(high)?, low: hex_u64(low)? }
        }
        _ => return None,
    };
    (id.high != 0 || id.low != 0).then_some(id)
}

fn span_id(s: &str) -> Option<u64> {
    hex_u64(s).filter(|id| *id != 0)
}

/// A local endpoint's service and address: the spans of one process.
type LocalKey = (Option<String>, Option<String>);

/// The spans of a Zipkin v2 JSON body (an array of spans), each process carrying `extra` tags
/// (the agent's host tags). A body that is not such an array is an error; spans with invalid
/// ids are rejected and counted.
pub fn decode(body: &[u8], extra: &[Tag]) -> Result<Decoded, String> {
    let spans: Vec<ZipkinSpan> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Decoded::default();
    let mut processes: Vec<(LocalKey, Arc<Process>)> = Vec::new();
    for z in spans {
        let local = z.local_endpoint.clone().unwrap_or_default();
        let key = (local.service_name.clone(), local.ipv4.clone().or(local.ipv6.clone()));
        let process = match processes.iter().find(|(k, _)| *k == key) {
            Some((_, p)) => p.clone(),
            None => {
                let p = Arc::new(process(&local, extra));
                processes.push((key, p.clone()));
                p
            }
        };
        match span(z, process) {
            Ok(s) => out.spans.push(s),
            Err(why) => {
                out.rejected += 1;
                out.error.get_or_insert_with(|| why.to_owned());
            }
        }
    }
    Ok(out)
}

fn process(local: &Endpoint, extra: &[Tag]) -> Process {
    let service_name = local.service_name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| UNKNOWN_SERVICE.into());
    let mut tags = Vec::with_capacity(extra.len() + 1);
    if let Some(ip) = local.ipv4.as_ref().or(local.ipv6.as_ref()) {
        tags.push(Tag::str(k::JAEGER_IP, ip.clone()));
    }
    tags.extend(extra.iter().cloned());
    Process { service_name, tags }
}

fn json_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn span(z: ZipkinSpan, process: Arc<Process>) -> Result<Span, &'static str> {
    let tid = trace_id(&z.trace_id).ok_or("traceId must be 16 or 32 hex digits, not all zero")?;
    let sid = span_id(&z.id).ok_or("id must be 16 hex digits, not all zero")?;
    let parent = match z.parent_id.as_deref() {
        None | Some("") => 0,
        Some(p) => span_id(p).ok_or("parentId must be 16 hex digits, not all zero")?,
    };
    let kind = match z.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("CLIENT") => Some(SpanKind::Client),
        Some("SERVER") => Some(SpanKind::Server),
        Some("PRODUCER") => Some(SpanKind::Producer),
        Some("CONSUMER") => Some(SpanKind::Consumer),
        _ => None,
    };
    let mut tags = Vec::with_capacity(z.tags.len() + 4);
    if let Some(kind) = kind {
        tags.push(Tag::str(k::SPAN_KIND, kind.as_str()));
    }
    for (key, value) in z.tags {
        let value = json_text(value);
        if key == k::ERROR {
            tags.push(Tag::bool(k::ERROR, true));
            if !value.is_empty() && value != "true" {
                tags.push(Tag::str(k::ERROR_MESSAGE, value));
            }
        } else {
            tags.push(Tag::str(key, value));
        }
    }
    if let Some(r) = z.remote_endpoint {
        if let Some(ip) = r.ipv4.or(r.ipv6) {
            tags.push(Tag::str(k::NET_PEER_IP, ip));
        }
        if let Some(p) = r.port {
            tags.push(Tag::long(k::NET_PEER_PORT, i64::from(p)));
        }
        if let Some(name) = r.service_name.filter(|n| !n.is_empty()) {
            tags.push(Tag::str(k::PEER_SERVICE, name));
        }
    }
    if let Some(p) = z.local_endpoint.and_then(|l| l.port)
        && !tags.iter().any(|t| t.key == k::NET_HOST_PORT)
    {
        tags.push(Tag::long(k::NET_HOST_PORT, i64::from(p)));
    }
    let logs = z
        .annotations
        .into_iter()
        .map(|a| Log { timestamp_us: a.timestamp, fields: vec![Tag::str(k::LOG_EVENT, a.value)] })
        .collect();
    Ok(Span {
        trace_id: tid,
        span_id: sid,
        parent_span_id: parent,
        operation: z.name.unwrap_or_default(),
        flags: if z.debug { 3 } else { 1 },
        start_us: z.timestamp.unwrap_or(0),
        duration_us: z.duration.unwrap_or(0).max(0),
        process,
        body: Body::App(Box::new(AppSpan { kind, tags, logs, references: Vec::new() })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RefKind, SpanRef};

    fn jaeger_span() -> JaegerSpan {
        JaegerSpan {
            trace_id: TraceId { high: 0x0af7_6519_16cd_43dd, low: 0x8448_eb21_1c80_319c },
            span_id: 0xb7ad_6b71_6920_3331,
            parent_span_id: 0x00f0_67aa_0ba9_02b7,
            operation: "GET /orders".into(),
            flags: 1,
            start_us: 1_700_000_000_000_000,
            duration_us: 0,
            tags: vec![
                Tag::str(k::SPAN_KIND, "client"),
                Tag::str(k::HTTP_METHOD, "GET"),
                Tag::long(k::HTTP_STATUS_CODE, 503),
                Tag::bool(k::ERROR, true),
                Tag::str(k::ERROR_MESSAGE, "HTTP 503"),
                Tag::str(k::NET_PEER_IP, "::ffff:10.0.0.7"),
                Tag::long(k::NET_PEER_PORT, 8080),
                Tag::str(k::PEER_SERVICE, "orders"),
            ],
            logs: vec![Log {
                timestamp_us: 1_700_000_000_000_100,
                fields: vec![Tag::str(k::LOG_MESSAGE, "HTTP 503"), Tag::str(k::LOG_EVENT, "error")],
            }],
            references: vec![SpanRef { kind: RefKind::ChildOf, trace_id: TraceId { high: 1, low: 2 }, span_id: 3 }],
            process: Arc::new(Process {
                service_name: "api".into(),
                tags: vec![Tag::str(k::JAEGER_IP, "192.0.2.2"), Tag::str(k::JAEGER_HOSTNAME, "node-1")],
            }),
        }
    }

    #[test]
    fn a_span_renders_as_zipkin_v2_json() {
        let json = serde_json::to_value(render(&jaeger_span())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "traceId": "0af7651916cd43dd8448eb211c80319c",
                "id": "b7ad6b7169203331",
                "parentId": "00f067aa0ba902b7",
                "name": "GET /orders",
                "kind": "CLIENT",
                "timestamp": 1_700_000_000_000_000_i64,
                "duration": 1,
                "localEndpoint": {"serviceName": "api", "ipv4": "192.0.2.2"},
                "remoteEndpoint": {"serviceName": "orders", "ipv4": "10.0.0.7", "port": 8080},
                "annotations": [{"timestamp": 1_700_000_000_000_100_i64, "value": "error message=HTTP 503"}],
                "tags": {"error": "HTTP 503", "hostname": "node-1", "http.method": "GET", "http.status_code": "503"},
            })
        );
    }

    #[test]
    fn a_zipkin_body_decodes_into_app_spans() {
        let body = br#"[
          {"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c",
           "name":"get /api","kind":"SERVER","timestamp":1556604172355737,"duration":1431,
           "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},
           "remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},
           "annotations":[{"timestamp":1556604172355800,"value":"wr"}],
           "tags":{"http.method":"GET","http.path":"/api","error":"boom","count":3}},
          {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"root","localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1"},"debug":true},
          {"traceId":"0000000000000000","id":"352bff9a74ca9ad3"},
          {"traceId":"5af7183fb1d4cf5f","id":"zz"}
        ]"#;
        let extra = [Tag::str("agent.hostname", "node-1")];
        let d = decode(body, &extra).unwrap();
        assert_eq!((d.spans.len(), d.rejected), (2, 2));
        assert!(d.error.as_deref().unwrap().contains("traceId"), "{:?}", d.error);
        let s = &d.spans[0];
        assert_eq!(s.trace_id, TraceId { high: 0, low: 0x5af7_183f_b1d4_cf5f });
        assert_eq!((s.span_id, s.parent_span_id), (0x352b_ff9a_74ca_9ad2, 0x6b22_1d5b_c9e6_496c));
        assert_eq!((s.operation.as_str(), s.start_us, s.duration_us, s.flags), ("get /api", 1556604172355737, 1431, 1));
        assert_eq!(s.process.service_name, "backend");
        assert_eq!(s.process.tags, vec![Tag::str(k::JAEGER_IP, "192.168.99.1"), extra[0].clone()]);
        // Both spans of the one local endpoint share the process.
        assert!(Arc::ptr_eq(&s.process, &d.spans[1].process));
        assert_eq!(d.spans[1].flags, 3, "debug");
        let Body::App(a) = &s.body else { panic!("an app span") };
        assert_eq!(a.kind, Some(SpanKind::Server));
        for want in [
            Tag::str(k::SPAN_KIND, "server"),
            Tag::str("http.method", "GET"),
            Tag::bool(k::ERROR, true),
            Tag::str(k::ERROR_MESSAGE, "boom"),
            Tag::str("count", "3"),
            Tag::str(k::NET_PEER_IP, "172.19.0.2"),
            Tag::long(k::NET_PEER_PORT, 58648),
            Tag::long(k::NET_HOST_PORT, 3306),
        ] {
            assert!(a.tags.contains(&want), "{want:?} in {:?}", a.tags);
        }
        assert_eq!(a.logs, vec![Log { timestamp_us: 1556604172355800, fields: vec![Tag::str(k::LOG_EVENT, "wr")] }]);
        for bad in [&b"{}"[..], b"[1]", b"not json", b"[{\"id\":\"1\"}]"] {
            assert!(decode(bad, &[]).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rendered_spans_decode_to_the_same_ids_times_and_kind() {
        let z = render(&jaeger_span());
        let body = serde_json::to_vec(&[z]).unwrap();
        let d = decode(&body, &[]).unwrap();
        let (s, j) = (&d.spans[0], jaeger_span());
        assert_eq!((s.trace_id, s.span_id, s.parent_span_id), (j.trace_id, j.span_id, j.parent_span_id));
        assert_eq!((&s.operation, s.start_us, s.process.service_name.as_str()), (&j.operation, j.start_us, "api"));
        let Body::App(a) = &s.body else { panic!("an app span") };
        assert_eq!(a.kind, Some(SpanKind::Client));
        assert!(a.tags.contains(&Tag::str(k::ERROR_MESSAGE, "HTTP 503")), "{:?}", a.tags);
    }
}
