//! The agent process of the export tests: the `agent` example of tracer-daemon (export
//! pipeline, agent listeners and /metrics), started per test and stopped by pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracer_daemon::jaeger::Protocol;
use tracer_daemon::jaeger::encode::{BatchMeta, encode_emit_batch};
use tracer_daemon::model::{JaegerSpan as Span, Process, Tag, TagValue};
use tracer_tests::{stop_child, wait_for};

/// How long any one wait of these tests may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The daemon binary built by `cargo xtask build`.
pub fn agent_bin() -> PathBuf {
    tracer_tests::daemon::daemon_bin()
}

pub struct Agent {
    pub child: Child,
    /// Lines the agent printed on stdout (console and JSON output).
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub compact: SocketAddr,
    pub sampling: Option<SocketAddr>,
    pub metrics: SocketAddr,
}

pub fn collect_lines(r: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Agent {
    pub fn start(args: &[&str]) -> Agent {
        let mut child = Command::new(agent_bin())
            .args(["--agent-compact-addr", "127.0.0.1:0", "--agent-binary-addr", "127.0.0.1:0"])
            .args(["--sampling-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the agent");
        let (stdout, stderr) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        collect_lines(child.stdout.take().unwrap(), stdout.clone());
        collect_lines(child.stderr.take().unwrap(), stderr.clone());
        let ready: Value = wait_for(PATIENCE, "the agent's ready line", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("agent exited with {status}: {:?}", stderr.lock().unwrap());
            }
            stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("ready").is_some()))
        });
        let addr = |k: &str| ready["ready"][k].as_str().map(|s| s.parse::<SocketAddr>().unwrap());
        Agent {
            child,
            stdout,
            compact: addr("compact").unwrap(),
            sampling: addr("sampling"),
            metrics: addr("metrics").unwrap(),
        }
    }

    pub fn get(addr: SocketAddr, target: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    }

    pub fn metrics(&self) -> String {
        Agent::get(self.metrics, "/metrics")
    }

    /// A sample's value in /metrics (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).map(|v| v.parse().unwrap()))
            .unwrap_or(0.0)
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap()
    }

    /// Sends `spans` of `process` as one compact `emitBatch` packet, like a Jaeger client.
    pub fn send(&self, process: &Process, spans: &[Span]) {
        let mut pkt = Vec::new();
        encode_emit_batch(Protocol::Compact, 0, process, spans, &BatchMeta::default(), &mut pkt).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&pkt, self.compact).unwrap();
    }

    /// SIGTERM, then wait for the exit; the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        stop_child(&mut self.child);
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn app(name: &str) -> Arc<Process> {
    Arc::new(Process { service_name: name.into(), tags: vec![Tag::str("client-uuid", "abc")] })
}

pub fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a TagValue> {
    tags.iter().find(|t| t.key == key).map(|t| &t.value)
}
