use super::*;
use crate::model::{Attributes, Link, Log, SpanRef, attrs::Http};
use crate::render::otlp_in;

fn process() -> Arc<Process> {
    Arc::new(Process {
        service_name: "web".into(),
        tags: vec![Tag::str("hostname", "h1"), Tag::str("ip", "10.0.0.1"), Tag::long("process.pid", 42)],
    })
}

fn traced_span() -> Span {
    Span {
        trace_id: TraceId { high: 0x0102_0304_0506_0708, low: 0x090a_0b0c_0d0e_0f10 },
        span_id: 0xaa,
        parent_span_id: 0xbb,
        operation: "GET /x".into(),
        flags: 1,
        start_us: 1_000,
        duration_us: 250,
        process: process(),
        body: Body::Traced(Box::new(Traced {
            kind: SpanKind::Server,
            pid: 42,
            tid: 43,
            local: Some("127.0.0.1:8080".parse().unwrap()),
            peer: Some("127.0.0.1:5000".parse().unwrap()),
            link: Some(Link::Traceparent),
            ambiguous: false,
            status: Status::Error { message: "HTTP 500".into(), log_at_us: Some(1_250) },
            attrs: Attributes::Http(Http {
                method: "GET".into(),
                target: "/x".into(),
                host: None,
                flavor: "1.1",
                request_content_length: None,
                status_code: Some(500),
                response_content_length: Some(3),
            }),
            library: None,
            truncated: false,
            data_lost_at_us: None,
            capture_degraded: false,
        })),
    }
}

fn attr<'a>(s: &'a trace::Span, key: &str) -> Option<&'a Value> {
    s.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref())
}

#[test]
fn traced_span_maps_ids_kind_status_attributes_and_events() {
    let o = render(&traced_span());
    let s = &o.span;
    assert_eq!(s.trace_id, (1u8..=16).collect::<Vec<_>>());
    assert_eq!(s.span_id, 0xaau64.to_be_bytes());
    assert_eq!(s.parent_span_id, 0xbbu64.to_be_bytes());
    assert_eq!(s.kind, Kind::Server as i32);
    assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (1_000_000, 1_250_000));
    assert_eq!(s.status, Some(trace::Status { message: "HTTP 500".into(), code: StatusCode::Error as i32 }));
    assert_eq!(attr(s, k::HTTP_METHOD), Some(&Value::StringValue("GET".into())));
    assert_eq!(attr(s, k::HTTP_STATUS_CODE), Some(&Value::IntValue(500)));
    assert_eq!(attr(s, k::NET_PEER_PORT), Some(&Value::IntValue(5000)));
    assert_eq!(attr(s, k::TRACER_LINK), Some(&Value::StringValue("traceparent".into())));
    assert_eq!(attr(s, k::THREAD_ID), Some(&Value::IntValue(43)));
    // Kind and status are fields, not attributes.
    assert!(attr(s, k::SPAN_KIND).is_none() && attr(s, k::ERROR).is_none());
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].name, "error");
    assert_eq!(s.events[0].time_unix_nano, 1_250_000);
}

#[test]
fn resource_has_service_and_host() {
    let r = resource(&process());
    let get =
        |key: &str| r.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value);
    assert_eq!(get(k::SERVICE_NAME), Some(Value::StringValue("web".into())));
    assert_eq!(get(k::HOST_NAME), Some(Value::StringValue("h1".into())));
    assert_eq!(get(k::HOST_IP), Some(Value::StringValue("10.0.0.1".into())));
    assert_eq!(get("process.pid"), Some(Value::IntValue(42)));
    assert!(get("hostname").is_none());
}

fn app_span() -> Span {
    let trace_id = TraceId { high: 7, low: 8 };
    Span {
        trace_id,
        span_id: 5,
        parent_span_id: 0,
        operation: "op".into(),
        flags: 1,
        start_us: 10,
        duration_us: 5,
        process: process(),
        body: Body::App(Box::new(AppSpan {
            kind: Some(SpanKind::Client),
            tags: vec![
                Tag::str(k::SPAN_KIND, "client"),
                Tag::bool(k::ERROR, true),
                Tag::str(k::ERROR_MESSAGE, "boom"),
                Tag::long("n", 3),
                Tag { key: "d".into(), value: TagValue::Double(1.5) },
            ],
            logs: vec![Log { timestamp_us: 12, fields: vec![Tag::str("event", "retry"), Tag::long("attempt", 2)] }],
            references: vec![
                SpanRef { kind: RefKind::ChildOf, trace_id, span_id: 4 },
                SpanRef { kind: RefKind::FollowsFrom, trace_id, span_id: 3 },
            ],
        })),
    }
}

#[test]
fn app_span_tags_become_typed_attributes_status_events_links() {
    let s = render(&app_span()).span;
    assert_eq!(s.kind, Kind::Client as i32);
    assert_eq!(s.parent_span_id, 4u64.to_be_bytes(), "the ChildOf reference is the parent");
    assert_eq!(s.links.len(), 1);
    assert_eq!(s.links[0].span_id, 3u64.to_be_bytes());
    assert_eq!(s.status, Some(trace::Status { message: "boom".into(), code: StatusCode::Error as i32 }));
    assert_eq!(attr(&s, "n"), Some(&Value::IntValue(3)));
    assert_eq!(attr(&s, "d"), Some(&Value::DoubleValue(1.5)));
    assert_eq!(s.events[0].name, "retry");
    assert_eq!(s.events[0].attributes.len(), 1);
}

#[test]
fn otlp_in_and_out_round_trip() {
    let first = render(&app_span());
    let req = request(&first.process, std::slice::from_ref(&first));
    let decoded = otlp_in::decode(req, &[Tag::str("agent.hostname", "h2")]);
    assert_eq!(decoded.rejected, 0);
    assert_eq!(decoded.spans.len(), 1);
    let back = &decoded.spans[0];
    assert_eq!(back.process.service_name, "web");
    assert!(back.process.tags.contains(&Tag::str("agent.hostname", "h2")));
    assert!(back.process.tags.contains(&Tag::str(k::HOST_NAME, "h1")));
    let again = render(back).span;
    assert_eq!(again.trace_id, first.span.trace_id);
    assert_eq!(again.parent_span_id, first.span.parent_span_id);
    assert_eq!(again.kind, first.span.kind);
    assert_eq!(again.status, first.span.status);
    assert_eq!(again.events, first.span.events);
    assert_eq!(again.links, first.span.links);
    assert_eq!(again.attributes, first.span.attributes);
    assert_eq!((again.start_time_unix_nano, again.end_time_unix_nano), (10_000, 15_000));
    // Jaeger's view of the received span keeps kind and error.
    let j = crate::render::jaeger::render(back);
    assert_eq!(j.kind(), Some("client"));
    assert!(j.tags.contains(&Tag::bool(k::ERROR, true)));
}

#[test]
fn invalid_ids_are_rejected_and_counted() {
    let mut first = render(&app_span());
    first.span.span_id = vec![1, 2, 3];
    let mut good = render(&app_span());
    good.span.span_id = 9u64.to_be_bytes().to_vec();
    let req = request(&first.process, &[first.clone(), good]);
    let d = otlp_in::decode(req, &[]);
    assert_eq!((d.spans.len(), d.rejected), (1, 1));
    assert!(d.error.unwrap().contains("span_id"));
}
