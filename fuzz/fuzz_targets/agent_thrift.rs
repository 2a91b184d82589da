//! Fuzzes the Jaeger agent's decoding of what clients send (`jaeger::decode`): an `emitBatch`
//! UDP packet, or a bare `jaeger.Batch` (a collector's `/api/traces` body), in the compact or
//! binary protocol, then what the agent does with each span (`Span::from_app`, rendering).
//!
//! Input layout: one config byte (bit 0: binary rather than compact, bit 1: a bare batch rather
//! than an `emitBatch` message), then the packet.
//!
//! Invariants: no panic; nothing decoded is longer than the packet; a decoded batch encodes
//! again, and that encoding decodes to a batch that encodes to the same bytes (the decoder and
//! the encoders agree on every field they both know).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_daemon::jaeger::Protocol;
use tracer_daemon::jaeger::decode::{ReceivedBatch, decode_batch, decode_emit_batch};
use tracer_daemon::jaeger::encode::{BatchMeta, encode_batch, encode_emit_batch};
use tracer_daemon::model::{Span, TagValue};
use tracer_daemon::render;

fn decode(proto: Protocol, bare: bool, bytes: &[u8]) -> Option<ReceivedBatch> {
    if bare { decode_batch(proto, bytes).ok() } else { decode_emit_batch(proto, bytes).ok() }
}

fn encode(proto: Protocol, bare: bool, b: &ReceivedBatch) -> Vec<u8> {
    let meta = BatchMeta { seq_no: b.seq_no, stats: b.stats };
    let mut out = Vec::new();
    let done = if bare {
        encode_batch(proto, &b.process, &b.spans, &meta, &mut out)
    } else {
        encode_emit_batch(proto, 0, &b.process, &b.spans, &meta, &mut out)
    };
    done.expect("a decoded batch encodes");
    out
}

fn value_len(v: &TagValue) -> usize {
    match v {
        TagValue::Str(s) => s.len(),
        TagValue::Binary(b) => b.len(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, packet)) = data.split_first() else {
        return;
    };
    let proto = if config & 1 == 0 { Protocol::Compact } else { Protocol::Binary };
    let bare = config & 2 != 0;
    let Some(batch) = decode(proto, bare, packet) else {
        return;
    };
    let n = packet.len();
    assert!(batch.spans.len() <= n, "{} spans from {n} bytes", batch.spans.len());
    assert!(batch.process.service_name.len() <= n);
    for s in &batch.spans {
        assert!(s.operation.len() <= n);
        assert!(s.tags.len() + s.logs.len() + s.references.len() <= n);
        for t in &s.tags {
            assert!(t.key.len() + value_len(&t.value) <= n);
        }
    }
    let once = encode(proto, bare, &batch);
    let again = decode(proto, bare, &once).expect("an encoded batch decodes");
    assert_eq!(again.spans.len(), batch.spans.len());
    assert_eq!(encode(proto, bare, &again), once, "encoding is not stable");
    // What the agent does with each span it forwards, and what every exporter does with it.
    for s in batch.spans {
        let span = Span::from_app(s);
        let _ = render::jaeger::render(&span);
        let _ = render::otlp::render(&span);
    }
});
