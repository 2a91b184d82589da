//! Helpers of the export tests: the Python decoder, the JSON it should print for a batch,
//! and the batches every encoder must get exactly right.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};
use tracer_daemon::jaeger::Protocol;
use tracer_daemon::jaeger::encode::BatchMeta;
use tracer_daemon::model::{JaegerSpan as Span, Log, Process, RefKind, SpanRef, Tag, TagValue, TraceId};

pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs a script of tests/python with `stdin`, returns stdout; panics with stderr on failure.
pub fn python(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args(args)
        .current_dir(python_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed (see tests/python/requirements.txt)");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "python3 {args:?} failed (pip install -r tests/python/requirements.txt?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Decodes framed inputs with tests/python/jaeger_decode.py; one JSON value per input.
pub fn python_decode(proto: Protocol, kind: &str, inputs: &[Vec<u8>]) -> Vec<Value> {
    let mut framed = Vec::new();
    for i in inputs {
        framed.extend_from_slice(&(i.len() as u32).to_be_bytes());
        framed.extend_from_slice(i);
    }
    let p = if proto == Protocol::Binary { "binary" } else { "compact" };
    let out = python(&["jaeger_decode.py", p, kind], &framed);
    let values: Vec<Value> = out.lines().map(|l| normalize(serde_json::from_str(l).unwrap())).collect();
    assert_eq!(values.len(), inputs.len());
    values
}

/// Doubles arrive as Python `repr` text: compare them by bits.
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match (k.as_str(), &v) {
                    ("vDouble", Value::String(s)) => {
                        let bits = s.parse::<f64>().unwrap().to_bits();
                        (k, json!(bits))
                    }
                    _ => (k, normalize(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        v => v,
    }
}

/// The JSON jaeger_decode.py prints for a batch, computed from the model.
pub fn expected_batch(process: &Process, spans: &[Span], meta: &BatchMeta) -> Value {
    fn tag(t: &Tag) -> Value {
        let mut v = json!({"key": t.key, "vStr": null, "vDouble": null, "vBool": null, "vLong": null, "vBinary": null});
        let (ty, field, val) = match &t.value {
            TagValue::Str(s) => ("STRING", "vStr", json!(s)),
            TagValue::Double(d) => ("DOUBLE", "vDouble", json!(d.to_bits())),
            TagValue::Bool(b) => ("BOOL", "vBool", json!(b)),
            TagValue::Long(l) => ("LONG", "vLong", json!(l)),
            TagValue::Binary(b) => {
                ("BINARY", "vBinary", json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
            }
        };
        v["vType"] = json!(ty);
        v[field] = val;
        v
    }
    let tags = |ts: &[Tag]| {
        if ts.is_empty() { Value::Null } else { Value::Array(ts.iter().map(tag).collect()) }
    };
    let span = |s: &Span| {
        json!({
            "traceIdLow": s.trace_id.low as i64,
            "traceIdHigh": s.trace_id.high as i64,
            "spanId": s.span_id as i64,
            "parentSpanId": s.parent_span_id as i64,
            "operationName": s.operation,
            "references": if s.references.is_empty() { Value::Null } else {
                s.references.iter().map(|r| json!({
                    "refType": if r.kind == RefKind::ChildOf { "CHILD_OF" } else { "FOLLOWS_FROM" },
                    "traceIdLow": r.trace_id.low as i64,
                    "traceIdHigh": r.trace_id.high as i64,
                    "spanId": r.span_id as i64,
                })).collect()
            },
            "flags": s.flags,
            "startTime": s.start_us,
            "duration": s.duration_us,
            "tags": tags(&s.tags),
            "logs": if s.logs.is_empty() { Value::Null } else {
                // Log.fields is required: written even when empty.
                s.logs.iter().map(|l| json!({"timestamp": l.timestamp_us, "fields": l.fields.iter().map(tag).collect::<Vec<_>>()})).collect()
            },
        })
    };
    json!({
        "process": {"serviceName": process.service_name, "tags": tags(&process.tags)},
        "spans": spans.iter().map(span).collect::<Vec<_>>(),
        "seqNo": meta.seq_no,
        "stats": meta.stats.map(|s| json!({
            "fullQueueDroppedSpans": s.full_queue_dropped_spans,
            "tooLargeDroppedSpans": s.too_large_dropped_spans,
            "failedToEmitSpans": s.failed_to_emit_spans,
        })),
    })
}

pub fn span(process: &Arc<Process>, trace: TraceId, id: u64, parent: u64, op: &str, tags: Vec<Tag>) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        parent_span_id: parent,
        operation: op.into(),
        flags: 1,
        start_us: 1_700_000_000_000_000 + id as i64,
        duration_us: 1_000 + id as i64,
        tags,
        logs: vec![],
        references: vec![],
        process: process.clone(),
    }
}

pub fn every_tag_type() -> Vec<Tag> {
    vec![
        Tag::str("s", "text"),
        Tag::str("empty", ""),
        Tag { key: "d".into(), value: TagValue::Double(0.1) },
        Tag { key: "d-max".into(), value: TagValue::Double(f64::MAX) },
        Tag { key: "d-tiny".into(), value: TagValue::Double(-f64::MIN_POSITIVE) },
        Tag { key: "d-inf".into(), value: TagValue::Double(f64::INFINITY) },
        Tag::bool("t", true),
        Tag::bool("f", false),
        Tag::long("l-min", i64::MIN),
        Tag::long("l-max", i64::MAX),
        Tag { key: "bin".into(), value: TagValue::Binary(vec![0, 1, 0x7f, 0x80, 0xff]) },
        Tag { key: "bin-empty".into(), value: TagValue::Binary(vec![]) },
    ]
}

/// (name, process, spans): the shapes the encoders must get exactly right.
pub fn cases() -> Vec<(&'static str, Arc<Process>, Vec<Span>)> {
    let uni = Arc::new(Process {
        service_name: "サービス-ü".into(),
        tags: vec![Tag::str("hostname", "höst-☃"), Tag::str("ip", "10.0.0.1")],
    });
    let mut unicode =
        span(&uni, TraceId { high: 0, low: 1 }, 1, 0, "GET /naïve/☃ 🚀", vec![Tag::str("ключ", "значение ✓")]);
    unicode.logs = vec![Log { timestamp_us: 5, fields: vec![Tag::str("event", "émoji 😀")] }];

    let big = Arc::new(Process { service_name: "big".into(), tags: vec![] });
    let mut large = span(&big, TraceId { high: u64::MAX, low: u64::MAX - 1 }, u64::MAX, 1 << 63, "n", vec![]);
    large.start_us = i64::MAX;
    large.duration_us = i64::MIN;
    large.flags = i32::MIN;
    large.references =
        vec![SpanRef { kind: RefKind::FollowsFrom, trace_id: TraceId { high: 1 << 63, low: 3 }, span_id: u64::MAX }];

    let all = Arc::new(Process { service_name: "all-tags".into(), tags: every_tag_type() });
    let mut tagged = span(&all, TraceId { high: 7, low: 8 }, 9, 10, "op", every_tag_type());
    tagged.logs = vec![Log { timestamp_us: 1, fields: every_tag_type() }, Log { timestamp_us: 2, fields: vec![] }];
    tagged.references = vec![
        SpanRef { kind: RefKind::ChildOf, trace_id: TraceId { high: 7, low: 8 }, span_id: 10 },
        SpanRef { kind: RefKind::FollowsFrom, trace_id: TraceId { high: 0, low: 2 }, span_id: 3 },
    ];

    let empty = Arc::new(Process { service_name: "empty".into(), tags: vec![] });

    let many = Arc::new(Process { service_name: "many".into(), tags: vec![Tag::str("hostname", "h")] });
    let typical = |i: u64| {
        span(
            &many,
            TraceId { high: i, low: i * 3 },
            i + 1,
            i,
            &format!("GET /items/{i}"),
            vec![
                Tag::str("span.kind", "server"),
                Tag::str("http.method", "GET"),
                Tag::str("http.url", "/items/42?x=1"),
                Tag::long("http.status_code", 200),
                Tag::str("peer.ipv4", "10.1.2.3"),
                Tag::long("peer.port", 5432),
                Tag::bool("error", false),
                Tag::str("component", "tracer"),
            ],
        )
    };
    vec![
        ("unicode", uni, vec![unicode]),
        ("large-numbers", big, vec![large]),
        ("every-tag-type", all, vec![tagged]),
        ("empty-batch", empty, vec![]),
        ("large-batch", many.clone(), (0..2000).map(typical).collect()),
    ]
}
