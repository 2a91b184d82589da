//! A small Prometheus registry: counters, gauges and histograms as shared atomics, values
//! computed at scrape time through collectors, and the text exposition format 0.0.4.
//!
//! ```
//! use tracer_daemon::metrics::Registry;
//! let reg = Registry::new();
//! let sent = reg.counter("tracer_spans_sent_total", "Spans delivered.", &[("transport", "http")]);
//! sent.inc();
//! assert!(reg.render().contains("tracer_spans_sent_total{transport=\"http\"} 1"));
//! ```
//!
//! Names follow `tracer_<what>_total`; drops are `tracer_<what>_dropped_total{reason="..."}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The structures whose estimated heap bytes `tracer_memory_bytes{structure}` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Structure {
    /// The connection table with each connection's protocol session and open requests.
    ConnectionTable,
    /// Listening ports by network namespace.
    ListenTable,
    /// The stitcher's join and link tables and held spans.
    Stitcher,
    /// The trace store behind the query API.
    Store,
    /// Events queued between the ring-buffer reader and span assembly.
    EventQueue,
    /// The dependency graph.
    Graph,
    /// Uprobe discovery's files and remembered negative results.
    UprobeCache,
}

impl Structure {
    pub const ALL: [Structure; 7] = [
        Structure::ConnectionTable,
        Structure::ListenTable,
        Structure::Stitcher,
        Structure::Store,
        Structure::EventQueue,
        Structure::Graph,
        Structure::UprobeCache,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Structure::ConnectionTable => "connection_table",
            Structure::ListenTable => "listen_table",
            Structure::Stitcher => "stitcher",
            Structure::Store => "store",
            Structure::EventQueue => "event_queue",
            Structure::Graph => "graph",
            Structure::UprobeCache => "uprobe_cache",
        }
    }

    pub const METRIC: &'static str = "tracer_memory_bytes";
    pub const HELP: &'static str = "Estimated heap bytes of the daemon's main structures (capacities times element sizes, plus owned buffers), by structure";

    /// The gauge of this structure in `reg`.
    pub fn gauge(self, reg: &Registry) -> Gauge {
        reg.gauge(Self::METRIC, Self::HELP, &[("structure", self.as_str())])
    }
}

/// What a metric family is, as printed on its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One value produced by a collector at scrape time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub help: String,
    /// `Kind::Counter` or `Kind::Gauge`; a histogram sample is rendered as a gauge.
    pub kind: Kind,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], value: f64) -> Self {
        Sample { name: name.to_owned(), help: help.to_owned(), kind, labels: own_labels(labels), value }
    }
}

/// A monotonically increasing count. Clones share the value.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter that belongs to no registry (for tests and defaults).
    pub fn detached() -> Self {
        Counter::default()
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down. Clones share the value.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// A gauge that belongs to no registry (for tests and defaults).
    pub fn detached() -> Self {
        Gauge::default()
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct HistogramInner {
    /// Upper bounds, sorted ascending, without `+Inf`.
    bounds: Vec<f64>,
    /// Non-cumulative count per bound, plus one for `+Inf`.
    counts: Vec<AtomicU64>,
    /// Sum of observations as `f64` bits.
    sum: AtomicU64,
    count: AtomicU64,
}

/// A distribution over fixed buckets. Clones share the value.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramInner>);

impl Histogram {
    /// A histogram that belongs to no registry.
    pub fn detached(buckets: &[f64]) -> Self {
        let mut bounds: Vec<f64> = buckets.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramInner {
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, v: f64) {
        let h = &self.0;
        let idx = h.bounds.iter().position(|b| v <= *b).unwrap_or(h.bounds.len());
        h.counts[idx].fetch_add(1, Ordering::Relaxed);
        h.count.fetch_add(1, Ordering::Relaxed);
        let mut cur = h.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match h.sum.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Debug)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// A label set: (name, value) pairs.
type Labels = Vec<(String, String)>;

struct Family {
    help: String,
    kind: Kind,
    /// Keyed by the label set sorted by name; the value keeps the order given at registration.
    series: BTreeMap<Labels, (Labels, Series)>,
}

type CollectorFn = Box<dyn Fn(&mut Vec<Sample>) + Send + Sync + 'static>;

/// The set of metrics one daemon exposes on `/metrics`. Shared as `Arc<Registry>`.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
    collectors: Mutex<Vec<CollectorFn>>,
}

fn own_labels(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// The counter `name{labels}`; the same name and labels give the same counter.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        match self.series(name, help, Kind::Counter, labels, || Series::Counter(Counter::default())) {
            Some(Series::Counter(c)) => c,
            _ => Counter::detached(),
        }
    }

    /// The gauge `name{labels}`; the same name and labels give the same gauge.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.series(name, help, Kind::Gauge, labels, || Series::Gauge(Gauge::default())) {
            Some(Series::Gauge(g)) => g,
            _ => Gauge::detached(),
        }
    }

    /// The histogram `name{labels}` with the given upper bounds (`+Inf` is implied). The buckets
    /// of the first registration win.
    pub fn histogram(&self, name: &str, help: &str, labels: &[(&str, &str)], buckets: &[f64]) -> Histogram {
        let make = || Series::Histogram(Histogram::detached(buckets));
        match self.series(name, help, Kind::Histogram, labels, make) {
            Some(Series::Histogram(h)) => h,
            _ => Histogram::detached(buckets),
        }
    }

    /// Adds a function called on every scrape to append samples computed then (kernel
    /// counters, queue lengths held elsewhere).
    pub fn add_collector(&self, f: impl Fn(&mut Vec<Sample>) + Send + Sync + 'static) {
        lock(&self.collectors).push(Box::new(f));
    }

    fn series(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Series,
    ) -> Option<Series> {
        let mut families = lock(&self.families);
        let family = families.entry(name.to_owned()).or_insert_with(|| Family {
            help: help.to_owned(),
            kind,
            series: BTreeMap::new(),
        });
        if family.kind != kind {
            tracing::warn!(
                metric = name,
                registered = family.kind.as_str(),
                requested = kind.as_str(),
                "metric registered with two kinds; the second is not exported"
            );
            return None;
        }
        let given = own_labels(labels);
        let mut key = given.clone();
        key.sort();
        let (_, series) = family.series.entry(key).or_insert_with(|| (given, make()));
        Some(series.clone())
    }

    /// Every metric in the Prometheus text format 0.0.4: one `# HELP` and `# TYPE` per family,
    /// families sorted by name.
    pub fn render(&self) -> String {
        let mut samples = Vec::new();
        for c in lock(&self.collectors).iter() {
            c(&mut samples);
        }
        // name -> (help, kind, lines)
        let mut out: BTreeMap<String, (String, Kind, String)> = BTreeMap::new();
        {
            let families = lock(&self.families);
            for (name, fam) in families.iter() {
                let mut body = String::new();
                for (labels, series) in fam.series.values() {
                    render_series(&mut body, name, labels, series);
                }
                out.insert(name.clone(), (fam.help.clone(), fam.kind, body));
            }
        }
        for s in samples {
            let kind = if s.kind == Kind::Histogram { Kind::Gauge } else { s.kind };
            let entry = out.entry(s.name.clone()).or_insert_with(|| (s.help.clone(), kind, String::new()));
            line(&mut entry.2, &s.name, &s.labels, None, &fmt_f64(s.value));
        }
        let mut text = String::new();
        for (name, (help, kind, body)) in out {
            let _ = writeln!(text, "# HELP {name} {}", escape_help(&help));
            let _ = writeln!(text, "# TYPE {name} {}", kind.as_str());
            text.push_str(&body);
        }
        text
    }
}

fn render_series(out: &mut String, name: &str, labels: &[(String, String)], series: &Series) {
    match series {
        Series::Counter(c) => line(out, name, labels, None, &c.get().to_string()),
        Series::Gauge(g) => line(out, name, labels, None, &g.get().to_string()),
        Series::Histogram(h) => {
            let inner = &h.0;
            let bucket = format!("{name}_bucket");
            let mut cumulative = 0u64;
            for (i, bound) in inner.bounds.iter().enumerate() {
                cumulative += inner.counts[i].load(Ordering::Relaxed);
                let le = fmt_f64(*bound);
                line(out, &bucket, labels, Some(&le), &cumulative.to_string());
            }
            cumulative += inner.counts[inner.bounds.len()].load(Ordering::Relaxed);
            line(out, &bucket, labels, Some("+Inf"), &cumulative.to_string());
            line(out, &format!("{name}_sum"), labels, None, &fmt_f64(h.sum()));
            line(out, &format!("{name}_count"), labels, None, &h.count().to_string());
        }
    }
}

fn line(out: &mut String, name: &str, labels: &[(String, String)], le: Option<&str>, value: &str) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let le_pair = le.map(|v| ("le".to_owned(), v.to_owned()));
        for (k, v) in labels.iter().chain(le_pair.iter()) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_and_labels_share_a_counter() {
        let reg = Registry::new();
        let a = reg.counter("tracer_x_total", "X.", &[("a", "1"), ("b", "2")]);
        let b = reg.counter("tracer_x_total", "X.", &[("b", "2"), ("a", "1")]);
        a.inc();
        b.add(2);
        assert_eq!(a.get(), 3);
        let other = reg.counter("tracer_x_total", "X.", &[("a", "2")]);
        assert_eq!(other.get(), 0);
    }

    #[test]
    fn renders_families_sorted_with_help_and_type_once() {
        let reg = Registry::new();
        reg.gauge("tracer_queue_depth", "Queue depth.", &[]).set(-3);
        let d = reg.counter("tracer_spans_dropped_total", "Dropped.", &[("reason", "queue_full")]);
        d.add(5);
        reg.counter("tracer_spans_dropped_total", "Dropped.", &[("reason", "too_large")]).inc();
        reg.add_collector(|out| {
            out.push(Sample::new("tracer_kernel_events_total", "Kernel.", Kind::Counter, &[("cpu", "0")], 7.0));
        });
        let text = reg.render();
        let expected = "\
# HELP tracer_kernel_events_total Kernel.
# TYPE tracer_kernel_events_total counter
tracer_kernel_events_total{cpu=\"0\"} 7
# HELP tracer_queue_depth Queue depth.
# TYPE tracer_queue_depth gauge
tracer_queue_depth -3
# HELP tracer_spans_dropped_total Dropped.
# TYPE tracer_spans_dropped_total counter
tracer_spans_dropped_total{reason=\"queue_full\"} 5
tracer_spans_dropped_total{reason=\"too_large\"} 1
";
        assert_eq!(text, expected);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let reg = Registry::new();
        let h = reg.histogram("tracer_send_seconds", "Send time.", &[("t", "http")], &[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let text = reg.render();
        assert!(text.contains("tracer_send_seconds_bucket{t=\"http\",le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("tracer_send_seconds_bucket{t=\"http\",le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("tracer_send_seconds_bucket{t=\"http\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("tracer_send_seconds_sum{t=\"http\"} 5.55\n"), "{text}");
        assert!(text.contains("tracer_send_seconds_count{t=\"http\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE tracer_send_seconds histogram\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let reg = Registry::new();
        reg.counter("c_total", "line\nbreak", &[("v", "a\"b\\c\n")]).inc();
        let text = reg.render();
        assert!(text.contains("# HELP c_total line\\nbreak\n"));
        assert!(text.contains("c_total{v=\"a\\\"b\\\\c\\n\"} 1\n"));
    }

    #[test]
    fn kind_conflict_does_not_panic() {
        let reg = Registry::new();
        reg.counter("m", "m", &[]).inc();
        let g = reg.gauge("m", "m", &[]);
        g.set(9);
        assert!(reg.render().contains("m 1\n"));
    }
}
