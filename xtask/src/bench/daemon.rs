//! The daemon under benchmark: started for one window on CPU 1, exporting over UDP to a sink
//! that discards, its CPU time, RSS and loss counters read from `/proc` and `/metrics`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream, UdpSocket},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

pub struct Daemon {
    child: Child,
    metrics: String,
    _sink: UdpSocket,
}

/// Cumulative figures at one instant.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Kernel time in each of the daemon's programs (seconds) and its runs, by program name.
    pub programs: Vec<(String, f64, f64)>,
    pub cpu_secs: f64,
    pub rss_mib: f64,
    pub spans: f64,
    pub lost_events: f64,
    pub dropped_spans: f64,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Daemon {
    /// Starts the daemon with `args`; `bpf_stats` has the kernel account its programs' run time
    /// (which adds two clock reads to every run).
    pub fn start(bin: &Path, args: &[&str], bpf_stats: bool) -> Result<Daemon> {
        // Spans leave through the real encoder to a UDP socket nobody reads (the kernel drops
        // what overflows its buffer).
        let sink = UdpSocket::bind("127.0.0.1:0")?;
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let mut child = Command::new("taskset")
            .args(["-c", "1"])
            .arg(bin)
            .args(args)
            .args(bpf_stats.then_some("--bpf-stats"))
            .args(["--metrics-addr", &metrics, "--agent-udp", &sink.local_addr()?.to_string()])
            .args(["--agent-compact-addr", "", "--agent-binary-addr", "", "--sampling-addr", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tracer-daemon")?;
        let stderr = child.stderr.take().context("daemon stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("{\"ready\"") => break,
                Some(Ok(_)) if Instant::now() < deadline => continue,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("tracer-daemon did not become ready");
                }
            }
        }
        // Keep draining stderr so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Daemon { child, metrics, _sink: sink })
    }

    fn scrape(&self) -> Result<String> {
        let mut s = TcpStream::connect(&self.metrics)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    pub fn figures(&self) -> Result<Figures> {
        let text = self.scrape()?;
        let sum = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let per_program = |metric: &str| -> Vec<(String, f64)> {
            text.lines()
                .filter_map(|l| l.strip_prefix(metric)?.strip_prefix("{program=\""))
                .filter_map(|l| {
                    let (name, rest) = l.split_once('"')?;
                    Some((name.to_owned(), rest.rsplit(' ').next()?.parse::<f64>().ok()?))
                })
                .collect()
        };
        let runs = per_program("tracer_bpf_program_runs_total");
        let programs = per_program("tracer_bpf_program_run_seconds_total")
            .into_iter()
            .map(|(name, secs)| {
                let n = runs.iter().find(|(m, _)| *m == name).map_or(0.0, |(_, n)| *n);
                (name, secs, n)
            })
            .collect();
        Ok(Figures {
            programs,
            // USER_HZ is 100 on Linux.
            cpu_secs: ticks / 100.0,
            rss_mib: rss_kib / 1024.0,
            spans: sum("tracer_spans_assembled_total"),
            lost_events: sum("tracer_kernel_events_total{counter=\"ringbuf_full\"}")
                + sum("tracer_events_dropped_total"),
            dropped_spans: sum("tracer_export_spans_dropped_total"),
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}
