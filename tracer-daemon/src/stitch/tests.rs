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
    Stitcher::with_ids(StitchConfig { hold_ns: 100, join_window_ns: 1_000, ..StitchConfig::default() }, Counting(0))
}

fn tuple(local: &str, remote: &str) -> Tuple {
    Tuple { local: local.parse().unwrap(), remote: remote.parse().unwrap() }
}

fn origin(pid: u32, tid: u32, t: Tuple, seq: u64, ts: u64) -> Origin {
    Origin { pid, tid, goid: None, tuple: t, seq, ts_ns: ts, netns: 0, aligned: true }
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
        data_lost_at_us: None,
        capture_degraded: false,
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
    assert_eq!(crate::render::jaeger::render(server_out).tag_str("tracer.link"), Some("same-host-tuple"));
    let redis_out = out.iter().find(|s| s.span_id == redis.span_id).unwrap();
    assert_eq!(redis_out.parent_span_id, server.span_id);
}

fn on_goroutine(mut o: Origin, goid: u64) -> Origin {
    o.goid = Some(goid);
    o
}

/// Go: the goroutine is the unit. Two requests served by goroutines that share a thread are
/// both proven; a goroutine with two in flight is ambiguous; a goroutine that serves nothing
/// (one the handler started) and a call whose goroutine is unknown get no link.
#[test]
fn goroutine_causality_is_per_goroutine_not_per_thread() {
    let mut st = stitcher();
    let redis = |port: u16| tuple(&format!("127.0.0.1:{port}"), "127.0.0.1:6379");
    let a = st.server_request(on_goroutine(origin(2, 7, tuple(S, "127.0.0.1:1"), 0, 10), 20), None, None);
    let b = st.server_request(on_goroutine(origin(2, 7, tuple(S, "127.0.0.1:2"), 0, 11), 21), None, None);
    // Goroutine 20 now runs on thread 8: still request a's.
    let ca = st.client_request(on_goroutine(origin(2, 8, redis(5), 0, 12), 20), None, None);
    let cb = st.client_request(on_goroutine(origin(2, 7, redis(6), 0, 13), 21), None, None);
    assert_eq!((ca.parent_span_id, ca.trace_id, ca.link), (a.span_id, a.trace_id, Some(Link::Thread)));
    assert_eq!((cb.parent_span_id, cb.trace_id), (b.span_id, b.trace_id));
    let spawned = st.client_request(on_goroutine(origin(2, 7, redis(7), 0, 14), 22), None, None);
    assert_eq!((spawned.parent_span_id, spawned.ambiguous), (0, false), "goroutine 22 serves nothing");
    let unknown = st.client_request(origin(2, 7, redis(8), 0, 15), None, None);
    assert_eq!(unknown.parent_span_id, 0, "thread 7 serves nothing by itself");
    assert!(unknown.trace_id != a.trace_id && unknown.trace_id != b.trace_id);
    // Goroutine 21 reads a second request before answering the first: ambiguous.
    let _b2 = st.server_request(on_goroutine(origin(2, 7, tuple(S, "127.0.0.1:3"), 0, 16), 21), None, None);
    let unclear = st.client_request(on_goroutine(origin(2, 7, redis(6), 1, 17), 21), None, None);
    assert_eq!(unclear.parent_span_id, 0);
    assert!(unclear.ambiguous);
    // Goroutines of another process with the same ids are others.
    let elsewhere = st.client_request(on_goroutine(origin(3, 7, redis(9), 0, 18), 20), None, None);
    assert_eq!(elsewhere.parent_span_id, 0);
    st.server_done(2, Some(Runner::Goroutine(20)), a.span_id);
    let after = st.client_request(on_goroutine(origin(2, 8, redis(5), 1, 19), 20), None, None);
    assert_eq!(after.parent_span_id, 0, "request a answered");
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
    st.server_done(2, Some(Runner::Thread(7)), a.span_id);
    let after = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 2, 14), None, None);
    assert_eq!(after.parent_span_id, 0, "one left in flight, but which one a call serves is not proven");
    assert!(after.ambiguous);
    assert_ne!(after.trace_id, _b.trace_id, "an unproven call never takes a served trace");
    assert_ne!(after.trace_id, a.trace_id);
    st.server_done(2, Some(Runner::Thread(7)), _b.span_id);
    let c = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:3"), 0, 15), None, None);
    let proven = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 3, 16), None, None);
    assert_eq!((proven.parent_span_id, proven.trace_id), (c.span_id, c.trace_id), "the thread served none, then one");
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
    assert_eq!((st.expired(JoinDropped::Client), st.expired(JoinDropped::Server)), (1, 1));
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
fn an_option_linked_server_on_the_same_host_settles_its_clients_join_entry() {
    let mut st = stitcher();
    for seq in 0..1_000u64 {
        let call = st.client_request(
            origin(1, 1, tuple(C, S), seq, 10 + seq),
            None,
            Some(KernelIds::Client { trace_id: tid(seq + 1), span_id: 0x1000 + seq }),
        );
        let server = st.server_request(
            origin(2, 2, tuple(S, C), seq, 11 + seq),
            None,
            Some(KernelIds::Peer { trace_id: tid(seq + 1), parent_span_id: 0x1000 + seq }),
        );
        assert_eq!((server.trace_id, server.parent_span_id), (call.trace_id, call.span_id));
        assert_eq!(server.link, Some(Link::TcpOption));
    }
    assert_eq!(st.pending_joins(), 0, "no client entry waits for a join the option made");
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

#[test]
fn a_call_on_a_thread_that_serves_nothing_starts_its_own_trace() {
    let mut st = stitcher();
    let a = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:1"), 0, 10), None, None);
    st.server_done(2, Some(Runner::Thread(7)), a.span_id);
    // Work after the response (a background write, a timer): not the request's child.
    let late = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 0, 11), None, None);
    assert_eq!((late.parent_span_id, late.link, late.ambiguous), (0, None, false));
    assert_ne!(late.trace_id, a.trace_id);
}

#[test]
fn kernel_ids_naming_a_served_trace_without_proof_are_disowned_and_the_server_follows() {
    let mut st = stitcher();
    let a = st.server_request(
        origin(2, 7, tuple(S, "127.0.0.1:1"), 0, 10),
        None,
        Some(KernelIds::Server { trace_id: tid(1) }),
    );
    let _b = st.server_request(
        origin(2, 7, tuple(S, "127.0.0.1:2"), 0, 11),
        None,
        Some(KernelIds::Server { trace_id: tid(2) }),
    );
    // The kernel (after lost events) still named a's trace.
    let call = st.client_request(
        origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 0, 12),
        None,
        Some(KernelIds::Client { trace_id: tid(1), span_id: 0x44 }),
    );
    assert_eq!((call.span_id, call.parent_span_id), (0x44, 0));
    assert_ne!(st.resolve(call.trace_id), st.resolve(a.trace_id), "not in a's trace");
    assert_ne!(call.trace_id, tid(2));
    // The server on this host reads the option: it joins the call's fresh trace, not a's.
    let server = st.server_request(
        origin(3, 3, tuple("127.0.0.1:6379", "127.0.0.1:5"), 0, 13),
        None,
        Some(KernelIds::Peer { trace_id: tid(1), parent_span_id: 0x44 }),
    );
    assert_eq!((server.trace_id, server.parent_span_id), (call.trace_id, 0x44));
    assert_eq!(st.resolve(a.trace_id), a.trace_id, "a's trace stays a's");
}

#[test]
fn a_server_span_without_evidence_keeps_the_kernels_fresh_trace_and_no_parent() {
    let mut st = stitcher();
    let s = st.server_request(
        origin(2, 7, tuple(S, "10.0.0.9:1"), 0, 10),
        None,
        Some(KernelIds::Server { trace_id: tid(9) }),
    );
    assert_eq!((s.trace_id, s.parent_span_id, s.link), (tid(9), 0, None));
}

fn in_ns(mut o: Origin, netns: u32) -> Origin {
    o.netns = netns;
    o
}

#[test]
fn identical_loopback_tuples_in_two_namespaces_do_not_join() {
    let mut st = stitcher();
    let c = st.client_request(in_ns(origin(1, 1, tuple(C, S), 0, 10), 100), None, None);
    let other = st.server_request(in_ns(origin(2, 2, tuple(S, C), 0, 11), 200), None, None);
    assert_eq!(other.parent_span_id, 0, "another namespace's 127.0.0.1");
    let same = st.server_request(in_ns(origin(3, 3, tuple(S, C), 0, 12), 100), None, None);
    assert_eq!((same.parent_span_id, same.link), (c.span_id, Some(Link::SameHostTuple)));
    // Addresses other than loopback join across namespaces of one host (a veth pair).
    let c2 = st.client_request(in_ns(origin(1, 1, tuple("10.0.0.1:4000", "10.0.0.2:80"), 0, 13), 100), None, None);
    let s2 = st.server_request(in_ns(origin(4, 4, tuple("10.0.0.2:80", "10.0.0.1:4000"), 0, 14), 300), None, None);
    assert_eq!(s2.parent_span_id, c2.span_id);
}

#[test]
fn a_closed_connections_entries_never_meet_a_later_connection_with_the_same_tuple() {
    let mut st = stitcher();
    // The client's request 0 whose server side is never seen; then the client closes.
    st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    st.closed(0, tuple(C, S), 20);
    let mut out = Vec::new();
    st.drain(20 + 100, false, &mut out);
    assert_eq!(st.pending_joins(), 0, "forgotten once the hold after close is over");
    assert_eq!(st.expired(JoinDropped::Closed), 1);
    // A later connection with the same tuple: its server request 0 finds nothing old.
    let s = st.server_request(origin(2, 2, tuple(S, C), 0, 130), None, None);
    assert_eq!(s.parent_span_id, 0);
}

#[test]
fn a_request_on_a_new_connection_clears_the_closed_one_with_the_same_key() {
    let mut st = stitcher();
    st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    st.closed(0, tuple(C, S), 20);
    // Within the hold, the same tuple is reused and its request 0 is sent.
    let c = st.client_request(origin(1, 1, tuple(C, S), 0, 30), None, None);
    assert_eq!(st.expired(JoinDropped::Closed), 1);
    let s = st.server_request(origin(2, 2, tuple(S, C), 0, 31), None, None);
    assert_eq!(s.parent_span_id, c.span_id, "the new connection's request 0");
}

#[test]
fn the_server_may_read_after_the_client_closed_within_the_hold() {
    let mut st = stitcher();
    let c = st.client_request(origin(1, 1, tuple(C, S), 0, 10), None, None);
    st.closed(0, tuple(C, S), 11);
    let s = st.server_request(origin(2, 2, tuple(S, C), 0, 12), None, None);
    assert_eq!(s.parent_span_id, c.span_id);
}

#[test]
fn an_unaligned_connection_makes_no_same_host_join() {
    let mut st = stitcher();
    let mut o = origin(1, 1, tuple(C, S), 3, 10);
    o.aligned = false;
    st.client_request(o, None, None);
    // The other end's request 3 is another request than the client's (counts drifted).
    let s = st.server_request(origin(2, 2, tuple(S, C), 3, 11), None, None);
    assert_eq!(s.parent_span_id, 0);
    let mut o = origin(2, 2, tuple(S, C), 4, 12);
    o.aligned = false;
    st.client_request(origin(1, 1, tuple(C, S), 4, 12), None, None);
    let s = st.server_request(o, None, None);
    assert_eq!(s.parent_span_id, 0);
    assert_eq!(st.expired(JoinDropped::Unaligned), 2);
}

#[test]
fn figures_count_spans_by_link_ambiguous_and_orphaned() {
    let mut st = stitcher();
    let a = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:1"), 0, 10), None, None);
    let child = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 0, 11), None, None);
    let _b = st.server_request(origin(2, 7, tuple(S, "127.0.0.1:2"), 0, 12), None, None);
    let unclear = st.client_request(origin(2, 7, tuple("127.0.0.1:5", "127.0.0.1:6379"), 1, 13), None, None);
    for ids in [a, child, unclear] {
        let mut sp = span(&ids);
        if let Some(t) = sp.traced_mut() {
            t.ambiguous = ids.ambiguous;
        }
        st.finish(sp, 14);
    }
    let mut out = Vec::new();
    st.drain(1_000, true, &mut out);
    let f = st.figures();
    let thread = Link::ALL.iter().position(|l| *l == Link::Thread).unwrap();
    assert_eq!(f.by_link[thread], 1);
    assert_eq!(f.by_link[Link::ALL.len()], 2, "no link: the root and the unclear call");
    assert_eq!((f.ambiguous, f.orphaned), (1, 2));
}

fn port_tuple(client_port: u16) -> (Tuple, Tuple) {
    let c = format!("127.0.0.1:{client_port}");
    (tuple(&c, S), tuple(S, &c))
}

#[test]
fn aliases_and_late_parents_age_out_under_steady_traffic() {
    // Spans are always held and joins always wait somewhere: the idle clear never runs.
    let cfg = StitchConfig { hold_ns: 100, join_window_ns: 1_000, link_window_ns: 1_000, ..StitchConfig::default() };
    let mut st = Stitcher::with_ids(cfg, Counting(0));
    let mut out = Vec::new();
    let mut last = None;
    for i in 0..400u64 {
        let ts = 1_000 + i * 50;
        let (cv, sv) = port_tuple(20_000 + i as u16);
        // The server's read is reported first (provisional trace), and its span never ends
        // (the request is abandoned), so its late parent is never taken.
        let server = st.server_request(origin(2, 2, sv, 0, ts), None, None);
        let client = st.client_request(origin(1, 1, cv, 0, ts + 1), None, None);
        st.finish(span(&client), ts + 2);
        // A server whose client never comes keeps a join waiting.
        let (_, lone) = port_tuple(40_000 + i as u16);
        st.server_request(origin(3, 3, lone, 0, ts + 3), None, None);
        st.drain(ts + 4, false, &mut out);
        last = Some((server, client));
    }
    let (server, client) = last.unwrap();
    assert_eq!(st.resolve(server.trace_id), client.trace_id, "a recent alias still applies");
    let (aliases, late, disowned) = st.link_entries();
    assert!(aliases <= 22 && late <= 22 && disowned == 0, "links kept: {:?}", st.link_entries());
    assert!(st.expired(JoinDropped::LinkExpired) >= 2 * 370, "aged out and counted");
    assert_eq!(st.expired(JoinDropped::LinkLimit), 0);
}

#[test]
fn links_beyond_the_count_bound_evict_the_oldest_and_count() {
    let cfg = StitchConfig { hold_ns: 100, join_window_ns: 1_000, max_links: 8, ..StitchConfig::default() };
    let mut st = Stitcher::with_ids(cfg, Counting(0));
    let mut pairs = Vec::new();
    for i in 0..20u64 {
        let (cv, sv) = port_tuple(20_000 + i as u16);
        let server = st.server_request(origin(2, 2, sv, 0, 10 + i), None, None);
        let client = st.client_request(origin(1, 1, cv, 0, 10 + i), None, None);
        pairs.push((server, client));
    }
    let (aliases, late, _) = st.link_entries();
    assert_eq!((aliases, late), (8, 8));
    assert_eq!(st.expired(JoinDropped::LinkLimit), 2 * 12);
    let (server, client) = pairs[19];
    assert_eq!(st.resolve(server.trace_id), client.trace_id, "the newest stays");
    let (server, _) = pairs[0];
    assert_eq!(st.resolve(server.trace_id), server.trace_id, "the oldest went");
}

#[test]
fn joins_beyond_the_count_bound_evict_the_oldest_and_count() {
    let cfg = StitchConfig { hold_ns: 100, join_window_ns: 1_000_000, max_joins: 16, ..StitchConfig::default() };
    let mut st = Stitcher::with_ids(cfg, Counting(0));
    let mut clients = Vec::new();
    for i in 0..40u64 {
        let (cv, _) = port_tuple(20_000 + i as u16);
        clients.push(st.client_request(origin(1, 1, cv, 0, 10 + i), None, None));
        let (_, sv) = port_tuple(30_000 + i as u16);
        st.server_request(origin(2, 2, sv, 0, 10 + i), None, None);
    }
    assert!(st.pending_joins() <= 2 * 16, "joins kept: {}", st.pending_joins());
    let dropped = st.expired(JoinDropped::JoinLimit);
    assert_eq!(dropped as usize + st.pending_joins(), 80, "every entry is kept or counted");
    // The newest client still joins its server; the oldest was given up.
    let (_, sv) = port_tuple(20_000 + 39);
    let s = st.server_request(origin(2, 2, sv, 0, 100), None, None);
    assert_eq!(s.parent_span_id, clients[39].span_id);
    let (_, sv) = port_tuple(20_000);
    let s = st.server_request(origin(2, 2, sv, 0, 100), None, None);
    assert_eq!(s.parent_span_id, 0, "an evicted join makes no link");
}

/// grpc-go: the reader goroutine (30) reads every stream and the handler goroutines (40, 41)
/// serve them. After the hand-off, a handler's calls are its stream's children; the reader's
/// are nobody's; once the request is done the handler serves nothing.
#[test]
fn a_handed_off_request_is_served_by_the_goroutine_it_was_handed_to() {
    let mut st = stitcher();
    let conn = tuple("127.0.0.1:9000", "127.0.0.1:41000");
    let mysql = |port: u16| tuple(&format!("127.0.0.1:{port}"), "127.0.0.1:3306");
    let s1 = st.server_request(on_goroutine(origin(2, 7, conn, 1, 10), 30), None, None);
    let s3 = st.server_request(on_goroutine(origin(2, 7, conn, 3, 11), 30), None, None);
    st.server_handoff(2, Runner::Goroutine(40), &s1);
    st.server_handoff(2, Runner::Goroutine(40), &s1);
    st.server_handoff(2, Runner::Goroutine(41), &s3);
    let c1 = st.client_request(on_goroutine(origin(2, 8, mysql(5), 0, 12), 40), None, None);
    let c3 = st.client_request(on_goroutine(origin(2, 7, mysql(6), 0, 13), 41), None, None);
    assert_eq!((c1.parent_span_id, c1.trace_id), (s1.span_id, s1.trace_id), "the probe firing twice changes nothing");
    assert_eq!((c3.parent_span_id, c3.trace_id), (s3.span_id, s3.trace_id));
    let reader = st.client_request(on_goroutine(origin(2, 7, mysql(7), 0, 14), 30), None, None);
    assert_eq!(reader.parent_span_id, 0, "the reader serves two streams: ambiguous");
    // The response leaves from another goroutine (the writer): the hand-off ends with it.
    st.server_done(2, Some(Runner::Goroutine(30)), s1.span_id);
    let after = st.client_request(on_goroutine(origin(2, 8, mysql(5), 1, 15), 40), None, None);
    assert_eq!(after.parent_span_id, 0, "request 1 answered");
    // A worker goroutine handed a second stream before the first is done is ambiguous.
    st.server_handoff(2, Runner::Goroutine(41), &s1);
    let unclear = st.client_request(on_goroutine(origin(2, 7, mysql(6), 1, 16), 41), None, None);
    assert_eq!(unclear.parent_span_id, 0);
    assert!(unclear.ambiguous);
}

/// grpc-go's writer goroutine (50) writes the call's HEADERS, before or after the calling
/// goroutine (20, serving request `front`) is named: late, the call becomes `front`'s child and
/// its server side on this host follows it into `front`'s trace.
#[test]
fn a_call_written_by_another_goroutine_is_the_callers_found_late() {
    let mut st = stitcher();
    let front =
        st.server_request(on_goroutine(origin(1, 1, tuple("127.0.0.1:80", "127.0.0.1:33333"), 0, 5), 20), None, None);
    let rpc = tuple("127.0.0.1:41000", "127.0.0.1:9000");
    let call = st.client_request(on_goroutine(origin(1, 2, rpc, 1, 10), 50), None, None);
    assert_eq!(call.parent_span_id, 0, "the writer serves nothing");
    let server = st.server_request(origin(2, 3, rpc.reversed(), 1, 11), None, None);
    assert_eq!(server.parent_span_id, call.span_id);
    st.client_caller(1, Runner::Goroutine(20), &call, 12);
    // A goroutine that serves nothing proves nothing.
    let other = st.client_request(on_goroutine(origin(1, 2, rpc, 3, 13), 50), None, None);
    st.client_caller(1, Runner::Goroutine(21), &other, 14);
    for ids in [&front, &call, &server, &other] {
        st.finish(span(ids), 20);
    }
    let mut out = Vec::new();
    st.drain(200, false, &mut out);
    let get = |id: u64| out.iter().find(|s| s.span_id == id).unwrap();
    assert_eq!((get(call.span_id).parent_span_id, get(call.span_id).trace_id), (front.span_id, front.trace_id));
    assert_eq!(get(server.span_id).trace_id, front.trace_id, "the server followed its client");
    assert_eq!(get(other.span_id).parent_span_id, 0);
    assert_ne!(get(other.span_id).trace_id, front.trace_id);
}

/// A call whose trace is one this process serves (a request to itself) is never re-parented:
/// that would merge two requests.
#[test]
fn a_late_caller_never_merges_two_served_requests() {
    let mut st = stitcher();
    let front =
        st.server_request(on_goroutine(origin(1, 1, tuple("127.0.0.1:80", "127.0.0.1:33333"), 0, 5), 20), None, None);
    let rpc = tuple("127.0.0.1:41000", "127.0.0.1:9000");
    let call = st.client_request(on_goroutine(origin(1, 2, rpc, 1, 10), 50), None, None);
    let inner = st.server_request(on_goroutine(origin(1, 3, rpc.reversed(), 1, 11), 60), None, None);
    assert_eq!(inner.trace_id, call.trace_id);
    st.client_caller(1, Runner::Goroutine(20), &call, 12);
    for ids in [&front, &call, &inner] {
        st.finish(span(ids), 20);
    }
    let mut out = Vec::new();
    st.drain(200, false, &mut out);
    let got = out.iter().find(|s| s.span_id == call.span_id).unwrap();
    assert_eq!(got.parent_span_id, 0);
    assert_ne!(got.trace_id, front.trace_id);
}

#[test]
fn a_span_never_gets_its_own_id_as_parent() {
    // A peer (or the kernel) may name as parent the very id the next fresh one would be.
    let mut st = stitcher();
    let s = tuple("127.0.0.1:8080", "127.0.0.1:40000");
    let peer = Some(KernelIds::Peer { trace_id: tid(1), parent_span_id: 1 });
    let ids = st.server_request(origin(2, 20, s, 0, 10), None, peer);
    assert_eq!(ids.parent_span_id, 1);
    assert_ne!(ids.span_id, ids.parent_span_id, "{ids:?}");
    let ctx = TraceContext { trace_id: tid(2), span_id: 3, sampled: true, source: ContextSource::Traceparent };
    let ids = st.server_request(origin(2, 21, s, 1, 20), Some(&ctx), None);
    assert_eq!(ids.parent_span_id, 3);
    assert_ne!(ids.span_id, ids.parent_span_id, "{ids:?}");
}
