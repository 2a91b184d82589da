//! The benchmark report: per workload and arm, the median of the per-round ratios to the
//! untraced arm (rounds pair the arms run back to back), its spread, latency, and the daemon's
//! cost and losses; written as Markdown, JSON and an SVG chart.

use std::time::Duration;

use anyhow::Result;

use super::{WorkloadResult, chart};

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
    /// Load generator CPU µs per operation (0 when it does not report it).
    pub client_cpu_us: f64,
    /// Its median per-round ratio to the untraced arm.
    pub client_cpu_ratio: f64,
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
                .filter_map(|w| base.iter().find(|b| b.round == w.round).map(|b| w.sample.ops_per_sec / b.sample.ops_per_sec))
                .collect();
            let p99_ratios: Vec<f64> = wins
                .iter()
                .filter_map(|w| base.iter().find(|b| b.round == w.round).map(|b| w.sample.p99_ms / b.sample.p99_ms))
                .collect();
            let cpu_ratios: Vec<f64> = wins
                .iter()
                .filter_map(|w| {
                    base.iter().find(|b| b.round == w.round).map(|b| w.sample.client_cpu_us_per_op / b.sample.client_cpu_us_per_op)
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
                client_cpu_us: median(wins.iter().map(|w| w.sample.client_cpu_us_per_op).collect()),
                client_cpu_ratio: median(cpu_ratios),
            }
        })
        .collect()
}

fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { "null".into() }
}

pub fn write(results: &[WorkloadResult], rounds: usize, window: Duration) -> Result<()> {
    let mut md = format!(
        "# tracer benchmarks\n\n{rounds} rounds of {:?} windows per arm, arms interleaved within each round after a warm-up. \
         Ratios are traced / untraced throughput, the median of the per-round ratios (min–max in brackets); p99 ratio likewise. \
         Servers are pinned to CPU 0; the load generator and the daemon share CPU 1. The daemon exports every span \
         (Thrift compact over UDP to a local sink).\n\n",
        window
    );
    let mut json = Vec::new();
    let mut all_rows = Vec::new();
    for r in results {
        md += &format!("## {}\n\n{}\n\n", r.name, r.description);
        md += "| arm | ops/s | ratio | p50 ms | p99 ms | p99 ratio | daemon CPU s / 1000 req | daemon CPU µs / span | spans/s | daemon RSS MiB | lost events | dropped spans |\n";
        md += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        let rows = summarise(r);
        let mut cpu_md = String::new();
        if rows.iter().any(|r| r.client_cpu_us > 0.0) {
            cpu_md += "\nLoad generator CPU (user + system, where the probes run) per operation; ratio to untraced, median of the rounds:\n\n| arm | client CPU µs / op | ratio |\n|---|---|---|\n";
            for row in &rows {
                cpu_md += &format!("| {} | {:.2} | {:.3} |\n", row.arm, row.client_cpu_us, row.client_cpu_ratio);
            }
        }
        for row in rows {
            md += &format!(
                "| {} | {:.0} | {:.3} ({:.3}–{:.3}) | {:.3} | {:.3} | {:.2} | {:.4} | {:.1} | {:.0} | {:.1} | {} | {} |\n",
                row.arm, row.ops, row.ratio, row.ratio_min, row.ratio_max, row.p50_ms, row.p99_ms, row.p99_ratio,
                row.cpu_per_kreq, row.cpu_us_per_span, row.spans_per_sec, row.rss_mib, row.lost_events, row.dropped_spans
            );
            json.push(format!(
                "{{\"workload\":\"{}\",\"arm\":\"{}\",\"ops_per_sec\":{},\"ratio\":{},\"ratio_min\":{},\"ratio_max\":{},\"p50_ms\":{},\"p99_ms\":{},\"p99_ratio\":{},\"daemon_cpu_s_per_kreq\":{},\"daemon_cpu_us_per_span\":{},\"spans_per_sec\":{},\"daemon_rss_mib\":{},\"lost_events\":{},\"dropped_spans\":{},\"client_cpu_us_per_op\":{},\"client_cpu_ratio\":{}}}",
                row.workload, row.arm, json_num(row.ops), json_num(row.ratio), json_num(row.ratio_min), json_num(row.ratio_max),
                json_num(row.p50_ms), json_num(row.p99_ms), json_num(row.p99_ratio), json_num(row.cpu_per_kreq),
                json_num(row.cpu_us_per_span), json_num(row.spans_per_sec), json_num(row.rss_mib), row.lost_events, row.dropped_spans,
                json_num(row.client_cpu_us), json_num(row.client_cpu_ratio)
            ));
            all_rows.push(row);
        }
        md += &cpu_md;
        md += "\n";
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
