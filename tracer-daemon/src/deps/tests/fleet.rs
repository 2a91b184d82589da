//! The fleet merge: two daemons' graphs give their union, a call seen by both counts once, and
//! the fetch over HTTP from real listeners on loopback.

use std::{sync::Arc, time::Duration};

use super::*;
use crate::{
    api::{self, Router},
    deps::{
        NodeKind,
        fleet::{self, FleetFormat, merge},
    },
};

const H1: &str = "10.0.1.2";
const B_LISTEN: &str = "10.0.2.2:8080";

/// Host 1: service-a calls service-b on host 2 three times (once failing), and its own
/// redis-server once; curl calls service-a once.
fn host1() -> Snapshot {
    let mut g = graph();
    for i in 1..=3u64 {
        let c = kclient("service-a", i, i * 10, 0, H1, B_LISTEN).http();
        g.observe(&if i == 2 { c.error() } else { c }.span());
    }
    same_host_call(&mut g, "service-a", "redis-server", "127.0.0.1:6379", 9, 90, |b| b.db("redis"));
    same_host_call(&mut g, "curl", "service-a", "127.0.0.1:8000", 8, 80, B::http);
    g.observe(&kclient("service-a", 7, 70, 0, H1, "10.0.3.3:3306").db("mysql").span());
    settled(&mut g)
}

/// Host 2: the server side of those three calls (TCP-option links), an untraced caller, and
/// service-b's own redis-server; service-b calls the shared MySQL too.
fn host2() -> Snapshot {
    let mut g = graph();
    for i in 1..=3u64 {
        let s =
            kserver("service-b", i, i * 10 + 1, i * 10, B_LISTEN, &format!("{H1}:5100{i}")).link("tcp-option").http();
        g.observe(&if i == 2 { s.error() } else { s }.span());
    }
    g.observe(&kserver("service-b", 5, 51, 0, B_LISTEN, "10.0.7.7:40000").http().span());
    same_host_call(&mut g, "service-b", "redis-server", "127.0.0.1:6379", 6, 60, |b| b.db("redis"));
    g.observe(&kclient("service-b", 4, 40, 0, "10.0.2.2", "10.0.3.3:3306").db("mysql").span());
    settled(&mut g)
}

fn edges(s: &Snapshot) -> Vec<(&str, &str, &str, u64, u64)> {
    s.edges
        .iter()
        .map(|e| (e.parent.as_str(), e.child.as_str(), e.protocol.as_str(), e.call_count, e.error_count))
        .collect()
}

#[test]
fn each_daemon_sees_its_own_side_of_a_cross_host_call() {
    assert!(host1().edge("service-a", B_LISTEN, "http").is_some());
    assert!(host2().edge(H1, "service-b", "http").is_some());
}

#[test]
fn two_daemons_merge_into_the_union_with_a_shared_call_counted_once() {
    let merged = merge(&[host1(), host2()]);
    assert_eq!(
        edges(&merged),
        vec![
            ("10.0.7.7", "service-b", "http", 1, 0),
            ("curl", "service-a", "http", 1, 0),
            ("service-a", "10.0.3.3:3306", "mysql", 1, 0),
            ("service-a", "redis-server", "redis", 1, 0),
            ("service-a", "service-b", "http", 3, 1),
            ("service-b", "10.0.3.3:3306", "mysql", 1, 0),
            ("service-b", "redis-server", "redis", 1, 0),
        ]
    );
    assert_eq!(merged.dropped.reconciled, 3, "host 2's server-side count of the same calls");
    let b = merged.node("service-b").unwrap();
    assert_eq!(b.kind, NodeKind::Service);
    assert_eq!((b.calls_in, b.calls_out), (4, 2));
    assert!(merged.node(B_LISTEN).is_none(), "the address joined the service listening on it");
    assert!(merged.node(H1).is_none(), "the caller IP was host 1's traced service");
    let redis = merged.node("redis-server").unwrap();
    assert_eq!(redis.calls_in, 2, "nodes unified by service name");
    assert_eq!(merged.edge("service-a", "service-b", "http").unwrap().connection_type, "");
    assert_eq!(merged.host_ips, vec!["10.0.1.2".to_owned(), "10.0.2.2".to_owned(), "127.0.0.1".to_owned()]);
}

#[test]
fn merging_is_independent_of_order_and_adds_equal_edges() {
    let (a, b) = (host1(), host2());
    assert_eq!(merge(&[a.clone(), b.clone()]), merge(&[b, a.clone()]));
    let twice = merge(&[a.clone(), a]);
    assert_eq!(twice.edge("curl", "service-a", "http").unwrap().call_count, 2, "counts added");
    assert_eq!(twice.edge("curl", "service-a", "http").unwrap().server.count(), 2, "histograms added");
}

#[test]
fn without_the_callers_daemon_the_callee_side_stays() {
    let merged = merge(&[host2()]);
    assert_eq!(merged.edge(H1, "service-b", "http").unwrap().call_count, 3);
    assert_eq!(merged.dropped.reconciled, 0);
}

#[test]
fn loopback_addresses_are_never_matched_across_daemons() {
    // Host 1 calls something on its own loopback port 6379 that it does not trace; host 2 has
    // a traced redis-server on its own loopback 6379: different machines, no renaming.
    let mut g1 = graph();
    g1.observe(&kclient("service-a", 1, 10, 0, "127.0.0.1", "127.0.0.1:6379").db("redis").span());
    let mut g2 = graph();
    same_host_call(&mut g2, "service-b", "redis-server", "127.0.0.1:6379", 2, 20, |b| b.db("redis"));
    let merged = merge(&[settled(&mut g1), settled(&mut g2)]);
    assert!(merged.edge("service-a", "127.0.0.1:6379", "redis").is_some(), "{:#?}", merged.edges);
}

#[test]
fn an_address_two_services_claim_is_not_renamed() {
    let mut g1 = graph();
    g1.observe(&kclient("a", 1, 10, 0, H1, "172.17.0.2:80").http().span());
    let mut g2 = graph();
    g2.observe(&kserver("x", 2, 21, 0, "172.17.0.2:80", "172.17.0.1:1").http().span());
    let mut g3 = graph();
    g3.observe(&kserver("y", 3, 31, 0, "172.17.0.2:80", "172.17.0.1:2").http().span());
    let merged = merge(&[settled(&mut g1), settled(&mut g2), settled(&mut g3)]);
    assert!(merged.edge("a", "172.17.0.2:80", "http").is_some());
}

#[test]
fn output_formats() {
    let merged = merge(&[host1(), host2()]);
    let dot = fleet::render(&merged, FleetFormat::Dot);
    assert!(dot.contains("\"service-a\" -> \"service-b\" [label=\"http × 3\\n1 errors\""), "{dot}");
    let json: Snapshot = serde_json::from_str(&fleet::render(&merged, FleetFormat::Json)).unwrap();
    assert_eq!(json, merged);
    let jaeger: serde_json::Value = serde_json::from_str(&fleet::render(&merged, FleetFormat::Jaeger)).unwrap();
    assert!(
        jaeger["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["parent"] == "service-a" && l["child"] == "service-b" && l["callCount"] == 3)
    );
}

#[test]
fn incompatible_graphs_are_refused() {
    let mut g = host1();
    g.version = 99;
    assert!(fleet::check(&g).unwrap_err().contains("format 99"));
    let mut g = host1();
    g.buckets_seconds.pop();
    assert!(fleet::check(&g).is_err());
    let mut g = host1();
    g.edges[0].client.counts.pop();
    assert!(fleet::check(&g).is_err());
}

/// Serves a graph on a loopback port like a daemon's admin endpoint.
async fn serve(snap_of: fn() -> Snapshot) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let snap = snap_of();
    let router = Router::new().route("GET", "/graph.json", move |_| api::Response::json_value(200, &snap));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(api::serve(listener, Arc::new(router), stop_rx));
    (addr, stop)
}

#[tokio::test]
async fn fetches_over_http_and_merges() {
    let (a1, _s1) = serve(host1).await;
    let (a2, _s2) = serve(host2).await;
    // A listener that is not a daemon: counted as an error, the others still merge.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    let router = Arc::new(Router::new());
    let (_s3, rx3) = tokio::sync::watch::channel(false);
    tokio::spawn(api::serve(plain, router, rx3));
    let daemons = vec![a2.to_string(), a1.to_string(), plain_addr.to_string()];
    let (graphs, errors) = fleet::fetch_all(&daemons, Duration::from_secs(5)).await;
    assert_eq!(graphs.len(), 2);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("404"), "{}", errors[0]);
    let merged = merge(&graphs);
    assert_eq!(merged.edge("service-a", "service-b", "http").unwrap().call_count, 3);
    let mut sources = merged.sources.clone();
    sources.sort();
    let mut want = vec![a1.to_string(), a2.to_string()];
    want.sort();
    assert_eq!(sources, want);
    // A name with an address, as a headless Service gives one per pod.
    let addrs = fleet::resolve(&format!("localhost:{}", a1.port())).await.unwrap();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
}

#[tokio::test]
async fn fleet_main_fails_when_no_daemon_answers() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let args = fleet::FleetArgs {
        daemons: vec![closed.to_string()],
        format: FleetFormat::Json,
        timeout_ms: 2_000,
        strict: false,
        query: None,
    };
    let err = fleet::fleet_main(args).await.unwrap_err();
    assert!(format!("{err:#}").contains("no daemon could be read"), "{err:#}");
}
