//! Jaeger Thrift encoding (`jaeger.thrift` Batch, Process, Span, Tag, Log, SpanRef,
//! ClientStats, and `agent.thrift` `emitBatch`) through the `thrift` crate's binary protocol
//! and the daemon's own compact writer (`compact`), with hand-written struct writers.
//!
//! Optional lists (`Span.references`, `Span.tags`, `Span.logs`, `Process.tags`) are omitted
//! when empty; `Batch.spans` is always written. Fields are written in id order, as the
//! generated Thrift code does, so the bytes equal those of any conforming encoder.

use std::borrow::Borrow;

use super::compact::{CompactWriter, Len};
use thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TListIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol,
    TStructIdentifier, TType,
};

use crate::model::{JaegerSpan, Log, Process, RefKind, SpanRef, Tag, TagValue};

/// A Thrift wire protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `TBinaryProtocol`: collectors' `/api/traces`, agent port 6832.
    Binary,
    /// `TCompactProtocol`: agent port 6831.
    Compact,
}

/// `jaeger.ClientStats`: cumulative counts of spans the sender lost, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub full_queue_dropped_spans: i64,
    pub too_large_dropped_spans: i64,
    pub failed_to_emit_spans: i64,
}

/// The name of the agent's oneway method that carries one batch.
pub const EMIT_BATCH: &str = "emitBatch";

/// `jaeger.TagType` values.
pub mod tag_type {
    pub const STRING: i32 = 0;
    pub const DOUBLE: i32 = 1;
    pub const BOOL: i32 = 2;
    pub const LONG: i32 = 3;
    pub const BINARY: i32 = 4;
}

/// `jaeger.SpanRefType` values.
pub mod ref_type {
    pub const CHILD_OF: i32 = 0;
    pub const FOLLOWS_FROM: i32 = 1;
}

fn struct_id() -> TStructIdentifier {
    // The name is not on the wire in either protocol; an empty one costs no allocation.
    TStructIdentifier { name: String::new() }
}

#[inline]
fn field<P: TOutputProtocol + ?Sized>(p: &mut P, ty: TType, id: i16) -> thrift::Result<()> {
    p.write_field_begin(&TFieldIdentifier { name: None, field_type: ty, id: Some(id) })
}

#[inline]
fn list<P: TOutputProtocol + ?Sized>(p: &mut P, elem: TType, len: usize) -> thrift::Result<()> {
    let size = i32::try_from(len).map_err(|_| too_long("list", len))?;
    p.write_list_begin(&TListIdentifier { element_type: elem, size })
}

fn too_long(what: &str, len: usize) -> thrift::Error {
    thrift::Error::Protocol(thrift::ProtocolError::new(
        thrift::ProtocolErrorKind::SizeLimit,
        format!("{what} of {len} elements is too long for Thrift"),
    ))
}

fn i64_field<P: TOutputProtocol + ?Sized>(p: &mut P, id: i16, v: i64) -> thrift::Result<()> {
    field(p, TType::I64, id)?;
    p.write_i64(v)?;
    p.write_field_end()
}

/// Writes a `jaeger.Tag`.
pub fn write_tag<P: TOutputProtocol + ?Sized>(p: &mut P, tag: &Tag) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    field(p, TType::String, 1)?;
    p.write_string(&tag.key)?;
    p.write_field_end()?;
    let vtype = match tag.value {
        TagValue::Str(_) => tag_type::STRING,
        TagValue::Double(_) => tag_type::DOUBLE,
        TagValue::Bool(_) => tag_type::BOOL,
        TagValue::Long(_) => tag_type::LONG,
        TagValue::Binary(_) => tag_type::BINARY,
    };
    field(p, TType::I32, 2)?;
    p.write_i32(vtype)?;
    p.write_field_end()?;
    match &tag.value {
        TagValue::Str(s) => {
            field(p, TType::String, 3)?;
            p.write_string(s)?;
        }
        TagValue::Double(d) => {
            field(p, TType::Double, 4)?;
            p.write_double(*d)?;
        }
        TagValue::Bool(b) => {
            field(p, TType::Bool, 5)?;
            p.write_bool(*b)?;
        }
        TagValue::Long(l) => {
            field(p, TType::I64, 6)?;
            p.write_i64(*l)?;
        }
        TagValue::Binary(b) => {
            field(p, TType::String, 7)?;
            p.write_bytes(b)?;
        }
    }
    p.write_field_end()?;
    p.write_field_stop()?;
    p.write_struct_end()
}

fn write_tags<P: TOutputProtocol + ?Sized>(p: &mut P, id: i16, tags: &[Tag]) -> thrift::Result<()> {
    field(p, TType::List, id)?;
    list(p, TType::Struct, tags.len())?;
    for t in tags {
        write_tag(p, t)?;
    }
    p.write_list_end()?;
    p.write_field_end()
}

/// Writes a `jaeger.Log`.
pub fn write_log<P: TOutputProtocol + ?Sized>(p: &mut P, log: &Log) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    i64_field(p, 1, log.timestamp_us)?;
    write_tags(p, 2, &log.fields)?;
    p.write_field_stop()?;
    p.write_struct_end()
}

/// Writes a `jaeger.SpanRef`.
pub fn write_span_ref<P: TOutputProtocol + ?Sized>(p: &mut P, r: &SpanRef) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    field(p, TType::I32, 1)?;
    p.write_i32(match r.kind {
        RefKind::ChildOf => ref_type::CHILD_OF,
        RefKind::FollowsFrom => ref_type::FOLLOWS_FROM,
    })?;
    p.write_field_end()?;
    i64_field(p, 2, r.trace_id.low as i64)?;
    i64_field(p, 3, r.trace_id.high as i64)?;
    i64_field(p, 4, r.span_id as i64)?;
    p.write_field_stop()?;
    p.write_struct_end()
}

/// Writes a `jaeger.Span` (the process is written once per batch, not per span).
pub fn write_span<P: TOutputProtocol + ?Sized>(p: &mut P, s: &JaegerSpan) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    i64_field(p, 1, s.trace_id.low as i64)?;
    i64_field(p, 2, s.trace_id.high as i64)?;
    i64_field(p, 3, s.span_id as i64)?;
    i64_field(p, 4, s.parent_span_id as i64)?;
    field(p, TType::String, 5)?;
    p.write_string(&s.operation)?;
    p.write_field_end()?;
    if !s.references.is_empty() {
        field(p, TType::List, 6)?;
        list(p, TType::Struct, s.references.len())?;
        for r in &s.references {
            write_span_ref(p, r)?;
        }
        p.write_list_end()?;
        p.write_field_end()?;
    }
    field(p, TType::I32, 7)?;
    p.write_i32(s.flags)?;
    p.write_field_end()?;
    i64_field(p, 8, s.start_us)?;
    i64_field(p, 9, s.duration_us)?;
    if !s.tags.is_empty() {
        write_tags(p, 10, &s.tags)?;
    }
    if !s.logs.is_empty() {
        field(p, TType::List, 11)?;
        list(p, TType::Struct, s.logs.len())?;
        for l in &s.logs {
            write_log(p, l)?;
        }
        p.write_list_end()?;
        p.write_field_end()?;
    }
    p.write_field_stop()?;
    p.write_struct_end()
}

/// Writes a `jaeger.Process`.
pub fn write_process<P: TOutputProtocol + ?Sized>(p: &mut P, process: &Process) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    field(p, TType::String, 1)?;
    p.write_string(&process.service_name)?;
    p.write_field_end()?;
    if !process.tags.is_empty() {
        write_tags(p, 2, &process.tags)?;
    }
    p.write_field_stop()?;
    p.write_struct_end()
}

/// Writes a `jaeger.ClientStats`.
pub fn write_client_stats<P: TOutputProtocol + ?Sized>(p: &mut P, st: &ClientStats) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    i64_field(p, 1, st.full_queue_dropped_spans)?;
    i64_field(p, 2, st.too_large_dropped_spans)?;
    i64_field(p, 3, st.failed_to_emit_spans)?;
    p.write_field_stop()?;
    p.write_struct_end()
}

/// The optional trailer of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchMeta {
    pub seq_no: Option<i64>,
    pub stats: Option<ClientStats>,
}

/// Writes a `jaeger.Batch`.
pub fn write_batch<P: TOutputProtocol + ?Sized, S: Borrow<JaegerSpan>>(
    p: &mut P,
    process: &Process,
    spans: &[S],
    meta: &BatchMeta,
) -> thrift::Result<()> {
    write_batch_with(p, process, spans, meta, &mut |p, s| write_span(p, s))
}

/// Writes one span of a batch's list (`write_span`, or a protocol's own direct writer).
type SpanWriter<'a, P> = dyn FnMut(&mut P, &JaegerSpan) -> thrift::Result<()> + 'a;

fn write_batch_with<P: TOutputProtocol + ?Sized, S: Borrow<JaegerSpan>>(
    p: &mut P,
    process: &Process,
    spans: &[S],
    meta: &BatchMeta,
    span: &mut SpanWriter<'_, P>,
) -> thrift::Result<()> {
    p.write_struct_begin(&struct_id())?;
    field(p, TType::Struct, 1)?;
    write_process(p, process)?;
    p.write_field_end()?;
    field(p, TType::List, 2)?;
    list(p, TType::Struct, spans.len())?;
    for s in spans {
        span(p, s.borrow())?;
    }
    p.write_list_end()?;
    p.write_field_end()?;
    if let Some(seq) = meta.seq_no {
        i64_field(p, 3, seq)?;
    }
    if let Some(st) = &meta.stats {
        field(p, TType::Struct, 4)?;
        write_client_stats(p, st)?;
        p.write_field_end()?;
    }
    p.write_field_stop()?;
    p.write_struct_end()
}

/// Writes the oneway `Agent.emitBatch(1: Batch batch)` call.
pub fn write_emit_batch<P: TOutputProtocol + ?Sized, S: Borrow<JaegerSpan>>(
    p: &mut P,
    seq_id: i32,
    process: &Process,
    spans: &[S],
    meta: &BatchMeta,
) -> thrift::Result<()> {
    write_emit_batch_with(p, seq_id, process, spans, meta, &mut |p, s| write_span(p, s))
}

fn write_emit_batch_with<P: TOutputProtocol + ?Sized, S: Borrow<JaegerSpan>>(
    p: &mut P,
    seq_id: i32,
    process: &Process,
    spans: &[S],
    meta: &BatchMeta,
    span: &mut SpanWriter<'_, P>,
) -> thrift::Result<()> {
    p.write_message_begin(&TMessageIdentifier {
        name: EMIT_BATCH.to_owned(),
        message_type: TMessageType::OneWay,
        sequence_number: seq_id,
    })?;
    p.write_struct_begin(&struct_id())?;
    field(p, TType::Struct, 1)?;
    write_batch_with(p, process, spans, meta, span)?;
    p.write_field_end()?;
    p.write_field_stop()?;
    p.write_struct_end()?;
    p.write_message_end()?;
    p.flush()
}

/// A span in the compact protocol, by the direct writer (the per-span path).
fn compact_span<S: super::compact::Sink>(w: &mut CompactWriter<'_, S>, span: &JaegerSpan) -> thrift::Result<()> {
    w.jaeger_span(span);
    Ok(())
}

/// Encodes a `jaeger.Batch` struct (the body of a collector's `/api/traces`) into `out`.
pub fn encode_batch<S: Borrow<JaegerSpan>>(
    proto: Protocol,
    process: &Process,
    spans: &[S],
    meta: &BatchMeta,
    out: &mut Vec<u8>,
) -> thrift::Result<()> {
    match proto {
        Protocol::Binary => write_batch(&mut TBinaryOutputProtocol::new(out, true), process, spans, meta),
        Protocol::Compact => write_batch_with(&mut CompactWriter::new(out), process, spans, meta, &mut compact_span),
    }
}

/// Encodes an `emitBatch` oneway message (one UDP packet) into `out`.
pub fn encode_emit_batch<S: Borrow<JaegerSpan>>(
    proto: Protocol,
    seq_id: i32,
    process: &Process,
    spans: &[S],
    meta: &BatchMeta,
    out: &mut Vec<u8>,
) -> thrift::Result<()> {
    match proto {
        Protocol::Binary => write_emit_batch(&mut TBinaryOutputProtocol::new(out, true), seq_id, process, spans, meta),
        Protocol::Compact => {
            write_emit_batch_with(&mut CompactWriter::new(out), seq_id, process, spans, meta, &mut compact_span)
        }
    }
}

/// The encoded size of one span in `proto`, exactly as it appears inside a batch's span list.
pub fn span_len(proto: Protocol, span: &JaegerSpan) -> usize {
    // Writing to a counter cannot fail; a span too deep for the protocol has no size.
    let len = match proto {
        Protocol::Binary => {
            let mut c = Len::default();
            write_span(&mut TBinaryOutputProtocol::new(&mut c, true), span).map(|()| c.0)
        }
        Protocol::Compact => {
            let mut c = Len::default();
            CompactWriter::new(&mut c).jaeger_span(span);
            Ok(c.0)
        }
    };
    len.unwrap_or(usize::MAX)
}

/// The encoded size of an `emitBatch` message with no spans.
pub fn emit_batch_empty_len(proto: Protocol, seq_id: i32, process: &Process, meta: &BatchMeta) -> usize {
    let empty: &[JaegerSpan] = &[];
    match proto {
        Protocol::Binary => {
            let mut c = Len::default();
            let _ = write_emit_batch(&mut TBinaryOutputProtocol::new(&mut c, true), seq_id, process, empty, meta);
            c.0
        }
        Protocol::Compact => {
            let mut c = Len::default();
            let _ = write_emit_batch(&mut CompactWriter::new(&mut c), seq_id, process, empty, meta);
            c.0
        }
    }
}

/// Bytes a list header of `n` elements takes beyond the header of an empty list.
pub fn list_header_extra(proto: Protocol, n: usize) -> usize {
    match proto {
        Protocol::Binary => 0,
        Protocol::Compact if n <= 14 => 0,
        Protocol::Compact => {
            let mut v = n as u32;
            // The long form keeps the one header byte and adds the count as a varint.
            let mut len = 1;
            while v >= 0x80 {
                v >>= 7;
                len += 1;
            }
            len
        }
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
