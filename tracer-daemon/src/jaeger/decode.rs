//! Decoding of `Agent.emitBatch` messages from Jaeger clients (compact or binary protocol) into
//! the span model. Total: any input gives a batch or an error, with bounded allocation.

use std::sync::Arc;

use thrift::TConfiguration;
use thrift::protocol::{TBinaryInputProtocol, TCompactInputProtocol, TInputProtocol, TMessageType, TType};

use super::encode::{ClientStats, EMIT_BATCH, Protocol, ref_type, tag_type};
use crate::model::{JaegerSpan, Log, Process, RefKind, SpanRef, Tag, TagValue, TraceId};

/// Why a packet was not a usable `emitBatch`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed thrift: {0}")]
    Thrift(#[from] thrift::Error),
    /// A well-formed call of another method (`emitZipkinBatch`).
    #[error("unsupported method {0:?}")]
    Method(String),
    #[error("unexpected message type {0:?}")]
    MessageType(TMessageType),
    #[error("required field {0} is missing")]
    Missing(&'static str),
}

/// One decoded `emitBatch`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedBatch {
    pub process: Arc<Process>,
    /// Spans whose `process` is `self.process`.
    pub spans: Vec<JaegerSpan>,
    pub seq_no: Option<i64>,
    pub stats: Option<ClientStats>,
}

/// Limits that keep a hostile packet from allocating much: nothing in a UDP packet is longer
/// than the packet.
fn config(len: usize) -> TConfiguration {
    let cap = len.max(16);
    TConfiguration::builder()
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap))
        .max_string_size(Some(cap))
        .max_container_size(Some(cap))
        .max_recursion_depth(Some(32))
        .build()
        .unwrap_or_default()
}

/// Decodes an `emitBatch` message as sent to the agent's UDP ports.
pub fn decode_emit_batch(proto: Protocol, packet: &[u8]) -> Result<ReceivedBatch, DecodeError> {
    match proto {
        Protocol::Compact => read_emit_batch(&mut TCompactInputProtocol::with_config(packet, config(packet.len()))),
        Protocol::Binary => {
            read_emit_batch(&mut TBinaryInputProtocol::with_config(packet, false, config(packet.len())))
        }
    }
}

/// Decodes a bare `jaeger.Batch` struct (a collector's `/api/traces` body).
pub fn decode_batch(proto: Protocol, bytes: &[u8]) -> Result<ReceivedBatch, DecodeError> {
    match proto {
        Protocol::Compact => read_batch(&mut TCompactInputProtocol::with_config(bytes, config(bytes.len()))),
        Protocol::Binary => read_batch(&mut TBinaryInputProtocol::with_config(bytes, false, config(bytes.len()))),
    }
}

fn read_emit_batch<P: TInputProtocol>(p: &mut P) -> Result<ReceivedBatch, DecodeError> {
    let msg = p.read_message_begin()?;
    if msg.name != EMIT_BATCH {
        return Err(DecodeError::Method(msg.name));
    }
    if !matches!(msg.message_type, TMessageType::OneWay | TMessageType::Call) {
        return Err(DecodeError::MessageType(msg.message_type));
    }
    let mut batch = None;
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::Struct) => batch = Some(read_batch(p)?),
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    p.read_message_end()?;
    batch.ok_or(DecodeError::Missing("emitBatch.batch"))
}

/// Reads list elements with `f`, with a capacity bounded by what can fit in the input.
fn read_list<P: TInputProtocol, T>(
    p: &mut P,
    mut f: impl FnMut(&mut P) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let l = p.read_list_begin()?;
    let n = usize::try_from(l.size).unwrap_or(0);
    let mut out = Vec::with_capacity(n.min(1024));
    if l.element_type != TType::Struct {
        for _ in 0..n {
            p.skip(l.element_type)?;
        }
    } else {
        for _ in 0..n {
            out.push(f(p)?);
        }
    }
    p.read_list_end()?;
    Ok(out)
}

fn read_batch<P: TInputProtocol>(p: &mut P) -> Result<ReceivedBatch, DecodeError> {
    let mut process = None;
    let mut spans = None;
    let mut seq_no = None;
    let mut stats = None;
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::Struct) => process = Some(read_process(p)?),
            (Some(2), TType::List) => spans = Some(read_list(p, read_span)?),
            (Some(3), TType::I64) => seq_no = Some(p.read_i64()?),
            (Some(4), TType::Struct) => stats = Some(read_stats(p)?),
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    let process = Arc::new(process.ok_or(DecodeError::Missing("Batch.process"))?);
    let mut spans = spans.ok_or(DecodeError::Missing("Batch.spans"))?;
    for s in &mut spans {
        s.process = process.clone();
    }
    Ok(ReceivedBatch { process, spans, seq_no, stats })
}

fn read_process<P: TInputProtocol>(p: &mut P) -> Result<Process, DecodeError> {
    let mut name = None;
    let mut tags = Vec::new();
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::String) => name = Some(p.read_string()?),
            (Some(2), TType::List) => tags = read_list(p, read_tag)?,
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    Ok(Process { service_name: name.ok_or(DecodeError::Missing("Process.serviceName"))?, tags })
}

fn read_stats<P: TInputProtocol>(p: &mut P) -> Result<ClientStats, DecodeError> {
    let mut st = ClientStats::default();
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::I64) => st.full_queue_dropped_spans = p.read_i64()?,
            (Some(2), TType::I64) => st.too_large_dropped_spans = p.read_i64()?,
            (Some(3), TType::I64) => st.failed_to_emit_spans = p.read_i64()?,
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    Ok(st)
}

fn read_tag<P: TInputProtocol>(p: &mut P) -> Result<Tag, DecodeError> {
    let mut key = None;
    let mut vtype = None;
    let (mut s, mut d, mut b, mut l, mut bin) = (None, None, None, None, None);
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::String) => key = Some(p.read_string()?),
            (Some(2), TType::I32) => vtype = Some(p.read_i32()?),
            (Some(3), TType::String) => s = Some(p.read_string()?),
            (Some(4), TType::Double) => d = Some(p.read_double()?),
            (Some(5), TType::Bool) => b = Some(p.read_bool()?),
            (Some(6), TType::I64) => l = Some(p.read_i64()?),
            (Some(7), TType::String) => bin = Some(p.read_bytes()?),
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    let key = key.ok_or(DecodeError::Missing("Tag.key"))?;
    let value = match vtype.ok_or(DecodeError::Missing("Tag.vType"))? {
        tag_type::DOUBLE => TagValue::Double(d.unwrap_or_default()),
        tag_type::BOOL => TagValue::Bool(b.unwrap_or_default()),
        tag_type::LONG => TagValue::Long(l.unwrap_or_default()),
        tag_type::BINARY => TagValue::Binary(bin.unwrap_or_default()),
        // STRING, and types from a newer IDL, as text.
        _ => TagValue::Str(s.unwrap_or_default()),
    };
    Ok(Tag { key: key.into(), value })
}

fn read_log<P: TInputProtocol>(p: &mut P) -> Result<Log, DecodeError> {
    let mut log = Log { timestamp_us: 0, fields: Vec::new() };
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::I64) => log.timestamp_us = p.read_i64()?,
            (Some(2), TType::List) => log.fields = read_list(p, read_tag)?,
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    Ok(log)
}

fn read_span_ref<P: TInputProtocol>(p: &mut P) -> Result<SpanRef, DecodeError> {
    let mut r = SpanRef { kind: RefKind::ChildOf, trace_id: TraceId::default(), span_id: 0 };
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::I32) => {
                r.kind = if p.read_i32()? == ref_type::FOLLOWS_FROM { RefKind::FollowsFrom } else { RefKind::ChildOf };
            }
            (Some(2), TType::I64) => r.trace_id.low = p.read_i64()? as u64,
            (Some(3), TType::I64) => r.trace_id.high = p.read_i64()? as u64,
            (Some(4), TType::I64) => r.span_id = p.read_i64()? as u64,
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    Ok(r)
}

fn read_span<P: TInputProtocol>(p: &mut P) -> Result<JaegerSpan, DecodeError> {
    let mut s = JaegerSpan {
        trace_id: TraceId::default(),
        span_id: 0,
        parent_span_id: 0,
        operation: String::new(),
        flags: 0,
        start_us: 0,
        duration_us: 0,
        tags: Vec::new(),
        logs: Vec::new(),
        references: Vec::new(),
        process: placeholder_process(),
    };
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::I64) => s.trace_id.low = p.read_i64()? as u64,
            (Some(2), TType::I64) => s.trace_id.high = p.read_i64()? as u64,
            (Some(3), TType::I64) => s.span_id = p.read_i64()? as u64,
            (Some(4), TType::I64) => s.parent_span_id = p.read_i64()? as u64,
            (Some(5), TType::String) => s.operation = p.read_string()?,
            (Some(6), TType::List) => s.references = read_list(p, read_span_ref)?,
            (Some(7), TType::I32) => s.flags = p.read_i32()?,
            (Some(8), TType::I64) => s.start_us = p.read_i64()?,
            (Some(9), TType::I64) => s.duration_us = p.read_i64()?,
            (Some(10), TType::List) => s.tags = read_list(p, read_tag)?,
            (Some(11), TType::List) => s.logs = read_list(p, read_log)?,
            (_, t) => p.skip(t)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    Ok(s)
}

/// Shared empty process for spans until their batch's process is known.
fn placeholder_process() -> Arc<Process> {
    static EMPTY: std::sync::OnceLock<Arc<Process>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(Process { service_name: String::new(), tags: Vec::new() })).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jaeger::encode::{BatchMeta, encode_batch, encode_emit_batch};

    fn rich_span(process: &Arc<Process>) -> JaegerSpan {
        JaegerSpan {
            trace_id: TraceId { high: u64::MAX, low: 0x0123_4567_89ab_cdef },
            span_id: 1 << 63,
            parent_span_id: 42,
            operation: "GET /ünïcode ✓".into(),
            flags: 3,
            start_us: 1_700_000_000_123_456,
            duration_us: i64::MAX,
            tags: vec![
                Tag::str("s", "v"),
                Tag { key: "d".into(), value: TagValue::Double(-2.5e300) },
                Tag::bool("t", true),
                Tag::bool("f", false),
                Tag::long("l", i64::MIN),
                Tag { key: "b".into(), value: TagValue::Binary(vec![0, 1, 255]) },
            ],
            logs: vec![Log { timestamp_us: 5, fields: vec![Tag::str("event", "x"), Tag::long("n", 1)] }],
            references: vec![
                SpanRef { kind: RefKind::ChildOf, trace_id: TraceId { high: 1, low: 2 }, span_id: 3 },
                SpanRef { kind: RefKind::FollowsFrom, trace_id: TraceId { high: 4, low: 5 }, span_id: 6 },
            ],
            process: process.clone(),
        }
    }

    #[test]
    fn round_trips_both_protocols() {
        let process = Arc::new(Process { service_name: "svc".into(), tags: vec![Tag::str("hostname", "h")] });
        let spans = vec![rich_span(&process), rich_span(&process)];
        let meta = BatchMeta {
            seq_no: Some(9),
            stats: Some(ClientStats {
                full_queue_dropped_spans: 1,
                too_large_dropped_spans: 2,
                failed_to_emit_spans: 3,
            }),
        };
        for proto in [Protocol::Compact, Protocol::Binary] {
            let mut out = Vec::new();
            encode_emit_batch(proto, 0, &process, &spans, &meta, &mut out).unwrap();
            let got = decode_emit_batch(proto, &out).unwrap();
            assert_eq!(got.process, process);
            assert_eq!(got.spans, spans, "{proto:?}");
            assert_eq!(got.seq_no, Some(9));
            assert_eq!(got.stats, meta.stats);
            let mut out = Vec::new();
            encode_batch(proto, &process, &spans, &meta, &mut out).unwrap();
            assert_eq!(decode_batch(proto, &out).unwrap().spans, spans);
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let process = Arc::new(Process { service_name: "svc".into(), tags: vec![] });
        let mut out = Vec::new();
        encode_emit_batch(Protocol::Compact, 0, &process, &[rich_span(&process)], &BatchMeta::default(), &mut out)
            .unwrap();
        for cut in 0..out.len() {
            assert!(decode_emit_batch(Protocol::Compact, &out[..cut]).is_err(), "cut at {cut}");
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let mut pkt = out.clone();
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(..pkt.len());
                pkt[i] = rng.u8(..);
            }
            let _ = decode_emit_batch(Protocol::Compact, &pkt);
            let _ = decode_emit_batch(Protocol::Binary, &pkt);
        }
        // A huge declared string length must not allocate.
        let evil = [0x80, 0x01, 0x00, 0x04, 0x7f, 0xff, 0xff, 0xff];
        assert!(decode_emit_batch(Protocol::Binary, &evil).is_err());
    }

    #[test]
    fn other_methods_are_reported() {
        let mut out = Vec::new();
        let mut p = thrift::protocol::TCompactOutputProtocol::new(&mut out);
        use thrift::protocol::{TMessageIdentifier, TOutputProtocol};
        p.write_message_begin(&TMessageIdentifier::new("emitZipkinBatch", TMessageType::OneWay, 0)).unwrap();
        drop(p);
        assert!(
            matches!(decode_emit_batch(Protocol::Compact, &out), Err(DecodeError::Method(m)) if m == "emitZipkinBatch")
        );
    }
}
