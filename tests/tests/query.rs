//! Jaeger's query API on the admin endpoint, end to end: curl calls service A, which calls a
//! real redis-server, a real mariadb and HTTP service B. With no collector configured, the
//! daemon's trace store answers `/api/services`, a search for errors and the trace by id, with
//! every hop's parent reference and tags.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::curl_status as curl;
use tracer_tests::{
    daemon::Daemon,
    servers::{self, ChainServices},
    wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(30);

/// `GET path` on the admin endpoint: the status and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connecting to the admin endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The DOM of `url` after headless chromium ran its scripts (network requests included).
fn browser_dom(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("tracer-query-chromium-{}", std::process::id()));
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=10000", "--dump-dom", url])
        .output()
        .expect("running chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tag<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["tags"].as_array().and_then(|tags| tags.iter().find(|t| t["key"] == key)).map_or(&Value::Null, |t| &t["value"])
}

fn service<'a>(trace: &'a Value, span: &Value) -> &'a str {
    trace["processes"][span["processID"].as_str().unwrap()]["serviceName"].as_str().unwrap_or("")
}

fn find<'a>(trace: &'a Value, svc: &str, kind: &str, op: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| service(trace, s) == svc && tag(s, "span.kind") == kind && s["operationName"] == op)
        .unwrap_or_else(|| panic!("no {kind} span {op} of {svc} in {trace:#}"))
}

/// The span's CHILD_OF parent id (asserting the reference names the same trace).
fn parent(span: &Value) -> &str {
    let refs = span["references"].as_array().unwrap();
    let r = refs.iter().find(|r| r["refType"] == "CHILD_OF").unwrap_or_else(|| panic!("no CHILD_OF: {span}"));
    assert_eq!(r["traceID"], span["traceID"]);
    r["spanID"].as_str().unwrap()
}

#[test]
fn the_failing_hop_is_found_through_jaegers_query_api() {
    // No collector: spans go to the console and the store.
    let d = Daemon::start(&["--output", "json"]);
    let ChainServices { a, b: _b, redis: _redis, mysql: _mysql } = servers::chain_services("query");
    assert_eq!(curl(&format!("http://{}/fail", a.addr())), 500);
    let addr = d.metrics_addr.clone();

    let services = wait_for(TIMEOUT, "query-a and query-b in /api/services", || {
        let v = get_json(&addr, "/api/services");
        let names: Vec<String> = v["data"].as_array()?.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect();
        (names.iter().any(|n| n == "query-a") && names.iter().any(|n| n == "query-b")).then_some(v)
    });
    assert_eq!(services["total"].as_u64().unwrap() as usize, services["data"].as_array().unwrap().len());
    assert!(services["errors"].is_null());
    let ops = get_json(&addr, "/api/services/query-a/operations");
    assert!(ops["data"].as_array().unwrap().iter().any(|o| o == "GET /fail"), "{ops}");

    // The search Jaeger UI sends for errors of a service.
    let search = "/api/traces?service=query-a&tags=%7B%22error%22%3A%22true%22%7D&lookback=1h&limit=20";
    let id = wait_for(TIMEOUT, "an error trace of query-a with every hop", || {
        let v = get_json(&addr, search);
        let t = v["data"].as_array()?.iter().find(|t| {
            let spans = t["spans"].as_array().unwrap();
            let has = |svc: &str, kind: &str, op: &str| {
                spans.iter().any(|s| service(t, s) == svc && tag(s, "span.kind") == kind && s["operationName"] == op)
            };
            has("query-a", "server", "GET /fail")
                && has("query-a", "client", "redis LPOP")
                && has("query-b", "server", "GET /boom")
        })?;
        Some(t["traceID"].as_str()?.to_owned())
    });
    assert!(id.len() == 16 || id.len() == 32, "{id}");

    let v = get_json(&addr, &format!("/api/traces/{id}"));
    assert_eq!(v["total"], 1);
    assert!(v["errors"].is_null());
    let t = &v["data"][0];
    assert_eq!(t["traceID"], id.as_str());
    let root = find(t, "query-a", "server", "GET /fail");
    let root_id = root["spanID"].as_str().unwrap();
    assert_eq!(tag(root, "error"), true);
    assert_eq!(tag(root, "http.status_code"), 500);
    assert_eq!(
        root["tags"].as_array().unwrap().iter().find(|t| t["key"] == "http.status_code").unwrap()["type"],
        "int64"
    );
    let lpop = find(t, "query-a", "client", "redis LPOP");
    assert_eq!(parent(lpop), root_id, "redis LPOP is a child of A's request");
    assert_eq!(tag(lpop, "error"), true);
    assert_eq!(tag(lpop, "db.system"), "redis");
    assert!(tag(lpop, "error.message").as_str().unwrap().starts_with("WRONGTYPE"), "{lpop}");
    let to_b = find(t, "query-a", "client", "GET /boom");
    assert_eq!(parent(to_b), root_id);
    let boom = find(t, "query-b", "server", "GET /boom");
    assert_eq!(parent(boom), to_b["spanID"].as_str().unwrap(), "B's server span is the client call's child");
    assert_eq!(tag(boom, "error"), true);
    for s in t["spans"].as_array().unwrap() {
        assert_eq!(s["traceID"], id.as_str());
        assert!(s["startTime"].as_i64().unwrap() > 1_600_000_000_000_000, "startTime in µs: {s}");
        assert!(s["duration"].is_i64());
        assert!(s["warnings"].is_null());
        assert!(t["processes"][s["processID"].as_str().unwrap()]["serviceName"].is_string());
    }
    // A child lies within its parent.
    let (ps, pd) = (root["startTime"].as_i64().unwrap(), root["duration"].as_i64().unwrap());
    let (cs, cd) = (lpop["startTime"].as_i64().unwrap(), lpop["duration"].as_i64().unwrap());
    assert!(cs >= ps && cs + cd <= ps + pd + 1);

    // The same trace through v3, as OTLP JSON with 32-hex ids.
    let v3 = get_json(&addr, &format!("/api/v3/traces/{id}"));
    let otlp: Vec<&Value> = v3["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"][0]["spans"].as_array().unwrap())
        .collect();
    assert_eq!(otlp.len(), t["spans"].as_array().unwrap().len());
    let v3_root = otlp.iter().find(|s| s["spanId"] == root_id).unwrap();
    assert_eq!(v3_root["traceId"].as_str().unwrap().len(), 32);
    assert_eq!(v3_root["kind"], 2);
    let v3_lpop = otlp.iter().find(|s| s["spanId"] == lpop["spanID"]).unwrap();
    assert_eq!(v3_lpop["parentSpanId"], root_id);
    assert_eq!(v3_lpop["status"]["code"], 2);
    let services = get_json(&addr, "/api/v3/services");
    assert!(services["services"].as_array().unwrap().iter().any(|s| s == "query-a"));
    // The summary Jaeger UI 2.19+ lists it by, asked as the UI asks (camel-case fields).
    let summaries = get_json(
        &addr,
        "/api/v3/trace-summaries?query.serviceName=query-a&query.attributes=%7B%22error%22%3A%22true%22%7D\
         &query.startTimeMin=2000-01-01T00:00:00Z&query.startTimeMax=2100-01-01T00:00:00Z&query.searchDepth=20",
    );
    let row = summaries["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["traceId"].as_str().is_some_and(|t| t.ends_with(id.as_str())))
        .unwrap_or_else(|| panic!("the trace is among the summaries: {summaries}"));
    assert_eq!(row["spanCount"].as_u64().unwrap() as usize, t["spans"].as_array().unwrap().len());
    // The root is the earliest span without a parent: curl's own client span, traced too.
    let spans = t["spans"].as_array().unwrap();
    let roots =
        spans.iter().filter(|s| !s["references"].as_array().unwrap().iter().any(|r| r["refType"] == "CHILD_OF"));
    let first = roots.min_by_key(|s| s["startTime"].as_i64().unwrap()).expect("a root");
    assert_eq!(row["rootServiceName"].as_str(), Some(service(t, first)), "{row}");
    assert_eq!(row["rootOperationName"], "GET /fail");
    let errors = t["spans"].as_array().unwrap().iter().filter(|s| tag(s, "error") == true).count();
    assert_eq!(row["errorSpanCount"].as_u64().unwrap() as usize, errors, "{row}");
    assert!(errors >= 3, "GET /fail, redis LPOP and GET /boom failed: {row}");
    let start: u128 = row["minStartTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let earliest = spans.iter().map(|s| s["startTime"].as_u64().unwrap()).min().unwrap();
    assert_eq!(start, u128::from(earliest) * 1000, "the earliest span starts the trace");
    let names: Vec<&str> = row["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"query-a") && names.contains(&"query-b"), "{names:?}");
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted by name: {names:?}");

    // The trace page, in a real headless browser: the waterfall marks the failing hop and the
    // detail pane shows its error and link evidence.
    let dom = browser_dom(&format!("http://{addr}/traces#trace={id}"));
    assert!(dom.contains("row err origin"), "the span where the error began is called out: {dom}");
    assert!(dom.contains("WRONGTYPE"), "the detail pane shows the error: {dom}");
    let at = dom.find("row err origin").unwrap();
    let origin_id = dom[at..].split("data-span=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
    let origin = t["spans"].as_array().unwrap().iter().find(|s| s["spanID"] == origin_id).unwrap();
    eprintln!("the page calls out {} of {}", origin["operationName"], service(t, origin));
    assert!(tag(origin, "error.message").as_str().unwrap_or("").starts_with("WRONGTYPE"), "{origin}");
    assert!(dom.contains("parent link"), "and the link evidence");

    // The same page driven as a person would, with Playwright in Debian's Chromium: search the
    // service's errors, open the trace found, click a span that did not fail, then the failing
    // one. The screenshot stays in target/test-artifacts.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("the artefacts folder");
    let shot = artifacts.join("trace-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("node/trace_page.js"))
        .arg(format!("http://{addr}"))
        .arg("query-a")
        .arg(&shot)
        .output()
        .expect("running node");
    assert!(out.status.success(), "the page driven by Playwright: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let text = |k: &str| seen[k].as_str().unwrap_or_default().to_owned();
    assert!(text("listed").contains("errors"), "the result lists its errors: {seen}");
    assert!(seen["rows"].as_u64().unwrap_or(0) >= 2, "the waterfall has the trace's spans: {seen}");
    assert!(!text("healthy").contains("WRONGTYPE"), "a healthy span's pane: {seen}");
    let failing = text("failing");
    assert!(failing.contains("(error)") && failing.contains("WRONGTYPE"), "the failing span's pane: {seen}");
    assert!(failing.contains("parent link"), "with its link evidence: {seen}");
    assert!(seen["critical"].as_u64().unwrap_or(0) >= 2 && seen["rootCritical"] == true, "the critical path: {seen}");
    assert_eq!(seen["landed"], serde_json::json!({"path": "/traces", "service": "query-a"}), "graph node → its traces");
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "a screenshot at {shot:?}");

    let (status, body) = get(&addr, "/api/traces/00000000000000000000000000000001");
    assert_eq!(status, 404, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"][0]["code"], 404);
    assert!(d.metric("tracer_store_spans") >= 6.0);
    assert_eq!(d.metric("tracer_store_dropped_total{reason=\"queue_full\"}"), 0.0);
}

#[test]
fn a_small_budget_evicts_the_oldest_traces_and_stays_within_it() {
    let budget = 100_000.0;
    let d = Daemon::start(&["--output", "json", "--store-bytes", "100000"]);
    let ChainServices { a, b: _b, redis: _redis, mysql: _mysql } = servers::chain_services("budget");
    let requests = 40.0;
    for _ in 0..40 {
        assert_eq!(curl(&format!("http://{}/checkout", a.addr())), 200);
    }
    // Every request's trace is either held or was evicted (other host traffic adds traces too).
    let (evicted, traces) = wait_for(TIMEOUT, "every trace held or evicted", || {
        let evicted = d.metric("tracer_store_dropped_total{reason=\"evicted\"}");
        let traces = d.metric("tracer_store_traces");
        (evicted > 0.0 && evicted + traces >= requests).then_some((evicted, traces))
    });
    let bytes = d.metric("tracer_store_bytes");
    assert!(bytes > 0.0 && bytes <= budget, "{bytes} bytes held, budget {budget}");
    assert_eq!(d.metric("tracer_store_max_bytes"), budget);
    eprintln!(
        "store: {bytes} bytes, {traces} traces kept, {evicted} evicted, {} spans",
        d.metric("tracer_store_spans")
    );
    assert!(traces >= 1.0);
    // What is kept is still served.
    let v = get_json(&d.metrics_addr, "/api/traces?service=budget-a&limit=1000");
    let served = v["data"].as_array().unwrap().len();
    assert!(served >= 1 && served as f64 <= traces, "{served} served, {traces} held");
}

#[test]
fn a_budget_of_zero_turns_the_store_and_its_routes_off() {
    let d = Daemon::start(&["--output", "json", "--store-bytes", "0"]);
    assert_eq!(get(&d.metrics_addr, "/api/services").0, 404);
    assert_eq!(get(&d.metrics_addr, "/api/dependencies").0, 200, "the graph's routes stay");
}

/// `--sample-own-spans`: the served strategies apply to the daemon's spans. Service B's
/// strategy keeps none of its spans and the default keeps everything else: B's spans are
/// counted in the service graph but neither stored nor exported, and every other span is.
#[test]
fn own_spans_follow_the_sampling_strategies_and_the_graph_still_counts_every_call() {
    let dir = std::env::temp_dir().join(format!("tracer-own-sampling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("strategies.yaml");
    std::fs::write(
        &file,
        "default_strategy: {type: probabilistic, param: 1.0}\n\
         service_strategies:\n  - {service: sampled-b, type: probabilistic, param: 0.0}\n",
    )
    .unwrap();
    let d = Daemon::start(&[
        "--output",
        "json",
        "--sample-own-spans",
        "--sampling-strategies-file",
        file.to_str().unwrap(),
    ]);
    let ChainServices { a, b: _b, redis: _redis, mysql: _mysql } = servers::chain_services("sampled");
    const REQUESTS: usize = 10;
    for _ in 0..REQUESTS {
        assert_eq!(curl(&format!("http://{}/checkout", a.addr())), 200);
    }
    let traces = wait_for(TIMEOUT, "every request's trace in the store", || {
        let v = get_json(&d.metrics_addr, "/api/traces?service=sampled-a&operation=GET%20%2Fcheckout&limit=100");
        let traces = v["data"].as_array().cloned().unwrap_or_default();
        (traces.len() >= REQUESTS).then_some(traces)
    });
    for t in &traces {
        for s in t["spans"].as_array().unwrap() {
            assert_ne!(service(t, s), "sampled-b", "a span of B was kept: {s}");
        }
        assert!(t["spans"].as_array().unwrap().len() >= 3, "A's spans are all kept: {t}");
    }
    let b = get_json(&d.metrics_addr, "/api/traces?service=sampled-b&limit=100");
    assert_eq!(b["data"].as_array().map(Vec::len), Some(0), "B's spans were stored: {b}");
    assert!(
        !d.lines().iter().any(|l| l.contains("\"sampled-b\"")),
        "B's spans were exported: {:?}",
        d.lines().iter().find(|l| l.contains("\"sampled-b\""))
    );
    assert!(d.metric("tracer_own_spans_sampled_total{decision=\"sampled_out\"}") >= REQUESTS as f64);
    assert!(d.metric("tracer_own_spans_sampled_total{decision=\"kept\"}") >= 3.0 * REQUESTS as f64);
    // The graph counted B's side of every call all the same.
    let calls = wait_for(TIMEOUT, "the A → B edge", || {
        let deps = get_json(&d.metrics_addr, "/dependencies");
        let n = deps["data"].as_array()?.iter().find_map(|l| {
            (l["parent"] == "sampled-a" && l["child"] == "sampled-b").then(|| l["callCount"].as_u64()).flatten()
        })?;
        (n >= REQUESTS as u64).then_some(n)
    });
    assert_eq!(calls, REQUESTS as u64);
    let _ = std::fs::remove_dir_all(&dir);
}
