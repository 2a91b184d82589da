//! gRPC from the wire, end to end: a real grpc-go client and server (`tests/go/grpc_demo.go`,
//! built with Debian's Go and grpc-go) on loopback. Unary calls, a NOT_FOUND error with its
//! message, a server-streaming call and 50 concurrent calls on one connection each give one
//! client and one server span, the server span parented by its client span through the
//! same-host join on (connection, stream id). A connection opened before the daemon started
//! still gives spans, marked and counted where headers could not be decoded. A Python grpcio
//! client (C-core: another HTTP/2 and HPACK implementation) gives the same spans.

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    daemon::{Daemon, free_port},
    servers::python_dir,
    stop_child, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the Go service once per test run (GOPATH mode, Debian's packages).
fn binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| tracer_tests::servers::go_build("grpc_demo"))
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
}

fn server() -> (Proc, u16) {
    serve("server", "grpc-server")
}

/// Starts `grpc_demo MODE 127.0.0.1:PORT` as `service` and waits until it listens.
fn serve(mode: &str, service: &str) -> (Proc, u16) {
    let port = free_port();
    let mut child = Command::new(binary())
        .args([mode, &format!("127.0.0.1:{port}")])
        .env("OTEL_SERVICE_NAME", service)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting grpc_demo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening"), "{mode}: {line}");
    (Proc(child), port)
}

/// A client holding one connection, driven one command at a time.
struct Client {
    _proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let mut child = Command::new(binary())
            .args(["client", &format!("127.0.0.1:{port}")])
            .env("OTEL_SERVICE_NAME", "grpc-client")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the gRPC client");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Client { _proc: Proc(child), stdin, stdout }
    }

    fn run(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

fn spans(d: &Daemon, port: u16) -> Vec<Value> {
    d.json_lines()
        .into_iter()
        .filter(|s| s.get("spanId").is_some())
        .filter(|s| {
            let t = &s["tags"];
            (s["kind"] == "client" && t["net.peer.port"] == port)
                || (s["kind"] == "server" && t["net.host.port"] == port)
        })
        .collect()
}

fn stream_id(s: &Value) -> i64 {
    s["tags"]["http2.stream_id"].as_i64().unwrap_or(-1)
}

fn by_stream<'a>(all: &'a [Value], kind: &str, id: i64) -> Option<&'a Value> {
    all.iter().find(|s| s["kind"] == kind && stream_id(s) == id)
}

#[test]
fn unary_error_streaming_and_50_concurrent_calls() {
    let daemon = Daemon::start(&["--output", "json"]);
    let (_server, port) = server();
    let mut client = Client::connect(port);
    assert_eq!(client.run("unary alice"), "ok unary hello alice");
    assert_eq!(client.run("missing"), "err missing NotFound no such user: missing");
    assert_eq!(client.run("stream 3"), "ok stream 3");
    assert_eq!(client.run("concurrent 50"), "ok concurrent 50");
    // Streams 1, 3, 5, then 7..=105 for the concurrent calls.
    let all = wait_for(TIMEOUT, "106 spans", || {
        let all = spans(&daemon, port);
        (all.iter().filter(|s| stream_id(s) >= 1).count() >= 106).then_some(all)
    });
    for id in (1..=105).step_by(2) {
        let c = by_stream(&all, "client", id).unwrap_or_else(|| panic!("no client span of stream {id}: {all:#?}"));
        let s = by_stream(&all, "server", id).unwrap_or_else(|| panic!("no server span of stream {id}"));
        assert_eq!(c["service"], "grpc-client");
        assert_eq!(s["service"], "grpc-server");
        assert_eq!(s["traceId"], c["traceId"], "stream {id}");
        assert_eq!(s["parentSpanId"], c["spanId"], "stream {id}: server span not under its client span");
        for x in [c, s] {
            assert_eq!(x["tags"]["rpc.system"], "grpc");
            assert_eq!(x["tags"]["rpc.service"], "demo.Greeter");
            assert!(x["tags"].get("http2.headers_incomplete").is_none(), "{x:#?}");
        }
    }
    let count = |kind: &str| all.iter().filter(|s| s["kind"] == kind).count();
    assert_eq!((count("client"), count("server")), (53, 53), "one span per call and side");
    let ok = by_stream(&all, "client", 1).unwrap();
    assert_eq!(ok["operation"], "/demo.Greeter/SayHello");
    assert_eq!(ok["tags"]["rpc.method"], "SayHello");
    assert_eq!(ok["tags"]["rpc.grpc.status_code"], 0);
    assert!(ok["tags"].get("error").is_none());
    for kind in ["client", "server"] {
        let e = by_stream(&all, kind, 3).unwrap();
        assert_eq!(e["tags"]["rpc.grpc.status_code"], 5, "{e:#?}");
        assert_eq!(e["tags"]["rpc.grpc.message"], "no such user: missing");
        assert_eq!(e["tags"]["error"], true);
        assert_eq!(e["tags"]["error.message"], "NOT_FOUND: no such user: missing");
        let st = by_stream(&all, kind, 5).unwrap();
        assert_eq!(st["operation"], "/demo.Greeter/Count");
        assert_eq!(st["tags"]["rpc.grpc.response_messages"], 3);
        assert_eq!(st["tags"]["rpc.grpc.request_messages"], 1);
    }
    let linked = all.iter().filter(|s| s["kind"] == "server" && s["tags"]["tracer.link"] == "same-host-tuple").count();
    println!("gRPC: 53 calls, 106 spans, every server span under its client span ({linked} by same-host join)");
}

#[test]
fn a_message_larger_than_the_capture_never_gives_a_wrong_parent_or_a_guessed_name() {
    let daemon = Daemon::start(&["--output", "json"]);
    let (_server, port) = server();
    let mut client = Client::connect(port);
    assert_eq!(client.run("unary before"), "ok unary hello before");
    // 200 kB each way, written and read in calls far larger than the capture: the frame
    // headers inside what was not captured are unknown, and so is the header table after them.
    assert_eq!(client.run("big 200000"), "ok big 200004");
    assert_eq!(client.run("unary after"), "ok unary hello after");
    // Streams 1 (before), 3 (large), 5 (after).
    let all = wait_for(TIMEOUT, "the spans of the calls before and after", || {
        let all = spans(&daemon, port);
        let have = |kind: &str, id: i64| by_stream(&all, kind, id).is_some();
        (have("client", 1) && have("server", 1) && have("server", 3) && have("client", 5) && have("server", 5))
            .then_some(all)
    });
    let (c1, s1) = (by_stream(&all, "client", 1).unwrap(), by_stream(&all, "server", 1).unwrap());
    assert_eq!(s1["parentSpanId"], c1["spanId"]);
    assert_eq!(c1["operation"], "/demo.Greeter/SayHello");
    // The large call's server span is under the client's span of that call (its id came on
    // the wire), whether or not that client span is out yet.
    let s3 = by_stream(&all, "server", 3).unwrap();
    if let Some(c3) = by_stream(&all, "client", 3) {
        assert_eq!(s3["parentSpanId"], c3["spanId"], "{s3:#?}");
    }
    assert!(s3["parentSpanId"].is_string(), "{s3:#?}");
    // After it: still one span per side, the server under the client, and a header the table
    // can no longer resolve is left out and marked, never guessed.
    let (c5, s5) = (by_stream(&all, "client", 5).unwrap(), by_stream(&all, "server", 5).unwrap());
    assert_eq!(s5["parentSpanId"], c5["spanId"], "{s5:#?}");
    for x in [c5, s5] {
        let t = &x["tags"];
        assert_eq!(t["http.status_code"], 200, "{x:#?}");
        if t["http2.headers_incomplete"] == true {
            assert!(t.get("rpc.method").is_none() || t["rpc.method"] == "SayHello", "{x:#?}");
        } else {
            assert_eq!(x["operation"], "/demo.Greeter/SayHello", "{x:#?}");
        }
    }
    assert!(daemon.metric("tracer_protocol_resyncs_total") >= 1.0, "the loss of framing is counted");
}

#[test]
fn a_connection_opened_before_the_daemon_still_gives_spans() {
    let (_server, port) = server();
    let mut client = Client::connect(port);
    // The connection and its header tables are established before the daemon starts.
    for i in 0..3 {
        assert_eq!(client.run(&format!("unary early{i}")), format!("ok unary hello early{i}"));
    }
    let daemon = Daemon::start(&["--output", "json"]);
    assert_eq!(client.run("unary late"), "ok unary hello late");
    assert_eq!(client.run("missing"), "err missing NotFound no such user: missing");
    assert_eq!(client.run("concurrent 10"), "ok concurrent 10");
    // Streams 7 (late), 9 (missing), 11..=29 (concurrent).
    let all = wait_for(TIMEOUT, "spans of the late calls", || {
        let all = spans(&daemon, port);
        (all.iter().filter(|s| stream_id(s) >= 7).count() >= 24).then_some(all)
    });
    let marked = all.iter().filter(|s| s["tags"]["http2.headers_incomplete"] == true).count();
    for id in (7..=29).step_by(2) {
        for kind in ["client", "server"] {
            let s = by_stream(&all, kind, id).unwrap_or_else(|| panic!("no {kind} span of stream {id}: {all:#?}"));
            // What is not known is absent, never guessed.
            let op = s["operation"].as_str().unwrap();
            assert!(["/demo.Greeter/SayHello", "grpc", "HTTP/2 POST", "HTTP/2"].contains(&op), "{s:#?}");
            if s["tags"].get("http2.headers_incomplete").is_none() {
                assert_eq!(op, "/demo.Greeter/SayHello", "{s:#?}");
            }
        }
        let c = by_stream(&all, "client", id).unwrap();
        let s = by_stream(&all, "server", id).unwrap();
        assert_eq!(s["parentSpanId"], c["spanId"], "stream {id}");
    }
    let counted = daemon.metric("tracer_protocol_http2_headers_incomplete_total");
    assert!(counted as usize >= marked, "every marked span is counted: {counted} < {marked}");
    println!("joined late: {} spans, {marked} marked http2.headers_incomplete (counted {counted})", all.len());
}

#[test]
fn a_grpcio_client_against_the_go_server() {
    let daemon = Daemon::start(&["--output", "json"]);
    let (_server, port) = server();
    let out = Command::new("python3")
        .arg(python_dir().join("grpc_client.py"))
        .arg(port.to_string())
        .env("OTEL_SERVICE_NAME", "grpc-py")
        .output()
        .expect("running the grpcio client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["ok hello py", "err NOT_FOUND no such user: missing", "ok stream 3"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = wait_for(TIMEOUT, "6 spans", || {
        let all = spans(&daemon, port);
        (all.len() >= 6).then_some(all)
    });
    assert_eq!(all.len(), 6, "{all:#?}");
    for (id, op, code) in
        [(1, "/demo.Greeter/SayHello", 0), (3, "/demo.Greeter/SayHello", 5), (5, "/demo.Greeter/Count", 0)]
    {
        let c = by_stream(&all, "client", id).unwrap_or_else(|| panic!("no client span of stream {id}: {all:#?}"));
        let s = by_stream(&all, "server", id).unwrap_or_else(|| panic!("no server span of stream {id}: {all:#?}"));
        assert_eq!(c["service"], "grpc-py");
        assert_eq!(s["parentSpanId"], c["spanId"], "stream {id}");
        // The Go server's reads are captured whole: every fact is there.
        assert_eq!(s["operation"], op, "{s:#?}");
        assert_eq!(s["tags"]["rpc.grpc.status_code"], code, "{s:#?}");
        assert!(s["tags"].get("http2.headers_incomplete").is_none(), "{s:#?}");
        // C-core writes frames with more iovecs per sendmsg than the kernel copies
        // (tracer_common::MAX_IOV): the client side may lose header blocks. Then it is marked,
        // and what it does say is right.
        if c["tags"].get("http2.headers_incomplete").is_none() {
            assert_eq!(c["operation"], op, "{c:#?}");
            assert_eq!(c["tags"]["rpc.grpc.status_code"], code, "{c:#?}");
        } else {
            let cop = c["operation"].as_str().unwrap();
            assert!([op, "grpc", "HTTP/2 POST", "HTTP/2"].contains(&cop), "{c:#?}");
            assert!(c["tags"].get("rpc.grpc.status_code").is_none_or(|v| v == code), "{c:#?}");
        }
    }
    let s = by_stream(&all, "server", 3).unwrap();
    assert_eq!(s["tags"]["error.message"], "NOT_FOUND: no such user: missing");
    assert_eq!(by_stream(&all, "server", 5).unwrap()["tags"]["rpc.grpc.response_messages"], 3);
    let marked = all.iter().filter(|s| s["tags"]["http2.headers_incomplete"] == true).count();
    println!(
        "grpcio client -> grpc-go server: 3 calls, 6 spans, parents right, {marked} client spans marked incomplete"
    );
}

/// Plain HTTP/2 without gRPC: h2c with prior knowledge, served by Go's `x/net/http2` and called
/// by its client (four streams at once on one connection) and by curl. Every stream gives one
/// client and one server span with method, path (query redacted), authority and status; the
/// server span is under its client span; a 404 is an error on the client side only.
#[test]
fn an_h2c_upgrade_gives_its_request_and_the_next_streams_one_span_each() {
    let daemon = Daemon::start(&["--output", "json"]);
    let (_server, port) = serve("h2c", "h2c-server");
    // curl's `--http2` on http:// asks for `Upgrade: h2c`: the first request is answered on
    // stream 1 after the 101, the second goes on stream 3 of the same connection.
    let base = format!("http://127.0.0.1:{port}");
    let curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_version} %{num_connects}\n", "--http2"])
        .args([format!("{base}/items/1?token=hunter2"), format!("{base}/items/2")])
        .output()
        .expect("running curl (installed by `cargo xtask setup`)");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2 1\n2 0\n", "curl upgraded one connection");
    let all = wait_for(TIMEOUT, "four spans", || {
        let all = spans(&daemon, port);
        (all.len() >= 4).then_some(all)
    });
    assert_eq!(all.len(), 4, "one span per request and side, none for the 101: {all:#?}");
    for (id, item) in [(1, "/items/1"), (3, "/items/2")] {
        let server = by_stream(&all, "server", id).unwrap_or_else(|| panic!("server span of stream {id}: {all:#?}"));
        let client = by_stream(&all, "client", id).unwrap_or_else(|| panic!("client span of stream {id}: {all:#?}"));
        assert_eq!(server["service"], "h2c-server");
        assert_eq!(server["parentSpanId"], client["spanId"], "{server:#?}");
        assert_eq!(server["traceId"], client["traceId"]);
        for x in [client, server] {
            let t = &x["tags"];
            assert_eq!(x["operation"], format!("GET {item}"), "{x:#?}");
            assert_eq!(t["http.flavor"], "2.0");
            assert_eq!(t["http.method"], "GET");
            assert_eq!(t["http.status_code"], 200, "{x:#?}");
            assert_eq!(t["http.host"], format!("127.0.0.1:{port}"));
            assert!(t.get("error").is_none(), "{x:#?}");
        }
    }
    assert!(!format!("{all:?}").contains("hunter2"), "query redacted: {all:#?}");
}

#[test]
fn plain_http2_gives_one_span_per_stream_on_both_sides() {
    let daemon = Daemon::start(&["--output", "json"]);
    let (_server, port) = serve("h2c", "h2c-server");
    let paths = ["/items/1", "/items/2", "/items/3", "/nope"];
    let mut client = Command::new(binary())
        .args(["h2get", &format!("127.0.0.1:{port}")])
        .args(paths)
        .env("OTEL_SERVICE_NAME", "h2c-client")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the h2c client");
    // The client stays alive (stdin open) until its spans are out, so that its name is read.
    let stdin = client.stdin.take();
    let mut text = String::new();
    for line in BufReader::new(client.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line == "done" {
            break;
        }
    }
    let _client = Proc(client);
    for p in paths {
        let code = if p == "/nope" { 404 } else { 200 };
        assert!(text.contains(&format!("status {p} {code}")), "{text}");
    }
    let curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version}", "--http2-prior-knowledge"])
        .arg(format!("http://127.0.0.1:{port}/items/9?token=hunter2"))
        .env("OTEL_SERVICE_NAME", "h2c-curl")
        .output()
        .expect("running curl (installed by `cargo xtask setup`)");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2", "curl spoke HTTP/2");
    let all = wait_for(TIMEOUT, "ten spans", || {
        let all = spans(&daemon, port);
        (all.len() >= 10).then_some(all)
    });
    let servers: Vec<&Value> = all.iter().filter(|s| s["kind"] == "server").collect();
    let clients: Vec<&Value> = all.iter().filter(|s| s["kind"] == "client").collect();
    assert_eq!((servers.len(), clients.len()), (5, 5), "one span per stream and side: {all:#?}");
    for s in &servers {
        assert_eq!(s["service"], "h2c-server");
        let c = clients
            .iter()
            .find(|c| c["spanId"] == s["parentSpanId"])
            .unwrap_or_else(|| panic!("server span without its client span: {s:#?}"));
        assert_eq!(c["traceId"], s["traceId"]);
        for x in [*c, *s] {
            let t = &x["tags"];
            assert_eq!(t["http.flavor"], "2.0", "{x:#?}");
            assert_eq!(t["http.method"], "GET");
            assert_eq!(t["http.target"], s["tags"]["http.target"]);
            assert_eq!(t["http.host"], format!("127.0.0.1:{port}"));
            assert!(t.get("rpc.system").is_none(), "not gRPC: {x:#?}");
            let missing = t["http.target"] == "/nope";
            assert_eq!(t["http.status_code"], if missing { 404 } else { 200 });
            let error = missing && x["kind"] == "client";
            assert_eq!(t.get("error").is_some(), error, "{x:#?}");
        }
    }
    // curl exits at once: its span is found by its request (its name may be provisional).
    let from_curl = clients
        .iter()
        .find(|c| c["tags"]["http.target"].as_str().is_some_and(|t| t.starts_with("/items/9")))
        .expect("curl's client span");
    assert_eq!(from_curl["operation"], "GET /items/9");
    assert!(!from_curl.to_string().contains("hunter2"), "query redacted: {from_curl:#?}");
    assert_eq!(clients.iter().filter(|c| c["service"] == "h2c-client").count(), 4, "{clients:#?}");
    drop(stdin);
}
