//! `--output console`: spans grouped by trace id, each trace printed as an indented tree of
//! service, operation, duration and status once it has been quiet for a while, or at shutdown.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use super::{Batch, Delivered, ExportError, Exporter};
use crate::model::{JaegerSpan, RefKind, TagValue, TraceId};

/// Most traces held back at once; past it the oldest is printed early.
const MAX_TRACES: usize = 10_000;
/// Most spans held for one trace; past it the trace is printed as it is.
const MAX_SPANS_PER_TRACE: usize = 10_000;

struct Pending {
    spans: Vec<JaegerSpan>,
    first_seen: Instant,
    last_seen: Instant,
}

/// Prints finished traces as trees.
pub struct ConsoleExporter<W: Write + Send + 'static> {
    out: W,
    quiet: Duration,
    traces: HashMap<TraceId, Pending>,
}

impl ConsoleExporter<std::io::Stdout> {
    pub fn stdout(quiet: Duration) -> Self {
        ConsoleExporter::new(std::io::stdout(), quiet)
    }
}

impl<W: Write + Send + 'static> ConsoleExporter<W> {
    /// Prints a trace once no span of it arrived for `quiet`.
    pub fn new(out: W, quiet: Duration) -> Self {
        ConsoleExporter { out, quiet, traces: HashMap::new() }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Adds spans at `now`; traces over the bounds are printed at once.
    pub fn add(&mut self, spans: &[JaegerSpan], now: Instant) {
        for span in spans {
            let p = self.traces.entry(span.trace_id).or_insert_with(|| Pending {
                spans: Vec::new(),
                first_seen: now,
                last_seen: now,
            });
            p.spans.push(span.clone());
            p.last_seen = now;
            if p.spans.len() >= MAX_SPANS_PER_TRACE {
                self.print(&[span.trace_id]);
            }
        }
        if self.traces.len() > MAX_TRACES {
            let mut by_age: Vec<(Instant, TraceId)> = self.traces.iter().map(|(id, p)| (p.first_seen, *id)).collect();
            by_age.sort();
            let excess: Vec<TraceId> = by_age.iter().take(self.traces.len() - MAX_TRACES).map(|(_, id)| *id).collect();
            self.print(&excess);
        }
    }

    /// Prints the traces quiet since `now - quiet`, oldest first.
    pub fn flush_quiet(&mut self, now: Instant) {
        let mut due: Vec<(Instant, TraceId)> = self
            .traces
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) >= self.quiet)
            .map(|(id, p)| (p.first_seen, *id))
            .collect();
        due.sort();
        let ids: Vec<TraceId> = due.into_iter().map(|(_, id)| id).collect();
        self.print(&ids);
    }

    /// Prints every held trace.
    pub fn flush_all(&mut self) {
        let mut all: Vec<(Instant, TraceId)> = self.traces.iter().map(|(id, p)| (p.first_seen, *id)).collect();
        all.sort();
        let ids: Vec<TraceId> = all.into_iter().map(|(_, id)| id).collect();
        self.print(&ids);
    }

    fn print(&mut self, ids: &[TraceId]) {
        let mut text = String::new();
        for id in ids {
            if let Some(p) = self.traces.remove(id) {
                text.push_str(&render_trace(&p.spans));
            }
        }
        if !text.is_empty() {
            let _ = self.out.write_all(text.as_bytes());
            let _ = self.out.flush();
        }
    }
}

impl<W: Write + Send + 'static> Exporter for ConsoleExporter<W> {
    type Span = JaegerSpan;

    fn name(&self) -> &'static str {
        "console"
    }

    async fn export(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        self.add(&batch.spans, Instant::now());
        Ok(Delivered { spans: batch.spans.len(), requests: 0, bytes: 0 })
    }

    fn tick(&mut self, now: Instant) {
        self.flush_quiet(now);
    }

    fn finish(&mut self) {
        self.flush_all();
    }
}

/// A duration in microseconds, as a person reads it: `850µs`, `12.3ms`, `1.24s`.
pub fn fmt_duration(us: i64) -> String {
    let us = us.max(0);
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// `ok`, or `ERROR`, with the HTTP status code or DB error when the span has one.
pub fn status(span: &JaegerSpan) -> String {
    let mut error = false;
    let mut code: Option<String> = None;
    for t in &span.tags {
        match (&*t.key, &t.value) {
            ("error", TagValue::Bool(b)) => error |= *b,
            ("error", TagValue::Str(s)) => error |= s == "true",
            ("http.status_code", TagValue::Long(c)) => code = Some(c.to_string()),
            ("http.status_code", TagValue::Str(s)) => code = Some(s.clone()),
            _ => {}
        }
    }
    if code.as_deref().and_then(|c| c.parse::<u16>().ok()).is_some_and(|c| c >= 500) {
        error = true;
    }
    let word = if error { "ERROR" } else { "ok" };
    match code {
        Some(c) => format!("{word} {c}"),
        None => word.to_owned(),
    }
}

fn parent_of(span: &JaegerSpan) -> u64 {
    if span.parent_span_id != 0 {
        return span.parent_span_id;
    }
    span.references.iter().find(|r| r.kind == RefKind::ChildOf && r.trace_id == span.trace_id).map_or(0, |r| r.span_id)
}

/// One trace as text: a header line, then one line per span, children under their parent,
/// siblings by start time. Spans whose parent is not in the trace are shown as roots.
pub fn render_trace(spans: &[JaegerSpan]) -> String {
    let Some(first) = spans.first() else {
        return String::new();
    };
    let ids: HashSet<u64> = spans.iter().map(|s| s.span_id).collect();
    let mut children: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut roots: Vec<usize> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let p = parent_of(s);
        if p != 0 && p != s.span_id && ids.contains(&p) {
            children.entry(p).or_default().push(i);
        } else {
            roots.push(i);
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start_us, spans[i].span_id));
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }
    let start = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.start_us.saturating_add(s.duration_us)).max().unwrap_or(0);
    let errors = spans.iter().filter(|s| status(s).starts_with("ERROR")).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "trace {}  {} span{}  {}",
        first.trace_id.to_hex(),
        spans.len(),
        if spans.len() == 1 { "" } else { "s" },
        fmt_duration(end - start)
    );
    if errors > 0 {
        let _ = write!(out, "  {errors} error{}", if errors == 1 { "" } else { "s" });
    }
    out.push('\n');
    let mut visited = HashSet::new();
    for (n, &r) in roots.iter().enumerate() {
        line(&mut out, spans, &children, r, "", n + 1 == roots.len(), &mut visited);
    }
    out.push('\n');
    out
}

fn line(
    out: &mut String,
    spans: &[JaegerSpan],
    children: &HashMap<u64, Vec<usize>>,
    i: usize,
    prefix: &str,
    last: bool,
    visited: &mut HashSet<usize>,
) {
    if !visited.insert(i) {
        return;
    }
    let s = &spans[i];
    let _ = writeln!(
        out,
        "{prefix}{} {}  {}  {}  {}",
        if last { "└─" } else { "├─" },
        s.process.service_name,
        s.operation,
        fmt_duration(s.duration_us),
        status(s)
    );
    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    if let Some(kids) = children.get(&s.span_id) {
        for (n, &k) in kids.iter().enumerate() {
            line(out, spans, children, k, &child_prefix, n + 1 == kids.len(), visited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Process, Tag};
    use std::sync::Arc;

    fn span(svc: &str, op: &str, id: u64, parent: u64, start: i64, dur: i64, tags: Vec<Tag>) -> JaegerSpan {
        JaegerSpan {
            trace_id: TraceId { high: 0, low: 0xabc },
            span_id: id,
            parent_span_id: parent,
            operation: op.into(),
            flags: 1,
            start_us: start,
            duration_us: dur,
            tags,
            logs: vec![],
            references: vec![],
            process: Arc::new(Process { service_name: svc.into(), tags: vec![] }),
        }
    }

    fn sample() -> Vec<JaegerSpan> {
        vec![
            span("backend", "POST /pay", 3, 1, 200, 10_100, vec![Tag::long("http.status_code", 500)]),
            span("frontend", "GET /checkout", 1, 0, 0, 12_345, vec![Tag::long("http.status_code", 200)]),
            span("mysql", "SELECT", 4, 3, 300, 3_200, vec![]),
            span("frontend", "redis GET", 2, 1, 100, 412, vec![]),
        ]
    }

    #[test]
    fn renders_an_indented_tree() {
        let text = render_trace(&sample());
        let want = "\
trace 0000000000000abc  4 spans  12.3ms  1 error
└─ frontend  GET /checkout  12.3ms  ok 200
   ├─ frontend  redis GET  412µs  ok
   └─ backend  POST /pay  10.1ms  ERROR 500
      └─ mysql  SELECT  3.2ms  ok

";
        assert_eq!(text, want);
    }

    #[test]
    fn orphans_show_as_roots_and_cycles_end() {
        let mut spans = sample();
        spans.remove(1); // the root is missing
        spans.push(span("x", "loop", 9, 9, 0, 1, vec![]));
        let text = render_trace(&spans);
        assert!(text.contains("├─ x  loop"), "{text}");
        assert!(text.contains("└─ backend  POST /pay"), "{text}");
        assert!(text.contains("   └─ mysql  SELECT"), "{text}");
    }

    #[test]
    fn prints_after_quiet_time_or_at_finish() {
        let mut c = ConsoleExporter::new(Vec::new(), Duration::from_secs(2));
        let t = Instant::now();
        c.add(&sample()[..2], t);
        c.flush_quiet(t + Duration::from_millis(1500));
        assert!(c.out.is_empty());
        c.add(&sample()[2..], t + Duration::from_millis(1500));
        c.flush_quiet(t + Duration::from_millis(3000));
        assert!(c.out.is_empty(), "a late span restarts the quiet time");
        c.flush_quiet(t + Duration::from_millis(3500));
        let text = String::from_utf8(std::mem::take(&mut c.out)).unwrap();
        assert_eq!(text.matches("trace ").count(), 1);
        assert!(text.contains("4 spans"));
        c.add(&sample()[..1], t);
        c.flush_all();
        assert!(String::from_utf8(c.into_inner()).unwrap().contains("1 span "));
    }
}
