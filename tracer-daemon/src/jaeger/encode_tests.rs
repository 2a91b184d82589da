//! Byte-exact checks of the Thrift writers against hand-assembled encodings.

use super::*;
use crate::model::TraceId;
use std::sync::Arc;

fn enc(proto: Protocol, f: impl Fn(&mut dyn TOutputProtocol) -> thrift::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    match proto {
        Protocol::Binary => f(&mut TBinaryOutputProtocol::new(&mut out, true)).unwrap(),
        Protocol::Compact => f(&mut CompactWriter::new(&mut out)).unwrap(),
    }
    out
}

fn tag_bytes(proto: Protocol, tag: &Tag) -> Vec<u8> {
    enc(proto, |p| write_tag(p, tag))
}

#[test]
fn string_tag_binary() {
    let b = tag_bytes(Protocol::Binary, &Tag::str("k", "v"));
    #[rustfmt::skip]
    let want = [
        0x0B, 0, 1, 0, 0, 0, 1, b'k',   // 1: string key
        0x08, 0, 2, 0, 0, 0, 0,         // 2: i32 vType = STRING
        0x0B, 0, 3, 0, 0, 0, 1, b'v',   // 3: string vStr
        0,                              // stop
    ];
    assert_eq!(b, want);
}

#[test]
fn string_tag_compact() {
    let b = tag_bytes(Protocol::Compact, &Tag::str("k", "v"));
    // Field headers are (delta << 4) | type; binary type 8, i32 type 5; zigzag varints.
    assert_eq!(b, [0x18, 1, b'k', 0x15, 0, 0x18, 1, b'v', 0]);
}

#[test]
fn every_tag_type_compact() {
    let cases: Vec<(Tag, Vec<u8>)> = vec![
        // vType 1 (zigzag 2), field 4 double (type 7, delta 2), little-endian.
        (
            Tag { key: "k".into(), value: TagValue::Double(1.5) },
            vec![0x18, 1, b'k', 0x15, 2, 0x27, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0],
        ),
        // vType 2 (zigzag 4), field 5 bool true folded into the header (type 1, delta 3).
        (Tag::bool("k", true), vec![0x18, 1, b'k', 0x15, 4, 0x31, 0]),
        (Tag::bool("k", false), vec![0x18, 1, b'k', 0x15, 4, 0x32, 0]),
        // vType 3 (zigzag 6), field 6 i64 (type 6, delta 4), zigzag(-1) = 1.
        (Tag::long("k", -1), vec![0x18, 1, b'k', 0x15, 6, 0x46, 1, 0]),
        // vType 4 (zigzag 8), field 7 binary (type 8, delta 5).
        (
            Tag { key: "k".into(), value: TagValue::Binary(vec![0, 0xFF]) },
            vec![0x18, 1, b'k', 0x15, 8, 0x58, 2, 0, 0xFF, 0],
        ),
    ];
    for (tag, want) in cases {
        assert_eq!(tag_bytes(Protocol::Compact, &tag), want, "{tag:?}");
    }
}

#[test]
fn every_tag_type_binary() {
    let head = |vt: u8| vec![0x0B, 0, 1, 0, 0, 0, 1, b'k', 0x08, 0, 2, 0, 0, 0, vt];
    let with = |vt: u8, tail: &[u8]| {
        let mut v = head(vt);
        v.extend_from_slice(tail);
        v.push(0);
        v
    };
    assert_eq!(
        tag_bytes(Protocol::Binary, &Tag { key: "k".into(), value: TagValue::Double(1.5) }),
        with(1, &[0x04, 0, 4, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(tag_bytes(Protocol::Binary, &Tag::bool("k", true)), with(2, &[0x02, 0, 5, 1]));
    assert_eq!(
        tag_bytes(Protocol::Binary, &Tag::long("k", i64::MIN)),
        with(3, &[0x0A, 0, 6, 0x80, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(
        tag_bytes(Protocol::Binary, &Tag { key: "k".into(), value: TagValue::Binary(vec![7]) }),
        with(4, &[0x0B, 0, 7, 0, 0, 0, 1, 7])
    );
}

#[test]
fn client_stats_and_span_ref() {
    let st = ClientStats { full_queue_dropped_spans: 1, too_large_dropped_spans: 2, failed_to_emit_spans: 3 };
    assert_eq!(enc(Protocol::Compact, |p| write_client_stats(p, &st)), [0x16, 2, 0x16, 4, 0x16, 6, 0]);
    let r = SpanRef { kind: RefKind::FollowsFrom, trace_id: TraceId { high: 0, low: 5 }, span_id: u64::MAX };
    #[rustfmt::skip]
    let want = [
        0x08, 0, 1, 0, 0, 0, 1,
        0x0A, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5,
        0x0A, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0,
        0x0A, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0,
    ];
    assert_eq!(enc(Protocol::Binary, |p| write_span_ref(p, &r)), want);
    // u64::MAX is i64 -1 on the wire: zigzag 1.
    assert_eq!(enc(Protocol::Compact, |p| write_span_ref(p, &r)), [0x15, 2, 0x16, 10, 0x16, 0, 0x16, 1, 0]);
}

fn minimal_span() -> JaegerSpan {
    JaegerSpan {
        trace_id: TraceId { high: 0, low: 1 },
        span_id: 2,
        parent_span_id: 0,
        operation: "op".into(),
        flags: 1,
        start_us: 3,
        duration_us: 4,
        tags: vec![],
        logs: vec![],
        references: vec![],
        process: Arc::new(Process { service_name: "s".into(), tags: vec![] }),
    }
}

#[test]
fn emit_batch_compact_is_exact() {
    let span = minimal_span();
    let meta = BatchMeta { seq_no: Some(7), stats: Some(ClientStats::default()) };
    let mut out = Vec::new();
    encode_emit_batch(Protocol::Compact, 0, &span.process, &[&span], &meta, &mut out).unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0x82, 0x81, 0x00, 9][..], b"emitBatch",     // protocol id, oneway|version, seqid, name
        &[0x1C],                                       // args 1: struct Batch
        &[0x1C, 0x18, 1, b's', 0x00],                  //   1: Process { serviceName "s" }
        &[0x19, 0x1C],                                 //   2: list<struct> of 1
        &[0x16, 2, 0x16, 0, 0x16, 4, 0x16, 0],         //     ids: low 1, high 0, span 2, parent 0
        &[0x18, 2, b'o', b'p'],                        //     5: operationName
        &[0x25, 2],                                    //     7: flags 1 (delta 2 skips refs)
        &[0x16, 6, 0x16, 8, 0x00],                     //     8: start 3, 9: duration 4, stop
        &[0x16, 14],                                   //   3: seqNo 7
        &[0x1C, 0x16, 0, 0x16, 0, 0x16, 0, 0x00],      //   4: ClientStats zeros
        &[0x00],                                       //   stop Batch
        &[0x00],                                       // stop args
    ].concat();
    assert_eq!(out, want);
    assert_eq!(
        out.len(),
        emit_batch_empty_len(Protocol::Compact, 0, &span.process, &meta) + span_len(Protocol::Compact, &span)
    );
}

#[test]
fn batch_binary_is_exact() {
    let span = minimal_span();
    let mut out = Vec::new();
    encode_batch(Protocol::Binary, &span.process, std::slice::from_ref(&span), &BatchMeta::default(), &mut out)
        .unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0x0C, 0, 1][..],                              // 1: Process
        &[0x0B, 0, 1, 0, 0, 0, 1, b's', 0],
        &[0x0F, 0, 2, 0x0C, 0, 0, 0, 1],                // 2: list<struct> of 1
        &[0x0A, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        &[0x0A, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x0A, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2],
        &[0x0A, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x0B, 0, 5, 0, 0, 0, 2, b'o', b'p'],
        &[0x08, 0, 7, 0, 0, 0, 1],
        &[0x0A, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3],
        &[0x0A, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4],
        &[0],                                           // stop Span
        &[0],                                           // stop Batch
    ].concat();
    assert_eq!(out, want);
}

#[test]
fn emit_batch_binary_header_is_strict() {
    let span = minimal_span();
    let mut out = Vec::new();
    encode_emit_batch(Protocol::Binary, 5, &span.process, &[&span], &BatchMeta::default(), &mut out).unwrap();
    assert_eq!(&out[..8], &[0x80, 0x01, 0x00, 0x04, 0, 0, 0, 9]);
    assert_eq!(&out[8..17], b"emitBatch");
    assert_eq!(&out[17..21], &[0, 0, 0, 5]);
}

#[test]
fn sizes_add_up_for_long_lists() {
    let mut span = minimal_span();
    span.tags = (0..20).map(|i| Tag::long(format!("k{i}"), i)).collect();
    span.logs = vec![Log { timestamp_us: 9, fields: vec![Tag::str("event", "x")] }];
    let spans: Vec<&JaegerSpan> = std::iter::repeat_n(&span, 200).collect();
    for proto in [Protocol::Binary, Protocol::Compact] {
        let meta = BatchMeta { seq_no: Some(1), stats: Some(ClientStats::default()) };
        let mut out = Vec::new();
        encode_emit_batch(proto, 0, &span.process, &spans, &meta, &mut out).unwrap();
        let predicted = emit_batch_empty_len(proto, 0, &span.process, &meta)
            + list_header_extra(proto, spans.len())
            + spans.len() * span_len(proto, &span);
        assert_eq!(out.len(), predicted, "{proto:?}");
    }
}
