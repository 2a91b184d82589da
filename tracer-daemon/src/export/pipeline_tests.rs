//! Tests of the running pipeline over the in-memory exporter: batching, retries, queue bounds
//! and the shutdown flush.

use super::*;
use crate::export::OutputMode;
use crate::export::memory::{MemoryExporter, MemorySink};
use crate::model::{Process, Tag, TraceId};

fn span(process: &Arc<Process>, id: u64) -> Span {
    Span::from_app(crate::model::JaegerSpan {
        trace_id: TraceId { high: 0, low: id / 10 + 1 },
        span_id: id,
        parent_span_id: 0,
        operation: format!("op{id}"),
        flags: 1,
        start_us: 1,
        duration_us: 2,
        tags: vec![Tag::str("span.kind", "server")],
        logs: vec![],
        references: vec![],
        process: process.clone(),
    })
}

fn cfg() -> ExportConfig {
    ExportConfig {
        output: Some(OutputMode::Console),
        batch_max_spans: 10,
        batch_max_age_ms: 20,
        retry_initial_ms: 5,
        retry_max_ms: 20,
        retry_max_elapsed_ms: 2_000,
        ..Default::default()
    }
}

fn start(cfg: &ExportConfig) -> (ExportHandle, MemorySink, Arc<Registry>) {
    let reg = Registry::new();
    let (ex, sink) = MemoryExporter::new();
    let h = Pipeline::spawn_with(cfg, HostInfo::new("host-1", "10.1.2.3"), reg.clone(), Some(Protocol::Binary), ex)
        .unwrap();
    (h, sink, reg)
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn svc(name: &str) -> Arc<Process> {
    Arc::new(Process { service_name: name.into(), tags: vec![] })
}

#[tokio::test]
async fn delivers_batches_per_process_with_host_tags() {
    let (h, sink, reg) = start(&cfg());
    let (a, b) = (svc("a"), svc("b"));
    for i in 0..25 {
        assert!(h.sender.try_send(span(if i % 5 == 0 { &b } else { &a }, i)));
    }
    wait_until("25 spans", || sink.span_count() == 25).await;
    let batches = sink.batches();
    for batch in &batches {
        assert!(batch.spans.len() <= 10);
        assert!(batch.spans.iter().all(|s| s.process.service_name == batch.process.service_name));
        assert!(batch.process.tags.contains(&Tag::str("hostname", "host-1")));
        assert!(batch.process.tags.contains(&Tag::str("ip", "10.1.2.3")));
    }
    assert_eq!(batches.iter().filter(|b| b.process.service_name == "b").map(|b| b.spans.len()).sum::<usize>(), 5);
    assert_eq!(h.metrics.spans_sent.get(), 25);
    wait_until("in-flight back to 0", || h.metrics.in_flight.get() == 0).await;
    assert!(reg.render().contains("tracer_export_spans_sent_total{exporter=\"memory\"} 25\n"));
    assert!(h.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn retries_5xx_but_not_4xx() {
    let (h, sink, _reg) = start(&ExportConfig { batch_max_spans: 1, ..cfg() });
    let p = svc("a");
    sink.fail_next(&[503, 500]);
    assert!(h.sender.try_send(span(&p, 1)));
    wait_until("the retried batch", || sink.span_count() == 1).await;
    assert_eq!(sink.attempts(), 3);
    assert_eq!(h.metrics.retries.get(), 2);

    sink.fail_next(&[400]);
    assert!(h.sender.try_send(span(&p, 2)));
    wait_until("the rejected batch to be counted", || h.metrics.dropped_send_failed.get() == 1).await;
    assert_eq!(sink.attempts(), 4, "a 4xx is not retried");
    assert_eq!(h.metrics.batches_failed.get(), 1);
    assert_eq!(h.metrics.client_stats().failed_to_emit_spans, 1);
    assert!(h.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn gives_up_after_max_elapsed() {
    let (h, sink, _reg) = start(&ExportConfig { batch_max_spans: 1, retry_max_elapsed_ms: 60, ..cfg() });
    sink.fail_next(&[503; 1000]);
    assert!(h.sender.try_send(span(&svc("a"), 1)));
    wait_until("the batch to be given up", || h.metrics.dropped_send_failed.get() == 1).await;
    let attempts = sink.attempts();
    assert!((2..50).contains(&attempts), "{attempts} attempts");
    assert_eq!(sink.span_count(), 0);
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn full_queue_drops_and_counts_and_memory_stays_bounded() {
    let c =
        ExportConfig { queue_size: 20, pending_batches: 1, batch_max_spans: 5, retry_max_elapsed_ms: 60_000, ..cfg() };
    let (h, sink, reg) = start(&c);
    sink.fail_next(&[503; 100_000]); // the collector is down
    let p = svc("a");
    let mut accepted = 0u64;
    for i in 0..1000 {
        if h.sender.try_send(span(&p, i)) {
            accepted += 1;
        }
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let dropped = h.metrics.dropped_queue_full.get();
    assert_eq!(accepted + dropped, 1000);
    // Queue (20), a batch waiting (5), one retried (5), one the batcher holds (5), an open one (4).
    assert!(accepted <= 40, "accepted {accepted}");
    assert!(h.metrics.queue_depth.get() <= 20);
    assert_eq!(h.metrics.client_stats().full_queue_dropped_spans, dropped as i64);
    assert!(reg.render().contains(&format!("tracer_export_spans_dropped_total{{reason=\"queue_full\"}} {dropped}\n")));
    // The deadline passes with the collector still down: what is left is counted.
    assert!(!h.shutdown(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn shutdown_flushes_open_batches() {
    let (h, sink, _reg) = start(&ExportConfig { batch_max_age_ms: 60_000, batch_max_spans: 1000, ..cfg() });
    let p = svc("a");
    for i in 0..7 {
        assert!(h.sender.try_send(span(&p, i)));
    }
    let sender = h.sender.clone();
    assert!(h.shutdown(Duration::from_secs(2)).await);
    assert_eq!(sink.span_count(), 7);
    // After shutdown, spans are refused and counted.
    assert!(!sender.try_send(span(&p, 8)));
}

#[tokio::test]
async fn shutdown_deadline_counts_what_is_lost() {
    let (h, sink, _reg) = start(&ExportConfig { batch_max_spans: 1000, ..cfg() });
    sink.fail_next(&[503; 100_000]);
    for i in 0..7 {
        assert!(h.sender.try_send(span(&svc("a"), i)));
    }
    let metrics = h.metrics.clone();
    let t = Instant::now();
    assert!(!h.shutdown(Duration::from_millis(200)).await);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(metrics.dropped_shutdown.get(), 7);
    assert_eq!(metrics.in_flight.get(), 0);
}

#[tokio::test]
async fn seq_numbers_increase() {
    let m = ExportMetrics::detached();
    assert_eq!((m.next_seq(), m.next_seq(), m.clone().next_seq()), (1, 2, 3));
}
