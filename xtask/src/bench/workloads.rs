//! The benchmark workloads: a syscall loop, a hiredis client loop (uprobe cost), redis-benchmark
//! (pipelining 1 and 16), sysbench point selects against mariadb, wrk against nginx, and unary
//! grpc-go calls. Servers are Debian's (or built here from `tests/`), started on loopback ports,
//! pinned to CPU 0, and stopped by pid.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Arm, Sample, arm_uprobes, arms_floor, arms_socket, arms_uprobes};

pub trait Workload {
    fn name(&self) -> &'static str;
    fn description(&self) -> String;
    fn arms(&self) -> Vec<Arm>;
    fn start(&self) -> Result<Box<dyn Running>>;
}

/// A started workload: its servers run until it is dropped.
pub trait Running {
    /// Runs the load for about `d` and measures it.
    fn window(&mut self, d: Duration) -> Result<Sample>;
}

pub fn all() -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(SyscallLoop),
        Box::new(HiredisLoop),
        Box::new(RedisBench { pipeline: 1 }),
        Box::new(RedisBench { pipeline: 16 }),
        Box::new(Sysbench),
        Box::new(WrkNginx),
        Box::new(GrpcUnary),
    ]
}

/// Pins this process (and the loads it starts) to one CPU.
pub fn pin_self(cpu: u32) -> Result<()> {
    crate::run_cmd(
        Command::new("taskset").args(["-pc", &cpu.to_string(), &std::process::id().to_string()]).stdout(Stdio::null()),
    )
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server process on CPU 0, stopped by pid when dropped.
struct Server {
    child: Child,
    dir: Option<PathBuf>,
}

impl Server {
    fn start(cmd: &mut Command, port: u16, dir: Option<PathBuf>) -> Result<Server> {
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().with_context(|| format!("starting {cmd:?}"))?;
        let mut s = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || s.child.try_wait()?.is_some() {
                bail!("{cmd:?} did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A sampling strategies file with `doc`, for the whole run (arms hold static strings).
fn strategies_file(doc: &str) -> &'static str {
    let path = std::env::temp_dir().join(format!("tracer-bench-strategies-{}.yaml", std::process::id()));
    if let Err(e) = std::fs::write(&path, doc) {
        eprintln!("bench: writing {}: {e}", path.display());
    }
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

fn on_cpu0(program: &str) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", "0", program]);
    c
}

fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tracer-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------------

/// 16-byte write + read round trips on one loopback connection: the cost per traced syscall.
struct SyscallLoop;

impl Workload for SyscallLoop {
    fn name(&self) -> &'static str {
        "syscall-loop"
    }
    fn description(&self) -> String {
        "16-byte write+read round trips over loopback TCP, echoed by a thread: 4 traced data syscalls per round trip (no protocol, no spans). Compares the syscall hooks, and shows what carrying the trace context costs.".into()
    }
    fn arms(&self) -> Vec<Arm> {
        // The loop runs in this process: trace it alone, so traffic of other programs on the
        // machine never adds to the measurement. (Leaked once: arms hold static strings.)
        let me: &'static str = Box::leak(std::process::id().to_string().into_boxed_str());
        let mut arms = vec![Arm::new("untraced", None)];
        arms.extend(arms_floor(&["--include-pid", me]));
        arms.extend([
            Arm::new("raw tracepoints", Some(vec!["--syscall-hook", "raw", "--include-pid", me])),
            Arm::new("classic tracepoints", Some(vec!["--syscall-hook", "tracepoint", "--include-pid", me])),
            // What carrying the trace context costs (sock_ops, ids chosen in the kernel).
            Arm::new(
                "raw tracepoints, no propagation",
                Some(vec!["--syscall-hook", "raw", "--no-propagate", "--include-pid", me]),
            ),
        ]);
        arms
    }
    fn start(&self) -> Result<Box<dyn Running>> {
        Ok(Box::new(SyscallLoopRun))
    }
}

struct SyscallLoopRun;

impl Running for SyscallLoopRun {
    fn window(&mut self, d: Duration) -> Result<Sample> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let echo = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            let mut buf = [0u8; 16];
            while s.read_exact(&mut buf).is_ok() {
                s.write_all(&buf)?;
            }
            Ok(())
        });
        let mut c = TcpStream::connect(addr)?;
        c.set_nodelay(true)?;
        let (msg, mut buf) = ([7u8; 16], [0u8; 16]);
        let start = Instant::now();
        let mut n: u64 = 0;
        while start.elapsed() < d && n < 100_000_000 {
            for _ in 0..100 {
                c.write_all(&msg)?;
                c.read_exact(&mut buf)?;
            }
            n += 100;
        }
        let secs = start.elapsed().as_secs_f64();
        drop(c);
        let _ = echo.join();
        let per_op_ms = secs * 1000.0 / n as f64;
        Ok(Sample {
            ops_per_sec: n as f64 / secs,
            p50_ms: per_op_ms,
            p99_ms: per_op_ms,
            requests: n as f64,
            secs,
            ..Sample::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// The uprobe cost: one hiredis client (tests/c/hiredis_client.c, built here against Debian's
/// libhiredis) calling `redisCommand(GET)` in a loop against redis-server.
struct HiredisLoop;

struct HiredisRun {
    bin: PathBuf,
    port: u16,
    _server: Server,
    /// An idle client that keeps libhiredis mapped for the whole run, so that every daemon arm
    /// attaches its probes in its first scan, before it reports ready.
    holder: Child,
    dir: PathBuf,
}

impl Drop for HiredisRun {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Workload for HiredisLoop {
    fn name(&self) -> &'static str {
        "hiredis-loop"
    }
    fn description(&self) -> String {
        "one hiredis client calling redisCommand(GET) in a loop against redis-server (Debian libhiredis 0.14): socket probes alone against socket probes plus the hiredis uprobes (redisCommand entry and return, nested redisvCommand / redisGetReply, __redisAppendCommand)".into()
    }
    fn arms(&self) -> Vec<Arm> {
        arms_uprobes()
    }
    fn start(&self) -> Result<Box<dyn Running>> {
        let dir = scratch("hiredis")?;
        let bin = dir.join("hiredis_client");
        let src = crate::root().join("tests/c/hiredis_client.c");
        crate::run_cmd(Command::new("cc").args(["-O2", "-o"]).arg(&bin).arg(&src).arg("-lhiredis"))
            .context("compiling the hiredis client (needs gcc and libhiredis-dev: `cargo xtask setup`)")?;
        let port = free_port()?;
        let server = Server::start(
            on_cpu0("redis-server").args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            port,
            None,
        )?;
        let holder = Command::new(&bin)
            .args([&port.to_string(), "script"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the idle hiredis client")?;
        Ok(Box::new(HiredisRun { bin, port, _server: server, holder, dir }))
    }
}

impl Running for HiredisRun {
    fn window(&mut self, d: Duration) -> Result<Sample> {
        let start = Instant::now();
        let out =
            output(Command::new(&self.bin).args([&self.port.to_string(), "loop", &format!("{}", d.as_secs_f64())]))?;
        let secs = start.elapsed().as_secs_f64();
        let ops: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("ops_per_sec "))
            .and_then(|v| v.trim().parse().ok())
            .context("the hiredis client printed no rate")?;
        let cpu: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("cpu_us_per_op "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        let per_op_ms = 1000.0 / ops;
        Ok(Sample {
            ops_per_sec: ops,
            p50_ms: per_op_ms,
            p99_ms: per_op_ms,
            requests: ops * d.as_secs_f64(),
            secs,
            client_cpu_us_per_op: cpu,
        })
    }
}

// ---------------------------------------------------------------------------------------------

struct RedisBench {
    pipeline: u32,
}

struct RedisRun {
    port: u16,
    pipeline: u32,
    _server: Server,
}

impl Workload for RedisBench {
    fn name(&self) -> &'static str {
        if self.pipeline == 1 { "redis-benchmark-p1" } else { "redis-benchmark-p16" }
    }
    fn arms(&self) -> Vec<Arm> {
        let mut arms = arms_socket("redis-server");
        if self.pipeline == 1 {
            // What the trace store costs: the same tracing without it.
            arms.push(Arm::new("socket probes, all, no store", Some(vec!["--no-uprobes", "--store-bytes", "0"])));
        } else {
            // What sampling the daemon's own spans saves: one trace in ten stored and exported,
            // every call still counted by the service graph.
            arms.push(Arm::new(
                "socket probes, all, 10 % of traces kept",
                Some(vec![
                    "--no-uprobes",
                    "--sample-own-spans",
                    "--sampling-strategies-file",
                    strategies_file("default_strategy: {type: probabilistic, param: 0.1}\n"),
                ]),
            ));
        }
        arms
    }
    fn description(&self) -> String {
        format!("redis-benchmark GET and SET, 50 clients, pipelining {}, against redis-server", self.pipeline)
    }
    fn start(&self) -> Result<Box<dyn Running>> {
        let port = free_port()?;
        let server = Server::start(
            on_cpu0("redis-server").args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            port,
            None,
        )?;
        Ok(Box::new(RedisRun { port, pipeline: self.pipeline, _server: server }))
    }
}

impl Running for RedisRun {
    fn window(&mut self, d: Duration) -> Result<Sample> {
        // Requests sized to last about `d` at the expected rate, split between GET and SET.
        let per_test = (if self.pipeline == 1 { 25_000.0 } else { 150_000.0 } * d.as_secs_f64()) as u64;
        let start = Instant::now();
        let csv = output(Command::new("redis-benchmark").args([
            "-p",
            &self.port.to_string(),
            "-t",
            "get,set",
            "-c",
            "50",
            "-P",
            &self.pipeline.to_string(),
            "-n",
            &per_test.to_string(),
            "--csv",
        ]))?;
        let secs = start.elapsed().as_secs_f64();
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        let rows: Vec<Vec<f64>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').skip(1).filter_map(|f| f.trim_matches('"').parse().ok()).collect())
            .filter(|r: &Vec<f64>| r.len() >= 6)
            .collect();
        if rows.is_empty() {
            bail!("redis-benchmark printed no results: {csv}");
        }
        let n = rows.len() as f64;
        Ok(Sample {
            ops_per_sec: rows.iter().map(|r| r[0]).sum::<f64>() / n,
            p50_ms: rows.iter().map(|r| r[3]).fold(0.0, f64::max),
            p99_ms: rows.iter().map(|r| r[5]).fold(0.0, f64::max),
            requests: per_test as f64 * n,
            secs,
            ..Sample::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------

struct Sysbench;

struct SysbenchRun {
    port: u16,
    _server: Server,
    _holder: LibHolder,
}

/// An idle process that keeps a shared library mapped for the whole run, so that a daemon arm
/// with uprobes attaches to it in its first scan, before it reports ready (the load generator
/// itself starts after the daemon, and would otherwise run unprobed until the next rescan).
struct LibHolder(Child);

impl LibHolder {
    fn start(soname: &str) -> Result<LibHolder> {
        let child = Command::new("python3")
            .args(["-c", &format!("import ctypes, sys; ctypes.CDLL('{soname}'); sys.stdin.read()")])
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting a process that maps {soname}"))?;
        Ok(LibHolder(child))
    }
}

impl Drop for LibHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Workload for Sysbench {
    fn name(&self) -> &'static str {
        "sysbench-point-select"
    }
    fn description(&self) -> String {
        "sysbench oltp_point_select, 4 threads, 1 table of 10 000 rows, against mariadbd (sysbench reports a mean, shown in the p50 column, and a p99); sysbench calls libmariadb, so the uprobes arm adds the library probes".into()
    }
    fn arms(&self) -> Vec<Arm> {
        let mut arms = arms_socket("mariadbd");
        arms.push(arm_uprobes());
        arms
    }
    fn start(&self) -> Result<Box<dyn Running>> {
        let dir = scratch("mariadb")?;
        let data = dir.join("data");
        output(
            Command::new("mariadb-install-db")
                .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"])
                .arg(format!("--datadir={}", data.display())),
        )?;
        let port = free_port()?;
        let server = Server::start(
            on_cpu0("mariadbd")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", dir.join("sock").display()))
                .arg(format!("--pid-file={}", dir.join("pid").display()))
                .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=64M"])
                .arg(format!("--port={port}")),
            port,
            Some(dir),
        )?;
        output(Command::new("mariadb").args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "root",
            "--skip-ssl",
            "-e",
            "CREATE DATABASE sbtest",
        ]))?;
        output(Command::new("sysbench").args(sysbench_args(port)).args([
            "--tables=1",
            "--table-size=10000",
            "prepare",
        ]))?;
        Ok(Box::new(SysbenchRun { port, _server: server, _holder: LibHolder::start("libmariadb.so.3")? }))
    }
}

fn sysbench_args(port: u16) -> Vec<String> {
    vec![
        "oltp_point_select".into(),
        "--db-driver=mysql".into(),
        "--mysql-host=127.0.0.1".into(),
        format!("--mysql-port={port}"),
        "--mysql-user=root".into(),
        "--mysql-db=sbtest".into(),
        "--mysql-ssl=off".into(),
    ]
}

impl Running for SysbenchRun {
    fn window(&mut self, d: Duration) -> Result<Sample> {
        let start = Instant::now();
        let out = output(
            Command::new("sysbench")
                .args(sysbench_args(self.port))
                .args(["--tables=1", "--table-size=10000", "--threads=4", "--percentile=99"])
                .arg(format!("--time={}", d.as_secs().max(1)))
                .arg("run"),
        )?;
        let field = |key: &str| -> Option<f64> {
            let line = out.lines().find(|l| l.trim_start().starts_with(key))?;
            line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
        };
        let per_sec = out
            .lines()
            .find(|l| l.trim_start().starts_with("queries:"))
            .and_then(|l| l.split('(').nth(1)?.split_whitespace().next()?.parse().ok())
            .context("sysbench printed no query rate")?;
        let secs = start.elapsed().as_secs_f64();
        Ok(Sample {
            ops_per_sec: per_sec,
            p50_ms: field("avg:").unwrap_or(0.0),
            p99_ms: field("99th percentile:").unwrap_or(0.0),
            requests: per_sec * d.as_secs() as f64,
            secs,
            ..Sample::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------

struct WrkNginx;

struct WrkRun {
    port: u16,
    _server: Server,
}

impl Workload for WrkNginx {
    fn name(&self) -> &'static str {
        "wrk-nginx"
    }
    fn arms(&self) -> Vec<Arm> {
        arms_socket("nginx")
    }
    fn description(&self) -> String {
        "wrk, 2 threads, 50 keep-alive connections, GET of a 612-byte page from nginx (1 worker)".into()
    }
    fn start(&self) -> Result<Box<dyn Running>> {
        let dir = scratch("nginx")?;
        let port = free_port()?;
        std::fs::write(dir.join("index.html"), "x".repeat(612))?;
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{port}; root {d}; }} }}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let server = Server::start(on_cpu0("nginx").arg("-c").arg(dir.join("nginx.conf")), port, Some(dir))?;
        Ok(Box::new(WrkRun { port, _server: server }))
    }
}

/// A wrk latency like `1.23ms`, `850.00us`, `1.02s`, in milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

impl Running for WrkRun {
    fn window(&mut self, d: Duration) -> Result<Sample> {
        let start = Instant::now();
        let out = output(Command::new("wrk").args([
            "-t2",
            "-c50",
            &format!("-d{}s", d.as_secs().max(1)),
            "--latency",
            &format!("http://127.0.0.1:{}/index.html", self.port),
        ]))?;
        let pct = |p: &str| out.lines().find_map(|l| l.trim().strip_prefix(p)).and_then(|v| wrk_ms(v.trim()));
        let rps = out
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .context("wrk printed no request rate")?;
        Ok(Sample {
            ops_per_sec: rps,
            p50_ms: pct("50%").unwrap_or(0.0),
            p99_ms: pct("99%").unwrap_or(0.0),
            requests: rps * d.as_secs() as f64,
            secs: start.elapsed().as_secs_f64(),
            ..Sample::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// Unary grpc-go calls: `tests/go/grpc_demo.go` built here with Debian's Go, its server on CPU 0
/// and its `load` client making calls from 16 goroutines on one connection.
struct GrpcUnary;

struct GrpcRun {
    bin: PathBuf,
    port: u16,
    _server: Server,
    dir: PathBuf,
}

impl Drop for GrpcRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Workload for GrpcUnary {
    fn name(&self) -> &'static str {
        "grpc-unary"
    }
    fn description(&self) -> String {
        "unary grpc-go calls (/demo.Greeter/SayHello) from 16 goroutines on one HTTP/2 connection, against a grpc-go server (Debian golang-google-grpc-dev); with uprobes, the grpc-go stream hand-off probes too".into()
    }
    fn arms(&self) -> Vec<Arm> {
        let mut arms = arms_socket("grpc_demo");
        arms.push(arm_uprobes());
        arms
    }
    fn start(&self) -> Result<Box<dyn Running>> {
        let dir = scratch("grpc")?;
        let bin = dir.join("grpc_demo");
        crate::run_cmd(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg(crate::root().join("tests/go/grpc_demo.go"))
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", dir.join("gocache")),
        )
        .context("building the gRPC workload (needs golang-go and golang-google-grpc-dev: `cargo xtask setup`)")?;
        let port = free_port()?;
        let server = Server::start(
            Command::new("taskset").args(["-c", "0"]).arg(&bin).args(["server", &format!("127.0.0.1:{port}")]),
            port,
            None,
        )?;
        Ok(Box::new(GrpcRun { bin, port, _server: server, dir }))
    }
}

impl Running for GrpcRun {
    fn window(&mut self, d: Duration) -> Result<Sample> {
        let start = Instant::now();
        let addr = format!("127.0.0.1:{}", self.port);
        let out = output(Command::new(&self.bin).args(["load", &addr, &format!("{}", d.as_secs_f64()), "16"]))?;
        let secs = start.elapsed().as_secs_f64();
        // "calls C secs S p50_ms X p99_ms Y"
        let fields: Vec<&str> = out.split_whitespace().collect();
        let field = |key: &str| -> Result<f64> {
            let i = fields.iter().position(|f| *f == key).with_context(|| format!("no {key} in {out:?}"))?;
            fields.get(i + 1).and_then(|v| v.parse().ok()).with_context(|| format!("bad {key} in {out:?}"))
        };
        let (calls, load_secs) = (field("calls")?, field("secs")?);
        Ok(Sample {
            ops_per_sec: calls / load_secs,
            p50_ms: field("p50_ms")?,
            p99_ms: field("p99_ms")?,
            requests: calls,
            secs,
            ..Sample::default()
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_latencies_convert_to_ms() {
        assert_eq!(super::wrk_ms("850.00us"), Some(0.85));
        assert_eq!(super::wrk_ms("1.50ms"), Some(1.5));
        assert_eq!(super::wrk_ms("2.00s"), Some(2000.0));
        assert_eq!(super::wrk_ms("x"), None);
    }
}
