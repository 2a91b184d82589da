//! The daemon under test: a real `tracer-daemon` process whose stdout lines are collected.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use crate::{require_root, stop_child, wait_for};

pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub metrics_addr: String,
}

/// The daemon binary built by `cargo xtask build`.
pub fn daemon_bin() -> PathBuf {
    match std::env::var_os("TRACER_DAEMON_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!("TRACER_DAEMON_BIN is not set: run the end-to-end tests through `cargo xtask test`"),
    }
}

/// A free loopback TCP port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Daemon {
    /// Starts the daemon with `args` (plus a private admin port) and waits until it is ready.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_in(None, args)
    }

    /// Starts the daemon, optionally inside network namespace `netns` (`ip netns exec`).
    pub fn start_in(netns: Option<&str>, args: &[&str]) -> Daemon {
        match netns {
            Some(ns) => Self::start_wrapped(&["ip", "netns", "exec", ns], args),
            None => Self::start_wrapped(&[], args),
        }
    }

    /// Starts the daemon as the last argument of `wrapper` (e.g. `setpriv … --`), or directly
    /// when `wrapper` is empty.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Daemon {
        require_root();
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(daemon_bin());
                c
            }
            None => Command::new(daemon_bin()),
        };
        cmd.args(args).args(["--metrics-addr", &metrics_addr]);
        // Several daemons run at once in some tests: each gets its own OTLP and Zipkin ports
        // unless the test names them.
        for flag in ["--otlp-grpc-addr", "--otlp-http-addr", "--zipkin-addr"] {
            if !args.contains(&flag) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        let mut child = cmd
            .env("TRACER_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tracer-daemon");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), lines.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut d = Daemon { child, lines, stderr, metrics_addr };
        wait_for(Duration::from_secs(60), "the daemon to report ready", || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("tracer-daemon exited with {status} before ready:\n{}", d.stderr_text());
            }
            d.stderr.lock().unwrap().iter().any(|l| l.starts_with("{\"ready\"")).then_some(())
        });
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed on stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Stdout lines that parse as JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.lines().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Fetches the Prometheus text from the admin endpoint.
    pub fn metrics(&self) -> String {
        http_get(&self.metrics_addr, "/metrics")
    }

    /// The value of one sample line (`name{labels}`) in the metrics text, 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Stops with SIGTERM and waits; returns the exit status success.
    pub fn stop(&mut self) -> bool {
        stop_child(&mut self.child);
        self.child.try_wait().ok().flatten().is_some_and(|s| s.success())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => into.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
}

/// A minimal HTTP/1.0 GET against a loopback address; returns the body.
pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connecting to the admin endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}
