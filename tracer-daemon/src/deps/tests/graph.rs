//! Counting, naming and bounds of the live graph.

use super::*;
use crate::deps::{GraphConfig, NodeKind, span::dns_name};

#[test]
fn a_call_seen_from_both_sides_counts_once_in_either_order() {
    let mut g = graph();
    same_host_call(&mut g, "service-a", "service-b", "127.0.0.1:8080", 1, 10, B::http);
    // Client first this time.
    let client = kclient("service-a", 2, 20, 0, "127.0.0.1", "127.0.0.1:8080").http().span();
    let server =
        kserver("service-b", 2, 21, 20, "127.0.0.1:8080", "127.0.0.1:45001").link("same-host-tuple").http().span();
    g.observe(&client);
    g.observe(&server);
    // Counted as soon as both sides met, before any window ends.
    let snap = g.snapshot();
    let e = snap.edge("service-a", "service-b", "http").expect("edge");
    assert_eq!((e.call_count, e.paired, e.client_only, e.server_only), (2, 2, 0, 0));
    assert_eq!(e.connection_type, "");
    assert_eq!(snap.edges.len(), 1, "{snap:#?}");
    assert_eq!(snap.pending_calls, 0);
    assert_eq!(settled(&mut g).edge("service-a", "service-b", "http").unwrap().call_count, 2, "no late recount");
}

#[test]
fn later_spans_of_a_counted_call_are_duplicates() {
    let mut g = graph();
    same_host_call(&mut g, "service-a", "service-b", "127.0.0.1:8080", 1, 10, B::http);
    let again =
        kserver("service-b", 1, 11, 10, "127.0.0.1:8080", "127.0.0.1:45000").link("same-host-tuple").http().span();
    g.observe(&again);
    assert_eq!(settled(&mut g).edge("service-a", "service-b", "http").unwrap().call_count, 1);
    assert_eq!(g.stats().duplicates, 1);
}

#[test]
fn a_failure_on_either_side_fails_the_call_once() {
    let mut g = graph();
    // Server side failed only.
    let c = kclient("a", 1, 10, 0, "127.0.0.1", "127.0.0.1:8080").http().span();
    let s = kserver("b", 1, 11, 10, "127.0.0.1:8080", "127.0.0.1:45000").http().error().span();
    g.observe(&s);
    g.observe(&c);
    // Client side failed only.
    let c = kclient("a", 2, 20, 0, "127.0.0.1", "127.0.0.1:8080").http().error().span();
    let s = kserver("b", 2, 21, 20, "127.0.0.1:8080", "127.0.0.1:45000").http().span();
    g.observe(&s);
    g.observe(&c);
    // Both failed.
    let c = kclient("a", 3, 30, 0, "127.0.0.1", "127.0.0.1:8080").http().error().span();
    let s = kserver("b", 3, 31, 30, "127.0.0.1:8080", "127.0.0.1:45000").http().error().span();
    g.observe(&s);
    g.observe(&c);
    // Neither.
    same_host_call(&mut g, "a", "b", "127.0.0.1:8080", 4, 40, B::http);
    let snap = settled(&mut g);
    let e = snap.edge("a", "b", "http").unwrap();
    assert_eq!((e.call_count, e.error_count), (4, 3));
    assert_eq!(snap.node("b").unwrap().errors_in, 3);
}

#[test]
fn latencies_fill_client_and_server_histograms() {
    let mut g = graph();
    let c = kclient("a", 1, 10, 0, "127.0.0.1", "127.0.0.1:8080").http().dur_us(3_000).span();
    let s = kserver("b", 1, 11, 10, "127.0.0.1:8080", "127.0.0.1:45000").http().dur_us(400).span();
    g.observe(&s);
    g.observe(&c);
    // An untraced callee: the caller's figure stands in for the server's.
    g.observe(&kclient("a", 2, 20, 0, "127.0.0.1", "10.9.9.9:6379").db("redis").dur_us(700).span());
    let snap = settled(&mut g);
    let e = snap.edge("a", "b", "http").unwrap();
    assert_eq!(e.client.cumulative()[4..6], [0, 1], "3 ms in (0.0025, 0.005]");
    assert_eq!(e.server.cumulative()[1..3], [0, 1], "0.4 ms in (0.00025, 0.0005]");
    assert_eq!(e.client.sum_us, 3_000);
    let r = snap.edge("a", "10.9.9.9:6379", "redis").unwrap();
    assert_eq!((r.client.count(), r.server.count()), (1, 1));
    assert_eq!(r.server.sum_us, 700);
    assert!(e.p50_seconds.unwrap() > 0.0025 && e.p99_seconds.unwrap() <= 0.005);
}

#[test]
fn an_untraced_peer_is_named_by_address_once_its_window_is_over() {
    let mut g = graph();
    g.observe(&kclient("service-a", 1, 10, 0, "10.0.1.2", "10.0.3.3:6379").db("redis").span());
    g.observe(&kclient("service-a", 2, 20, 0, "10.0.1.2", "10.0.3.3:6379").db("redis").error().span());
    let early = g.snapshot();
    assert!(early.edges.is_empty(), "waits for a server side");
    assert_eq!(early.pending_calls, 2);
    g.advance(T0 + WINDOW);
    let snap = g.snapshot();
    let e = snap.edge("service-a", "10.0.3.3:6379", "redis").expect("edge by address");
    assert_eq!((e.call_count, e.error_count, e.client_only), (2, 1, 2));
    assert_eq!(e.connection_type, "database");
    let peer = snap.node("10.0.3.3:6379").unwrap();
    assert_eq!(peer.kind, NodeKind::Peer);
    assert_eq!(peer.addresses, vec!["10.0.3.3:6379".to_owned()]);
    assert_eq!(snap.host_ips, vec!["10.0.1.2".to_owned()]);
}

#[test]
fn an_untraced_peer_takes_the_dns_name_a_request_used() {
    let mut g = graph();
    let call = |host: &str, trace| {
        kclient("web", trace, trace * 10, 0, "10.0.1.2", "10.0.4.4:8080").http().tag("http.host", host).span()
    };
    g.observe(&call("API.Example.com:8080", 1));
    g.observe(&call("other.example.com:8080", 2));
    g.observe(&kclient("web", 3, 30, 0, "10.0.1.2", "10.0.4.4:8080").db("redis").span());
    g.observe(&kclient("web", 4, 40, 0, "10.0.1.2", "10.0.5.5:80").http().tag("http.host", "10.0.5.5").span());
    let snap = settled(&mut g);
    let e = snap.edge("web", "api.example.com:8080", "http").expect("the first DNS name seen names the address");
    assert_eq!(e.call_count, 2);
    assert_eq!(snap.edge("web", "api.example.com:8080", "redis").unwrap().call_count, 1, "other protocols too");
    assert!(snap.edge("web", "10.0.5.5:80", "http").is_some(), "an IP Host header is no name");
    assert_eq!(snap.node("api.example.com:8080").unwrap().addresses, vec!["10.0.4.4:8080".to_owned()]);
}

#[test]
fn dns_names_exclude_ip_literals_and_localhost() {
    assert_eq!(dns_name("svc.ns.svc.cluster.local:8080").as_deref(), Some("svc.ns.svc.cluster.local:8080"));
    assert_eq!(dns_name("Example.COM").as_deref(), Some("example.com"));
    for no in ["127.0.0.1:80", "[::1]:80", "localhost:8080", "a.localhost", "bad host", "x:notaport", ""] {
        assert_eq!(dns_name(no), None, "{no}");
    }
}

#[test]
fn a_callee_listening_on_this_host_is_named_by_its_service() {
    let mut g = graph();
    // A client-only call to an address where a traced server listens (its span was lost).
    g.observe(&kclient("a", 1, 10, 0, "127.0.0.1", "127.0.0.1:6379").db("redis").span());
    same_host_call(&mut g, "b", "redis-server", "127.0.0.1:6379", 2, 20, |s| s.db("redis"));
    let snap = settled(&mut g);
    let e = snap.edge("a", "redis-server", "redis").expect("named by the listener");
    assert_eq!((e.call_count, e.client_only, e.connection_type.as_str()), (1, 1, ""));
    assert_eq!(snap.node("redis-server").unwrap().addresses, vec!["127.0.0.1:6379".to_owned()]);
}

#[test]
fn a_remote_or_untraced_caller_is_counted_by_the_server_from_its_ip() {
    let mut g = graph();
    // No parent: counted at once, nothing can pair with it.
    g.observe(&kserver("service-b", 1, 11, 0, "10.0.2.2:8080", "10.0.1.2:51000").http().span());
    let now = g.snapshot();
    assert_eq!(now.edge("10.0.1.2", "service-b", "http").map(|e| e.server_only), Some(1));
    // A caller traced on another host (TCP option): its client span never shows up here.
    g.observe(&kserver("service-b", 2, 21, 20, "10.0.2.2:8080", "10.0.1.2:51001").link("tcp-option").http().span());
    g.observe(&kserver("service-b", 3, 31, 0, "10.0.2.2:8080", "[::ffff:10.0.1.2]:51002").http().error().span());
    let snap = settled(&mut g);
    let e = snap.edge("10.0.1.2", "service-b", "http").unwrap();
    assert_eq!((e.call_count, e.error_count, e.server_only), (3, 1, 3), "IPv4-mapped addresses are IPv4");
    assert_eq!(e.connection_type, "virtual_node");
    assert_eq!(snap.node("10.0.1.2").unwrap().kind, NodeKind::Client);
    assert_eq!(snap.node("service-b").unwrap().addresses, vec!["10.0.2.2:8080".to_owned()]);
    assert_eq!(e.client.count(), 0);
}

#[test]
fn apps_own_spans_pair_by_their_context_and_add_no_second_count() {
    let mut g = graph();
    // Instrumented caller: its client span 100 went out in a traceparent header; the kernel's
    // client and server spans adopted it, and the instrumented server made its own span.
    let app_client = B::new("client", "shop", 7, 100, 99).http().tag("peer.service", "pricing").span();
    let k_client = kclient("shop", 7, 101, 100, "127.0.0.1", "127.0.0.1:9000").http().link("traceparent").span();
    let k_server =
        kserver("pricing", 7, 102, 100, "127.0.0.1:9000", "127.0.0.1:45000").http().link("traceparent").span();
    let app_server = B::new("server", "pricing", 7, 103, 100).http().error().span();
    g.observe(&k_server);
    g.observe_app(&app_server);
    g.observe(&k_client);
    g.observe_app(&app_client);
    let snap = settled(&mut g);
    let e = snap.edge("shop", "pricing", "http").unwrap();
    assert_eq!((e.call_count, e.error_count), (1, 1), "the app's failure counts, once");
    assert_eq!(snap.edges.len(), 1, "{snap:#?}");
}

#[test]
fn apps_spans_alone_count_only_for_services_the_kernel_does_not_trace() {
    let mut g = graph();
    same_host_call(&mut g, "a", "b", "127.0.0.1:8080", 1, 10, B::http);
    // The app's own root server span of `b` (its caller sent no context): the kernel pair
    // already counted that call.
    g.observe_app(&B::new("server", "b", 50, 500, 0).http().span());
    // A service on a host without the daemon reports through this agent.
    g.observe_app(&B::new("client", "mobile-api", 60, 600, 0).http().tag("peer.service", "payments").span());
    g.observe_app(
        &B::new("client", "mobile-api", 61, 610, 0).tag("net.peer.name", "cache").long("net.peer.port", 11211).span(),
    );
    let snap = settled(&mut g);
    assert_eq!(snap.edge("a", "b", "http").unwrap().call_count, 1);
    assert!(snap.edge("unknown", "b", "http").is_none());
    assert_eq!(g.stats().covered_by_kernel, 1);
    assert_eq!(snap.edge("mobile-api", "payments", "http").unwrap().call_count, 1);
    assert_eq!(snap.edge("mobile-api", "cache:11211", "other").unwrap().call_count, 1);
}

#[test]
fn spans_that_are_not_calls_are_ignored() {
    let mut g = graph();
    g.observe(&B::new("internal", "a", 1, 1, 0).span());
    g.observe_app(&B::new("producer", "a", 1, 2, 0).span());
    let mut no_kind = B::new("client", "a", 1, 3, 0).span();
    if let crate::model::Body::App(a) = &mut no_kind.body {
        a.tags.clear();
        a.kind = None;
    }
    g.observe(&no_kind);
    assert!(settled(&mut g).edges.is_empty());
    assert_eq!(g.stats().ignored, 3);
}

#[test]
fn the_multi_hop_chain_gives_exactly_its_edges() {
    // curl → service-a; service-a → redis-server ×2 (SET, GET), → mariadbd (SELECT), →
    // service-b; all on one host, every hop seen from both sides.
    let mut g = graph();
    same_host_call(&mut g, "curl", "service-a", "127.0.0.1:8000", 1, 10, B::http);
    same_host_call(&mut g, "service-a", "redis-server", "127.0.0.1:6379", 1, 20, |b| b.db("redis"));
    same_host_call(&mut g, "service-a", "redis-server", "127.0.0.1:6379", 1, 30, |b| b.db("redis"));
    same_host_call(&mut g, "service-a", "mariadbd", "127.0.0.1:3306", 1, 40, |b| b.db("mysql"));
    same_host_call(&mut g, "service-a", "service-b", "127.0.0.1:8001", 1, 50, B::http);
    // /fail: errors on each hop.
    same_host_call(&mut g, "curl", "service-a", "127.0.0.1:8000", 2, 110, |b| b.http().error());
    same_host_call(&mut g, "service-a", "redis-server", "127.0.0.1:6379", 2, 120, |b| b.db("redis"));
    same_host_call(&mut g, "service-a", "redis-server", "127.0.0.1:6379", 2, 130, |b| b.db("redis").error());
    same_host_call(&mut g, "service-a", "mariadbd", "127.0.0.1:3306", 2, 140, |b| b.db("mysql").error());
    same_host_call(&mut g, "service-a", "service-b", "127.0.0.1:8001", 2, 150, |b| b.http().error());
    let snap = settled(&mut g);
    let got: Vec<(&str, &str, &str, u64, u64)> = snap
        .edges
        .iter()
        .map(|e| (e.parent.as_str(), e.child.as_str(), e.protocol.as_str(), e.call_count, e.error_count))
        .collect();
    assert_eq!(
        got,
        vec![
            ("curl", "service-a", "http", 2, 1),
            ("service-a", "mariadbd", "mysql", 2, 1),
            ("service-a", "redis-server", "redis", 4, 1),
            ("service-a", "service-b", "http", 2, 1),
        ]
    );
    let a = snap.node("service-a").unwrap();
    assert_eq!((a.calls_in, a.calls_out), (2, 8));
}

#[test]
fn a_new_edge_beyond_the_limit_evicts_the_least_recently_seen() {
    let mut g = graph_with(GraphConfig { max_edges: 2, ..GraphConfig::default() });
    for (i, callee) in ["b", "c", "b", "d"].iter().enumerate() {
        let i = i as u64 + 1;
        g.advance(T0 + i as i64 * 1000);
        g.observe(&kserver(callee, i, i * 10 + 1, 0, "10.0.2.2:8080", "10.0.1.2:50000").http().span());
    }
    let snap = settled(&mut g);
    assert_eq!(snap.edges.len(), 2);
    assert_eq!(snap.edge("10.0.1.2", "b", "http").unwrap().call_count, 2, "known edges keep counting");
    assert!(snap.edge("10.0.1.2", "d", "http").is_some(), "the new edge is kept");
    assert!(snap.edge("10.0.1.2", "c", "http").is_none(), "the least recently seen went");
    assert_eq!(snap.dropped.edge_limit, 0, "no call is refused");
    assert_eq!(g.stats().evicted_full, 1);
}

#[test]
fn new_nodes_beyond_the_limit_evict_the_least_recently_seen_edges() {
    let mut g = graph_with(GraphConfig { max_nodes: 4, ..GraphConfig::default() });
    // An internet-facing service: every caller is a new node.
    for i in 0..50u64 {
        g.advance(T0 + i as i64 * 1000);
        let caller = format!("10.0.{}.{}:50000", i / 200, i % 200 + 1);
        g.observe(&kserver("b", i + 1, i * 10 + 1, 0, "10.0.2.2:8080", &caller).http().span());
    }
    g.advance(T0 + 60_000);
    g.observe(&kserver("c", 99, 991, 0, "10.0.2.2:8081", "10.0.9.9:50000").http().span());
    let snap = settled(&mut g);
    assert!(snap.edge("10.0.9.9", "c", "http").is_some(), "a later edge is not lost: {snap:#?}");
    assert!(snap.edge("10.0.0.50", "b", "http").is_some(), "the most recent caller stays");
    assert_eq!(snap.dropped.node_limit, 0);
    assert!(g.sizes().1 <= 4);
    assert_eq!(g.stats().evicted_full, 49);
}

#[test]
fn edges_and_nodes_not_seen_for_the_idle_window_age_out() {
    let mut g = graph_with(GraphConfig { edge_idle_ms: 60_000, ..GraphConfig::default() });
    g.observe(&kserver("b", 1, 11, 0, "10.0.2.2:8080", "10.0.1.2:50000").http().span());
    g.advance(T0 + 30_000_000);
    g.observe(&kserver("c", 2, 21, 0, "10.0.2.2:8081", "10.0.1.3:50000").http().span());
    g.advance(T0 + 61_000_000);
    let snap = g.snapshot();
    assert!(snap.edge("10.0.1.2", "b", "http").is_none(), "idle for the window: gone");
    assert!(snap.edge("10.0.1.3", "c", "http").is_some());
    assert_eq!(g.sizes().0, 1);
    assert_eq!(g.sizes().1, 2, "the nodes of the edge that went are gone too");
    assert_eq!(g.stats().evicted_idle, 1);
    g.advance(T0 + 91_000_000);
    assert_eq!(g.sizes(), (0, 0, 0));
}

#[test]
fn too_many_waiting_calls_are_counted_early_with_the_side_they_have() {
    let mut g = graph_with(GraphConfig { max_pending: 2, ..GraphConfig::default() });
    for i in 1..=3u64 {
        g.observe(&kclient("a", i, i * 10, 0, "127.0.0.1", "10.0.3.3:6379").db("redis").span());
    }
    let (_, _, pending) = g.sizes();
    assert_eq!(pending, 2);
    assert_eq!(g.stats().pairing_evicted, 1);
    assert_eq!(g.snapshot().edge("a", "10.0.3.3:6379", "redis").unwrap().call_count, 1);
    assert_eq!(settled(&mut g).edge("a", "10.0.3.3:6379", "redis").unwrap().call_count, 3);
}

#[test]
fn the_same_input_gives_the_same_snapshot() {
    let feed = |g: &mut Graph| {
        same_host_call(g, "a", "b", "127.0.0.1:8080", 1, 10, B::http);
        g.observe(&kclient("a", 2, 20, 0, "127.0.0.1", "10.0.3.3:6379").db("redis").span());
        g.observe(&kserver("b", 3, 31, 0, "127.0.0.1:8080", "10.0.1.2:50000").http().span());
    };
    let (mut g1, mut g2) = (graph(), graph());
    feed(&mut g1);
    feed(&mut g2);
    let (s1, s2) = (settled(&mut g1), settled(&mut g2));
    assert_eq!(serde_json::to_string(&s1).unwrap(), serde_json::to_string(&s2).unwrap());
}

#[test]
fn grpc_calls_make_grpc_edges_with_their_errors() {
    let mut g = graph();
    let grpc = |b: B| b.tag("rpc.system", "grpc");
    same_host_call(&mut g, "api", "rpc", "127.0.0.1:50051", 1, 10, grpc);
    let c = kclient("api", 2, 20, 0, "127.0.0.1", "127.0.0.1:50051").tag("rpc.system", "grpc").error().span();
    let s = kserver("rpc", 2, 21, 20, "127.0.0.1:50051", "127.0.0.1:45000").link("same-host-tuple");
    g.observe(&s.tag("rpc.system", "grpc").error().span());
    g.observe(&c);
    let snap = settled(&mut g);
    let e = snap.edge("api", "rpc", "grpc").unwrap_or_else(|| panic!("{snap:#?}"));
    assert_eq!((e.call_count, e.error_count), (2, 1));
    assert!(snap.edge("api", "rpc", "http").is_none());
}
