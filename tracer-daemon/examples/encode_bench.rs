//! Jaeger Thrift encoding throughput on one core: spans per second and bytes per span for a
//! typical span (eight tags), in the binary and the compact protocol, plus decoding of the
//! agent's compact packets.
//!
//! ```text
//! cargo run --release -p tracer-daemon --example encode_bench [-- SECONDS]
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracer_daemon::jaeger::Protocol;
use tracer_daemon::jaeger::decode::decode_emit_batch;
use tracer_daemon::jaeger::encode::{BatchMeta, ClientStats, encode_batch, encode_emit_batch, span_len};
use tracer_daemon::model::{JaegerSpan, Process, Tag, TraceId};

fn typical_span(process: &Arc<Process>, i: u64) -> JaegerSpan {
    JaegerSpan {
        trace_id: TraceId { high: 0x4bf9_2f35_77b3_4da6 ^ i, low: 0xa3ce_929d_0e0e_4736 ^ i },
        span_id: 0x00f0_67aa_0ba9_02b7 ^ i,
        parent_span_id: 0x53ce_929d_0e0e_4736 ^ i,
        operation: "GET /api/orders/{id}".into(),
        flags: 1,
        start_us: 1_700_000_000_000_000 + i as i64,
        duration_us: 1_234,
        tags: vec![
            Tag::str("span.kind", "server"),
            Tag::str("http.method", "GET"),
            Tag::str("http.url", "/api/orders/1234?expand=items"),
            Tag::long("http.status_code", 200),
            Tag::str("peer.ipv4", "10.42.7.19"),
            Tag::long("peer.port", 48_212),
            Tag::str("tracer.link", "tcp_option"),
            Tag::bool("error", false),
        ],
        logs: vec![],
        references: vec![],
        process: process.clone(),
    }
}

/// Runs `f` (which handles `per_call` spans) for about `secs`; spans per second.
fn rate(secs: f64, per_call: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..10 {
        f();
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        for _ in 0..10 {
            f();
        }
        calls += 10;
    }
    (calls as f64 * per_call as f64) / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let process = Arc::new(Process {
        service_name: "orders".into(),
        tags: vec![
            Tag::str("hostname", "node-1"),
            Tag::str("ip", "10.42.0.7"),
            Tag::str("jaeger.version", "tracer-0.1.0"),
        ],
    });
    let spans: Vec<JaegerSpan> = (0..500).map(|i| typical_span(&process, i)).collect();
    let meta = BatchMeta {
        seq_no: Some(12_345),
        stats: Some(ClientStats { full_queue_dropped_spans: 17, too_large_dropped_spans: 0, failed_to_emit_spans: 3 }),
    };
    println!("typical span: 8 tags, batches of {} spans, {secs} s per measurement, one thread", spans.len());
    for proto in [Protocol::Binary, Protocol::Compact] {
        let mut buf = Vec::with_capacity(1 << 20);
        let per_span = span_len(proto, &spans[0]);
        let r = rate(secs, spans.len(), || {
            buf.clear();
            encode_batch(proto, &process, &spans, &meta, &mut buf).unwrap();
            black_box(&buf);
        });
        println!(
            "{:<8} encode Batch     {:>10.0} spans/s   {:>4} bytes/span   {:>6} bytes/batch",
            format!("{proto:?}"),
            r,
            per_span,
            buf.len()
        );
    }
    // The agent role's receive path: one packet of 60 spans (about 12 kB) per emitBatch.
    let packet_spans = &spans[..60];
    let mut pkt = Vec::new();
    encode_emit_batch(Protocol::Compact, 0, &process, packet_spans, &meta, &mut pkt).unwrap();
    let r = rate(secs, packet_spans.len(), || {
        black_box(decode_emit_batch(Protocol::Compact, black_box(&pkt)).unwrap());
    });
    println!("Compact  decode emitBatch {r:>10.0} spans/s   ({} byte packets)", pkt.len());
}
