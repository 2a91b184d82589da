//! Spans end to end on one host: curl calls service A; A calls a real redis-server, a real
//! mariadb and HTTP service B. The daemon prints spans as JSON lines; one trace must come out
//! with the right parent for every hop and the conventional tags. Error paths give error spans;
//! pipelined Redis gives one span per command; a connection whose events the full ring buffer
//! lost pairs its later commands right again, and says it lost data; a half-full ring cuts
//! captures short instead of losing calls.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use tracer_tests::curl_status as curl;
use tracer_tests::{
    daemon::Daemon,
    servers::{self, Server},
    wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(30);

struct Chain {
    daemon: Daemon,
    a: Server,
    _b: Server,
    redis: Server,
    mysql: Server,
}

fn chain() -> Chain {
    let daemon = Daemon::start(&["--output", "json"]);
    let servers::ChainServices { a, b, redis, mysql } = servers::chain_services("service");
    Chain { daemon, a, _b: b, redis, mysql }
}

fn spans(d: &Daemon) -> Vec<Value> {
    d.json_lines().into_iter().filter(|v| v.get("spanId").is_some()).collect()
}

fn tag<'a>(s: &'a Value, key: &str) -> &'a Value {
    &s["tags"][key]
}

/// Every span of the trace that contains a server span for `target` on service A.
fn trace_of(d: &Daemon, target: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_for(TIMEOUT, &format!("the trace of {target}"), || {
        let all = spans(d);
        let root = all
            .iter()
            .find(|s| s["service"] == "service-a" && s["kind"] == "server" && tag(s, "http.target") == target)?;
        let trace: Vec<Value> = all.iter().filter(|s| s["traceId"] == root["traceId"]).cloned().collect();
        want(&trace).then_some(trace)
    })
}

fn find<'a>(trace: &'a [Value], service: &str, kind: &str, op: &str) -> &'a Value {
    trace
        .iter()
        .find(|s| s["service"] == service && s["kind"] == kind && s["operation"] == op)
        .unwrap_or_else(|| panic!("no {kind} span {op} of {service} in {trace:#?}"))
}

fn count(trace: &[Value], service: &str, kind: &str, op: &str) -> usize {
    trace.iter().filter(|s| s["service"] == service && s["kind"] == kind && s["operation"] == op).count()
}

fn parent_of<'a>(trace: &'a [Value], s: &Value) -> Option<&'a Value> {
    trace.iter().find(|p| p["spanId"] == s["parentSpanId"])
}

#[test]
fn one_trace_with_every_hop_parented_and_tagged() {
    let c = chain();
    assert_eq!(curl(&format!("http://{}/checkout?user=7", c.a.addr())), 200);
    let trace = trace_of(&c.daemon, "/checkout?user=?", |t| {
        t.iter().any(|s| s["service"] == "service-b" && s["kind"] == "server")
            && t.iter().any(|s| s["operation"] == "mysql SELECT" && s["kind"] == "client")
            && t.iter().any(|s| s["operation"] == "redis GET" && s["kind"] == "server")
            && t.iter().any(|s| s["kind"] == "client" && s["operation"] == "GET /checkout")
    });
    let curl_span = find(&trace, "curl", "client", "GET /checkout");
    let a = find(&trace, "service-a", "server", "GET /checkout");
    let redis_get = find(&trace, "service-a", "client", "redis GET");
    let select = find(&trace, "service-a", "client", "mysql SELECT");
    let to_b = find(&trace, "service-a", "client", "GET /hello");
    let b = find(&trace, "service-b", "server", "GET /hello");
    let redis_server = trace.iter().find(|s| s["kind"] == "server" && s["operation"] == "redis GET").unwrap();

    assert!(curl_span["parentSpanId"].is_null(), "curl starts the trace: {curl_span}");
    assert_eq!(a["parentSpanId"], curl_span["spanId"]);
    assert_eq!(tag(a, "tracer.link"), "tcp-option", "curl's TCP option names its span");
    for child in [redis_get, select, to_b] {
        assert_eq!(child["parentSpanId"], a["spanId"], "{} is a child of A", child["operation"]);
        assert_eq!(tag(child, "tracer.link"), "thread");
    }
    assert_eq!(b["parentSpanId"], to_b["spanId"]);
    assert_eq!(redis_server["parentSpanId"], redis_get["spanId"]);
    assert_eq!(parent_of(&trace, redis_server).unwrap()["service"], "service-a");

    assert_eq!(tag(a, "http.method"), "GET");
    assert_eq!(tag(a, "http.status_code"), 200);
    assert_eq!(tag(a, "span.kind"), "server");
    assert_eq!(tag(redis_get, "db.system"), "redis");
    assert_eq!(tag(redis_get, "db.statement"), "GET user:7");
    assert_eq!(tag(redis_get, "net.peer.port"), c.redis.port as i64);
    assert_eq!(tag(redis_get, "peer.service"), c.redis.addr().as_str());
    assert_eq!(tag(select, "db.system"), "mysql");
    assert_eq!(tag(select, "db.statement"), "SELECT name FROM items WHERE id = ?", "SQL literals are redacted");
    assert_eq!(tag(select, "net.peer.port"), c.mysql.port as i64);
    assert_eq!(count(&trace, "service-a", "client", "redis SET"), 1, "one span per call, no duplicates");
    assert_eq!(count(&trace, "service-a", "client", "redis GET"), 1);
    assert_eq!(count(&trace, "service-a", "server", "GET /checkout"), 1);
    // Timing: a child lies within its parent.
    for s in [redis_get, select, to_b] {
        let (ps, pd) = (a["startUs"].as_i64().unwrap(), a["durationUs"].as_i64().unwrap());
        let (cs, cd) = (s["startUs"].as_i64().unwrap(), s["durationUs"].as_i64().unwrap());
        assert!(cs >= ps && cs + cd <= ps + pd + 1, "{} within A", s["operation"]);
    }
}

#[test]
fn errors_become_error_spans() {
    let c = chain();
    assert_eq!(curl(&format!("http://{}/fail", c.a.addr())), 500);
    let trace = trace_of(&c.daemon, "/fail", |t| {
        t.iter().any(|s| s["service"] == "service-b" && s["kind"] == "server")
            && t.iter().any(|s| s["operation"] == "redis LPOP" && s["kind"] == "client")
            && t.iter()
                .any(|s| s["kind"] == "client" && s["tags"]["db.system"] == "mysql" && s["tags"]["error"] == true)
    });
    let lpop = find(&trace, "service-a", "client", "redis LPOP");
    assert_eq!(tag(lpop, "error"), true);
    assert!(tag(lpop, "error.message").as_str().unwrap().starts_with("WRONGTYPE"));
    let bad_sql = trace
        .iter()
        .find(|s| s["kind"] == "client" && s["tags"]["db.system"] == "mysql" && s["tags"]["error"] == true)
        .unwrap();
    assert!(tag(bad_sql, "error.message").as_str().unwrap().contains("1064"), "{bad_sql}");
    let boom = find(&trace, "service-b", "server", "GET /boom");
    assert_eq!(tag(boom, "http.status_code"), 500);
    assert_eq!(tag(boom, "error"), true);
    let a = find(&trace, "service-a", "server", "GET /fail");
    assert_eq!(tag(a, "error"), true);
}

#[test]
fn pipelined_redis_gives_one_span_per_command() {
    let c = chain();
    assert_eq!(curl(&format!("http://{}/pipeline", c.a.addr())), 200);
    let trace = trace_of(&c.daemon, "/pipeline", |t| {
        ["redis SET", "redis INCR", "redis GET"]
            .iter()
            .all(|op| t.iter().any(|s| s["operation"] == *op && s["kind"] == "client"))
    });
    let a = find(&trace, "service-a", "server", "GET /pipeline");
    let mut by_op: HashMap<String, usize> = HashMap::new();
    for s in trace.iter().filter(|s| s["service"] == "service-a" && s["kind"] == "client") {
        assert_eq!(s["parentSpanId"], a["spanId"]);
        *by_op.entry(s["operation"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(by_op.get("redis SET"), Some(&1));
    assert_eq!(by_op.get("redis INCR"), Some(&1));
    assert_eq!(by_op.get("redis GET"), Some(&1));
    assert_eq!(tag(find(&trace, "service-a", "client", "redis INCR"), "db.statement"), "INCR p:counter");
}

/// Sends one RESP command and reads its whole reply (a bulk string of known length, or one line).
fn redis_call(conn: &mut std::net::TcpStream, args: &[&str], bulk_len: Option<usize>) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(cmd.as_bytes()).expect("writing to redis");
    let mut reply = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = conn.read(&mut buf).expect("reading from redis");
        assert!(n > 0, "redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
        let done = match bulk_len {
            Some(len) => reply.len() >= format!("${len}\r\n").len() + len + 2,
            None => reply.ends_with(b"\r\n"),
        };
        if done {
            return reply;
        }
    }
}

/// The daemon with a 64 KiB ring, a redis-server holding a 3000-byte string at `big`, and a
/// connection to it (its local port in `local`) that has read it once.
struct SmallRing {
    d: Daemon,
    redis: Server,
    conn: std::net::TcpStream,
    local: u64,
}

fn small_ring() -> SmallRing {
    let d = Daemon::start(&["--output", "json", "--ring-buffer-bytes", "65536"]);
    let redis = servers::redis();
    let mut conn = std::net::TcpStream::connect(redis.addr()).expect("connecting to redis");
    redis_call(&mut conn, &["SET", "big", &"v".repeat(3000)], None);
    redis_call(&mut conn, &["GET", "big"], Some(3000));
    let local = u64::from(conn.local_addr().unwrap().port());
    SmallRing { d, redis, conn, local }
}

#[test]
fn after_the_ring_buffer_overflows_a_connection_pairs_right_and_says_it_lost_data() {
    // A small ring, and the daemon stopped while the connection runs: the kernel loses events
    // of both directions, requests whose replies were lost among them. The next event of each
    // socket says so; the command after the loss must get its own reply, not a lost one's.
    let SmallRing { d, redis: _redis, mut conn, local } = small_ring();
    let on_conn = |s: &Value| s["kind"] == "client" && s["tags"]["net.host.port"] == local;
    wait_for(TIMEOUT, "the span of the first GET", || {
        spans(&d).into_iter().find(|s| on_conn(s) && s["operation"] == "redis GET")
    });
    let lost_before = d.metric("tracer_kernel_events_total{counter=\"ringbuf_full\"}");

    {
        let _paused = Paused::new(&d);
        for _ in 0..150 {
            redis_call(&mut conn, &["GET", "big"], Some(3000));
        }
    }
    // The daemon reads what the ring holds (this test's own scrapes add a few events).
    wait_for(TIMEOUT, "the daemon to drain the ring", || {
        let m = d.metrics();
        let sum = |prefix: &str| -> f64 {
            m.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
        };
        (sum("tracer_events_total{") + 8.0 >= sum("tracer_kernel_events_total{counter=\"events\"}")).then_some(())
    });
    // A string key: LPOP fails with WRONGTYPE, a reply no GET gets. Large replies did not fit
    // the ring while small requests did: GETs whose replies were lost wait before it.
    let reply = redis_call(&mut conn, &["LPOP", "big"], None);
    assert!(reply.starts_with(b"-WRONGTYPE"), "{}", String::from_utf8_lossy(&reply));
    redis_call(&mut conn, &["GET", "big"], Some(3000));

    let lpop = wait_for(TIMEOUT, "the LPOP span", || {
        spans(&d).into_iter().find(|s| on_conn(s) && s["operation"] == "redis LPOP")
    });
    assert!(d.metric("tracer_kernel_events_total{counter=\"ringbuf_full\"}") > lost_before, "events were lost");
    assert_eq!(lpop["tags"]["error"], true, "LPOP gets its own reply: {lpop:#}");
    assert!(lpop["tags"]["error.message"].as_str().unwrap_or("").starts_with("WRONGTYPE"), "{lpop:#}");
    assert_eq!(lpop["tags"]["tracer.data_lost"], true, "{lpop:#}");
    let gets: Vec<Value> = spans(&d).into_iter().filter(|s| on_conn(s) && s["operation"] == "redis GET").collect();
    assert!(gets.iter().all(|g| g["tags"]["error"] != true), "no GET took LPOP's error: {gets:#?}");
    // The server's side of the connection says so too.
    let server_lpop = wait_for(TIMEOUT, "the server's LPOP span", || {
        spans(&d)
            .into_iter()
            .find(|s| s["kind"] == "server" && s["operation"] == "redis LPOP" && s["tags"]["net.peer.port"] == local)
    });
    assert_eq!(server_lpop["tags"]["error"], true, "{server_lpop:#}");
    assert_eq!(server_lpop["tags"]["tracer.data_lost"], true, "{server_lpop:#}");
}

/// Stops the daemon (SIGSTOP) until dropped (SIGCONT).
struct Paused(u32);

impl Paused {
    fn new(d: &Daemon) -> Paused {
        // SAFETY: a signal to the daemon this test started; `drop` continues it.
        assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGSTOP) }, 0);
        Paused(d.pid())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: a signal to the daemon this test started.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

#[test]
fn a_half_full_ring_cuts_captures_short_instead_of_losing_calls() {
    // With the daemon stopped, five GETs' 3 KB replies fill half of a 64 KiB ring; the calls
    // after that are captured with their first 1024 bytes, which is enough to pair every GET,
    // and none is lost (the ring would hold 16 such GETs).
    let SmallRing { d, redis: _redis, mut conn, local } = small_ring();
    let gets = || -> Vec<Value> {
        spans(&d)
            .into_iter()
            .filter(|s| s["kind"] == "client" && s["tags"]["net.host.port"] == local && s["operation"] == "redis GET")
            .collect()
    };
    wait_for(TIMEOUT, "the span of the first GET", || (!gets().is_empty()).then_some(()));
    let metric = |c: &str| d.metric(&format!("tracer_kernel_events_total{{counter=\"{c}\"}}"));
    let (lost, degraded) = (metric("ringbuf_full"), metric("degraded"));
    {
        let _paused = Paused::new(&d);
        for _ in 0..12 {
            redis_call(&mut conn, &["GET", "big"], Some(3000));
        }
    }
    let all = wait_for(TIMEOUT, "the span of every GET", || {
        let g = gets();
        (g.len() >= 13).then_some(g)
    });
    assert_eq!(all.len(), 13, "one span per GET: {all:#?}");
    assert!(metric("degraded") > degraded, "captures were cut short");
    assert_eq!(metric("ringbuf_full"), lost, "nothing was lost");
    assert!(all.iter().any(|s| s["tags"]["tracer.capture_degraded"] == true), "{all:#?}");
    for s in &all {
        assert_eq!(s["tags"]["db.statement"], "GET big", "{s:#}");
        assert_ne!(s["tags"]["error"], true, "{s:#}");
        assert_ne!(s["tags"]["tracer.data_lost"], true, "{s:#}");
    }
}
