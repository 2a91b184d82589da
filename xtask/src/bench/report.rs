//! The benchmark report: per workload and arm, the median of the per-round ratios to the
//! untraced arm (rounds pair the arms run back to back), its spread, latency, and the daemon's
//! cost and losses; written as Markdown, JSON and an SVG chart.

use std::time::Duration;

use anyhow::Result;

use super::{FLOOR_MINIMAL, FLOOR_NULL, ProgramCost, WorkloadResult, chart, is_floor};

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One arm of one workload, summarised.
pub struct Row {
    pub workload: String,
    pub arm: String,
    pub ops: f64,
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p99_ratio: f64,
    pub cpu_per_kreq: f64,
    pub cpu_us_per_span: f64,
    pub spans_per_sec: f64,
    pub rss_mib: f64,
    pub lost_events: f64,
    pub dropped_spans: f64,
    /// Median kernel cost of each of the daemon's programs, most expensive first.
    pub kernel: Vec<ProgramCost>,
    /// Highest spans/s of a window of this arm without a lost event or dropped span, and the
    /// lowest spans/s of a window with one.
    pub max_clean_spans_per_sec: f64,
    pub min_lossy_spans_per_sec: f64,
    /// Load generator CPU µs per operation (0 when it does not report it).
    pub client_cpu_us: f64,
    /// Its median per-round ratio to the untraced arm.
    pub client_cpu_ratio: f64,
}

impl Row {
    pub fn kernel_us_per_req(&self) -> f64 {
        // `+ 0.0` turns the empty sum's -0.0 into 0.0.
        self.kernel.iter().map(|c| c.us_per_req).sum::<f64>() + 0.0
    }
}

pub fn summarise(r: &WorkloadResult) -> Vec<Row> {
    let of = |arm: usize| r.windows.iter().filter(move |w| w.arm == arm);
    let base: Vec<_> = of(0).collect();
    r.arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let wins: Vec<_> = of(i).collect();
            let ratios: Vec<f64> = wins
                .iter()
                .filter_map(|w| {
                    base.iter().find(|b| b.round == w.round).map(|b| w.sample.ops_per_sec / b.sample.ops_per_sec)
                })
                .collect();
            let p99_ratios: Vec<f64> = wins
                .iter()
                .filter_map(|w| base.iter().find(|b| b.round == w.round).map(|b| w.sample.p99_ms / b.sample.p99_ms))
                .collect();
            let cpu_ratios: Vec<f64> = wins
                .iter()
                .filter_map(|w| {
                    base.iter()
                        .find(|b| b.round == w.round)
                        .map(|b| w.sample.client_cpu_us_per_op / b.sample.client_cpu_us_per_op)
                })
                .collect();
            let (lo, hi) = ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), r| (l.min(*r), h.max(*r)));
            Row {
                workload: r.name.clone(),
                arm: arm.name.into(),
                ops: median(wins.iter().map(|w| w.sample.ops_per_sec).collect()),
                ratio: median(ratios),
                ratio_min: lo,
                ratio_max: hi,
                p50_ms: median(wins.iter().map(|w| w.sample.p50_ms).collect()),
                p99_ms: median(wins.iter().map(|w| w.sample.p99_ms).collect()),
                p99_ratio: median(p99_ratios),
                cpu_per_kreq: median(wins.iter().map(|w| w.cpu_per_kreq).collect()),
                cpu_us_per_span: median(wins.iter().map(|w| w.cpu_per_span * 1e6).collect()),
                spans_per_sec: median(wins.iter().map(|w| w.spans_per_sec).collect()),
                rss_mib: wins.iter().map(|w| w.rss_mib).fold(0.0, f64::max),
                lost_events: wins.iter().map(|w| w.lost_events).sum(),
                dropped_spans: wins.iter().map(|w| w.dropped_spans).sum(),
                kernel: {
                    // From the diagnostic pass (`--bpf-stats`), not from the ratio windows.
                    let wins: Vec<_> = r.diagnostics.iter().filter(|w| w.arm == i).collect();
                    let mut names: Vec<&str> =
                        wins.iter().flat_map(|w| w.kernel.iter().map(|c| c.name.as_str())).collect();
                    names.sort();
                    names.dedup();
                    let mut v: Vec<ProgramCost> = names
                        .into_iter()
                        .map(|n| {
                            let of = |f: fn(&ProgramCost) -> f64| {
                                median(
                                    wins.iter().flat_map(|w| w.kernel.iter()).filter(|c| c.name == n).map(f).collect(),
                                )
                            };
                            ProgramCost {
                                name: n.to_owned(),
                                us_per_req: of(|c| c.us_per_req),
                                ns_per_run: of(|c| c.ns_per_run),
                            }
                        })
                        .collect();
                    v.sort_by(|a, b| b.us_per_req.total_cmp(&a.us_per_req));
                    v
                },
                max_clean_spans_per_sec: wins
                    .iter()
                    .filter(|w| w.lost_events == 0.0 && w.dropped_spans == 0.0)
                    .map(|w| w.spans_per_sec)
                    .fold(0.0, f64::max),
                min_lossy_spans_per_sec: wins
                    .iter()
                    .filter(|w| w.lost_events > 0.0 || w.dropped_spans > 0.0)
                    .map(|w| w.spans_per_sec)
                    .fold(f64::INFINITY, f64::min),
                client_cpu_us: median(wins.iter().map(|w| w.sample.client_cpu_us_per_op).collect()),
                client_cpu_ratio: median(cpu_ratios),
            }
        })
        .collect()
}

fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { "null".into() }
}

pub fn write(
    results: &[WorkloadResult],
    path: Option<&super::SpanPath>,
    rounds: usize,
    window: Duration,
) -> Result<()> {
    let mut md = format!(
        "# tracer benchmarks\n\n{rounds} rounds of {:?} windows per arm, arms interleaved within each round after a warm-up. \
         Ratios are traced / untraced throughput, the median of the per-round ratios (min–max in brackets); p99 ratio likewise. \
         Servers are pinned to CPU 0; the load generator and the daemon share CPU 1. The daemon exports every span \
         (Thrift compact over UDP to a local sink). Two floors run interleaved with the other arms: **F1**, programs \
         that do nothing on the hooks the tracer uses, and **F2**, the least any socket tracer records (one ring record \
         per data call on a TCP socket with its times and first bytes, read and discarded by the daemon). \
         The ratio windows run without `--bpf-stats`; kernel time per program comes from one more window per arm \
         that has it on.\n\n",
        window
    );
    let mut json = Vec::new();
    let mut all_rows = Vec::new();
    for r in results {
        md += &format!("## {}\n\n{}\n\n", r.name, r.description);
        md += "| arm | ops/s | ratio | p50 ms | p99 ms | p99 ratio | daemon CPU s / 1000 req | daemon CPU µs / span | kernel µs / req | spans/s | daemon RSS MiB | lost events | dropped spans |\n";
        md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        let rows = summarise(r);
        let mut cpu_md = String::new();
        if rows.iter().any(|r| r.client_cpu_us > 0.0) {
            cpu_md += "\nLoad generator CPU (user + system, where the probes run) per operation; ratio to untraced, median of the rounds:\n\n| arm | client CPU µs / op | ratio |\n|---|---|---|\n";
            for row in &rows {
                cpu_md += &format!("| {} | {:.2} | {:.3} |\n", row.arm, row.client_cpu_us, row.client_cpu_ratio);
            }
        }
        for row in &rows {
            md += &format!(
                "| {} | {:.0} | {:.3} ({:.3}–{:.3}) | {:.3} | {:.3} | {:.2} | {:.4} | {:.1} | {:.2} | {:.0} | {:.1} | {} | {} |\n",
                row.arm,
                row.ops,
                row.ratio,
                row.ratio_min,
                row.ratio_max,
                row.p50_ms,
                row.p99_ms,
                row.p99_ratio,
                row.cpu_per_kreq,
                row.cpu_us_per_span,
                row.kernel_us_per_req(),
                row.spans_per_sec,
                row.rss_mib,
                row.lost_events,
                row.dropped_spans
            );
        }
        let floor = |name: &str| rows.iter().find(|r| r.arm == name).map(|r| r.ratio);
        if let (Some(f1), Some(f2)) = (floor(FLOOR_NULL), floor(FLOOR_MINIMAL)) {
            md += &format!(
                "\nFloors: F1 (null programs) {f1:.3}, F2 (minimal capture) {f2:.3}. What the tracer costs beyond what any \
                 tracer on these hooks pays is the distance from its ratio down from F2's.\n"
            );
        }
        md += "\nKernel time of each program, from a separate diagnostic window per arm with `--bpf-stats`: µs per \
               request, and ns per run. A hook runs for every process on the machine, so the per-request figure is an \
               upper bound on the traced process's share:\n\n";
        for row in rows.iter().filter(|r| !r.kernel.is_empty()) {
            let parts: Vec<String> = row
                .kernel
                .iter()
                .filter(|c| c.us_per_req > 0.0)
                .map(|c| format!("{} {:.2} µs ({:.0} ns/run)", c.name, c.us_per_req, c.ns_per_run))
                .collect();
            md += &format!("- {}: {}\n", row.arm, parts.join(", "));
        }
        for row in rows {
            json.push(format!(
                "{{\"workload\":\"{}\",\"arm\":\"{}\",\"ops_per_sec\":{},\"ratio\":{},\"ratio_min\":{},\"ratio_max\":{},\"p50_ms\":{},\"p99_ms\":{},\"p99_ratio\":{},\"daemon_cpu_s_per_kreq\":{},\"daemon_cpu_us_per_span\":{},\"spans_per_sec\":{},\"daemon_rss_mib\":{},\"lost_events\":{},\"dropped_spans\":{},\"kernel_us_per_req\":{},\"client_cpu_us_per_op\":{},\"client_cpu_ratio\":{}}}",
                row.workload, row.arm, json_num(row.ops), json_num(row.ratio), json_num(row.ratio_min), json_num(row.ratio_max),
                json_num(row.p50_ms), json_num(row.p99_ms), json_num(row.p99_ratio), json_num(row.cpu_per_kreq),
                json_num(row.cpu_us_per_span), json_num(row.spans_per_sec), json_num(row.rss_mib), row.lost_events, row.dropped_spans,
                json_num(row.kernel_us_per_req()),
                json_num(row.client_cpu_us), json_num(row.client_cpu_ratio)
            ));
            all_rows.push(row);
        }
        md += &cpu_md;
        md += "\n";
    }
    if let Some(p) = path {
        md += &format!(
            "## span path\n\nThe daemon alone (`tracer-daemon/benches/span_path.rs`): {} HTTP requests whose handler calls Redis \
             (two spans each), offered at {} spans/s as decoded events to the processing stage, the service graph, the \
             trace store and one Jaeger UDP destination. CPU of the whole process per span.\n\n```text\n{}\n```\n\n",
            p.requests, p.spans_per_sec_offered, p.line
        );
    }
    md += &targets(&all_rows);
    if let Some(p) = path {
        md = md.replacen(
            "\nFirst loss: ",
            &format!(
                "| daemon CPU ≤ {SPAN_PATH_TARGET_US} µs/span (span path) | span path | {:.2} µs | {} ({:.1}× the target) | – |\n\nFirst loss: ",
                p.cpu_us_per_span,
                verdict(p.cpu_us_per_span <= SPAN_PATH_TARGET_US),
                p.cpu_us_per_span / SPAN_PATH_TARGET_US
            ),
            1,
        );
    }
    let dir = crate::root().join("bench-results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ratios.svg"), chart::ratios(&all_rows))?;
    md += "![ratios](ratios.svg)\n";
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("report.json"), format!("[\n{}\n]\n", json.join(",\n")))?;
    println!("{md}");
    eprintln!("bench: report written to {}", dir.display());
    Ok(())
}

/// A throughput target: the arm of the workload whose names contain these, and the least ratio.
const RATIO_TARGETS: &[(&str, &str, f64)] = &[
    ("redis-benchmark-p1", "socket probes, all", 0.90),
    ("redis-benchmark-p1", "socket probes, server", 0.95),
    ("redis-benchmark-p16", "socket probes", 0.85),
    ("hiredis-loop", "uprobes", 0.85),
    ("sysbench-point-select", "socket probes", 0.95),
    ("wrk-nginx", "socket probes", 0.90),
    ("grpc-unary", "socket probes", 0.85),
];
/// p99 latency may be at most this much higher than untraced.
const P99_TARGET: f64 = 1.25;
/// Daemon CPU per span on the span path: 100 000 spans per second on one core.
const SPAN_PATH_TARGET_US: f64 = 1.0;
/// The syscall hooks' kernel time per request may be at most this multiple of F2's.
const KERNEL_TO_FLOOR_TARGET: f64 = 1.5;
/// Daemon CPU per span that allows 50 000 spans per second on one core.
const CPU_PER_SPAN_TARGET_US: f64 = 20.0;

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The targets, each with the measured value and by how much it is met or missed.
fn targets(rows: &[Row]) -> String {
    let mut md = String::from(
        "## Targets\n\nBeside each: the F2 floor's figure in the same workload, what any tracer on these hooks \
         allows.\n\n| target | arm | measured | verdict | F2 floor |\n|---|---|---|---|---|\n",
    );
    let f2 = |workload: &str| rows.iter().find(|r| r.workload == workload && r.arm == FLOOR_MINIMAL);
    let shown = |v: Option<f64>| v.filter(|v| v.is_finite()).map_or("–".into(), |v| format!("{v:.3}"));
    for (workload, arm, least) in RATIO_TARGETS {
        for row in rows.iter().filter(|r| r.workload == *workload && r.arm.contains(arm)) {
            md += &format!(
                "| {workload} throughput ratio ≥ {least} | {} | {:.3} | {} ({:+.1} points) | {} |\n",
                row.arm,
                row.ratio,
                verdict(row.ratio >= *least),
                (row.ratio - least) * 100.0,
                shown(f2(workload).map(|f| f.ratio))
            );
        }
    }
    for row in rows.iter().filter(|r| r.workload == "syscall-loop" && r.arm != "untraced" && !is_floor(&r.arm)) {
        let Some(floor) = f2(&row.workload) else { continue };
        let (ours, least) = (row.kernel_us_per_req(), floor.kernel_us_per_req());
        md += &format!(
            "| syscall-loop kernel cost ≤ {KERNEL_TO_FLOOR_TARGET} × F2's | {} | {ours:.2} µs/req ({:.2} × F2) | {} | {least:.2} µs/req |\n",
            row.arm,
            ours / least,
            verdict(ours <= least * KERNEL_TO_FLOOR_TARGET)
        );
    }
    for row in rows
        .iter()
        .filter(|r| r.arm != "untraced" && !is_floor(&r.arm) && r.p99_ratio.is_finite() && r.workload != "syscall-loop")
    {
        md += &format!(
            "| {} p99 ≤ +{:.0} % | {} | {:+.1} % | {} | {} |\n",
            row.workload,
            (P99_TARGET - 1.0) * 100.0,
            row.arm,
            (row.p99_ratio - 1.0) * 100.0,
            verdict(row.p99_ratio <= P99_TARGET),
            f2(&row.workload)
                .filter(|f| f.p99_ratio.is_finite())
                .map_or("–".into(), |f| format!("{:+.1} %", (f.p99_ratio - 1.0) * 100.0))
        );
    }
    for row in rows.iter().filter(|r| r.cpu_us_per_span > 0.0) {
        md += &format!(
            "| daemon CPU ≤ {CPU_PER_SPAN_TARGET_US} µs/span (50 000 spans/s on one core) | {} / {} | {:.1} µs ({:.0} spans/s per core) | {} | – |\n",
            row.workload,
            row.arm,
            row.cpu_us_per_span,
            1e6 / row.cpu_us_per_span,
            verdict(row.cpu_us_per_span <= CPU_PER_SPAN_TARGET_US)
        );
    }
    md += "\nFirst loss: ";
    let clean = rows.iter().map(|r| r.max_clean_spans_per_sec).fold(0.0, f64::max);
    let lossy = rows.iter().map(|r| r.min_lossy_spans_per_sec).fold(f64::INFINITY, f64::min);
    md += &format!("no event was lost or span dropped in any window up to {clean:.0} spans/s");
    if lossy.is_finite() {
        md += &format!("; the lowest rate of a window with a loss was {lossy:.0} spans/s");
    }
    md += ".\n\n";
    md
}
