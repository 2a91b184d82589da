//! Stitching scenarios with counting ids, so parents and traces are asserted exactly.

use std::sync::Arc;

use super::*;
use crate::model::{Attributes, Body, Process, Span, SpanKind, Status, Traced};

struct Counting(u64);

impl IdSource for Counting {
    fn trace_id(&mut self) -> TraceId {
        self.0 += 1;
        TraceId { high: 0, low: 1000 + self.0 }
    }
    fn span_id(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn stitcher() -> Stitcher<Counting> {
    Stitcher::with_ids(StitchConfig { hold_ns: 100, join_window_ns: 1_000 }, Counting(0))
}

fn tuple(local: &str, remote: &str) -> Tuple {
    Tuple { local: local.parse().unwrap(), remote: remote.parse().unwrap() }
}

fn origin(pid: u32, tid: u32, t: Tuple, seq: u64, ts: u64) -> Origin {
    Origin { pid, tid, tuple: t, seq, ts_ns: ts }
}

fn span(ids: &Ids) -> Span {
    let traced = Traced {
        kind: SpanKind::Server,
        pid: 1,
        tid: 0,
        local: None,
        peer: None,
        link: ids.link,
        ambiguous: false,
        status: Status::Ok,
        attrs: Attributes::Redis(Default::default()),
        library: None,
        truncated: false,
    };
    Span {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        parent_span_id: ids.parent_span_id,
        operation: "op".into(),
        flags: 1,
        start_us: 0,
        duration_us: 1,
        body: Body::Traced(Box::new(traced)),
        process: Arc::new(Process { service_name: "s".into(), tags: vec![] }),
    }
}

const C: &str = "127.0.0.1:40000";
const S: &str = "127.0.0.1:8080";

#[test]
fn same_host_join_client_first_makes_the_server_a_child() {
    let mut st = stitcher();
    let client = st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    let server = st.server_request(origin(2, 2, tuple(S, C), 0, 11), None, None);
    assert_eq!(client.parent_span_id, 0);
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(server.trace_id, client.trace_id);
    assert_eq!(server.link, Some(Link::SameHostTuple));
}

#[test]
fn the_nth_request_joins_the_nth_only() {
    let mut st = stitcher();
    let c0 = st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    let c1 = st.client_request(origin(1, 1, tuple(C, S), 1, 12), None, None);
    let s1 = st.server_request(origin(2, 2, tuple(S, C), 1, 13), None, None);
    let s0 = st.server_request(origin(2, 2, tuple(S, C), 0, 14), None, None);
    assert_eq!(s0.parent_span_id, c0.span_id);
    assert_eq!(s1.parent_span_id, c1.span_id);
}

#[test]
fn server_seen_before_client_joins_late_through_alias_and_late_parent() {
    let mut st = stitcher();
    // Server reads first; its thread calls Redis while serving.
    let server = st.server_request(origin(2, 2, tuple(S, C), 0, 10), None, None);
    let redis = st.client_request(origin(2, 2, tuple("127.0.0.1:50000", "127.0.0.1:6379"), 0, 11), None, None);
    assert_eq!(redis.parent_span_id, server.span_id);
    // Then the client's write is reported, itself a child of a request its thread serves.
    let front = st.server_request(origin(1, 1, tuple("127.0.0.1:80", "127.0.0.1:33333"), 0, 5), None, None);
    let client = st.client_request(origin(1, 1, tuple(C, S), 0, 12), None, None);
    assert_eq!(client.parent_span_id, front.span_id);
    for ids in [&redis, &server, &client, &front] {
        st.finish(span(ids), 20);
    }
    let mut out = Vec::new();
    st.drain(119, false, &mut out);
    assert!(out.is_empty(), "held until the hold is over");
    st.drain(120, false, &mut out);
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|s| s.trace_id == front.trace_id), "one trace: {out:?}");
    let server_out = out.iter().find(|s| s.span_id == server.span_id).unwrap();
    assert_eq!(server_out.parent_span_id, client.span_id);
    assert_eq!(crate::render::jaeger::render(server_out.clone()).tag_str("tracer.link"), Some("same-host-tuple"));
    let redis_out = out.iter().find(|s| s.span_id == redis.span_id).unwrap();
    assert_eq!(redis_out.parent_span_id, server.span_id);
}

#[test]
fn thread_causality_links_only_when_one_request_is_in_flight() {
    let mut st = stitcher();
    let a = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:1"), 0, 10), None, None);
    let child = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 0, 11), None, None);
    assert_eq!((child.parent_span_id, child.trace_id, child.link), (a.span_id, a.trace_id, Some(Link::Thread)));
    let _b = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:2"), 0, 12), None, None);
    let unclear = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 1, 13), None, None);
    assert_eq!(unclear.parent_span_id, 0, "two requests in flight on the thread: no link");
    assert!(unclear.ambiguous);
    st.server_done(2, Some(7), a.span_id);
    let after = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 2, 14), None, None);
    assert_eq!(after.link, Some(Link::Thread), "one request left in flight");
    let other_thread = st.client_request(origin(2, 8, tuple("127.0.0.1:9", "127.0.0.1:6379"), 0, 15), None, None);
    assert_eq!(other_thread.parent_span_id, 0);
}

#[test]
fn adopted_context_wins_over_the_tuple_join() {
    let mut st = stitcher();
    let _client = st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    let ctx = TraceContext {
        trace_id: TraceId { high: 5, low: 6 },
        span_id: 77,
        sampled: true,
        source: ContextSource::Traceparent,
    };
    let server = st.server_request(origin(2, 2, tuple(S, C), 0, 11), Some(&ctx), None);
    assert_eq!((server.trace_id, server.parent_span_id), (ctx.trace_id, 77));
    assert_eq!(server.link, Some(Link::Traceparent));
}

#[test]
fn unmatched_join_state_expires() {
    let mut st = stitcher();
    st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    st.server_request(origin(2, 2, tuple(S, "127.0.0.1:9"), 0, 10), None, None);
    assert_eq!(st.pending_joins(), 2);
    let mut out = Vec::new();
    st.drain(2_000, false, &mut out);
    assert_eq!(st.pending_joins(), 0);
    assert_eq!((st.expired(JoinExpired::Client), st.expired(JoinExpired::Server)), (1, 1));
}

fn tid(low: u64) -> TraceId {
    TraceId { high: 7, low }
}

#[test]
fn tcp_option_across_hosts_gives_the_client_span_the_kernel_ids_and_the_server_its_child() {
    // Host A: a server request with the kernel's trace id, then a call on its thread.
    let mut a = stitcher();
    let front = a.server_request(
        origin(1, 1, tuple("10.0.0.1:80", "10.0.0.9:5000"), 0, 5),
        None,
        Some(KernelIds::Server { trace_id: tid(1) }),
    );
    assert_eq!((front.trace_id, front.parent_span_id, front.link), (tid(1), 0, None));
    let call = a.client_request(
        origin(1, 1, tuple("10.0.1.1:40000", "10.0.1.2:8080"), 0, 6),
        None,
        Some(KernelIds::Client { trace_id: tid(1), span_id: 0xabc }),
    );
    assert_eq!((call.trace_id, call.span_id, call.parent_span_id), (tid(1), 0xabc, front.span_id));
    assert_eq!(call.link, Some(Link::Thread));
    // Host B: its own daemon reads the option.
    let mut b = stitcher();
    let server = b.server_request(
        origin(2, 2, tuple("10.0.1.2:8080", "10.0.1.1:40000"), 0, 7),
        None,
        Some(KernelIds::Peer { trace_id: tid(1), parent_span_id: 0xabc }),
    );
    assert_eq!((server.trace_id, server.parent_span_id, server.link), (tid(1), 0xabc, Some(Link::TcpOption)));
    assert_eq!(b.pending_joins(), 0, "an option-linked request waits for no same-host client");
}

#[test]
fn adopted_context_outranks_the_option_and_local_calls_follow_it() {
    let mut st = stitcher();
    let ctx = TraceContext { trace_id: tid(50), span_id: 9, source: ContextSource::Traceparent, sampled: true };
    let server = st.server_request(
        origin(2, 2, tuple(S, C), 0, 10),
        Some(&ctx),
        Some(KernelIds::Peer { trace_id: tid(1), parent_span_id: 0xabc }),
    );
    assert_eq!((server.trace_id, server.parent_span_id, server.link), (tid(50), 9, Some(Link::Traceparent)));
    // The thread's outbound call carries the kernel's trace id on the wire; here it joins the
    // adopted trace.
    let call = st.client_request(
        origin(2, 2, tuple("127.0.0.1:5", "127.0.0.1:6379"), 0, 11),
        None,
        Some(KernelIds::Client { trace_id: tid(1), span_id: 0xdef }),
    );
    assert_eq!((call.span_id, call.parent_span_id), (0xdef, server.span_id));
    st.finish(span(&call), 12);
    let mut out = Vec::new();
    st.drain(1_000, true, &mut out);
    assert_eq!(out[0].trace_id, tid(50));
}

#[test]
fn kernel_ids_without_a_single_serving_request_make_no_parent() {
    let mut st = stitcher();
    let _a = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:1"), 0, 10), None, None);
    let _b = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:2"), 0, 11), None, None);
    let call = st.client_request(
        origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 0, 12),
        None,
        Some(KernelIds::Client { trace_id: tid(3), span_id: 0x33 }),
    );
    assert_eq!((call.trace_id, call.span_id, call.parent_span_id), (tid(3), 0x33, 0));
    assert!(call.ambiguous);
}
