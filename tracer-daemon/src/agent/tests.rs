//! Tests of the agent listeners on 127.0.0.1: forwarding with host tags, malformed packets,
//! and the sampling endpoint over HTTP.

use super::*;
use crate::export::memory::MemoryExporter;
use crate::export::{OutputMode, Pipeline};
use crate::jaeger::encode::{BatchMeta, encode_emit_batch};
use crate::model::{JaegerSpan, TraceId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn local_cfg() -> ExportConfig {
    ExportConfig {
        output: Some(OutputMode::Console),
        agent_compact_addr: "127.0.0.1:0".into(),
        agent_binary_addr: "127.0.0.1:0".into(),
        sampling_addr: "127.0.0.1:0".into(),
        batch_max_age_ms: 10,
        ..Default::default()
    }
}

fn client_span(process: &Arc<Process>, id: u64) -> JaegerSpan {
    JaegerSpan {
        trace_id: TraceId { high: 0, low: 0xfeed },
        span_id: id,
        parent_span_id: 0,
        operation: "client-op".into(),
        flags: 1,
        start_us: 100,
        duration_us: 5,
        tags: vec![Tag::str("span.kind", "client")],
        logs: vec![],
        references: vec![],
        process: process.clone(),
    }
}

#[tokio::test]
async fn forwards_both_protocols_with_host_tags_and_survives_garbage() {
    let cfg = local_cfg();
    let reg = Registry::new();
    let (ex, sink) = MemoryExporter::new();
    let host = HostInfo::new("node-7", "10.9.8.7");
    let pipeline = Pipeline::spawn_with(&cfg, host.clone(), reg.clone(), None, ex).unwrap();
    let agent = spawn(&cfg, &host, pipeline.sender.clone(), reg.clone()).await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let process = Arc::new(Process {
        service_name: "py-app".into(),
        tags: vec![Tag::str("hostname", "container-1"), Tag::str("agent.ip", "spoofed")],
    });

    client.send_to(b"\x00\x01 not thrift", agent.compact_addr.unwrap()).await.unwrap();
    client.send_to(&[0x82], agent.binary_addr.unwrap()).await.unwrap();
    for (proto, addr, id) in
        [(Protocol::Compact, agent.compact_addr.unwrap(), 1), (Protocol::Binary, agent.binary_addr.unwrap(), 2)]
    {
        let mut pkt = Vec::new();
        encode_emit_batch(proto, 0, &process, &[client_span(&process, id)], &BatchMeta::default(), &mut pkt).unwrap();
        client.send_to(&pkt, addr).await.unwrap();
    }
    wait_until("two forwarded spans", || sink.span_count() == 2).await;
    for b in sink.batches() {
        let tags = &b.process.tags;
        assert_eq!(b.process.service_name, "py-app");
        assert!(tags.contains(&Tag::str("hostname", "container-1")), "the client's own tag is kept");
        assert!(tags.contains(&Tag::str("agent.hostname", "node-7")));
        assert!(tags.contains(&Tag::str("agent.ip", "10.9.8.7")), "agent tags replace client ones");
        assert!(!tags.contains(&Tag::str("agent.ip", "spoofed")));
        assert!(tags.contains(&Tag::str("ip", "10.9.8.7")), "missing ip is filled in");
        assert_eq!(b.spans[0].operation, "client-op");
    }
    wait_until("malformed packets counted", || {
        let text = reg.render();
        text.contains("tracer_agent_packets_dropped_total{protocol=\"compact\",reason=\"malformed\"} 1")
            && text.contains("tracer_agent_packets_dropped_total{protocol=\"binary\",reason=\"malformed\"} 1")
    })
    .await;
    assert!(reg.render().contains("tracer_agent_spans_received_total{protocol=\"compact\"} 1"));
    agent.shutdown().await;
    assert!(pipeline.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn sampling_over_http_and_listeners_turn_off() {
    let cfg = ExportConfig {
        agent_compact_addr: String::new(),
        agent_binary_addr: " ".into(),
        sampling: Some(
            serde_yaml::from_str("service_strategies: [{service: web, type: ratelimiting, param: 3}]").unwrap(),
        ),
        ..local_cfg()
    };
    let reg = Registry::new();
    let (ex, _sink) = MemoryExporter::new();
    let host = HostInfo::new("h", "1.1.1.1");
    let pipeline = Pipeline::spawn_with(&cfg, host.clone(), reg.clone(), None, ex).unwrap();
    let agent = spawn(&cfg, &host, pipeline.sender.clone(), reg).await.unwrap();
    assert!(agent.compact_addr.is_none() && agent.binary_addr.is_none());
    let mut s = tokio::net::TcpStream::connect(agent.sampling_addr.unwrap()).await.unwrap();
    s.write_all(b"GET /sampling?service=web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("Content-Type: application/json"), "{resp}");
    assert!(
        resp.ends_with(r#"{"rateLimitingSampling":{"maxTracesPerSecond":3},"strategyType":"RATE_LIMITING"}"#),
        "{resp}"
    );
    agent.shutdown().await;
    pipeline.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bind_errors_name_the_listener() {
    let cfg = ExportConfig { agent_compact_addr: "256.0.0.1:1".into(), ..local_cfg() };
    let reg = Registry::new();
    let (ex, _sink) = MemoryExporter::new();
    let pipeline = Pipeline::spawn_with(&cfg, HostInfo::new("h", "i"), reg.clone(), None, ex).unwrap();
    let err = spawn(&cfg, &HostInfo::new("h", "i"), pipeline.sender.clone(), reg).await.err().unwrap();
    assert!(err.to_string().contains("compact emitBatch"), "{err}");
}
