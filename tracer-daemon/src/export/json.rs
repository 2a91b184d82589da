//! `--output json`: one JSON object per span per line on stdout.

use std::io::Write;

use serde_json::{Map, Value};

use super::{Batch, Delivered, ExportError, Exporter};
use crate::model::{JaegerSpan, TagValue};

/// Writes each span as one line of JSON.
pub struct JsonExporter<W: Write + Send + 'static> {
    out: W,
}

impl JsonExporter<std::io::Stdout> {
    pub fn stdout() -> Self {
        JsonExporter { out: std::io::stdout() }
    }
}

impl<W: Write + Send + 'static> JsonExporter<W> {
    pub fn new(out: W) -> Self {
        JsonExporter { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn tag_value(v: &TagValue) -> Value {
    match v {
        TagValue::Str(s) => Value::String(s.clone()),
        TagValue::Double(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        TagValue::Bool(b) => Value::Bool(*b),
        TagValue::Long(l) => Value::from(*l),
        TagValue::Binary(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

fn tags_object<'a>(tags: impl Iterator<Item = &'a crate::model::Tag>) -> Value {
    let mut m = Map::new();
    for t in tags {
        m.insert(t.key.to_string(), tag_value(&t.value));
    }
    Value::Object(m)
}

/// The JSON object for one span. Ids are lowercase hex; `parentSpanId` is null for a root;
/// `kind` is the `span.kind` tag or null; times are Unix microseconds.
pub fn span_json(span: &JaegerSpan) -> Value {
    let mut m = Map::new();
    m.insert("traceId".into(), Value::String(span.trace_id.to_hex()));
    m.insert("spanId".into(), Value::String(format!("{:016x}", span.span_id)));
    m.insert(
        "parentSpanId".into(),
        if span.parent_span_id == 0 { Value::Null } else { Value::String(format!("{:016x}", span.parent_span_id)) },
    );
    m.insert("service".into(), Value::String(span.process.service_name.clone()));
    m.insert("operation".into(), Value::String(span.operation.clone()));
    m.insert("kind".into(), span.kind().map_or(Value::Null, |k| Value::String(k.to_owned())));
    m.insert("startUs".into(), Value::from(span.start_us));
    m.insert("durationUs".into(), Value::from(span.duration_us));
    m.insert("flags".into(), Value::from(span.flags));
    m.insert("tags".into(), tags_object(span.tags.iter()));
    if !span.logs.is_empty() {
        let logs = span
            .logs
            .iter()
            .map(|l| {
                let mut o = Map::new();
                o.insert("timestampUs".into(), Value::from(l.timestamp_us));
                o.insert("fields".into(), tags_object(l.fields.iter()));
                Value::Object(o)
            })
            .collect();
        m.insert("logs".into(), Value::Array(logs));
    }
    if !span.references.is_empty() {
        let refs = span
            .references
            .iter()
            .map(|r| {
                serde_json::json!({
                    "refType": match r.kind { crate::model::RefKind::ChildOf => "CHILD_OF", crate::model::RefKind::FollowsFrom => "FOLLOWS_FROM" },
                    "traceId": r.trace_id.to_hex(),
                    "spanId": format!("{:016x}", r.span_id),
                })
            })
            .collect();
        m.insert("references".into(), Value::Array(refs));
    }
    m.insert("processTags".into(), tags_object(span.process.tags.iter()));
    Value::Object(m)
}

impl<W: Write + Send + 'static> Exporter for JsonExporter<W> {
    type Span = JaegerSpan;

    fn name(&self) -> &'static str {
        "json"
    }

    async fn export(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let mut buf = Vec::with_capacity(batch.spans.len() * 256);
        for span in &batch.spans {
            let mut v = span_json(span);
            // The wire process (with host tags) rather than the producer's.
            if let Value::Object(m) = &mut v {
                m.insert("processTags".into(), tags_object(batch.process.tags.iter()));
            }
            let _ = serde_json::to_writer(&mut buf, &v);
            buf.push(b'\n');
        }
        let io = |e: std::io::Error| ExportError::Io { endpoint: "stdout".into(), source: e };
        self.out.write_all(&buf).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(Delivered { spans: batch.spans.len(), requests: 1, bytes: buf.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Process, Tag, TraceId};
    use std::sync::Arc;

    #[tokio::test]
    async fn one_line_per_span_with_required_fields() {
        let process = Arc::new(Process { service_name: "svc".into(), tags: vec![Tag::str("ip", "1.2.3.4")] });
        let span = JaegerSpan {
            trace_id: TraceId { high: 1, low: 2 },
            span_id: 0xab,
            parent_span_id: 0xcd,
            operation: "GET /x".into(),
            flags: 1,
            start_us: 1_700_000_000_000_000,
            duration_us: 1500,
            tags: vec![
                Tag::str("span.kind", "server"),
                Tag::long("http.status_code", 200),
                Tag::bool("error", false),
                Tag { key: "d".into(), value: TagValue::Double(0.5) },
                Tag { key: "b".into(), value: TagValue::Binary(vec![1, 255]) },
            ],
            logs: vec![],
            references: vec![],
            process: process.clone(),
        };
        let mut root = span.clone();
        root.parent_span_id = 0;
        let mut ex = JsonExporter::new(Vec::new());
        ex.export(&Batch::new(process, vec![span, root])).await.unwrap();
        let text = String::from_utf8(ex.into_inner()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        let v = &lines[0];
        assert_eq!(v["traceId"], "00000000000000010000000000000002");
        assert_eq!(v["spanId"], "00000000000000ab");
        assert_eq!(v["parentSpanId"], "00000000000000cd");
        assert_eq!(v["service"], "svc");
        assert_eq!(v["operation"], "GET /x");
        assert_eq!(v["kind"], "server");
        assert_eq!(v["startUs"], 1_700_000_000_000_000i64);
        assert_eq!(v["durationUs"], 1500);
        assert_eq!(v["tags"]["http.status_code"], 200);
        assert_eq!(v["tags"]["error"], false);
        assert_eq!(v["tags"]["d"], 0.5);
        assert_eq!(v["tags"]["b"], "01ff");
        assert_eq!(v["processTags"]["ip"], "1.2.3.4");
        assert_eq!(lines[1]["parentSpanId"], Value::Null);
    }
}
