//! Reference topologies for stitching, scored per request: services that serve many requests
//! at once (a Node.js event loop, a Python thread pool, a Python asyncio loop, a Go net/http
//! server whose goroutines share threads) call a real redis-server and mariadb with the request id in the Redis key and the SQL literal
//! (redaction off). Each client span is scored against the server span of its own request:
//! right parent, no parent, or wrong (another parent, or no parent but another request's
//! trace). A wrong parent is worse than a missing one: every topology asserts wrong = 0 and
//! prints the three figures.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{
    daemon::{Daemon, free_port},
    servers::{self, Server},
    wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn spans(d: &Daemon) -> Vec<Value> {
    d.json_lines().into_iter().filter(|v| v.get("spanId").is_some()).collect()
}

fn tag<'a>(s: &'a Value, key: &str) -> &'a Value {
    &s["tags"][key]
}

/// The request id in `req:<id>` inside a statement or target.
fn request_id(text: &str) -> Option<u32> {
    let at = text.find("req:")? + 4;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The request id of a server span for `GET /r/<id>`.
fn target_id(s: &Value) -> Option<u32> {
    tag(s, "http.target").as_str()?.strip_prefix("/r/")?.parse().ok()
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Score {
    right: usize,
    none: usize,
    wrong: usize,
}

impl Score {
    fn total(&self) -> usize {
        self.right + self.none + self.wrong
    }
}

/// Scores the client spans of `service` for `system` (`redis`, `mysql`) whose statement names
/// a request of `ids`.
fn score(all: &[Value], service: &str, system: &str, ids: std::ops::Range<u32>) -> (Score, Vec<String>) {
    let servers: HashMap<u32, &Value> = all
        .iter()
        .filter(|s| s["service"] == service && s["kind"] == "server")
        .filter_map(|s| target_id(s).filter(|id| ids.contains(id)).map(|id| (id, s)))
        .collect();
    let mut sc = Score::default();
    let mut wrong = Vec::new();
    for c in all.iter().filter(|s| s["service"] == service && s["kind"] == "client" && tag(s, "db.system") == system) {
        let Some(id) = tag(c, "db.statement").as_str().and_then(request_id).filter(|id| ids.contains(id)) else {
            continue;
        };
        let own = servers.get(&id);
        let parent = c["parentSpanId"].as_str().filter(|p| !p.is_empty() && *p != "0000000000000000");
        match parent {
            Some(p) if own.is_some_and(|s| s["spanId"] == p && s["traceId"] == c["traceId"]) => sc.right += 1,
            None if !servers.iter().any(|(other, s)| *other != id && s["traceId"] == c["traceId"]) => sc.none += 1,
            _ => {
                sc.wrong += 1;
                wrong.push(format!("{c}\n  own server: {own:?}"));
            }
        }
    }
    (sc, wrong)
}

/// `n` concurrent `GET /r/<id>` on `port`, ids `first..first+n`, each on its own connection;
/// returns how many answered 200.
fn concurrent_requests(port: u16, first: u32, n: u32) -> usize {
    let handles: Vec<_> = (first..first + n)
        .map(|id| {
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                let req = format!("GET /r/{id} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                if s.write_all(req.as_bytes()).is_err() {
                    return false;
                }
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200")
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or(false)).filter(|ok| *ok).count()
}

/// Waits until every request's client spans of `systems` are out (`per_request` each), then
/// scores them. Spans still missing at the deadline are reported; at least 90 % must be there.
fn wait_scored(
    d: &Daemon,
    service: &str,
    systems: &[(&str, usize)],
    ids: std::ops::Range<u32>,
) -> Vec<(String, Score)> {
    let n = ids.len();
    let deadline = Instant::now() + TIMEOUT;
    let ready = loop {
        let all = spans(d);
        let scores: Vec<(String, Score, Vec<String>)> = systems
            .iter()
            .map(|(sys, _)| {
                let (sc, wrong) = score(&all, service, sys, ids.clone());
                (sys.to_string(), sc, wrong)
            })
            .collect();
        let complete = scores.iter().zip(systems).all(|((_, sc, _), (_, per))| sc.total() >= n * per);
        if complete || Instant::now() >= deadline {
            break scores;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = Vec::new();
    for ((sys, sc, wrong), (_, per)) in ready.into_iter().zip(systems) {
        println!(
            "stitching {service} → {sys}: right {} / none {} / wrong {} of {} client spans ({} expected)",
            sc.right,
            sc.none,
            sc.wrong,
            sc.total(),
            n * per
        );
        assert!(wrong.is_empty(), "{service} → {sys}: {} wrong parents:\n{}", wrong.len(), wrong.join("\n"));
        assert!(sc.total() * 10 >= n * per * 9, "{service} → {sys}: too few client spans came out: {sc:?}");
        out.push((sys, sc));
    }
    out
}

fn node_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

fn node_service(port: u16, redis: &Server, service: &str) -> Server {
    assert!(
        node_dir().join("node_modules/redis").exists(),
        "tests/node/node_modules is missing: run `cargo xtask setup` (npm ci)"
    );
    let mut child = Command::new("node")
        .current_dir(node_dir())
        .args(["stitch_service.js", "--port", &port.to_string(), "--redis", &redis.port.to_string()])
        .env("OTEL_SERVICE_NAME", service)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting node (Debian's nodejs, installed by `cargo xtask setup`)");
    wait_for(TIMEOUT, "the node service to listen", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the node service exited with {status}");
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    Server::from_child(child, port)
}

fn daemon() -> Daemon {
    Daemon::start(&["--output", "json", "--no-redact"])
}

fn metric_sum(d: &Daemon, name: &str) -> f64 {
    d.metrics()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn node_event_loop_with_redis_never_gets_a_wrong_parent() {
    let d = daemon();
    let redis = servers::redis();
    let svc = node_service(free_port(), &redis, "stitch-node");
    // One request alone first: its calls are provably its own.
    assert_eq!(concurrent_requests(svc.port, 1, 1), 1);
    assert_eq!(concurrent_requests(svc.port, 100, 40), 40, "40 concurrent requests answered");
    let alone = wait_scored(&d, "stitch-node", &[("redis", 2)], 1..2);
    let scored = wait_scored(&d, "stitch-node", &[("redis", 2)], 100..140);
    assert_eq!(alone[0].1.right, 2, "a request served alone: its SET and GET are its children");
    assert_eq!(scored[0].1.wrong, 0);
    // The figures are on /metrics.
    let m = d.metrics();
    for link in ["traceparent", "uber-trace-id", "sql-comment", "tcp-option", "same-host-tuple", "thread", "none"] {
        assert!(m.contains(&format!("tracer_stitch_spans_total{{link=\"{link}\"}}")), "{link} in /metrics");
    }
    assert!(d.metric("tracer_stitch_spans_total{link=\"thread\"}") >= 2.0);
    assert!(d.metric("tracer_stitch_ambiguous_total") >= 1.0, "concurrent requests on one loop are ambiguous");
    assert!(metric_sum(&d, "tracer_stitch_orphaned_total") >= 1.0);
}

fn python_stitch_service(mode: &str, redis: &Server, mysql: &Server, service: &str) -> Server {
    let args = vec![
        "--redis".to_string(),
        redis.port.to_string(),
        "--mysql".into(),
        mysql.port.to_string(),
        "--mode".into(),
        mode.into(),
    ];
    servers::python_service("stitch_service.py", free_port(), &args, &[("OTEL_SERVICE_NAME", service)])
}

#[test]
fn python_thread_pool_with_redis_and_mysql_never_gets_a_wrong_parent() {
    let d = daemon();
    let redis = servers::redis();
    let mysql = servers::mariadb();
    let svc = python_stitch_service("thread", &redis, &mysql, "stitch-pythreads");
    assert_eq!(concurrent_requests(svc.port, 200, 16), 16, "16 concurrent requests answered");
    let scored = wait_scored(&d, "stitch-pythreads", &[("redis", 2), ("mysql", 1)], 200..216);
    for (sys, sc) in &scored {
        assert_eq!(sc.wrong, 0);
        // A thread per connection: thread causality proves most calls.
        assert!(sc.right * 10 >= sc.total() * 9, "{sys}: at least 90 % under their own request: {sc:?}");
    }
}

#[test]
fn python_asyncio_with_redis_and_mysql_never_gets_a_wrong_parent() {
    let d = daemon();
    let redis = servers::redis();
    let mysql = servers::mariadb();
    let svc = python_stitch_service("asyncio", &redis, &mysql, "stitch-pyasyncio");
    assert_eq!(concurrent_requests(svc.port, 300, 16), 16, "16 concurrent requests answered");
    let scored = wait_scored(&d, "stitch-pyasyncio", &[("redis", 2), ("mysql", 1)], 300..316);
    for (_, sc) in &scored {
        assert_eq!(sc.wrong, 0);
    }
}

/// Builds `tests/go/goroutine_demo.go` once per test run (GOPATH mode, Debian's golang-go with
/// go-sql-driver/mysql and redigo).
fn go_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| servers::go_build("goroutine_demo"))
}

/// Starts the Go service and waits until it listens and the daemon keys its calls by goroutine
/// (it logged the executable, and a scan after that one entered the process).
/// With `print_goid`, the service prints `goid <goroutine id> <request id>` per request on the
/// returned stdout.
fn go_service(
    d: &Daemon,
    redis: &Server,
    mysql: &Server,
    service: &str,
    print_goid: bool,
) -> (Server, std::process::ChildStdout) {
    let port = free_port();
    let bin = go_binary();
    let mut child = Command::new(bin)
        .args(["-port", &port.to_string(), "-redis", &redis.port.to_string(), "-mysql", &mysql.port.to_string()])
        .args(print_goid.then_some("-goid"))
        .env("OTEL_SERVICE_NAME", service)
        .env("GOMAXPROCS", "2")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Go service");
    let stdout = child.stdout.take().unwrap();
    wait_for(TIMEOUT, "the Go service to listen", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the Go service exited with {status}");
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    let name = bin.to_str().unwrap().to_string();
    let scans = wait_for(TIMEOUT, "the daemon to find the Go executable", || {
        let log = d.stderr_text();
        let seen = log.lines().any(|l| l.contains("calls keyed by goroutine") && l.contains(&name));
        seen.then(|| d.metric("tracer_uprobe_scans_total"))
    });
    wait_for(TIMEOUT, "a scan after that one", || (d.metric("tracer_uprobe_scans_total") > scans).then_some(()));
    assert!(d.metric("tracer_go_processes") >= 1.0, "the Go process is entered");
    assert_eq!(d.metric("tracer_probe_attached{probe=\"process_exec\"}"), 1.0, "exec forgets a Go process");
    (Server::from_child(child, port), stdout)
}

/// Go's net/http serves each connection in a goroutine of its own and runs many goroutines on
/// few threads (GOMAXPROCS=2 here): by thread, 16 requests at once would be ambiguous. By
/// goroutine, each handler's Redis and MySQL calls are its request's children.
#[test]
fn go_net_http_with_redis_and_mysql_is_stitched_by_goroutine() {
    let d = daemon();
    let redis = servers::redis();
    let mysql = servers::mariadb();
    let (svc, _out) = go_service(&d, &redis, &mysql, "stitch-go", false);
    for id in 400..410 {
        assert_eq!(concurrent_requests(svc.port, id, 1), 1, "request {id} answered");
    }
    assert_eq!(concurrent_requests(svc.port, 500, 16), 16, "16 concurrent requests answered");
    let alone = wait_scored(&d, "stitch-go", &[("redis", 2), ("mysql", 1)], 400..410);
    let scored = wait_scored(&d, "stitch-go", &[("redis", 2), ("mysql", 1)], 500..516);
    for (sys, sc) in alone.iter().chain(&scored) {
        assert_eq!(sc.wrong, 0);
        assert!(sc.right * 100 >= sc.total() * 99, "{sys}: at least 99 % under their own request: {sc:?}");
    }
    assert_eq!(
        d.metric("tracer_kernel_events_total{counter=\"goid_unreadable\"}"),
        0.0,
        "every call's goroutine was read"
    );
}

/// The goroutine the kernel reads (TLS `g` at FS base - 8, then `goid` at the offset from the
/// executable's DWARF) is the one the Go runtime names: each handler prints its goroutine id,
/// and the data events of its Redis and MySQL calls carry the same one.
#[test]
fn go_calls_carry_the_id_of_the_goroutine_that_made_them() {
    use std::io::BufRead;
    let d = Daemon::start(&["--print-events", "--output", "json", "--no-redact"]);
    let redis = servers::redis();
    let mysql = servers::mariadb();
    let (svc, out) = go_service(&d, &redis, &mysql, "goid-go", true);
    let mut lines = std::io::BufReader::new(out).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("listening"));
    let mut printed: HashMap<u32, u64> = HashMap::new();
    for id in 600..606 {
        assert_eq!(concurrent_requests(svc.port, id, 1), 1, "request {id} answered");
        let line = lines.next().unwrap().unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((f.len(), f[0], f[2]), (3, "goid", id.to_string().as_str()), "{line}");
        printed.insert(id, f[1].parse().unwrap());
    }
    let pid = svc.pid();
    let seen = wait_for(TIMEOUT, "the Go service's Redis and MySQL writes", || {
        let mut seen: HashMap<u32, Vec<Option<u64>>> = HashMap::new();
        for e in d.json_lines().iter().filter(|e| e["event"] == "data" && e["pid"] == pid && e["direction"] == "egress")
        {
            let Some(id) = e["payload"].as_str().and_then(request_id).filter(|id| printed.contains_key(id)) else {
                continue;
            };
            seen.entry(id).or_default().push(e["goid"].as_u64());
        }
        // SET, GET and SELECT of every request.
        (seen.len() == printed.len() && seen.values().all(|v| v.len() >= 3)).then_some(seen)
    });
    for (id, goids) in &seen {
        assert!(
            goids.iter().all(|g| *g == Some(printed[id])),
            "request {id}: kernel {goids:?}, runtime {}",
            printed[id]
        );
    }
    let distinct: std::collections::HashSet<u64> = printed.values().copied().collect();
    assert_eq!(distinct.len(), printed.len(), "one connection, one goroutine: {printed:?}");
}

/// Starts `grpc_demo` with `args` as service `service` and waits until `port` accepts.
fn grpc_demo_service(args: &[String], port: u16, service: &str) -> Server {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| servers::go_build("grpc_demo"));
    let mut child = Command::new(bin)
        .args(args)
        .env("OTEL_SERVICE_NAME", service)
        .env("GOMAXPROCS", "2")
        .stdout(Stdio::null())
        .spawn()
        .expect("starting grpc_demo");
    wait_for(TIMEOUT, "grpc_demo to listen", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("grpc_demo {args:?} exited with {status}");
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    Server::from_child(child, port)
}

/// Scores the `system` client spans of the rpc service by their whole chain: right when their
/// parent is the rpc service's gRPC server span, whose parent is the api service's gRPC client
/// span, whose parent is the api's server span of the same request, all in that request's
/// trace; wrong when any of them names another request's span or trace; none otherwise.
fn chain_score(all: &[Value], api: &str, rpc: &str, system: &str, ids: std::ops::Range<u32>) -> (Score, Vec<String>) {
    let by_span: HashMap<&str, &Value> = all.iter().filter_map(|s| Some((s["spanId"].as_str()?, s))).collect();
    let fronts: HashMap<u32, &Value> = all
        .iter()
        .filter(|s| s["service"] == api && s["kind"] == "server")
        .filter_map(|s| target_id(s).filter(|id| ids.contains(id)).map(|id| (id, s)))
        .collect();
    let parent = |s: &Value| {
        let p = s["parentSpanId"].as_str().filter(|p| !p.is_empty() && *p != "0000000000000000")?;
        by_span.get(p).copied()
    };
    let is_other = |id: u32, s: &Value| {
        fronts.iter().any(|(o, f)| *o != id && (f["spanId"] == s["spanId"] || f["traceId"] == s["traceId"]))
    };
    let mut sc = Score::default();
    let mut wrong = Vec::new();
    for c in all.iter().filter(|s| s["service"] == rpc && s["kind"] == "client" && tag(s, "db.system") == system) {
        let Some(id) = tag(c, "db.statement").as_str().and_then(request_id).filter(|id| ids.contains(id)) else {
            continue;
        };
        let handler = parent(c).filter(|g| g["service"] == rpc && g["kind"] == "server");
        let call = handler.and_then(parent).filter(|g| g["service"] == api && g["kind"] == "client");
        let front = call.and_then(parent);
        let chain = [Some(c), handler, call, front];
        let own = fronts.get(&id);
        if front.is_some()
            && own.is_some_and(|f| front.is_some_and(|x| x["spanId"] == f["spanId"]))
            && chain.iter().flatten().all(|s| s["traceId"] == c["traceId"])
        {
            sc.right += 1;
        } else if chain.iter().flatten().any(|s| is_other(id, s)) {
            sc.wrong += 1;
            wrong.push(format!("{c}\n  chain: {chain:?}\n  own front: {own:?}"));
        } else {
            sc.none += 1;
        }
    }
    (sc, wrong)
}

/// The shape of go-zero's mall: a Go net/http "api" service calls a grpc-go "rpc" service on
/// one long-lived connection; the rpc handler calls Redis (redigo) and MySQL (go-sql-driver),
/// and so does the api handler itself after the call. grpc-go writes every frame from one
/// goroutine per connection and runs each handler in a goroutine of its own, so by socket calls
/// alone the gRPC hop and the rpc's database calls have no parent; the grpc-go probes name the
/// goroutines, and every database call of the rpc must chain up to the api request that caused
/// it (db → rpc server → api client → api server), every call of the api to its request.
#[test]
fn go_api_grpc_rpc_mysql_redis_chains_every_call_to_its_request() {
    let d = daemon();
    let redis = servers::redis();
    let mysql = servers::mariadb();
    let rpc_port = free_port();
    let rpc_addr = format!("127.0.0.1:{rpc_port}");
    let rpc_args = ["orders".to_string(), rpc_addr.clone(), redis.port.to_string(), mysql.port.to_string()];
    let rpc = grpc_demo_service(&rpc_args, rpc_port, "mall-rpc");
    let api_port = free_port();
    let api_args = ["api".into(), api_port.to_string(), rpc_addr, redis.port.to_string(), mysql.port.to_string()];
    let api = grpc_demo_service(&api_args, api_port, "mall-api");
    let scans = wait_for(TIMEOUT, "the grpc-go probes", || {
        let log = d.stderr_text();
        log.lines().any(|l| l.contains("grpc-go stream probes attached")).then(|| d.metric("tracer_uprobe_scans_total"))
    });
    wait_for(TIMEOUT, "a scan after that one", || (d.metric("tracer_uprobe_scans_total") > scans).then_some(()));
    assert!(d.metric("tracer_go_processes") >= 2.0, "both Go processes are entered");
    for id in 700..710 {
        assert_eq!(concurrent_requests(api.port, id, 1), 1, "request {id} answered");
    }
    assert_eq!(concurrent_requests(api.port, 800, 16), 16, "16 concurrent requests answered");
    let systems = [("redis", 2), ("mysql", 1)];
    for ids in [700..710, 800..816] {
        let n = ids.len();
        let deadline = Instant::now() + TIMEOUT;
        let scores = loop {
            let all = spans(&d);
            let scores: Vec<(Score, Vec<String>)> =
                systems.iter().map(|(sys, _)| chain_score(&all, "mall-api", "mall-rpc", sys, ids.clone())).collect();
            let complete = scores.iter().zip(&systems).all(|((sc, _), (_, per))| sc.right + sc.wrong >= n * per);
            if complete || Instant::now() >= deadline {
                break scores;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        for ((sc, wrong), (sys, per)) in scores.iter().zip(&systems) {
            println!(
                "stitching mall-api → mall-rpc → {sys}, {n} request(s) {}: right {} / none {} / wrong {} of {} ({} expected)",
                if ids.start == 700 { "one at a time" } else { "at once" },
                sc.right,
                sc.none,
                sc.wrong,
                sc.total(),
                n * per
            );
            assert!(wrong.is_empty(), "{sys}: {} wrong parents:\n{}", wrong.len(), wrong.join("\n"));
            assert_eq!(sc.right, n * per, "{sys}: every call chains up to its own request: {sc:?}");
        }
        // The api's own calls, after its gRPC call, are its request's children.
        for (sys, sc) in wait_scored(&d, "mall-api", &systems, ids.clone()) {
            assert_eq!(
                sc.right,
                n * systems.iter().find(|(s, _)| *s == sys).map_or(0, |(_, per)| *per),
                "{sys}: {sc:?}"
            );
        }
    }
    assert!(
        d.metric("tracer_go_streams_total{outcome=\"applied\"}")
            + d.metric("tracer_go_streams_total{outcome=\"waiting\"}")
            >= 52.0
    );
    assert_eq!(d.metric("tracer_go_streams_total{outcome=\"unknown_connection\"}"), 0.0);
    assert_eq!(d.metric("tracer_kernel_events_total{counter=\"go_stream_not_tcp\"}"), 0.0);
    drop(rpc);
}
