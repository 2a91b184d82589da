//! Cross-host traces on one machine: three network namespaces play three hosts (front, middle,
//! redis), joined by veth pairs with private addresses, each with its own daemon (`--netns`,
//! its own admin address, its own `tracer.host` tag). A request goes curl → front (HTTP) →
//! middle (HTTP) → redis-server. The trace context rides in the TCP option between hosts: the
//! collector must get one trace, every parent right, every span from its own host's daemon, and
//! `tracer.link = tcp-option` on the cross-host edges. With the middle host's daemon stopped,
//! the other spans still arrive and none gets a wrong parent. Pipelined requests each link to
//! their own client span; MySQL links like HTTP and Redis; a protocol the daemon does not parse
//! still carries the trace to the calls made for it on the next host.

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tracer_daemon::model::{JaegerSpan as Span, TraceId};
use tracer_tests::{
    collector::Collector,
    daemon::{Daemon, daemon_bin, http_get},
    netns::{Netns, veth},
    servers::{self, Server},
    wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(40);
const FRONT_PORT: u16 = 8080;
const MIDDLE_PORT: u16 = 8081;
const REDIS_PORT: u16 = 6379;

/// Three hosts with their services. Field order is drop order: processes stop before the
/// namespaces go.
struct Hosts {
    _front_svc: Server,
    _middle_svc: Server,
    _redis: Server,
    front: Netns,
    middle: Netns,
    _redis_ns: Netns,
}

/// Namespaces `trc<tag>{f,m,r}` joined front ↔ middle on 10.<net>.1.0/24 and middle ↔ redis on
/// 10.<net>.2.0/24.
fn hosts(tag: &str, net: u8) -> (Netns, Netns, Netns, String, String) {
    let id = std::process::id() % 100_000;
    let front = Netns::create(&format!("trc{tag}{id}f"));
    let middle = Netns::create(&format!("trc{tag}{id}m"));
    let redis = Netns::create(&format!("trc{tag}{id}r"));
    let middle_ip = format!("10.{net}.1.2");
    let redis_ip = format!("10.{net}.2.2");
    veth(&format!("tv{tag}{id}1"), &front, &format!("10.{net}.1.1/24"), &middle, &format!("{middle_ip}/24"));
    veth(&format!("tv{tag}{id}2"), &middle, &format!("10.{net}.2.1/24"), &redis, &format!("{redis_ip}/24"));
    (front, middle, redis, middle_ip, redis_ip)
}

fn start_redis(ns: &Netns, ip: &str) -> Server {
    let mut child = ns
        .command("redis-server")
        .args(["--port", &REDIS_PORT.to_string(), "--bind", ip, "--save", "", "--appendonly", "no"])
        // Reachable from the middle host's address without a password (a private veth only).
        .args(["--protected-mode", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server");
    ns.wait_listening(&format!("{ip}:{REDIS_PORT}"), &mut child);
    Server::from_child(child, REDIS_PORT)
}

/// `tests/python/chain_service.py` named `name`, listening on `bind:port` inside `ns`.
fn start_chain(ns: &Netns, name: &str, bind: &str, port: u16, args: &[&str]) -> Server {
    let mut child = ns
        .command("python3")
        .arg(servers::python_dir().join("chain_service.py"))
        .args(["--port", &port.to_string(), "--bind", bind])
        .args(args)
        .env("OTEL_SERVICE_NAME", name)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting a chain service");
    ns.wait_listening(&format!("{bind}:{port}"), &mut child);
    Server::from_child(child, port)
}

fn start_services(front: Netns, middle: Netns, redis_ns: Netns, middle_ip: &str, redis_ip: &str) -> Hosts {
    let redis = start_redis(&redis_ns, redis_ip);
    let redis_port = REDIS_PORT.to_string();
    let middle_svc =
        start_chain(&middle, "middle", middle_ip, MIDDLE_PORT, &["--redis", &redis_port, "--redis-host", redis_ip]);
    let next = MIDDLE_PORT.to_string();
    let front_svc = start_chain(
        &front,
        "front",
        "127.0.0.1",
        FRONT_PORT,
        &["--next", &next, "--next-host", middle_ip, "--keep-alive"],
    );
    Hosts { _front_svc: front_svc, _middle_svc: middle_svc, _redis: redis, front, middle, _redis_ns: redis_ns }
}

/// One daemon for one host: its namespace, its admin address, its `tracer.host` tag.
fn daemon(ns: &Netns, host: &str, collector: &Collector) -> Daemon {
    daemon_with(ns, host, collector, &[])
}

fn daemon_with(ns: &Netns, host: &str, collector: &Collector, extra: &[&str]) -> Daemon {
    let tag = format!("tracer.host={host}");
    let url = collector.url();
    let mut args = vec![
        "--netns",
        &ns.name,
        "--collector",
        &url,
        "--host-tag",
        &tag,
        "--batch-max-age-ms",
        "200",
        // No agent listeners: three daemons share the machine's ports.
        "--agent-compact-addr",
        "",
        "--agent-binary-addr",
        "",
        "--sampling-addr",
        "",
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn curl(ns: &Netns, path: &str) -> u16 {
    let out = ns
        .command("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"])
        .arg(format!("http://127.0.0.1:{FRONT_PORT}{path}"))
        .output()
        .expect("running curl");
    let code = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    if code != 200 {
        eprintln!("curl {path}: {code} {}", String::from_utf8_lossy(&out.stderr));
    }
    code
}

fn tag<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    s.tag_str(key)
}

fn host_of(s: &Span) -> Option<&str> {
    s.process.tags.iter().find(|t| t.key == "tracer.host").and_then(|t| match &t.value {
        tracer_daemon::model::TagValue::Str(v) => Some(v.as_str()),
        _ => None,
    })
}

fn find<'a>(spans: &'a [Span], service: &str, kind: &str, op: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.process.service_name == service && tag(s, "span.kind") == Some(kind) && s.operation == op)
}

fn get<'a>(spans: &'a [Span], service: &str, kind: &str, op: &str) -> &'a Span {
    find(spans, service, kind, op).unwrap_or_else(|| panic!("no {kind} span {op} of {service} in {spans:#?}"))
}

/// The spans of the test's request (`/relay` and what it caused), once `done` holds.
fn wait_spans(collector: &Collector, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    wait_for(TIMEOUT, what, || {
        let spans = collector.spans();
        done(&spans).then_some(spans)
    })
}

fn option_counter(d: &Daemon, name: &str) -> f64 {
    d.metric(&format!("tracer_kernel_events_total{{counter=\"{name}\"}}"))
}

#[test]
fn a_request_across_three_hosts_is_one_trace_linked_by_the_tcp_option() {
    let (front, middle, redis_ns, middle_ip, redis_ip) = hosts("a", 231);
    let collector = Collector::start();
    let front_d = daemon(&front, "front", &collector);
    let middle_d = daemon(&middle, "middle", &collector);
    let redis_d = daemon(&redis_ns, "redis", &collector);
    assert_ne!(front_d.metrics_addr, middle_d.metrics_addr);
    let h = start_services(front, middle, redis_ns, &middle_ip, &redis_ip);

    assert_eq!(curl(&h.front, "/relay"), 200);
    let spans = wait_spans(&collector, "the six spans of the request", |s| {
        find(s, "curl", "client", "GET /relay").is_some()
            && find(s, "front", "server", "GET /relay").is_some()
            && find(s, "front", "client", "GET /relay").is_some()
            && find(s, "middle", "server", "GET /relay").is_some()
            && find(s, "middle", "client", "redis GET").is_some()
            && s.iter().any(|x| x.operation == "redis GET" && tag(x, "span.kind") == Some("server"))
    });
    let curl_span = get(&spans, "curl", "client", "GET /relay");
    let front_server = get(&spans, "front", "server", "GET /relay");
    let front_call = get(&spans, "front", "client", "GET /relay");
    let middle_server = get(&spans, "middle", "server", "GET /relay");
    let middle_call = get(&spans, "middle", "client", "redis GET");
    let redis_server =
        spans.iter().find(|x| x.operation == "redis GET" && tag(x, "span.kind") == Some("server")).unwrap();

    let trace: TraceId = curl_span.trace_id;
    let chain = [curl_span, front_server, front_call, middle_server, middle_call, redis_server];
    for s in chain {
        assert_eq!(s.trace_id, trace, "{} of {} is in the request's trace", s.operation, s.process.service_name);
    }
    assert_eq!(curl_span.parent_span_id, 0, "curl starts the trace");
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].parent_span_id, pair[0].span_id,
            "{} of {} is a child of {} of {}",
            pair[1].operation, pair[1].process.service_name, pair[0].operation, pair[0].process.service_name
        );
    }
    // Cross-host edges are linked by the option; calls inside a host by their thread.
    assert_eq!(tag(middle_server, "tracer.link"), Some("tcp-option"));
    assert_eq!(tag(redis_server, "tracer.link"), Some("tcp-option"));
    assert_eq!(tag(front_call, "tracer.link"), Some("thread"));
    assert_eq!(tag(middle_call, "tracer.link"), Some("thread"));
    // Each span comes from the daemon of its own host.
    let by_host = [
        (curl_span, "front"),
        (front_server, "front"),
        (front_call, "front"),
        (middle_server, "middle"),
        (middle_call, "middle"),
        (redis_server, "redis"),
    ];
    for (s, host) in by_host {
        assert_eq!(
            host_of(s),
            Some(host),
            "{} of {} reported by the {host} daemon",
            s.operation,
            s.process.service_name
        );
    }
    // Exactly once each: no daemon reports another host's spans.
    let relay_servers =
        spans.iter().filter(|s| s.operation == "GET /relay" && tag(s, "span.kind") == Some("server")).count();
    assert_eq!(relay_servers, 2);
    assert_eq!(spans.iter().filter(|s| s.operation == "redis GET").count(), 2);

    // Options: written by front (curl's and front's requests) and middle, read by front, middle
    // and redis; none lacked room.
    assert!(option_counter(&front_d, "option_written") >= 2.0);
    assert!(option_counter(&middle_d, "option_written") >= 1.0);
    assert!(option_counter(&middle_d, "option_matched") >= 1.0);
    assert!(option_counter(&redis_d, "option_matched") >= 1.0);
    let no_space: f64 = [&front_d, &middle_d, &redis_d].iter().map(|d| option_counter(d, "option_no_space")).sum();
    eprintln!(
        "options: written front={} middle={} redis={}; no room: {no_space}",
        option_counter(&front_d, "option_written"),
        option_counter(&middle_d, "option_written"),
        option_counter(&redis_d, "option_written")
    );
    assert_eq!(no_space, 0.0);

    // Each daemon's store holds its host's piece; `fleet trace` merges them into the request's
    // trace, every span once, every parent inside it, each span's process from its own host.
    let hex = trace.to_hex();
    let own = |d: &Daemon| -> usize {
        let answer: Value = serde_json::from_str(&http_get(&d.metrics_addr, &format!("/api/traces/{hex}"))).unwrap();
        answer["data"][0]["spans"].as_array().map_or(0, Vec::len)
    };
    let fleet = || -> Option<Value> {
        let out = Command::new(daemon_bin())
            .args(["fleet", "trace", &hex, "--strict"])
            .args(["--daemon", &front_d.metrics_addr, "--daemon", &middle_d.metrics_addr])
            .args(["--daemon", &redis_d.metrics_addr])
            .output()
            .expect("running fleet trace");
        if !out.status.success() {
            eprintln!("fleet trace: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("fleet trace prints JSON"))
    };
    let merged = wait_for(TIMEOUT, "the merged trace's six spans", || {
        fleet().filter(|m| m["data"][0]["spans"].as_array().map_or(0, Vec::len) == 6)
    });
    assert_eq!((own(&front_d), own(&middle_d), own(&redis_d)), (3, 2, 1), "each store holds its host's spans");
    let trace_json = &merged["data"][0];
    let ids: BTreeSet<String> =
        trace_json["spans"].as_array().unwrap().iter().map(|s| s["spanID"].as_str().unwrap().to_owned()).collect();
    let want: BTreeSet<String> = chain.iter().map(|s| format!("{:016x}", s.span_id)).collect();
    assert_eq!(ids, want, "the chain's six spans, once each");
    for (s, host) in by_host {
        let span_id = format!("{:016x}", s.span_id);
        let j = trace_json["spans"].as_array().unwrap().iter().find(|j| j["spanID"] == span_id.as_str()).unwrap();
        let parent = j["references"].as_array().and_then(|r| r.first()).map(|r| r["spanID"].clone());
        match s.parent_span_id {
            0 => assert_eq!(parent, None, "the root has no parent"),
            p => assert_eq!(parent, Some(Value::from(format!("{p:016x}"))), "{} keeps its parent", s.operation),
        }
        let process = &trace_json["processes"][j["processID"].as_str().unwrap()];
        let host_tag = process["tags"].as_array().unwrap().iter().find(|t| t["key"] == "tracer.host");
        assert_eq!(host_tag.map(|t| t["value"].clone()), Some(Value::from(host)), "{} from {host}", s.operation);
    }

    // A search on every daemon finds the trace by a service only the middle host runs, and
    // answers it whole.
    let out = Command::new(daemon_bin())
        .args(["fleet", "search", "--service", "middle", "--lookback", "1h", "--strict"])
        .args(["--daemon", &front_d.metrics_addr, "--daemon", &middle_d.metrics_addr])
        .args(["--daemon", &redis_d.metrics_addr])
        .output()
        .expect("running fleet search");
    assert!(out.status.success(), "fleet search: {}", String::from_utf8_lossy(&out.stderr));
    let found: Value = serde_json::from_slice(&out.stdout).expect("fleet search prints JSON");
    let hit = found["data"].as_array().unwrap().iter().find(|t| t["traceID"] == hex.as_str()).expect("the trace found");
    assert_eq!(hit["spans"].as_array().unwrap().len(), 6, "found on the middle host, answered with every host's spans");

    // Keep-alive: two requests on one connection, each with its own option and parent.
    let out = h
        .front
        .command("curl")
        .args(["-s", "--max-time", "20", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"])
        .arg(format!("http://127.0.0.1:{FRONT_PORT}/hello?n=1"))
        .arg(format!("http://127.0.0.1:{FRONT_PORT}/hello?n=2"))
        .output()
        .expect("running curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 1\n200 0\n", "two requests, one connection");
    let spans = wait_spans(&collector, "both keep-alive requests", |s| {
        s.iter().filter(|x| x.operation == "GET /hello" && x.process.service_name == "front").count() == 2
            && s.iter().filter(|x| x.operation == "GET /hello" && x.process.service_name == "curl").count() == 2
    });
    let by = |svc: &str| -> Vec<&Span> {
        let mut v: Vec<&Span> =
            spans.iter().filter(|x| x.operation == "GET /hello" && x.process.service_name == svc).collect();
        v.sort_by_key(|x| x.start_us);
        v
    };
    let (clients, servers) = (by("curl"), by("front"));
    for (c, s) in clients.iter().zip(&servers) {
        assert_eq!((s.trace_id, s.parent_span_id), (c.trace_id, c.span_id), "each request's own parent");
        assert_eq!(tag(s, "tracer.link"), Some("tcp-option"));
    }
    assert_ne!(clients[0].span_id, clients[1].span_id);
}

#[test]
fn without_the_middle_daemon_the_rest_still_arrives_and_no_parent_is_wrong() {
    let (front, middle, redis_ns, middle_ip, redis_ip) = hosts("b", 232);
    let collector = Collector::start();
    let _front_d = daemon(&front, "front", &collector);
    let mut middle_d = daemon(&middle, "middle", &collector);
    let _redis_d = daemon(&redis_ns, "redis", &collector);
    assert!(middle_d.stop(), "the middle daemon stops cleanly");
    let h = start_services(front, middle, redis_ns, &middle_ip, &redis_ip);

    assert_eq!(curl(&h.front, "/relay"), 200, "traffic is unaffected");
    let spans = wait_spans(&collector, "the spans of the front and redis hosts", |s| {
        find(s, "curl", "client", "GET /relay").is_some()
            && find(s, "front", "server", "GET /relay").is_some()
            && find(s, "front", "client", "GET /relay").is_some()
            && s.iter().any(|x| x.operation == "redis GET" && tag(x, "span.kind") == Some("server"))
    });
    let curl_span = get(&spans, "curl", "client", "GET /relay");
    let front_server = get(&spans, "front", "server", "GET /relay");
    let front_call = get(&spans, "front", "client", "GET /relay");
    let redis_server =
        spans.iter().find(|x| x.operation == "redis GET" && tag(x, "span.kind") == Some("server")).unwrap();
    assert!(find(&spans, "middle", "server", "GET /relay").is_none(), "no daemon on the middle host");
    assert_eq!(front_server.parent_span_id, curl_span.span_id);
    assert_eq!(front_call.parent_span_id, front_server.span_id);
    assert_eq!(front_call.trace_id, curl_span.trace_id);
    // The middle host sent no option: redis's span has no evidence, so no parent.
    assert_eq!(redis_server.parent_span_id, 0, "{redis_server:#?}");
    assert_eq!(tag(redis_server, "tracer.link"), None);
    assert_eq!(host_of(redis_server), Some("redis"));
    // No span anywhere names a parent that is not a span of its own trace.
    for s in spans.iter().filter(|s| s.parent_span_id != 0) {
        assert!(
            spans.iter().any(|p| p.span_id == s.parent_span_id && p.trace_id == s.trace_id),
            "{} of {} has a parent outside its trace",
            s.operation,
            s.process.service_name
        );
    }
}

#[test]
fn with_propagation_off_nothing_is_added_to_packets_and_hosts_are_not_linked() {
    let (front, middle, redis_ns, middle_ip, redis_ip) = hosts("c", 233);
    let collector = Collector::start();
    let front_d = daemon_with(&front, "front", &collector, &["--no-propagate"]);
    let middle_d = daemon_with(&middle, "middle", &collector, &["--no-propagate"]);
    let _redis_d = daemon_with(&redis_ns, "redis", &collector, &["--no-propagate"]);
    let h = start_services(front, middle, redis_ns, &middle_ip, &redis_ip);

    assert_eq!(curl(&h.front, "/relay"), 200);
    let spans = wait_spans(&collector, "the spans of every host", |s| {
        find(s, "front", "client", "GET /relay").is_some()
            && find(s, "middle", "server", "GET /relay").is_some()
            && s.iter().any(|x| x.operation == "redis GET" && tag(x, "span.kind") == Some("server"))
    });
    let front_call = get(&spans, "front", "client", "GET /relay");
    let middle_server = get(&spans, "middle", "server", "GET /relay");
    assert_eq!(middle_server.parent_span_id, 0, "no evidence crosses hosts");
    assert_ne!(middle_server.trace_id, front_call.trace_id);
    // On one host the tuple join still links curl and front.
    assert_eq!(tag(get(&spans, "front", "server", "GET /relay"), "tracer.link"), Some("same-host-tuple"));
    for d in [&front_d, &middle_d] {
        assert_eq!(option_counter(d, "option_written"), 0.0);
        assert!(!d.metrics().contains("probe=\"tracer_sock_ops\""), "sock_ops is not attached");
    }
}

/// A client in the middle namespace that writes four requests back to back, each in its own
/// write (the last write holds two), before it reads any reply.
const PIPELINER: &str = r#"
import socket, sys
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(cmd(b"SET", b"pl:a", b"1"))
s.sendall(cmd(b"INCR", b"pl:b"))
s.sendall(cmd(b"GET", b"pl:a"))
s.sendall(cmd(b"EXISTS", b"pl:a") + cmd(b"STRLEN", b"pl:a"))
buf = b""
while buf.count(b"\r\n") < 6:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("connection closed early")
    buf += chunk
s.close()
print(buf.decode().replace("\r\n", " "))
"#;

#[test]
fn pipelined_requests_each_carry_their_own_context() {
    let (front, middle, redis_ns, middle_ip, redis_ip) = hosts("d", 234);
    let collector = Collector::start();
    let middle_d = daemon_with(&middle, "middle", &collector, &["--bpf-stats"]);
    let redis_d = daemon_with(&redis_ns, "redis", &collector, &["--bpf-stats"]);
    let h = start_services(front, middle, redis_ns, &middle_ip, &redis_ip);
    // Back-to-back small writes would be merged into one packet while the previous one is
    // still queued (autocorking); a request that shares its first packet carries no option.
    let sysctl = h.middle.command("sysctl").args(["-qw", "net.ipv4.tcp_autocorking=0"]).status().expect("sysctl");
    assert!(sysctl.success());

    let out = h
        .middle
        .command("python3")
        .args(["-c", PIPELINER, &redis_ip, &REDIS_PORT.to_string()])
        .env("OTEL_SERVICE_NAME", "pipeliner")
        .output()
        .expect("running the pipelining client");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "+OK :1 $1 1 :1 :1");

    const OPS: [&str; 5] = ["redis SET", "redis INCR", "redis GET", "redis EXISTS", "redis STRLEN"];
    let spans = wait_spans(&collector, "both sides of the five pipelined requests", |s| {
        OPS.iter().all(|op| {
            find(s, "pipeliner", "client", op).is_some()
                && s.iter().any(|x| x.operation == *op && tag(x, "span.kind") == Some("server"))
        })
    });
    let server = |op: &str| spans.iter().find(|x| x.operation == op && tag(x, "span.kind") == Some("server")).unwrap();
    for op in &OPS[..4] {
        let (c, s) = (get(&spans, "pipeliner", "client", op), server(op));
        assert_eq!((s.trace_id, s.parent_span_id), (c.trace_id, c.span_id), "{op}: its own client span is the parent");
        assert_eq!(tag(s, "tracer.link"), Some("tcp-option"), "{op}");
        assert_eq!(host_of(s), Some("redis"));
    }
    // STRLEN shared its packet with EXISTS: no context of its own, and no wrong parent.
    let strlen = server("redis STRLEN");
    assert_eq!(strlen.parent_span_id, 0, "{strlen:#?}");
    let distinct: std::collections::HashSet<u64> =
        OPS.iter().map(|op| get(&spans, "pipeliner", "client", op).span_id).collect();
    assert_eq!(distinct.len(), 5);
    // Each option was matched by the read that starts at it (kernel) or inside a read (daemon).
    let in_daemon = redis_d.metric("tracer_propagation_options_total{outcome=\"matched\"}");
    let at_read = option_counter(&redis_d, "option_matched");
    eprintln!(
        "pipelined: options written {} by the client's host; matched at a read's start {at_read}, inside a read {in_daemon}",
        option_counter(&middle_d, "option_written")
    );
    assert!(in_daemon + at_read >= 4.0, "{in_daemon} + {at_read}");
    for (d, host) in [(&middle_d, "middle"), (&redis_d, "redis")] {
        let runs = d.metric("tracer_bpf_program_runs_total{program=\"tracer_sock_ops\"}");
        let secs = d.metric("tracer_bpf_program_run_seconds_total{program=\"tracer_sock_ops\"}");
        eprintln!("sock_ops on the {host} host: {runs} runs, {:.0} ns per run", secs * 1e9 / runs.max(1.0));
    }
}

#[test]
fn mysql_and_an_unparsed_protocol_carry_the_trace_across_hosts_too() {
    const LINE_PORT: u16 = 7070;
    let (front, middle, redis_ns, middle_ip, redis_ip) = hosts("e", 235);
    let collector = Collector::start();
    let _front_d = daemon(&front, "front", &collector);
    let _middle_d = daemon(&middle, "middle", &collector);
    let _redis_d = daemon(&redis_ns, "redis", &collector);
    // The data host runs redis-server and mariadbd; the middle host a service that speaks a
    // line protocol of its own (not parsed) and calls both; the front an HTTP service that
    // sends it one line.
    let _redis = start_redis(&redis_ns, &redis_ip);
    let _mysql = servers::mariadb_in(&redis_ns, &redis_ip);
    let (redis_port, line_port) = (REDIS_PORT.to_string(), LINE_PORT.to_string());
    let _liner = start_chain(
        &middle,
        "liner",
        &middle_ip,
        LINE_PORT,
        &[
            "--line-protocol",
            "--redis",
            &redis_port,
            "--redis-host",
            &redis_ip,
            "--mysql",
            "3306",
            "--mysql-host",
            &redis_ip,
        ],
    );
    let _front_svc =
        start_chain(&front, "front", "127.0.0.1", FRONT_PORT, &["--line", &line_port, "--line-host", &middle_ip]);

    assert_eq!(curl(&front, "/line"), 200);
    let spans = wait_spans(&collector, "the spans of the request on every host", |s| {
        find(s, "front", "server", "GET /line").is_some()
            && find(s, "liner", "client", "redis GET").is_some()
            && find(s, "liner", "client", "mysql SELECT").is_some()
            && s.iter().any(|x| x.operation == "redis GET" && tag(x, "span.kind") == Some("server"))
            && s.iter().any(|x| x.operation == "mysql SELECT" && tag(x, "span.kind") == Some("server"))
    });
    let front_server = get(&spans, "front", "server", "GET /line");
    let trace = front_server.trace_id;
    for op in ["redis GET", "mysql SELECT"] {
        let call = get(&spans, "liner", "client", op);
        let server = spans.iter().find(|x| x.operation == op && tag(x, "span.kind") == Some("server")).unwrap();
        // The line protocol has no spans, but its option carried the front's trace: the calls
        // the middle host makes for it stay in the request's trace.
        assert_eq!(call.trace_id, trace, "{op} of the middle host is in the front's trace");
        assert_eq!(call.parent_span_id, 0, "the unparsed hop has no span to be the parent");
        assert_eq!((server.trace_id, server.parent_span_id), (trace, call.span_id), "{op}: the server's parent");
        assert_eq!(tag(server, "tracer.link"), Some("tcp-option"), "{op}");
        assert_eq!(host_of(server), Some("redis"));
    }
}
