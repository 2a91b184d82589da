//! `cargo xtask bench`: each workload runs under several arms (no daemon, daemon with one probe
//! set or another) in interleaved windows (A B C A B C …, after a warm-up), and the report gives
//! the median of per-round ratios against the untraced arm, with its spread. Reports go to
//! `bench-results/` as Markdown and JSON.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Fewer and shorter windows (finishes in a few minutes).
    #[arg(long)]
    quick: bool,
}

/// One way of running the workload.
struct Arm {
    name: &'static str,
    /// Daemon arguments; `None` runs without the daemon.
    daemon_args: Option<Vec<&'static str>>,
}

struct Window {
    arm: usize,
    ops_per_sec: f64,
}

pub fn run(daemon: &Path, args: BenchArgs) -> Result<()> {
    if !crate::is_root() {
        bail!("benchmarks load kernel programs and must run as root");
    }
    let (rounds, window) = if args.quick { (4, Duration::from_secs(2)) } else { (8, Duration::from_secs(4)) };
    let arms = [
        Arm { name: "untraced", daemon_args: None },
        Arm { name: "raw tracepoints", daemon_args: Some(vec!["--syscall-hook", "raw"]) },
        Arm { name: "classic tracepoints", daemon_args: Some(vec!["--syscall-hook", "tracepoint"]) },
    ];
    eprintln!("bench: syscall loop, {rounds} rounds of {window:?} per arm, interleaved");
    let mut windows = Vec::new();
    warm_up(window)?;
    for round in 0..rounds {
        for (i, arm) in arms.iter().enumerate() {
            let daemon = match &arm.daemon_args {
                Some(a) => Some(Daemon::start(daemon, a)?),
                None => None,
            };
            let ops = syscall_loop(window)?;
            drop(daemon);
            eprintln!("bench: round {round} {:<20} {:>12.0} round trips/s", arm.name, ops);
            windows.push(Window { arm: i, ops_per_sec: ops });
        }
    }
    report(&arms, &windows, rounds)
}

fn warm_up(window: Duration) -> Result<()> {
    syscall_loop(window / 2).map(|_| ())
}

/// A tight loop of 16-byte write + read round trips over a loopback TCP connection, on one
/// thread with an echo thread on the other end: four traced data syscalls per round trip.
fn syscall_loop(window: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 16];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let msg = [7u8; 16];
    let mut buf = [0u8; 16];
    let start = Instant::now();
    let mut n: u64 = 0;
    // Bounded by time and by count.
    while start.elapsed() < window && n < 50_000_000 {
        for _ in 0..100 {
            c.write_all(&msg)?;
            c.read_exact(&mut buf)?;
        }
        n += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(c);
    let _ = echo.join();
    Ok(n as f64 / secs)
}

/// The daemon, started for one window and stopped by pid.
struct Daemon(Child);

impl Daemon {
    fn start(bin: &Path, args: &[&str]) -> Result<Daemon> {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--metrics-addr", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tracer-daemon")?;
        let stderr = child.stderr.take().context("daemon stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("{\"ready\"") => break,
                Some(Ok(_)) if Instant::now() < deadline => continue,
                _ => {
                    let _ = child.kill();
                    bail!("tracer-daemon did not become ready");
                }
            }
        }
        // Keep draining stderr so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Daemon(child))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn report(arms: &[Arm], windows: &[Window], rounds: usize) -> Result<()> {
    let base: Vec<f64> = windows.iter().filter(|w| w.arm == 0).map(|w| w.ops_per_sec).collect();
    let mut md = String::from("# tracer benchmarks\n\nSyscall loop: 16-byte write+read round trips on loopback TCP (4 traced data syscalls per round trip).\n\n| arm | median round trips/s | ratio to untraced (median of paired rounds) | spread (min–max) | added ns per syscall |\n|---|---|---|---|---|\n");
    let mut json = Vec::new();
    let base_median = median(&mut base.clone());
    for (i, arm) in arms.iter().enumerate() {
        let ops: Vec<f64> = windows.iter().filter(|w| w.arm == i).map(|w| w.ops_per_sec).collect();
        let mut ratios: Vec<f64> = ops.iter().zip(&base).map(|(o, b)| o / b).collect();
        let (lo, hi) = ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        let r = median(&mut ratios);
        let m = median(&mut ops.clone());
        let added_ns = (1e9 / m - 1e9 / base_median) / 4.0;
        md += &format!("| {} | {:.0} | {:.3} | {:.3}–{:.3} | {:.0} |\n", arm.name, m, r, lo, hi, added_ns);
        json.push(format!(
            "{{\"workload\":\"syscall_loop\",\"arm\":\"{}\",\"median_ops_per_sec\":{m:.1},\"ratio\":{r:.4},\"ratio_min\":{lo:.4},\"ratio_max\":{hi:.4},\"added_ns_per_syscall\":{added_ns:.1},\"rounds\":{rounds}}}",
            arm.name
        ));
    }
    let dir = crate::root().join("bench-results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("report.json"), format!("[{}]\n", json.join(",\n")))?;
    println!("{md}");
    eprintln!("bench: report written to {}", dir.display());
    Ok(())
}
