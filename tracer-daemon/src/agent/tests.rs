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
        otlp_grpc_addr: "127.0.0.1:0".into(),
        otlp_http_addr: "127.0.0.1:0".into(),
        zipkin_addr: "127.0.0.1:0".into(),
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

async fn post(addr: std::net::SocketAddr, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text[9..12].parse().unwrap();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, out[at..].to_vec())
}

fn otlp_request(span_ids: &[u64]) -> crate::render::otlp::proto::collector::trace::v1::ExportTraceServiceRequest {
    use crate::model::{AppSpan, Body, SpanKind};
    let process = Arc::new(Process { service_name: "otel-app".into(), tags: vec![Tag::str("host.name", "c1")] });
    let spans: Vec<_> = span_ids
        .iter()
        .map(|id| {
            crate::render::otlp::render(&Span {
                trace_id: TraceId { high: 1, low: 2 },
                span_id: *id,
                parent_span_id: 0,
                operation: "work".into(),
                flags: 1,
                start_us: 1,
                duration_us: 1,
                process: process.clone(),
                body: Body::App(Box::new(AppSpan { kind: Some(SpanKind::Server), ..Default::default() })),
            })
        })
        .collect();
    crate::render::otlp::request(&process, &spans)
}

#[tokio::test]
async fn otlp_http_and_grpc_receive_with_host_tags_and_refuse_bad_input() {
    use prost::Message as _;
    use std::io::Write as _;
    let cfg = ExportConfig { otlp_max_body_bytes: 64 * 1024, ..local_cfg() };
    let reg = Registry::new();
    let (ex, sink) = MemoryExporter::new();
    let host = HostInfo::new("node-7", "10.9.8.7");
    let pipeline = Pipeline::spawn_with(&cfg, host.clone(), reg.clone(), None, ex).unwrap();
    let agent = spawn(&cfg, &host, pipeline.sender.clone(), reg.clone()).await.unwrap();
    let http = agent.otlp_http_addr.unwrap();
    let proto = "Content-Type: application/x-protobuf\r\n";

    let (status, _) = post(http, proto, &otlp_request(&[1, 2]).encode_to_vec()).await;
    assert_eq!(status, 200);
    let json = serde_json::to_vec(&otlp_request(&[3])).unwrap();
    let (status, body) = post(http, "Content-Type: application/json\r\n", &json).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&otlp_request(&[4]).encode_to_vec()).unwrap();
    let (status, _) = post(http, &format!("{proto}Content-Encoding: gzip\r\n"), &gz.finish().unwrap()).await;
    assert_eq!(status, 200);
    // One invalid span id among valid ones: partial success.
    let mut bad = otlp_request(&[5, 6]);
    bad.resource_spans[0].scope_spans[0].spans[1].span_id = vec![0; 8];
    let (status, body) = post(http, proto, &bad.encode_to_vec()).await;
    assert_eq!(status, 200);
    let resp = crate::render::otlp::proto::collector::trace::v1::ExportTraceServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(resp.partial_success.unwrap().rejected_spans, 1);

    assert_eq!(post(http, proto, b"\xff\xff\xff garbage").await.0, 400);
    assert_eq!(post(http, "Content-Type: application/json\r\n", b"{not json").await.0, 400);
    assert_eq!(post(http, "Content-Type: text/plain\r\n", b"x").await.0, 415);
    assert_eq!(post(http, &format!("{proto}Content-Encoding: br\r\n"), b"x").await.0, 415);
    assert_eq!(post(http, proto, &vec![0u8; 70 * 1024]).await.0, 413);

    // gRPC.
    use crate::render::otlp::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
    let mut client = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr.unwrap())).await.unwrap();
    let resp = client.export(otlp_request(&[7, 8])).await.unwrap().into_inner();
    assert!(resp.partial_success.is_none());

    wait_until("spans", || sink.span_count() == 7).await;
    let spans = sink.spans();
    for s in &spans {
        assert_eq!(s.process.service_name, "otel-app");
        assert!(s.process.tags.contains(&Tag::str("agent.hostname", "node-7")), "{:?}", s.process.tags);
        assert_eq!(s.kind(), Some("server"));
    }
    let metrics = reg.render();
    assert!(metrics.contains("tracer_otlp_spans_received_total{transport=\"http\"} 5\n"), "{metrics}");
    assert!(metrics.contains("tracer_otlp_spans_received_total{transport=\"grpc\"} 2\n"));
    assert!(metrics.contains("tracer_otlp_requests_total{transport=\"http\",outcome=\"bad_request\"} 2\n"));
    assert!(metrics.contains("tracer_otlp_requests_total{transport=\"http\",outcome=\"unsupported_media_type\"} 2\n"));
    assert!(metrics.contains("tracer_otlp_spans_rejected_total{transport=\"http\"} 1\n"));
    assert!(metrics.contains("tracer_otlp_requests_total{transport=\"http\",outcome=\"too_large\"} 1\n"));
    assert!(metrics.contains("tracer_listener_dropped_total{listener=\"otlp_http\",reason=\"body_too_large\"} 1\n"));
    agent.shutdown().await;
    assert!(pipeline.shutdown(Duration::from_secs(1)).await);
}

/// The OTLP receivers' limits: the gRPC one closes a connection beyond its limit, the HTTP one
/// cuts off a request that is not complete by its deadline; both are counted per listener, and
/// the UDP listeners' kernel drop counts are exported.
#[tokio::test]
async fn otlp_receivers_close_connections_beyond_the_limit_and_late_requests() {
    let cfg = ExportConfig { otlp_max_connections: 1, otlp_request_timeout_ms: 300, ..local_cfg() };
    let reg = Registry::new();
    let (ex, sink) = MemoryExporter::new();
    let host = HostInfo::new("node-7", "10.9.8.7");
    let pipeline = Pipeline::spawn_with(&cfg, host.clone(), reg.clone(), None, ex).unwrap();
    let agent = spawn(&cfg, &host, pipeline.sender.clone(), reg.clone()).await.unwrap();

    use crate::render::otlp::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
    let grpc = agent.otlp_grpc_addr.unwrap();
    let mut client = TraceServiceClient::connect(format!("http://{grpc}")).await.unwrap();
    client.export(otlp_request(&[1])).await.unwrap();
    // The client's connection holds the only slot: a second one is closed unanswered.
    let mut extra = tokio::net::TcpStream::connect(grpc).await.unwrap();
    let _ = extra.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut out)).await;
    assert!(closed.is_ok() && out.is_empty(), "the connection beyond the limit was served: {out:?}");
    client.export(otlp_request(&[2])).await.expect("the first connection is still served");

    let http = agent.otlp_http_addr.unwrap();
    let mut slow = tokio::net::TcpStream::connect(http).await.unwrap();
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: 10\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let began = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&answer));
    assert!(began.elapsed() < Duration::from_secs(3));

    wait_until("spans", || sink.span_count() == 2).await;
    let metrics = reg.render();
    for want in [
        "tracer_listener_dropped_total{listener=\"otlp_grpc\",reason=\"connection_limit\"} 1\n",
        "tracer_listener_dropped_total{listener=\"otlp_http\",reason=\"request_timeout\"} 1\n",
        "tracer_listener_dropped_total{listener=\"sampling\",reason=\"body_too_large\"} 0\n",
        "tracer_agent_udp_kernel_drops_total{protocol=\"compact\"} 0\n",
        "tracer_agent_udp_kernel_drops_total{protocol=\"binary\"} 0\n",
    ] {
        assert!(metrics.contains(want), "{want} in\n{metrics}");
    }
    agent.shutdown().await;
    assert!(pipeline.shutdown(Duration::from_secs(1)).await);
}
