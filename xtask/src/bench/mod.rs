//! `cargo xtask bench`: real servers under real load generators, each workload run under
//! several arms (no daemon; the daemon with one probe set or another) in interleaved windows
//! (warm-up, then A B C, A B C, …). The report gives, per workload and arm, the median of the
//! per-round ratios against the untraced arm with its spread, latency percentiles, daemon CPU
//! seconds per thousand requests, daemon RSS, and lost events / dropped spans. Servers run on
//! CPU 0; the load generator and the daemon on CPU 1. Reports go to `bench-results/` as
//! Markdown, JSON and an SVG chart of the ratios.

mod chart;
mod daemon;
mod report;
mod workloads;

use std::{path::Path, time::Duration};

use anyhow::{Result, bail};

use daemon::Daemon;
use workloads::Workload;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Fewer and shorter windows (the whole run stays under five minutes).
    #[arg(long)]
    quick: bool,
    /// Only workloads whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Another `tracer-daemon` binary (an earlier build) to compare with: each workload's
    /// first tracing arm (every process traced) runs with it too, as an arm of its own in the
    /// same interleaved windows. Only arguments that binary knows are passed.
    #[arg(long, value_name = "PATH")]
    baseline: Option<std::path::PathBuf>,
}

/// One way of running a workload.
#[derive(Clone, Debug)]
pub struct Arm {
    pub name: &'static str,
    /// Daemon arguments; `None` runs without the daemon.
    pub daemon_args: Option<Vec<&'static str>>,
    /// Run with the `--baseline` binary instead of this tree's daemon.
    pub baseline: bool,
}

impl Arm {
    pub fn new(name: &'static str, daemon_args: Option<Vec<&'static str>>) -> Arm {
        Arm { name, daemon_args, baseline: false }
    }
}

/// The baseline's copy of a workload's first tracing arm (not a floor), named after it.
fn baseline_arm(arms: &[Arm]) -> Option<Arm> {
    let first = arms.iter().find(|a| a.daemon_args.is_some() && !is_floor(a.name))?;
    let name: &'static str = Box::leak(format!("{}, baseline", first.name).into_boxed_str());
    Some(Arm { name, daemon_args: first.daemon_args.clone(), baseline: true })
}

/// What one window measured.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests completed in the window.
    pub requests: f64,
    /// How long the load ran (seconds).
    pub secs: f64,
    /// CPU time (user + system) of the load generator per operation, in µs, when it reports it
    /// (0 otherwise): probes run in the traced process's context, so this shows their cost even
    /// on a busy machine where throughput is noisy.
    pub client_cpu_us_per_op: f64,
}

/// A window's measurement with the daemon's figures.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub round: usize,
    pub arm: usize,
    pub sample: Sample,
    /// Daemon CPU seconds per thousand requests (0 without the daemon).
    pub cpu_per_kreq: f64,
    pub rss_mib: f64,
    pub spans_per_sec: f64,
    /// Daemon CPU seconds per span (0 when no span was made).
    pub cpu_per_span: f64,
    pub lost_events: f64,
    pub dropped_spans: f64,
    /// Kernel time of each of the daemon's programs in the window.
    pub kernel: Vec<ProgramCost>,
}

/// One kernel program's cost in a window (from `--bpf-stats`). Its runs include every process
/// on the machine the hook fires for, so per-request figures are an upper bound.
#[derive(Clone, Debug, Default)]
pub struct ProgramCost {
    pub name: String,
    pub us_per_req: f64,
    pub ns_per_run: f64,
}

/// The floors' arm names. F1: programs that do nothing, on the hooks the tracer uses. F2: the
/// least any socket tracer records (one ring record per data call, with its first bytes).
pub const FLOOR_NULL: &str = "F1 floor: null programs";
pub const FLOOR_MINIMAL: &str = "F2 floor: minimal capture";

/// Whether an arm is one of the floors.
pub fn is_floor(arm: &str) -> bool {
    arm == FLOOR_NULL || arm == FLOOR_MINIMAL
}

/// The two floors (`tracer-daemon --probe-floor`), with the same process filter as `filter`.
pub fn arms_floor(filter: &[&'static str]) -> Vec<Arm> {
    let with = |floor: &'static str| {
        let mut args = vec!["--no-uprobes", "--probe-floor", floor];
        args.extend_from_slice(filter);
        Some(args)
    };
    vec![Arm::new(FLOOR_NULL, with("null")), Arm::new(FLOOR_MINIMAL, with("minimal"))]
}

/// No daemon; the floors; the daemon's socket probes (client-library uprobes off) tracing every
/// process (the load generator's client spans too); the same tracing only the server under test
/// (`--include-comm`), which is what a user who traces a service pays.
pub fn arms_socket(server_comm: &'static str) -> Vec<Arm> {
    let mut arms = vec![Arm::new("untraced", None)];
    arms.extend(arms_floor(&[]));
    arms.push(Arm::new("socket probes, all", Some(vec!["--no-uprobes"])));
    arms.push(Arm::new("socket probes, server", Some(vec!["--no-uprobes", "--include-comm", server_comm])));
    arms
}

/// The daemon with its client-library uprobes too (the default), tracing every process.
pub fn arm_uprobes() -> Arm {
    Arm::new("socket + uprobes", Some(vec![]))
}

/// Untraced, the floors, socket probes only, and socket probes with the uprobes: every process
/// traced.
pub fn arms_uprobes() -> Vec<Arm> {
    let mut arms = vec![Arm::new("untraced", None)];
    arms.extend(arms_floor(&[]));
    arms.push(Arm::new("socket probes", Some(vec!["--no-uprobes"])));
    arms.push(arm_uprobes());
    arms
}

pub fn run(daemon_bin: &Path, args: BenchArgs) -> Result<()> {
    if !crate::is_root() {
        bail!("benchmarks load kernel programs and must run as root");
    }
    let (rounds, window) = if args.quick { (3, Duration::from_secs(3)) } else { (6, Duration::from_secs(8)) };
    // The load generators and the daemon share CPU 1; the servers get CPU 0.
    workloads::pin_self(1)?;
    let mut results = Vec::new();
    for w in workloads::all() {
        if args.only.as_deref().is_some_and(|o| !w.name().contains(o)) {
            continue;
        }
        eprintln!("bench: {} — {rounds} rounds of {window:?} per arm, interleaved", w.name());
        results.push(run_workload(daemon_bin, args.baseline.as_deref(), w.as_ref(), rounds, window)?);
    }
    let path = if args.only.as_deref().is_none_or(|o| "span-path".contains(o)) {
        Some(span_path(if args.quick { 100_000 } else { 400_000 })?)
    } else {
        None
    };
    report::write(&results, path.as_ref(), rounds, window)
}

/// The daemon's own cost per span without the kernel (`tracer-daemon/benches/span_path.rs`).
pub struct SpanPath {
    pub requests: usize,
    pub spans_per_sec_offered: usize,
    /// What the bench printed.
    pub line: String,
    pub cpu_us_per_span: f64,
}

/// Spans offered per second to the span-path bench.
const SPAN_PATH_RATE: usize = 50_000;

fn span_path(requests: usize) -> Result<SpanPath> {
    eprintln!(
        "bench: span path — {requests} requests at {SPAN_PATH_RATE} spans/s through processing, store and export"
    );
    let out = std::process::Command::new("cargo")
        .current_dir(crate::root())
        .args(["bench", "-q", "-p", "tracer-daemon", "--bench", "span_path", "--"])
        .args([requests.to_string(), SPAN_PATH_RATE.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("span_path bench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    let line = text.lines().find(|l| l.starts_with("span_path:")).unwrap_or_default().to_owned();
    let cpu_us_per_span = line
        .split("; ")
        .find_map(|part| part.strip_suffix(" µs CPU per span"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(f64::NAN);
    eprintln!("bench:   {line}");
    Ok(SpanPath { requests, spans_per_sec_offered: SPAN_PATH_RATE, line: text.trim_end().to_owned(), cpu_us_per_span })
}

pub struct WorkloadResult {
    pub name: String,
    pub description: String,
    pub arms: Vec<Arm>,
    pub windows: Vec<Window>,
    /// One window per daemon arm, after the rounds, with `--bpf-stats`: the kernel's time in
    /// each program. Kept out of the ratios, which the accounting itself would lower.
    pub diagnostics: Vec<Window>,
}

fn run_workload(
    daemon_bin: &Path,
    baseline: Option<&Path>,
    w: &dyn Workload,
    rounds: usize,
    window: Duration,
) -> Result<WorkloadResult> {
    let mut running = w.start()?;
    running.window(window / 2)?; // warm-up
    let mut arms = w.arms();
    if baseline.is_some() {
        arms.extend(baseline_arm(&arms));
    }
    let mut windows = Vec::new();
    for round in 0..rounds {
        for (i, arm) in arms.iter().enumerate() {
            let bin = if arm.baseline { baseline.unwrap_or(daemon_bin) } else { daemon_bin };
            windows.push(measure(bin, running.as_mut(), arm, round, i, window, false)?);
        }
    }
    // The diagnostic pass: kernel time per program, which `--bpf-stats` costs to account.
    let mut diagnostics = Vec::new();
    for (i, arm) in arms.iter().enumerate().filter(|(_, a)| a.daemon_args.is_some()) {
        let bin = if arm.baseline { baseline.unwrap_or(daemon_bin) } else { daemon_bin };
        diagnostics.push(measure(bin, running.as_mut(), arm, rounds, i, window, true)?);
    }
    Ok(WorkloadResult { name: w.name().into(), description: w.description(), arms, windows, diagnostics })
}

/// One window of `arm`; with `bpf_stats`, the daemon accounts its programs' kernel time.
fn measure(
    daemon_bin: &Path,
    running: &mut dyn workloads::Running,
    arm: &Arm,
    round: usize,
    i: usize,
    window: Duration,
    bpf_stats: bool,
) -> Result<Window> {
    let daemon = match &arm.daemon_args {
        Some(a) => Some(Daemon::start(daemon_bin, a, bpf_stats)?),
        None => None,
    };
    let before = daemon.as_ref().map(|d| d.figures()).transpose()?;
    let sample = running.window(window)?;
    let after = daemon.as_ref().map(|d| d.figures()).transpose()?;
    let mut win = Window { round, arm: i, sample, ..Default::default() };
    if let (Some(b), Some(a)) = (&before, &after) {
        let reqs = win.sample.requests;
        let cpu = a.cpu_secs - b.cpu_secs;
        let spans = a.spans - b.spans;
        win.cpu_per_kreq = if reqs > 0.0 { cpu / (reqs / 1000.0) } else { 0.0 };
        win.rss_mib = a.rss_mib;
        win.spans_per_sec = if win.sample.secs > 0.0 { spans / win.sample.secs } else { 0.0 };
        win.cpu_per_span = if spans > 0.0 { cpu / spans } else { 0.0 };
        win.lost_events = a.lost_events - b.lost_events;
        win.dropped_spans = a.dropped_spans - b.dropped_spans;
        for (name, secs, runs) in &a.programs {
            let (secs0, runs0) = b.programs.iter().find(|(n, ..)| n == name).map_or((0.0, 0.0), |(_, s, r)| (*s, *r));
            let (secs, runs) = (secs - secs0, runs - runs0);
            if runs > 0.0 && reqs > 0.0 {
                win.kernel.push(ProgramCost {
                    name: name.clone(),
                    us_per_req: secs * 1e6 / reqs,
                    ns_per_run: secs * 1e9 / runs,
                });
            }
        }
    }
    drop(daemon);
    let round = if bpf_stats { "diag".to_owned() } else { round.to_string() };
    eprintln!(
        "bench:   round {round} {:<26} {:>12.0} ops/s  p50 {:.3} ms  p99 {:.3} ms  daemon {:.4} CPU s/kreq  kernel {:.2} µs/req  {:.0} spans/s  lost {}  dropped {}",
        arm.name,
        win.sample.ops_per_sec,
        win.sample.p50_ms,
        win.sample.p99_ms,
        win.cpu_per_kreq,
        win.kernel.iter().map(|c| c.us_per_req).sum::<f64>(),
        win.spans_per_sec,
        win.lost_events,
        win.dropped_spans
    );
    Ok(win)
}
