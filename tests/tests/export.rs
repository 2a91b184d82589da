//! Export and agent-role tests: what we encode decodes field by field with Apache Thrift's
//! Python library and the Jaeger types of the `jaeger-client` package; a running agent
//! process (the `agent` example of tracer-daemon: export pipeline + agent listeners) delivers
//! to a collector inside the test, forwards a real Jaeger client's spans, rides out a collector
//! outage, flushes on SIGTERM, splits UDP output and prints console / JSON output. Everything
//! listens on 127.0.0.1. Needs `python3` with tests/python/requirements.txt installed.

#[path = "export/agent.rs"]
mod agent;
#[path = "export/thrift.rs"]
mod thrift;

use std::net::UdpSocket;
use std::time::Duration;

use serde_json::{Value, json};
use tracer_daemon::jaeger::Protocol;
use tracer_daemon::jaeger::encode::{BatchMeta, ClientStats, encode_batch, encode_emit_batch};
use tracer_daemon::model::{JaegerSpan as Span, Tag, TagValue, TraceId};
use tracer_tests::collector::Collector;
use tracer_tests::wait_for;

use agent::{Agent, PATIENCE, app, tag};
use thrift::{cases, every_tag_type, expected_batch, python, python_decode, span};

// ---- independent decoders ------------------------------------------------------------------

#[test]
fn python_thrift_decodes_what_we_encode() {
    let meta = BatchMeta {
        seq_no: Some(i64::MAX - 1),
        stats: Some(ClientStats {
            full_queue_dropped_spans: 1,
            too_large_dropped_spans: 1 << 40,
            failed_to_emit_spans: 3,
        }),
    };
    for proto in [Protocol::Binary, Protocol::Compact] {
        for kind in ["batch", "emitBatch"] {
            let cases = cases();
            let mut inputs = Vec::new();
            for (i, (_, process, spans)) in cases.iter().enumerate() {
                // Every other case without the optional trailer.
                let m = if i % 2 == 0 { meta } else { BatchMeta::default() };
                let mut out = Vec::new();
                if kind == "batch" {
                    encode_batch(proto, process, spans, &m, &mut out).unwrap();
                } else {
                    encode_emit_batch(proto, 7, process, spans, &m, &mut out).unwrap();
                }
                inputs.push(out);
            }
            let decoded = python_decode(proto, kind, &inputs);
            for (i, ((name, process, spans), got)) in cases.iter().zip(&decoded).enumerate() {
                let m = if i % 2 == 0 { meta } else { BatchMeta::default() };
                let want = expected_batch(process, spans, &m);
                assert_eq!(got["trailing"], 0, "{proto:?} {kind} {name}: bytes left over");
                if got["batch"] != want {
                    // Find the first differing span for a readable failure.
                    for (j, (g, w)) in got["batch"]["spans"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .zip(want["spans"].as_array().unwrap())
                        .enumerate()
                    {
                        assert_eq!(g, w, "{proto:?} {kind} {name}: span {j}");
                    }
                    assert_eq!(got["batch"], want, "{proto:?} {kind} {name}");
                }
                if kind == "emitBatch" {
                    assert_eq!(got["message"], json!({"name": "emitBatch", "type": "ONEWAY", "seqid": 7}), "{name}");
                }
            }
        }
    }
}

// ---- end to end ----------------------------------------------------------------------------

#[test]
fn collector_receives_batches_from_the_running_agent() {
    let collector = Collector::start();
    let mut agent =
        Agent::start(&["--collector", &collector.url(), "--batch-max-age-ms", "50", "--collector-token", "t0k"]);
    let (a, b) = (app("svc-a"), app("svc-b"));
    let mut sent = Vec::new();
    for round in 0..3u64 {
        for p in [&a, &b] {
            let spans: Vec<Span> = (0..10)
                .map(|i| {
                    span(p, TraceId { high: 0, low: 100 + round }, round * 100 + i + 1, 0, "work", every_tag_type())
                })
                .collect();
            agent.send(p, &spans);
            sent.extend(spans);
        }
    }
    wait_for(PATIENCE, "60 spans at the collector", || (collector.span_count() >= 60).then_some(()));
    let received = collector.received();
    let mut seqs = Vec::new();
    for r in &received {
        assert_eq!(r.header("content-type"), Some("application/x-thrift"));
        assert_eq!(r.header("authorization"), Some("Bearer t0k"));
        let batch = r.batch.as_ref().unwrap();
        let tags = &batch.process.tags;
        assert!(matches!(tag(tags, "agent.hostname"), Some(TagValue::Str(h)) if !h.is_empty()));
        assert!(matches!(tag(tags, "hostname"), Some(TagValue::Str(_))), "hostname filled in");
        assert_eq!(tag(tags, "client-uuid"), Some(&TagValue::Str("abc".into())));
        assert!(
            batch.spans.iter().all(|s| s.process.service_name == batch.process.service_name),
            "one process per batch"
        );
        seqs.push(batch.seq_no.unwrap());
        assert_eq!(batch.stats.unwrap(), ClientStats::default());
    }
    assert_eq!(seqs, (1..=received.len() as i64).collect::<Vec<_>>(), "seqNo counts batches");
    let mut got = collector.spans();
    got.sort_by_key(|s| s.span_id);
    sent.sort_by_key(|s| s.span_id);
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(
            (g.span_id, &g.operation, &g.tags, g.start_us, g.duration_us),
            (s.span_id, &s.operation, &s.tags, s.start_us, s.duration_us)
        );
    }
    assert_eq!(got.len(), 60);
    // What arrived also decodes with the independent decoder.
    let py = python_decode(Protocol::Binary, "batch", &[received[0].body.clone()]);
    assert_eq!(py[0]["batch"]["spans"].as_array().unwrap().len(), received[0].batch.as_ref().unwrap().spans.len());

    assert_eq!(agent.metric("tracer_export_spans_sent_total{exporter=\"http\"}"), 60.0);
    assert_eq!(agent.metric("tracer_agent_spans_received_total{protocol=\"compact\"}"), 60.0);
    let resp = Agent::get(agent.sampling.unwrap(), "/sampling?service=svc-a");
    assert!(
        resp.starts_with("HTTP/1.1 200")
            && resp.ends_with(r#"{"probabilisticSampling":{"samplingRate":0.001},"strategyType":"PROBABILISTIC"}"#),
        "{resp}"
    );
    assert!(agent.stop().success());
}

#[test]
fn real_jaeger_client_spans_arrive_intact_with_host_tags() {
    let collector = Collector::start();
    let mut agent = Agent::start(&["--collector", &collector.url(), "--batch-max-age-ms", "50"]);
    let port = agent.compact.port().to_string();
    let sampling = agent.sampling.unwrap().port().to_string();
    let sent: Value = serde_json::from_str(&python(&["send_spans.py", &port, &sampling, "py-shop"], b"")).unwrap();
    let trace = u64::from_str_radix(sent["traceId"].as_str().unwrap(), 16).unwrap();
    let spans = wait_for(PATIENCE, "the Python client's two spans", || {
        let s: Vec<Span> = collector.spans().into_iter().filter(|s| s.trace_id.low == trace).collect();
        (s.len() == 2).then_some(s)
    });
    let root = spans.iter().find(|s| s.operation == "py-root").expect("py-root");
    let child = spans.iter().find(|s| s.operation == "py-child").expect("py-child");
    assert_eq!(format!("{:x}", root.span_id), sent["rootSpanId"].as_str().unwrap());
    assert_eq!(format!("{:x}", child.span_id), sent["childSpanId"].as_str().unwrap());
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(root.parent_span_id, 0);
    assert_eq!(root.flags & 1, 1, "sampled");
    assert!(root.duration_us >= child.duration_us);
    assert_eq!(tag(&root.tags, "http.status_code"), Some(&TagValue::Long(201)));
    assert_eq!(tag(&root.tags, "ratio"), Some(&TagValue::Double(0.25)));
    assert_eq!(tag(&root.tags, "cached"), Some(&TagValue::Bool(true)));
    assert_eq!(tag(&root.tags, "note"), Some(&TagValue::Str("héllo ✓".into())));
    assert_eq!(tag(&root.tags, "span.kind"), Some(&TagValue::Str("server".into())));
    let log = &child.logs[0];
    assert_eq!(tag(&log.fields, "event"), Some(&TagValue::Str("cache-miss".into())));
    assert_eq!(tag(&log.fields, "key"), Some(&TagValue::Str("user:42".into())));
    let process = &root.process;
    assert_eq!(process.service_name, "py-shop");
    assert!(
        matches!(tag(&process.tags, "jaeger.version"), Some(TagValue::Str(v)) if v.starts_with("Python-")),
        "the client's own tags are kept"
    );
    assert!(matches!(tag(&process.tags, "agent.hostname"), Some(TagValue::Str(h)) if !h.is_empty()), "host tags added");
    assert!(matches!(tag(&process.tags, "agent.version"), Some(TagValue::Str(v)) if v.starts_with("tracer-")));
    assert!(agent.stop().success());
}

#[test]
fn collector_outage_drops_are_counted_and_delivery_resumes() {
    let mut collector = Collector::start();
    let port = collector.port();
    let mut agent = Agent::start(&[
        "--collector",
        &collector.url(),
        "--queue-size",
        "300",
        "--pending-batches",
        "2",
        "--batch-max-spans",
        "50",
        "--batch-max-age-ms",
        "50",
        "--retry-initial-ms",
        "20",
        "--retry-max-ms",
        "200",
        "--retry-max-elapsed-ms",
        "1000",
        "--collector-timeout-ms",
        "500",
    ]);
    let p = app("outage");
    let batch = |op: &str, from: u64| -> Vec<Span> {
        (0..50).map(|i| span(&p, TraceId { high: 0, low: from }, from * 1000 + i, 0, op, every_tag_type())).collect()
    };
    agent.send(&p, &batch("before", 1));
    wait_for(PATIENCE, "spans before the outage", || (collector.span_count() == 50).then_some(()));
    let rss_before = agent.rss_kib();

    collector.stop();
    for n in 0..200 {
        agent.send(&p, &batch("during", 10 + n));
        if n % 20 == 0 {
            std::thread::sleep(Duration::from_millis(5)); // pace the sender, not a synchronisation
        }
    }
    let dropped = |a: &Agent| {
        a.metric("tracer_export_spans_dropped_total{reason=\"queue_full\"}")
            + a.metric("tracer_export_spans_dropped_total{reason=\"send_failed\"}")
    };
    wait_for(PATIENCE, "drops to be counted during the outage", || (dropped(&agent) > 0.0).then_some(()));
    wait_for(PATIENCE, "a batch to be given up", || {
        (agent.metric("tracer_export_spans_dropped_total{reason=\"send_failed\"}") > 0.0).then_some(())
    });
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent is still running");
    let rss_during = agent.rss_kib();
    assert!(rss_during < rss_before + 64 * 1024, "memory grew from {rss_before} KiB to {rss_during} KiB");
    assert!(agent.metric("tracer_export_queue_depth") <= 300.0);

    let collector = Collector::start_on(port).expect("the collector's port again");
    // Keep offering fresh spans until some get through: the backlog ahead of them drains first.
    let after = wait_for(PATIENCE, "spans sent after recovery", || {
        agent.send(&p, &batch("after", 5000));
        let got: Vec<Span> = collector.spans().into_iter().filter(|s| s.operation == "after").collect();
        (!got.is_empty()).then_some(got)
    });
    assert!(after.iter().all(|s| s.tags == every_tag_type()));
    let stats = collector.received().last().unwrap().batch.as_ref().unwrap().stats.unwrap();
    let queue_full = agent.metric("tracer_export_spans_dropped_total{reason=\"queue_full\"}") as i64;
    let failed = agent.metric("tracer_export_spans_dropped_total{reason=\"send_failed\"}") as i64;
    assert!(stats.failed_to_emit_spans > 0 && stats.failed_to_emit_spans <= failed, "{stats:?} vs {failed}");
    assert!(stats.full_queue_dropped_spans <= queue_full, "{stats:?} vs {queue_full}");
    assert!(agent.metric("tracer_export_retries_total{exporter=\"http\"}") > 0.0);
    assert!(agent.stop().success());
}

#[test]
fn sigterm_flushes_open_batches() {
    let collector = Collector::start();
    let mut agent = Agent::start(&["--collector", &collector.url(), "--batch-max-age-ms", "600000"]);
    let p = app("flush");
    agent
        .send(&p, &(1..=5).map(|i| span(&p, TraceId { high: 0, low: 9 }, i, 0, "pending", vec![])).collect::<Vec<_>>());
    wait_for(PATIENCE, "the agent to take the spans", || {
        (agent.metric("tracer_agent_spans_received_total{protocol=\"compact\"}") == 5.0).then_some(())
    });
    assert_eq!(collector.span_count(), 0, "held by the age limit until shutdown");
    assert!(agent.stop().success());
    assert_eq!(collector.span_count(), 5);
}

#[test]
fn udp_output_splits_batches_into_packets_that_decode() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(PATIENCE)).unwrap();
    let target = sink.local_addr().unwrap().to_string();
    let mut agent = Agent::start(&["--agent-udp", &target, "--batch-max-age-ms", "200"]);
    let p = app("udp-out");
    for i in 1..=6 {
        let big = vec![Tag::str("payload", "x".repeat(25_000))];
        agent.send(&p, &[span(&p, TraceId { high: 0, low: 4 }, i, 0, "big", big)]);
    }
    let mut packets = Vec::new();
    let mut spans = 0;
    let mut buf = vec![0u8; 70_000];
    while spans < 6 {
        let n = sink.recv(&mut buf).expect("a packet from the agent");
        assert!(n <= 65_000, "packet of {n} bytes");
        let decoded = python_decode(Protocol::Compact, "emitBatch", &[buf[..n].to_vec()]);
        spans += decoded[0]["batch"]["spans"].as_array().unwrap().len();
        packets.push(decoded.into_iter().next().unwrap());
    }
    assert_eq!(spans, 6);
    assert!(packets.len() >= 3, "six 25 kB spans need at least three packets");
    let seqs: Vec<i64> = packets.iter().map(|p| p["batch"]["seqNo"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert_eq!(packets[0]["batch"]["process"]["serviceName"], "udp-out");
    assert!(agent.stop().success());
}

#[test]
fn console_and_json_output_without_a_collector() {
    let p = app("web");
    let trace = TraceId { high: 0, low: 0xc0ffee };
    let spans = vec![
        span(&p, trace, 1, 0, "GET /home", vec![Tag::str("span.kind", "server"), Tag::long("http.status_code", 200)]),
        span(&p, trace, 2, 1, "SELECT users", vec![Tag::str("span.kind", "client"), Tag::bool("error", true)]),
    ];
    let mut agent = Agent::start(&["--console-quiet-ms", "200", "--batch-max-age-ms", "20"]);
    agent.send(&p, &spans);
    let text = wait_for(PATIENCE, "the console tree", || {
        let out = agent.stdout.lock().unwrap().join("\n");
        out.contains("SELECT users").then_some(out)
    });
    assert!(text.contains("trace 0000000000c0ffee  2 spans"), "{text}");
    assert!(text.contains("└─ web  GET /home  1.0ms  ok 200"), "{text}");
    assert!(text.contains("   └─ web  SELECT users  1.0ms  ERROR"), "{text}");
    assert!(agent.stop().success());

    let mut agent = Agent::start(&["--output", "json", "--batch-max-age-ms", "20"]);
    agent.send(&p, &spans);
    let lines: Vec<Value> = wait_for(PATIENCE, "two JSON lines", || {
        let out = agent.stdout.lock().unwrap().clone();
        (out.len() >= 2).then(|| out.iter().map(|l| serde_json::from_str(l).unwrap()).collect())
    });
    let child = lines.iter().find(|v| v["spanId"] == "0000000000000002").unwrap();
    assert_eq!(child["traceId"], "0000000000c0ffee");
    assert_eq!(child["parentSpanId"], "0000000000000001");
    assert_eq!(child["service"], "web");
    assert_eq!(child["operation"], "SELECT users");
    assert_eq!(child["kind"], "client");
    assert_eq!(child["startUs"], 1_700_000_000_000_002i64);
    assert_eq!(child["durationUs"], 1002);
    assert_eq!(child["tags"]["error"], true);
    assert!(agent.stop().success());
}

#[test]
fn jaeger_client_reads_our_sampling_strategies() {
    let dir = std::env::temp_dir().join(format!("tracer-sampling-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("strategies.json");
    std::fs::write(
        &file,
        r#"{"default_strategy": {"type": "probabilistic", "param": 0.5},
            "service_strategies": [
              {"service": "limited", "type": "ratelimiting", "param": 7},
              {"service": "per-op", "type": "probabilistic", "param": 0.2,
               "operation_strategies": [{"operation": "GET /health", "type": "probabilistic", "param": 0.0}]}]}"#,
    )
    .unwrap();
    let mut agent = Agent::start(&["--sampling-strategies-file", file.to_str().unwrap()]);
    let port = agent.sampling.unwrap().port().to_string();
    let out: Value =
        serde_json::from_str(&python(&["sampling_check.py", &port, "limited", "per-op", "other"], b"")).unwrap();
    assert_eq!(
        out,
        json!({
            "limited": "RateLimitingSampler(7)",
            "per-op": "AdaptiveSampler(0.200000, 0.000000, 2000)",
            "other": "ProbabilisticSampler(0.5)",
        })
    );
    assert!(agent.stop().success());
    std::fs::remove_dir_all(&dir).unwrap();
}
