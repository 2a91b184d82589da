//! OTLP end to end. Out: the daemon's spans of real traffic (curl → service A → redis-server)
//! exported over OTLP/gRPC and OTLP/HTTP to two real collectors (`rotel`), which forward to a
//! small OTLP/HTTP receiver that decodes with `opentelemetry-proto`. In: apps with the
//! OpenTelemetry SDK export to the daemon's OTLP/gRPC and OTLP/HTTP receivers and their spans
//! reach the collector with this host's tags; bad requests get their status and are counted.
//! Zipkin: an app with the OpenTelemetry SDK's Zipkin exporter posts to the daemon's Zipkin
//! receiver, and the daemon's Zipkin export (its spans and the app's) is checked against the
//! Zipkin v2 span-list schema by the receiving end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tracer_tests::curl_status as curl;
use tracer_tests::{
    daemon::{Daemon, free_port},
    servers::{self, Server, python_dir, python_service},
    stop_child, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(40);

/// A decoding receiver (OTLP/HTTP, or Zipkin v2 with a schema check) writing one JSON line per
/// span to a file.
struct Sink {
    _server: Server,
    out: PathBuf,
}

impl Sink {
    fn start(dir: &Path, name: &str) -> Sink {
        Self::script("otlp_sink.py", dir, name)
    }

    fn script(script: &str, dir: &Path, name: &str) -> Sink {
        let out = dir.join(format!("{name}.jsonl"));
        let _ = std::fs::remove_file(&out);
        let port = free_port();
        let server = python_service(script, port, &["--out".into(), out.display().to_string()], &[]);
        Sink { _server: server, out }
    }

    fn port(&self) -> u16 {
        self._server.port
    }

    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// A real OTLP collector (rotel) receiving on its own gRPC and HTTP ports and forwarding over
/// OTLP/HTTP to `sink`.
struct Rotel {
    child: Child,
    grpc: u16,
    http: u16,
}

impl Drop for Rotel {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

fn rotel_bin() -> String {
    let out = Command::new("python3")
        .args(["-c", "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))"])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn wait_listening(port: u16, what: &str, child: &mut Child) {
    wait_for(Duration::from_secs(30), what, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}");
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
}

impl Rotel {
    fn start(sink: &Sink) -> Rotel {
        let (grpc, http) = (free_port(), free_port());
        let mut child = Command::new(rotel_bin())
            .args(["start", "--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "http"])
            .args(["--otlp-exporter-endpoint", &format!("http://127.0.0.1:{}", sink.port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rotel-agent");
        wait_listening(grpc, "rotel gRPC", &mut child);
        wait_listening(http, "rotel HTTP", &mut child);
        Rotel { child, grpc, http }
    }
}

fn work_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracer-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn find<'a>(spans: &'a [Value], service: &str, kind: i64, name: &str) -> Option<&'a Value> {
    spans.iter().find(|s| s["resource"]["service.name"] == service && s["kind"] == kind && s["name"] == name)
}

const SERVER: i64 = 2;
const CLIENT: i64 = 3;
const STATUS_ERROR: i64 = 2;

#[test]
fn daemon_spans_reach_rotel_over_grpc_and_http() {
    let dir = work_dir();
    let (sink_g, sink_h) = (Sink::start(&dir, "via-grpc"), Sink::start(&dir, "via-http"));
    let (rotel_g, rotel_h) = (Rotel::start(&sink_g), Rotel::start(&sink_h));
    let grpc_url = format!("http://127.0.0.1:{}", rotel_g.grpc);
    let http_url = format!("http://127.0.0.1:{}", rotel_h.http);
    let (rg, rh) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let daemon = Daemon::start(&[
        "--otlp-grpc",
        &grpc_url,
        "--otlp-http",
        &http_url,
        "--otlp-grpc-addr",
        &rg,
        "--otlp-http-addr",
        &rh,
        "--batch-max-age-ms",
        "200",
    ]);
    let c = servers::chain_services("otlp");
    assert_eq!(curl(&format!("http://{}/checkout?user=7", c.a.addr())), 200);
    assert_eq!(curl(&format!("http://{}/fail", c.a.addr())), 500);

    for (how, sink) in [("gRPC", &sink_g), ("HTTP", &sink_h)] {
        let (a, get, lpop, spans) = wait_for(TIMEOUT, &format!("the spans over {how}"), || {
            let spans = sink.spans();
            let a = spans
                .iter()
                .find(|s| {
                    s["resource"]["service.name"] == "otlp-a"
                        && s["kind"] == SERVER
                        && s["attributes"]["http.target"] == "/checkout?user=?"
                })?
                .clone();
            let get = spans
                .iter()
                .find(|s| s["name"] == "redis GET" && s["kind"] == CLIENT && s["traceId"] == a["traceId"])?
                .clone();
            // redis-server's own span of the command, parented by the client span.
            spans
                .iter()
                .find(|s| s["name"] == "redis GET" && s["kind"] == SERVER && s["parentSpanId"] == get["spanId"])?;
            let lpop = find(&spans, "otlp-a", CLIENT, "redis LPOP")?.clone();
            // curl's span comes in its own batch (another process).
            spans.iter().find(|s| s["spanId"] == a["parentSpanId"])?;
            Some((a, get, lpop, spans))
        });
        assert_eq!(a["traceId"].as_str().unwrap().len(), 32, "16-byte trace id");
        assert_eq!(a["spanId"].as_str().unwrap().len(), 16, "8-byte span id");
        assert_eq!(a["attributes"]["http.method"], "GET");
        assert_eq!(a["attributes"]["http.status_code"], 200);
        assert_eq!(a["resource"]["process.pid"], c.a.pid() as i64);
        assert!(a["resource"]["host.name"].is_string(), "{a}");
        // curl starts the trace; its span is the server span's parent.
        let curl_span = spans.iter().find(|s| s["spanId"] == a["parentSpanId"]).expect("curl's span");
        assert_eq!(curl_span["kind"], CLIENT);
        assert_eq!(a["attributes"]["tracer.link"], "tcp-option");

        assert_eq!(get["kind"], CLIENT);
        assert_eq!(get["parentSpanId"], a["spanId"], "redis GET is a child of A over {how}");
        assert_eq!(get["attributes"]["db.system"], "redis");
        assert_eq!(get["attributes"]["db.statement"], "GET user:7");
        assert_eq!(get["attributes"]["net.peer.port"], c.redis.port as i64);
        assert_eq!(get["attributes"]["tracer.link"], "thread");
        assert_eq!(get["status"]["code"], 0, "unset status on success");

        assert_eq!(lpop["status"]["code"], STATUS_ERROR);
        assert!(lpop["status"]["message"].as_str().unwrap().starts_with("WRONGTYPE"), "{lpop}");
        let once = spans.iter().filter(|s| s["spanId"] == a["spanId"]).count();
        assert_eq!(once, 1, "no duplicates over {how}");
    }
    assert!(daemon.metric("tracer_export_spans_sent_total{exporter=\"otlp_grpc\"}") > 0.0);
}

fn app(protocol: &str, endpoint: &str, service: &str) -> String {
    let out = Command::new("python3")
        .arg(python_dir().join("otel_app.py"))
        .args(["--protocol", protocol, "--endpoint", endpoint, "--service", service])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn post(addr: &str, content_type: &str, body_file: &Path) -> u16 {
    post_to(addr, "/v1/traces", content_type, body_file)
}

fn post_to(addr: &str, path: &str, content_type: &str, body_file: &Path) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", "POST"])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(["--data-binary", &format!("@{}", body_file.display())])
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn sdk_apps_export_to_the_daemon_and_bad_requests_are_refused() {
    let dir = work_dir();
    let sink = Sink::start(&dir, "apps");
    let rotel = Rotel::start(&sink);
    let (rg, rh) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let daemon = Daemon::start(&[
        "--otlp-http",
        &format!("http://127.0.0.1:{}", rotel.http),
        "--otlp-grpc-addr",
        &rg,
        "--otlp-http-addr",
        &rh,
        "--otlp-max-body-bytes",
        "4096",
        "--batch-max-age-ms",
        "200",
    ]);

    // Bad input first: the receiver answers and keeps working.
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, b"\xff\xff\xff\xff not protobuf").unwrap();
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![0u8; 8192]).unwrap();
    assert_eq!(post(&rh, "application/x-protobuf", &garbage), 400);
    assert_eq!(post(&rh, "application/json", &garbage), 400);
    assert_eq!(post(&rh, "text/plain", &garbage), 415);
    assert_eq!(post(&rh, "application/x-protobuf", &big), 413);

    let via_grpc = app("grpc", &format!("http://{rg}"), "sdk-app-grpc");
    let via_http = app("http", &format!("http://{rh}/v1/traces"), "sdk-app-http");
    for (service, trace_id) in [("sdk-app-grpc", &via_grpc), ("sdk-app-http", &via_http)] {
        let spans = wait_for(TIMEOUT, &format!("{service}'s spans at the collector"), || {
            let s: Vec<Value> = sink.spans().into_iter().filter(|s| s["traceId"] == trace_id.as_str()).collect();
            (s.len() >= 2).then_some(s)
        });
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let parent = find(&spans, service, SERVER, "handle").expect("the server span");
        let child = find(&spans, service, CLIENT, "call-db").expect("the client span");
        assert_eq!(child["parentSpanId"], parent["spanId"]);
        assert!(parent["parentSpanId"].is_null());
        assert_eq!(child["status"], serde_json::json!({"code": STATUS_ERROR, "message": "db down"}));
        assert_eq!(parent["attributes"]["app.user"], 7);
        for s in &spans {
            assert!(s["resource"]["agent.hostname"].is_string(), "host tags on {s}");
            assert!(s["resource"]["host.name"].is_string(), "{s}");
        }
    }
    let m = |s: &str| daemon.metric(s);
    assert_eq!(m("tracer_otlp_requests_total{transport=\"http\",outcome=\"bad_request\"}"), 2.0);
    assert_eq!(m("tracer_otlp_requests_total{transport=\"http\",outcome=\"unsupported_media_type\"}"), 1.0);
    assert_eq!(m("tracer_otlp_requests_total{transport=\"http\",outcome=\"too_large\"}"), 1.0);
    assert_eq!(m("tracer_otlp_spans_received_total{transport=\"grpc\"}"), 2.0);
    assert_eq!(m("tracer_otlp_spans_received_total{transport=\"http\"}"), 2.0);
    drop((daemon, rotel, sink));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zipkin_apps_reach_the_daemon_and_its_zipkin_export_is_valid_v2() {
    let dir = work_dir();
    let sink = Sink::script("zipkin_sink.py", &dir, "zipkin");
    let zipkin = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start(&[
        "--zipkin",
        &format!("http://127.0.0.1:{}", sink.port()),
        "--zipkin-addr",
        &zipkin,
        "--otlp-max-body-bytes",
        "4096",
        "--batch-max-age-ms",
        "200",
    ]);

    // Bad input first: the receiver answers and keeps working.
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let garbage = write("zipkin-garbage.json", b"{\"not\": \"a list\"}");
    let big = write("zipkin-big.json", &vec![b' '; 8192]);
    let bad_id = write(
        "zipkin-bad-id.json",
        br#"[{"traceId":"00000000000000000000000000000000","id":"352bff9a74ca9ad2","name":"zero"}]"#,
    );
    let path = "/api/v2/spans";
    assert_eq!(post_to(&zipkin, path, "application/json", &garbage), 400);
    assert_eq!(post_to(&zipkin, path, "application/json", &bad_id), 400);
    assert_eq!(post_to(&zipkin, path, "application/x-protobuf", &garbage), 415);
    assert_eq!(post_to(&zipkin, path, "application/json", &big), 413);

    // A real Zipkin sender, whose client span calls the sink with its traceparent.
    let out = Command::new("python3")
        .arg(python_dir().join("zipkin_app.py"))
        .args(["--endpoint", &format!("http://{zipkin}{path}"), "--service", "zipkin-app"])
        .args(["--ping", &format!("http://127.0.0.1:{}/ping", sink.port())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trace_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let spans = wait_for(TIMEOUT, "the app's and the kernel's spans at the Zipkin receiver", || {
        let s: Vec<Value> = sink.spans().into_iter().filter(|s| s["traceId"] == trace_id.as_str()).collect();
        (s.len() >= 4).then_some(s)
    });
    let by = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        spans.iter().find(|s| s["kind"] == kind && pred(s)).unwrap_or_else(|| panic!("a {kind} span in {spans:#?}"))
    };
    let handle = by("SERVER", &|s| s["name"] == "handle");
    let call = by("CLIENT", &|s| s["name"] == "call-ping");
    assert_eq!(handle["localEndpoint"]["serviceName"], "zipkin-app");
    assert!(handle.get("parentId").is_none(), "{handle:#?}");
    assert_eq!(call["parentId"], handle["id"]);
    assert_eq!(call["tags"]["error"], "ping failed", "{call:#?}");
    assert_eq!(handle["tags"]["app.user"], "7");
    assert!(handle["tags"]["agent.hostname"].is_string(), "host tags on {handle:#?}");
    // The kernel's spans of the ping, in the app's trace under the span that sent it (the
    // traceparent both ends saw names it).
    let ping_client = by("CLIENT", &|s| s["tags"]["http.target"] == "/ping");
    let ping_server = by("SERVER", &|s| s["tags"]["http.target"] == "/ping");
    for s in [ping_client, ping_server] {
        assert_eq!(s["parentId"], call["id"], "{s:#?}");
        assert_eq!(s["tags"]["tracer.link"], "traceparent");
    }
    assert_eq!(ping_client["remoteEndpoint"]["port"], sink.port());
    assert_eq!(ping_server["tags"]["http.status_code"], "200");
    let invalid: Vec<Value> = sink.spans().into_iter().filter(|s| s.get("invalid").is_some()).collect();
    assert!(invalid.is_empty(), "every body the daemon sent is a valid Zipkin v2 span list: {invalid:#?}");

    let m = |s: &str| daemon.metric(s);
    assert_eq!(m("tracer_zipkin_requests_total{outcome=\"bad_request\"}"), 1.0);
    assert_eq!(m("tracer_zipkin_requests_total{outcome=\"unsupported_media_type\"}"), 1.0);
    assert_eq!(m("tracer_zipkin_requests_total{outcome=\"too_large\"}"), 1.0);
    assert_eq!(m("tracer_zipkin_spans_rejected_total"), 1.0);
    assert_eq!(m("tracer_zipkin_spans_received_total"), 2.0);
    drop((daemon, sink));
    let _ = std::fs::remove_dir_all(&dir);
}
