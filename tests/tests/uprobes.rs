//! Client-library uprobes end to end: C programs built here against Debian's libhiredis and
//! libmariadb, and Python's mysqlclient, call a real redis-server and mariadb (plaintext and
//! TLS). Every library call must come out as exactly one client span carrying the library's
//! details and the connection tuple; over TLS the spans come from the library probes alone.
//! Each client starts after the daemon. Debian's hiredis 0.14 has no TLS support (and Debian
//! ships no libhiredis_ssl), so TLS is tested with libmariadb.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    daemon::Daemon,
    servers::{self, Server},
    stop_child, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(30);
/// JSON spans on stdout; the agent listeners are off (their fixed ports may be taken).
const DAEMON_ARGS: &[&str] =
    &["--output", "json", "--agent-compact-addr", "", "--agent-binary-addr", "", "--sampling-addr", ""];

/// Compiles `tests/c/<name>.c` with `cc` and the flags of `libs` (pkg-config names).
fn build_c(name: &str, libs: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c").join(format!("{name}.c"));
    let out = std::env::temp_dir().join(format!("tracer-e2e-{name}-{}", std::process::id()));
    let flags =
        Command::new("pkg-config").arg("--cflags").arg("--libs").args(libs).output().expect("running pkg-config");
    assert!(flags.status.success(), "pkg-config {libs:?}: {}", String::from_utf8_lossy(&flags.stderr));
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags.split_whitespace())
        .status()
        .expect("running cc (installed by `cargo xtask setup`)");
    assert!(status.success(), "compiling {}", src.display());
    out
}

/// A client process driven through stdin and reporting on stdout.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Client {
    fn start(cmd: &mut Command, service: &str) -> Client {
        let mut child = cmd
            .env("OTEL_SERVICE_NAME", service)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting a client");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut c = Client { child, stdin, lines };
        c.expect_line("ready");
        c
    }

    fn expect_line(&mut self, want: &str) {
        let got = self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("client did not print {want}"));
        assert_eq!(got, want);
    }

    /// Lets the client run its calls and waits until it has made them. It stays alive (the
    /// daemon reads its service name from its environment) until dropped.
    fn go(&mut self) {
        writeln!(self.stdin.as_mut().unwrap(), "go").unwrap();
        self.expect_line("done");
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "exit");
        }
        let exited = (0..500).any(|_| {
            let done = matches!(self.child.try_wait(), Ok(Some(_)));
            if !done {
                std::thread::sleep(Duration::from_millis(10));
            }
            done
        });
        if !exited {
            stop_child(&mut self.child);
        }
    }
}

/// Whether the daemon's log last said that a file whose path contains `name` is attached.
fn attached_now(d: &Daemon, name: &str) -> bool {
    d.stderr_text()
        .lines()
        .filter(|l| l.contains(name))
        .filter_map(|l| {
            if l.contains("client library probes attached") {
                Some(true)
            } else if l.contains("no longer mapped") {
                Some(false)
            } else {
                None
            }
        })
        .next_back()
        .unwrap_or(false)
}

/// Waits until a scan of `/proc` that started after this call has run and the file whose path
/// contains `name` is attached (a client that maps it is running: the rescan finds it).
fn wait_attached(d: &Daemon, name: &str) {
    let scans = d.metric("tracer_uprobe_scans_total");
    wait_for(Duration::from_secs(10), &format!("probes attached to {name}"), || {
        (d.metric("tracer_uprobe_scans_total") >= scans + 2.0 && attached_now(d, name)).then_some(())
    });
}

fn spans(d: &Daemon) -> Vec<Value> {
    d.json_lines().into_iter().filter(|v| v.get("spanId").is_some()).collect()
}

fn tag<'a>(s: &'a Value, key: &str) -> &'a Value {
    &s["tags"][key]
}

fn of_service(d: &Daemon, service: &str) -> Vec<Value> {
    spans(d).into_iter().filter(|s| s["service"] == service).collect()
}

/// Waits until the spans of `service` satisfy `done`, then a little longer (held spans leave
/// within the stitcher's hold), and returns them.
fn spans_of(d: &Daemon, service: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !done(&of_service(d, service)) {
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; spans of {service}: {:#?}", of_service(d, service));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything more (a duplicate) would leave within the hold time of the first ones.
    let n = of_service(d, service).len();
    let t0 = std::time::Instant::now();
    wait_for(TIMEOUT, "the daemon's hold time to pass", || (t0.elapsed() > Duration::from_millis(1200)).then_some(()));
    let all = of_service(d, service);
    assert!(all.len() >= n);
    all
}

fn ops(spans: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = spans.iter().map(|s| s["operation"].as_str().unwrap_or("").to_string()).collect();
    v.sort();
    v
}

fn find<'a>(spans: &'a [Value], op: &str, function: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["operation"] == op && tag(s, "code.function") == function)
        .unwrap_or_else(|| panic!("no span {op} from {function} in {spans:#?}"))
}

#[test]
fn hiredis_calls_are_one_span_each_with_library_details() {
    let bin = build_c("hiredis_client", &["hiredis"]);
    let d = Daemon::start(DAEMON_ARGS);
    let redis = servers::redis();
    let mut cmd = Command::new(&bin);
    cmd.args([&redis.port.to_string(), "script"]);
    // Started after the daemon: its libhiredis is found by the rescan.
    let mut client = Client::start(&mut cmd, "uprobe-hiredis");
    wait_attached(&d, "libhiredis.so");
    client.go();
    let spans = spans_of(&d, "uprobe-hiredis", "the hiredis client's spans", |s| s.len() >= 7);
    assert_eq!(
        ops(&spans),
        ["redis GET", "redis HSET", "redis INCR", "redis LLEN", "redis LPUSH", "redis LPUSH", "redis SET"],
        "one span per call, no duplicates: {spans:#?}"
    );
    for s in &spans {
        assert_eq!(s["kind"], "client");
        assert_eq!(tag(s, "net.peer.port"), redis.port as i64, "{s:#?}");
        assert_eq!(tag(s, "db.system"), "redis");
    }
    let set = find(&spans, "redis SET", "redisCommand");
    assert_eq!(tag(set, "tracer.source"), "uprobe");
    assert_eq!(tag(set, "db.redis.library"), "hiredis");
    assert_eq!(tag(set, "db.redis.reply_type"), "status");
    assert!(!set.to_string().contains("hunter2-secret"), "redacted: {set:#?}");
    assert_eq!(tag(find(&spans, "redis GET", "redisCommand"), "db.redis.reply_type"), "string");
    assert!(!find(&spans, "redis HSET", "redisCommandArgv").to_string().contains("alice@example.com"));
    let incr = find(&spans, "redis INCR", "redisCommand");
    assert_eq!(tag(incr, "error"), true);
    assert_eq!(tag(incr, "db.redis.reply_type"), "error");
    assert!(tag(incr, "error.message").as_str().unwrap_or("").contains("not an integer"), "{incr:#?}");
    // Pipelining: the first reply's call carries redisGetReply, each command one span.
    assert_eq!(spans.iter().filter(|s| tag(s, "code.function") == "redisGetReply").count(), 1, "{spans:#?}");
    // Parent links: redis-server's server span of each call is the client span's child.
    let all = spans_all_with_server(&d, &spans, redis.pid());
    for s in &spans {
        let child = all.iter().find(|p| p["parentSpanId"] == s["spanId"] && p["kind"] == "server");
        assert!(child.is_some(), "no server span under {}: {all:#?}", s["operation"]);
        assert_eq!(child.unwrap()["traceId"], s["traceId"]);
    }
    assert!(d.metric("tracer_library_calls_total{outcome=\"merged\"}") >= 5.0, "{}", d.metrics());
    assert!(d.metric("tracer_uprobes_attached") >= 2.0);
}

/// The server spans whose parent is one of `clients`, once each has one.
fn spans_all_with_server(d: &Daemon, clients: &[Value], _server_pid: u32) -> Vec<Value> {
    wait_for(TIMEOUT, "the server spans of the client calls", || {
        let all = spans(d);
        clients.iter().all(|c| all.iter().any(|p| p["parentSpanId"] == c["spanId"])).then_some(all)
    })
}

fn mariadb_client(d: &Daemon, server: &Server, mode: &str, service: &str) -> Vec<Value> {
    let bin = build_c("mariadb_client", &["libmariadb"]);
    let mut cmd = Command::new(&bin);
    match mode {
        "unix" => cmd.arg(server.mysql_socket().expect("the server's socket")).arg(mode),
        _ => cmd.args([&server.port.to_string(), mode]),
    };
    let mut client = Client::start(&mut cmd, service);
    wait_attached(d, "libmariadb.so");
    client.go();
    spans_of(d, service, "the mariadb client's spans", |s| {
        s.iter().any(|s| tag(s, "code.function") == "mysql_stmt_execute")
    })
}

/// What the plaintext, TLS and unix-socket runs must show; `port`: the server's TCP port (none
/// over a unix socket: the spans have no peer address).
fn check_mariadb_calls(spans: &[Value], port: Option<u16>) {
    let connect = find(spans, "mysql connect", "mysql_real_connect");
    assert_eq!(tag(connect, "db.user"), "root");
    assert_eq!(tag(connect, "db.name"), "shop");
    let q = find(spans, "mysql SELECT", "mysql_query");
    assert_eq!(tag(q, "db.statement"), "SELECT name FROM items WHERE id = ?");
    let ins = find(spans, "mysql INSERT", "mysql_real_query");
    assert!(!ins.to_string().contains("secret-lamp"), "redacted: {ins:#?}");
    assert_eq!(tag(ins, "db.mysql.library"), "libmariadb");
    let send = find(spans, "mysql SELECT", "mysql_send_query");
    assert!(tag(send, "error").is_null(), "{send:#?}");
    let failed: Vec<&Value> = spans.iter().filter(|s| tag(s, "error") == true).collect();
    assert_eq!(failed.len(), 1, "{spans:#?}");
    assert!(failed[0]["tags"].to_string().contains("no_such_table"), "{:#?}", failed[0]);
    assert_eq!(tag(failed[0], "db.mysql.error_code"), 1146);
    find(spans, "mysql PREPARE", "mysql_stmt_prepare");
    let exec = find(spans, "mysql UPDATE", "mysql_stmt_execute");
    assert_eq!(tag(exec, "db.statement"), "UPDATE items SET name = ? WHERE id = ?");
    // One span per call: no wire-level twin without the library's details.
    let statements: Vec<&str> =
        [("mysql SELECT", 3), ("mysql INSERT", 1), ("mysql UPDATE", 1), ("mysql PREPARE", 1), ("mysql connect", 1)]
            .iter()
            .map(|(op, n)| {
                assert_eq!(spans.iter().filter(|s| s["operation"] == *op).count(), *n, "{op}: {spans:#?}");
                *op
            })
            .collect();
    for s in spans.iter().filter(|s| statements.contains(&s["operation"].as_str().unwrap_or(""))) {
        assert_eq!(tag(s, "tracer.source"), "uprobe", "{s:#?}");
        match port {
            Some(port) => assert_eq!(tag(s, "net.peer.port"), port as i64, "tuple from the socket events: {s:#?}"),
            None => assert!(tag(s, "net.peer.port").is_null(), "no TCP peer: {s:#?}"),
        }
        assert_eq!(s["kind"], "client");
    }
}

#[test]
fn libmariadb_calls_in_plaintext_are_one_span_each() {
    let d = Daemon::start(DAEMON_ARGS);
    let server = servers::mariadb();
    let calls = mariadb_client(&d, &server, "plain", "uprobe-mariadb");
    check_mariadb_calls(&calls, Some(server.port));
    // The server side of the query is the client span's child (same-host tuple join).
    let q = find(&calls, "mysql SELECT", "mysql_query");
    wait_for(TIMEOUT, "the server span of the query", || {
        spans(&d).iter().any(|p| p["parentSpanId"] == q["spanId"] && p["kind"] == "server").then_some(())
    });
}

#[test]
fn libmariadb_calls_over_tls_come_from_the_library_probes() {
    let d = Daemon::start(DAEMON_ARGS);
    let server = servers::mariadb_tls();
    let spans = mariadb_client(&d, &server, "tls", "uprobe-mariadb-tls");
    check_mariadb_calls(&spans, Some(server.port));
    // Encrypted bytes: only the library spans, nothing from the wire.
    assert!(spans.iter().all(|s| tag(s, "tracer.source") == "uprobe"), "{spans:#?}");
}

#[test]
fn python_mysqlclient_is_traced_plain_and_tls() {
    let d = Daemon::start(DAEMON_ARGS);
    let server = servers::mariadb_tls();
    let script = servers::python_dir().join("mysqlclient_client.py");
    for mode in ["plain", "tls"] {
        let service = format!("uprobe-mysqlclient-{mode}");
        let mut cmd = Command::new("python3");
        cmd.arg(&script).args([&server.port.to_string(), mode]);
        let mut client = Client::start(&mut cmd, &service);
        wait_attached(&d, "libmariadb.so");
        client.go();
        let spans = spans_of(&d, &service, "the Python client's spans", |s| s.iter().any(|s| tag(s, "error") == true));
        let selects: Vec<&Value> = spans.iter().filter(|s| s["operation"] == "mysql SELECT").collect();
        assert_eq!(selects.len(), 2, "{mode}: {spans:#?}");
        for s in &selects {
            assert_eq!(tag(s, "tracer.source"), "uprobe", "{mode}: {s:#?}");
            assert_eq!(tag(s, "net.peer.port"), server.port as i64);
        }
        let ok = selects.iter().find(|s| tag(s, "error").is_null()).expect("a successful SELECT");
        assert_eq!(tag(ok, "db.statement"), "SELECT name FROM items WHERE id = ?");
        let bad = selects.iter().find(|s| tag(s, "error") == true).expect("a failed SELECT");
        assert_eq!(tag(bad, "db.mysql.error_code"), 1146, "{mode}: {bad:#?}");
        find(&spans, "mysql connect", "mysql_real_connect");
    }
}

#[test]
fn redis_benchmark_carries_hiredis_statically_and_is_found() {
    let d = Daemon::start(DAEMON_ARGS);
    let redis = servers::redis();
    // A private copy (its own inode): no other process on the host maps it, so its detachment
    // is observable.
    let copy = std::env::temp_dir().join(format!("tracer-e2e-{}-redis-benchmark", std::process::id()));
    std::fs::copy("/usr/bin/redis-benchmark", &copy).expect("copying redis-benchmark (redis-tools)");
    let mut bench = Command::new(&copy)
        .args(["-p", &redis.port.to_string(), "-t", "get", "-n", "2000000", "-c", "1", "-q"])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-benchmark");
    // The executable itself (not a libhiredis.so) gets the probes.
    wait_attached(&d, copy.to_str().unwrap());
    stop_child(&mut bench);
    assert!(d.metric("tracer_uprobe_files_attached") >= 1.0);
    // Detached once no process maps it any more.
    wait_for(Duration::from_secs(10), "redis-benchmark's probes to be detached", || {
        d.stderr_text()
            .lines()
            .any(|l| l.contains("no longer mapped") && l.contains(copy.to_str().unwrap()))
            .then_some(())
    });
    let _ = std::fs::remove_file(&copy);
}

/// A client in a mount namespace of its own (as in a container) whose libhiredis exists only
/// there: the daemon reaches the file through `/proc/PID/root`.
#[test]
fn a_library_only_visible_in_another_mount_namespace_is_traced() {
    let bin = build_c("hiredis_client", &["hiredis"]);
    let d = Daemon::start(DAEMON_ARGS);
    let redis = servers::redis();
    let dir = std::env::temp_dir().join(format!("tracer-e2e-mntns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib =
        std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libhiredis.so.0.14").expect("libhiredis (libhiredis-dev)");
    let script = format!(
        "mount -t tmpfs tmpfs {d} && cp {lib} {d}/ && LD_LIBRARY_PATH={d} exec {bin} {port} script",
        d = dir.display(),
        lib = lib.display(),
        bin = bin.display(),
        port = redis.port
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let mut client = Client::start(&mut cmd, "uprobe-mntns");
    // The host sees an empty directory: the library is only in the client's namespace.
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    wait_attached(&d, &format!("{}/libhiredis.so", dir.display()));
    client.go();
    let spans = spans_of(&d, "uprobe-mntns", "the namespaced client's spans", |s| s.len() >= 7);
    let set = find(&spans, "redis SET", "redisCommand");
    assert_eq!(tag(set, "tracer.source"), "uprobe");
    assert_eq!(spans.len(), 7, "{spans:#?}");
    drop(client);
    let _ = std::fs::remove_dir(&dir);
}

/// The async API queues commands that its event loop writes later: each wire span takes the
/// details of the queued command it carries, one span per command.
#[test]
fn hiredis_async_commands_are_one_span_each() {
    let bin = build_c("hiredis_async_client", &["hiredis"]);
    let d = Daemon::start(DAEMON_ARGS);
    let redis = servers::redis();
    let mut cmd = Command::new(&bin);
    cmd.arg(redis.port.to_string());
    let mut client = Client::start(&mut cmd, "uprobe-hiredis-async");
    wait_attached(&d, "libhiredis.so");
    client.go();
    let spans = spans_of(&d, "uprobe-hiredis-async", "the async client's spans", |s| s.len() >= 3);
    assert_eq!(ops(&spans), ["redis GET", "redis INCR", "redis SET"], "{spans:#?}");
    for s in &spans {
        assert_eq!(tag(s, "code.function"), "redisAsyncCommand", "{s:#?}");
        assert_eq!(tag(s, "net.peer.port"), redis.port as i64);
    }
    let set = find(&spans, "redis SET", "redisAsyncCommand");
    assert!(!set.to_string().contains("async-secret"), "redacted: {set:#?}");
    assert_eq!(tag(find(&spans, "redis INCR", "redisAsyncCommand"), "error"), true);
}

/// MySQL's default for `localhost` is its unix socket, and Redis can listen on one: the socket
/// probes capture TCP only, so these calls come from the library probes alone, one span each.
/// (Pipelined hiredis replies, `redisGetReply` after `redisAppendCommand`, are not: without the
/// socket activity nothing tells which call read from the server.)
#[test]
fn library_calls_over_unix_sockets_are_one_span_each() {
    let d = Daemon::start(DAEMON_ARGS);
    let server = servers::mariadb();
    let spans = mariadb_client(&d, &server, "unix", "uprobe-mariadb-unix");
    check_mariadb_calls(&spans, None);
    assert!(spans.iter().all(|s| tag(s, "tracer.source") == "uprobe"), "{spans:#?}");
    let bin = build_c("hiredis_client", &["hiredis"]);
    let (sock, _redis) = servers::redis_unix();
    let mut cmd = Command::new(&bin);
    cmd.arg(&sock).arg("script");
    let mut client = Client::start(&mut cmd, "uprobe-hiredis-unix");
    wait_attached(&d, "libhiredis.so");
    client.go();
    let spans = spans_of(&d, "uprobe-hiredis-unix", "the hiredis client's spans", |s| s.len() >= 4);
    let mut got = ops(&spans);
    got.retain(|op| !op.starts_with("redis LPUSH") && !op.starts_with("redis LLEN"));
    assert_eq!(got, ["redis GET", "redis HSET", "redis INCR", "redis SET"], "one span per call: {spans:#?}");
    let incr = find(&spans, "redis INCR", "redisCommand");
    assert_eq!(tag(incr, "error"), true);
    assert!(tag(find(&spans, "redis SET", "redisCommand"), "net.peer.port").is_null());
}
