//! The dependency graph end to end. On one host, the multi-hop chain of the span tests (curl →
//! A → redis-server, mariadbd, B) gives exactly its edges with their call and error counts on
//! `/dependencies` and `/metrics`, and the page draws them in headless Chromium. Across two
//! network namespaces, each traced by its own daemon, the fleet subcommand merges both graphs
//! into the union with the shared edge counted once per call.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    daemon::{Daemon, daemon_bin, free_port, http_get},
    servers::{self, python_dir},
    stop_child, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(40);
/// The agent listeners are off: several daemons run at once and none needs them.
const NO_AGENT: [&str; 6] = ["--agent-compact-addr", "", "--agent-binary-addr", "", "--sampling-addr", ""];

/// (parent, child) → callCount, from a `/dependencies` answer, keeping the links that touch
/// one of `ours` (the daemon traces the whole host; other processes may be talking too).
fn links(deps: &Value, ours: &[&str]) -> BTreeMap<(String, String), u64> {
    deps["data"]
        .as_array()
        .expect("a data array")
        .iter()
        .map(|l| {
            let (p, c) = (l["parent"].as_str().unwrap().to_owned(), l["child"].as_str().unwrap().to_owned());
            ((p, c), l["callCount"].as_u64().unwrap())
        })
        .filter(|((p, c), _)| ours.contains(&p.as_str()) || ours.contains(&c.as_str()))
        .collect()
}

fn expect(pairs: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    pairs.iter().map(|(p, c, n)| (((*p).to_owned(), (*c).to_owned()), *n)).collect()
}

/// Polls `get` until it equals `want`, or panics showing the last value after `TIMEOUT`.
fn wait_equal<T: PartialEq + std::fmt::Debug>(what: &str, want: &T, mut get: impl FnMut() -> T) -> T {
    let mut last = None;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(TIMEOUT, what, || {
            let got = get();
            if got == *want {
                return Some(got);
            }
            last = Some(got);
            None
        })
    }));
    found.unwrap_or_else(|_| panic!("{what}: want {want:?}\nlast seen {last:?}"))
}

fn json_get(addr: &str, path: &str) -> Value {
    let body = http_get(addr, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The value of a service-graph sample with these `client` and `server` labels.
fn sample(metrics: &str, name: &str, client: &str, server: &str) -> Option<f64> {
    let (c, s) = (format!("client=\"{client}\""), format!("server=\"{server}\""));
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.rsplit_once("} ")?;
        (labels.split(',').any(|x| x == c) && labels.split(',').any(|x| x == s)).then(|| value.parse().ok())?
    })
}

fn curl(args: &[&str]) -> u16 {
    let out = Command::new(args[0])
        .args(&args[1..])
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

/// A command bounded in time (`timeout`), its output collected.
fn bounded(secs: u32, program: &str, args: &[String]) -> Output {
    Command::new("timeout")
        .arg("-k")
        .arg("5")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-e2e-deps-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium on `url`: a screenshot written to `png`, and the DOM after scripts ran.
fn chromium(url: &str, png: &Path, profile: &Path) -> String {
    let common = |extra: &str| -> Vec<String> {
        vec![
            "--headless".into(),
            // Root cannot use Chromium's sandbox; the page is the test's own.
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1400,900".into(),
            // Lets the page's script build the SVG before the capture.
            "--virtual-time-budget=3000".into(),
            extra.into(),
            url.into(),
        ]
    };
    let shot = bounded(90, "chromium", &common(&format!("--screenshot={}", png.display())));
    assert!(png.exists(), "chromium wrote no screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    let dom = bounded(90, "chromium", &common("--dump-dom"));
    assert!(dom.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&dom.stderr));
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[test]
fn the_chain_gives_exactly_its_edges_counts_and_page() {
    let daemon = Daemon::start(&[&["--output", "json"][..], &NO_AGENT].concat());
    let servers::ChainServices { a, b, redis, mysql } = servers::chain_services("deps");
    // /checkout: redis SET and GET on two connections; on one MySQL connection PyMySQL's
    // `SET NAMES`, the SELECT and COM_QUIT; B /hello. /fail: redis SET and a failing LPOP,
    // `SET NAMES`, a failing statement and COM_QUIT, B /boom answering 500, A answering 500.
    for _ in 0..3 {
        assert_eq!(curl(&["curl", &format!("http://{}/checkout", a.addr())]), 200);
    }
    for _ in 0..2 {
        assert_eq!(curl(&["curl", &format!("http://{}/fail", a.addr())]), 500);
    }
    let ours = ["deps-a", "deps-b"];
    let want = expect(&[
        ("curl", "deps-a", 5),
        ("deps-a", "deps-b", 5),
        ("deps-a", "mariadbd", 15),
        ("deps-a", "redis-server", 10),
    ]);
    let got = wait_equal("the chain's edges on /dependencies", &want, || {
        links(&json_get(&daemon.metrics_addr, "/dependencies"), &ours)
    });
    eprintln!("/dependencies: {got:?}");

    let metrics = daemon.metrics();
    let errors = [
        ("curl", "deps-a", 2.0),
        ("deps-a", "deps-b", 2.0),
        ("deps-a", "mariadbd", 2.0),
        ("deps-a", "redis-server", 2.0),
    ];
    for (client, server, failed) in errors {
        let calls = want[&(client.to_owned(), server.to_owned())] as f64;
        let at = |name: &str| sample(&metrics, name, client, server);
        assert_eq!(at("traces_service_graph_request_total"), Some(calls), "{client} -> {server}");
        assert_eq!(at("traces_service_graph_request_failed_total"), Some(failed), "{client} -> {server} failed");
        assert_eq!(at("traces_service_graph_request_server_seconds_count"), Some(calls), "{client} -> {server}");
        assert_eq!(at("traces_service_graph_request_client_seconds_count"), Some(calls), "both sides traced");
        assert!(at("traces_service_graph_request_server_seconds_sum").unwrap() > 0.0);
    }
    assert!(
        metrics.contains("connection_type=\"\",protocol=\"redis\"} 10\n"),
        "redis edge between two traced services"
    );

    // Each of the chain's calls was seen from both sides and counted once.
    let graph = json_get(&daemon.metrics_addr, "/graph.json");
    for e in graph["edges"].as_array().unwrap().iter().filter(|e| ours.contains(&e["parent"].as_str().unwrap())) {
        assert_eq!(e["paired"], e["callCount"], "{e}");
    }
    let dot = http_get(&daemon.metrics_addr, "/graph");
    assert!(dot.starts_with("digraph dependencies {"), "{dot}");
    assert!(dot.contains("\"deps-a\" -> \"redis-server\" [label=\"redis × 10\\n2 errors\""), "{dot}");

    let dir = scratch("page");
    // Kept after the test for a look: the page as Chromium drew it.
    let png = std::env::temp_dir().join("tracer-e2e-deps-graph.png");
    let _ = std::fs::remove_file(&png);
    let dom = chromium(&format!("http://{}/", daemon.metrics_addr), &png, &dir.join("profile"));
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "a real screenshot ({} bytes)",
        bytes.len()
    );
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());
    for name in ["curl", "deps-a", "deps-b", "redis-server", "mariadbd"] {
        assert!(dom.contains(&format!("class=\"node\" data-service=\"{name}\"")), "node {name} in the DOM:\n{dom}");
    }
    for (p, c) in [("curl", "deps-a"), ("deps-a", "deps-b"), ("deps-a", "redis-server"), ("deps-a", "mariadbd")] {
        assert!(
            dom.contains(&format!("class=\"edge\" data-parent=\"{p}\" data-child=\"{c}\"")),
            "edge {p} -> {c} in the DOM"
        );
    }
    assert!(!dom.contains("<script src") && !dom.contains("<link") && !dom.contains("<img"), "no external assets");
    let _ = std::fs::remove_dir_all(&dir);
    drop((a, b, redis, mysql));
}

/// A process this test started, stopped by pid on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
}

/// Two network namespaces joined by a veth pair, deleted on drop.
struct Net {
    names: [String; 2],
    ips: [String; 2],
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Net {
    fn new() -> Net {
        let id = std::process::id() % 10_000;
        let names = [format!("tdeps{id}a"), format!("tdeps{id}b")];
        let (va, vb) = (format!("vd{id}a"), format!("vd{id}b"));
        let net = 10 + id % 200;
        let ips = [format!("10.{net}.77.1"), format!("10.{net}.77.2")];
        for n in &names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let net_ = Net { names, ips };
        ip(&[
            "link",
            "add",
            &va,
            "netns",
            &net_.names[0],
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &net_.names[1],
        ]);
        for (i, v) in [&va, &vb].into_iter().enumerate() {
            ip(&["-n", &net_.names[i], "addr", "add", &format!("{}/24", net_.ips[i]), "dev", v]);
            ip(&["-n", &net_.names[i], "link", "set", v, "up"]);
        }
        net_
    }

    /// `deps_service.py` inside namespace `i`, bound to `bind:port`, named `service`.
    fn service(&self, i: usize, service: &str, bind: &str, port: u16, extra: &[&str]) -> Proc {
        let mut child: Child = Command::new("ip")
            .args(["netns", "exec", &self.names[i], "python3"])
            .arg(python_dir().join("deps_service.py"))
            .args(["--bind", bind, "--port", &port.to_string()])
            .args(extra)
            .env("OTEL_SERVICE_NAME", service)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting python3");
        let sport = format!("sport = :{port}");
        wait_for(Duration::from_secs(30), &format!("{service} to listen"), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{service} exited with {status}");
            }
            let out =
                Command::new("ip").args(["netns", "exec", &self.names[i], "ss", "-Hltn", &sport]).output().ok()?;
            (!out.stdout.is_empty()).then_some(())
        });
        Proc(child)
    }

    fn curl(&self, i: usize, url: &str) -> u16 {
        curl(&["ip", "netns", "exec", &self.names[i], "curl", url])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn fleet(daemons: &[&Daemon], format: &str) -> String {
    let mut args: Vec<String> = vec!["fleet".into()];
    for d in daemons {
        args.extend(["--daemon".into(), d.metrics_addr.clone()]);
    }
    args.extend(["--format".into(), format.into(), "--strict".into()]);
    let out = bounded(60, daemon_bin().to_str().unwrap(), &args);
    assert!(out.status.success(), "fleet: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn two_daemons_merge_into_the_union_with_the_shared_edge_counted_once() {
    let net = Net::new();
    let [ip_a, ip_b] = net.ips.clone();
    // One daemon per namespace, as if each were a host of its own.
    let da = Daemon::start(&[&["--output", "json", "--netns", &net.names[0]][..], &NO_AGENT].concat());
    let db = Daemon::start(&[&["--output", "json", "--netns", &net.names[1]][..], &NO_AGENT].concat());
    let (px, py, pz) = (free_port(), free_port(), free_port());
    // Namespace b: Y on the veth address calls Z on its loopback. Namespace a: X calls Y across
    // the veth pair, naming it by a DNS name in the Host header.
    let z = net.service(1, "deps-z", "127.0.0.1", pz, &[]);
    let y = net.service(1, "deps-y", &ip_b, py, &["--next", &format!("127.0.0.1:{pz}")]);
    let y_addr = format!("{ip_b}:{py}");
    let x = net.service(0, "deps-x", &ip_a, px, &["--next", &y_addr, "--host-header", &format!("deps-y.test:{py}")]);
    for _ in 0..3 {
        assert_eq!(net.curl(0, &format!("http://{ip_a}:{px}/call")), 200);
    }
    for _ in 0..2 {
        assert_eq!(net.curl(1, &format!("http://{y_addr}/call")), 200);
    }

    // Each daemon sees its own side: a's the call to an untraced peer named by the DNS name
    // the request used, b's a call from the untraced caller's IP.
    let dns = format!("deps-y.test:{py}");
    let want_a = expect(&[("curl", "deps-x", 3), ("deps-x", &dns, 3)]);
    wait_equal("namespace a's graph", &want_a, || links(&json_get(&da.metrics_addr, "/dependencies"), &["deps-x"]));
    let want_b = expect(&[("curl", "deps-y", 2), ("deps-y", "deps-z", 2), (&ip_a, "deps-y", 3)]);
    wait_equal("namespace b's graph", &want_b, || {
        links(&json_get(&db.metrics_addr, "/dependencies"), &["deps-y", "deps-z"])
    });
    let ga = json_get(&da.metrics_addr, "/graph.json");
    let peer = ga["nodes"].as_array().unwrap().iter().find(|n| n["name"] == dns.as_str()).expect("the peer node");
    assert_eq!(peer["kind"], "peer");
    assert_eq!(peer["addresses"], serde_json::json!([y_addr]), "the peer's address");

    // Merged: the peer is deps-y, the call X → Y counted once (by X's daemon), curl unified.
    let merged: Value = serde_json::from_str(&fleet(&[&da, &db], "json")).unwrap();
    let edges: Vec<Value> = merged["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::json!({"parent": e["parent"], "child": e["child"], "callCount": e["callCount"]}))
        .collect();
    let got = links(&serde_json::json!({ "data": edges }), &["deps-x", "deps-y", "deps-z"]);
    let want =
        expect(&[("curl", "deps-x", 3), ("curl", "deps-y", 2), ("deps-x", "deps-y", 3), ("deps-y", "deps-z", 2)]);
    assert_eq!(got, want, "merged graph: {merged:#}");
    assert_eq!(merged["dropped"]["reconciled"], 3, "the server side of X → Y was left out");
    assert_eq!(merged["sources"].as_array().unwrap().len(), 2);
    let curl_node = merged["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "curl").unwrap();
    assert_eq!(curl_node["callsOut"], 5, "curl from both namespaces is one node");
    let deps: Value = serde_json::from_str(&fleet(&[&da, &db], "jaeger")).unwrap();
    assert_eq!(links(&deps, &["deps-x", "deps-y", "deps-z"]), want);
    let dot = fleet(&[&da, &db], "dot");
    assert!(dot.contains("\"deps-x\" -> \"deps-y\" [label=\"http × 3\""), "{dot}");
    drop((x, y, z));
}
