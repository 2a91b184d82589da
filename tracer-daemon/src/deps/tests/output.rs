//! What the graph is served as: Jaeger dependencies JSON, `graph.json`, DOT, service-graph
//! metrics, the page, and the HTTP routes with their time window.

use super::*;
use crate::{
    api::{Request, Router},
    deps::{self, SharedGraph, dot, metrics as deps_metrics, page, snapshot::window_from_query},
    metrics::{Registry, Sample},
};

/// curl → a (http ×2, one failed), a → redis at an untraced address, a caller by IP → a.
fn sample() -> Snapshot {
    let mut g = graph();
    same_host_call(&mut g, "curl", "service-a", "127.0.0.1:8000", 1, 10, B::http);
    same_host_call(&mut g, "curl", "service-a", "127.0.0.1:8000", 2, 20, |b| b.http().error());
    g.observe(&kclient("service-a", 3, 30, 0, "10.0.1.2", "10.0.3.3:6379").db("redis").dur_us(250).span());
    g.observe(&kserver("service-a", 4, 41, 0, "10.0.1.2:8000", "10.0.9.9:50000").http().span());
    settled(&mut g)
}

#[test]
fn dependencies_follow_jaegers_json_shape() {
    let v = sample().jaeger_dependencies();
    assert_eq!(
        v,
        serde_json::json!({
            "data": [
                {"parent": "10.0.9.9", "child": "service-a", "callCount": 1},
                {"parent": "curl", "child": "service-a", "callCount": 2},
                {"parent": "service-a", "child": "10.0.3.3:6379", "callCount": 1},
            ],
            "total": 3, "limit": 0, "offset": 0, "errors": null
        })
    );
}

#[test]
fn graph_json_round_trips_and_is_camel_case() {
    let snap = sample();
    let text = serde_json::to_string(&snap).unwrap();
    for key in
        ["\"callCount\"", "\"errorCount\"", "\"bucketsSeconds\"", "\"connectionType\"", "\"p99Seconds\"", "\"hostIps\""]
    {
        assert!(text.contains(key), "{key} in {text}");
    }
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snap);
    assert!(deps::fleet::check(&back).is_ok());
}

#[test]
fn the_window_keeps_edges_with_calls_inside_it() {
    let mut g = graph();
    let mut old = kserver("b", 1, 11, 0, "10.0.2.2:8080", "10.0.1.2:50000").http().span();
    old.start_us = T0 - 3_600_000_000;
    g.observe(&old);
    g.observe(&kserver("c", 2, 21, 0, "10.0.2.2:8081", "10.0.1.2:50001").http().span());
    let snap = settled(&mut g);
    assert_eq!(snap.edges.len(), 2);
    let end_ms = (T0 / 1000).to_string();
    let w = window_from_query(Some(&end_ms), Some("60000"), 0).unwrap().unwrap();
    let recent = snap.within(w);
    assert_eq!(recent.edges.len(), 1);
    assert_eq!(recent.edges[0].child, "c");
    assert!(recent.node("b").is_none(), "nodes without edges in the window go");
    assert_eq!(window_from_query(None, None, 5).unwrap(), None, "no parameters: everything");
    let no_lookback = window_from_query(Some("1"), None, 5).unwrap().unwrap();
    assert_eq!((no_lookback.from_us, no_lookback.to_us), (i64::MIN, 1000));
    assert!(window_from_query(Some("x"), None, 5).is_err());
    assert!(window_from_query(None, Some("-1"), 5).is_err());
}

#[test]
fn dot_lists_every_node_and_edge_escaped() {
    let mut snap = sample();
    let text = dot::render(&snap);
    assert!(text.starts_with("digraph dependencies {\n"), "{text}");
    assert!(text.contains("\"service-a\" [shape=box"), "{text}");
    assert!(text.contains("\"10.0.3.3:6379\" [shape=ellipse, style=dashed"), "{text}");
    assert!(text.contains("\"10.0.9.9\" [shape=ellipse, style=dotted"), "{text}");
    assert!(text.contains("\"curl\" -> \"service-a\" [label=\"http × 2\\n1 errors\", color=\"#d32f2f\""), "{text}");
    assert!(text.contains("\"service-a\" -> \"10.0.3.3:6379\" [label=\"redis × 1\", color=\"#5f6b7a\""), "{text}");
    assert!(text.trim_end().ends_with('}'));
    snap.nodes[0].name = "we\"ird\\name".into();
    assert!(dot::render(&snap).contains("\"we\\\"ird\\\\name\""));
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .map(|s| s.value)
}

#[test]
fn service_graph_metrics_carry_grafanas_names_and_labels() {
    let snap = sample();
    let mut out = Vec::new();
    deps_metrics::samples(&snap, &mut out);
    let curl_a = [("client", "curl"), ("server", "service-a"), ("connection_type", ""), ("protocol", "http")];
    assert_eq!(value(&out, "traces_service_graph_request_total", &curl_a), Some(2.0));
    assert_eq!(value(&out, "traces_service_graph_request_failed_total", &curl_a), Some(1.0));
    assert_eq!(value(&out, "traces_service_graph_request_server_seconds_count", &curl_a), Some(2.0));
    assert_eq!(value(&out, "traces_service_graph_request_client_seconds_count", &curl_a), Some(2.0));
    let redis = [("client", "service-a"), ("server", "10.0.3.3:6379"), ("connection_type", "database")];
    let le = |b: &str| {
        value(&out, "traces_service_graph_request_server_seconds_bucket", &[redis[0], redis[1], redis[2], ("le", b)])
    };
    assert_eq!((le("0.0001"), le("0.00025"), le("10"), le("+Inf")), (Some(0.0), Some(1.0), Some(1.0), Some(1.0)));
    assert_eq!(value(&out, "traces_service_graph_request_server_seconds_sum", &redis), Some(0.00025));
    let caller = [("client", "10.0.9.9"), ("server", "service-a"), ("connection_type", "virtual_node")];
    assert_eq!(value(&out, "traces_service_graph_request_total", &caller), Some(1.0));
    assert_eq!(value(&out, "tracer_deps_edges", &[]), Some(3.0));
    assert_eq!(value(&out, "tracer_deps_dropped_calls_total", &[("reason", "edge_limit")]), Some(0.0));

    // Through the registry, computed from the graph at scrape time.
    let reg = Registry::new();
    let shared = SharedGraph::new(GraphConfig::default());
    deps_metrics::register(&reg, shared.clone());
    assert!(!reg.render().contains("traces_service_graph_request_total{"));
    shared.with(|g| g.observe(&kserver("b", 1, 11, 0, "10.0.2.2:8080", "10.0.1.2:50000").http().span()));
    let text = reg.render();
    assert!(
        text.contains("traces_service_graph_request_total{client=\"10.0.1.2\",server=\"b\",connection_type=\"virtual_node\",protocol=\"http\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE traces_service_graph_request_total counter\n"), "{text}");
}

#[test]
fn the_page_is_self_contained_and_embeds_the_graph_safely() {
    let mut snap = sample();
    snap.nodes[0].name = "</script><b>x".into();
    let html = page::render(&snap);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("__GRAPH_JSON__"));
    assert!(!html.contains("</script><b>"), "the embedded JSON cannot close its element");
    assert!(html.contains("\\u003c/script\\u003e"));
    assert!(html.contains("\"data-service\""), "nodes carry data-service");
    for external in ["src=\"http", "href=\"http", "@import", "<link"] {
        assert!(!html.contains(external), "no external assets: {external}");
    }
    let start = html.find("<script id=\"graph-data\" type=\"application/json\">").unwrap();
    let json_start = html[start..].find('>').unwrap() + start + 1;
    let json_end = html[json_start..].find("</script>").unwrap() + json_start;
    let back: Snapshot = serde_json::from_str(&html[json_start..json_end]).unwrap();
    assert_eq!(back.nodes[0].name, "</script><b>x");
}

fn get(router: &Router, target: &str) -> (u16, String, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let req = Request {
        method: "GET".into(),
        path: path.into(),
        query: crate::api::parse_query(query),
        ..Default::default()
    };
    let (resp, _) = router.handle(&req);
    (resp.status, resp.content_type, String::from_utf8(resp.body).unwrap())
}

#[test]
fn routes_serve_every_form_with_the_window() {
    let shared = SharedGraph::new(GraphConfig::default());
    shared.with(|g| {
        g.observe(&kserver("b", 1, 11, 0, "10.0.2.2:8080", "10.0.1.2:50000").http().span());
    });
    let router = deps::api::routes(Router::new(), shared.clone());
    let (status, ctype, body) = get(&router, "/dependencies");
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["callCount"], 1);
    assert_eq!(get(&router, "/api/dependencies").1, "application/json");
    // A window long before the call: nothing.
    let (_, _, body) = get(&router, "/dependencies?endTs=1000&lookback=1000");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"], serde_json::json!([]));
    let (status, _, _) = get(&router, "/dependencies?endTs=soon");
    assert_eq!(status, 400);
    let (_, ctype, body) = get(&router, "/graph");
    assert!(ctype.starts_with("text/vnd.graphviz") && body.contains("\"10.0.1.2\" -> \"b\""), "{body}");
    let (_, ctype, body) = get(&router, "/graph.json");
    assert_eq!(ctype, "application/json");
    assert_eq!(serde_json::from_str::<Snapshot>(&body).unwrap().edges.len(), 1);
    let (_, ctype, body) = get(&router, "/");
    assert!(ctype.starts_with("text/html") && body.contains("\"name\":\"b\""), "{ctype}");
}
