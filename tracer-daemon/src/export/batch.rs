//! The batcher: groups spans by process into batches closed by span count, encoded bytes or
//! age. Pure: the clock is passed in.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use super::{Batch, Rendered};
use crate::config::export::BatchLimits;
use crate::jaeger::encode::{Protocol, span_len};
use crate::model::{JaegerSpan, Process, Span, hash::FastMap};
use crate::net::host::HostInfo;

/// Most distinct process objects remembered for the fast lookup; past it the cache restarts.
const PROCESS_CACHE: usize = 4096;

/// The encoded size of a rendered span, counted toward `max_bytes`.
pub type SizeFn<S> = Box<dyn Fn(&S) -> usize + Send>;

struct Group<S> {
    /// The process with host tags, as it goes on the wire.
    process: Arc<Process>,
    spans: Vec<S>,
    /// The size function's figure for each span (empty without one).
    sizes: Vec<usize>,
    bytes: usize,
    opened: Instant,
}

impl<S> Group<S> {
    fn close(self) -> Batch<S> {
        Batch { process: self.process, spans: self.spans, sizes: self.sizes }
    }
}

/// Open batches, one per process, of spans rendered for one destination.
pub struct Batcher<S = JaegerSpan> {
    limits: BatchLimits,
    /// The encoded size that counts toward `max_bytes`; `None` counts no bytes.
    size: Option<SizeFn<S>>,
    host: HostInfo,
    groups: FastMap<Arc<str>, Group<S>>,
    /// `Arc<Process>` address -> (the process, kept alive so the address is not reused; its key).
    by_ptr: FastMap<usize, (Arc<Process>, Arc<str>)>,
}

/// A key equal for equal processes: service name and tags.
fn process_key(p: &Process) -> String {
    let mut k = String::with_capacity(p.service_name.len() + 16 * p.tags.len());
    k.push_str(&p.service_name);
    for t in &p.tags {
        let _ = write!(k, "\u{0}{}\u{1}{:?}", t.key, t.value);
    }
    k
}

impl Batcher<JaegerSpan> {
    /// Jaeger batches; `proto` is the Thrift protocol whose size counts toward `max_bytes`.
    pub fn new(limits: BatchLimits, proto: Option<Protocol>, host: HostInfo) -> Self {
        let size = proto.map(|p| Box::new(move |s: &JaegerSpan| span_len(p, s)) as SizeFn<JaegerSpan>);
        Batcher::with_size(limits, size, host)
    }
}

impl<S: Rendered> Batcher<S> {
    pub fn with_size(limits: BatchLimits, size: Option<SizeFn<S>>, host: HostInfo) -> Self {
        Batcher { limits, size, host, groups: FastMap::default(), by_ptr: FastMap::default() }
    }

    /// Spans held in open batches.
    pub fn pending_spans(&self) -> usize {
        self.groups.values().map(|g| g.spans.len()).sum()
    }

    fn key_of(&mut self, process: &Arc<Process>) -> Arc<str> {
        let ptr = Arc::as_ptr(process) as usize;
        if let Some((_, key)) = self.by_ptr.get(&ptr) {
            return key.clone();
        }
        if self.by_ptr.len() >= PROCESS_CACHE {
            self.by_ptr.clear();
        }
        let key: Arc<str> = process_key(process).into();
        self.by_ptr.insert(ptr, (process.clone(), key.clone()));
        key
    }

    /// Adds a span; batches closed by this span are appended to `out` (at most two: the open
    /// one when this span would overflow its bytes, and the new one when it is full at once).
    pub fn push(&mut self, span: &Span, now: Instant, out: &mut Vec<Batch<S>>) {
        // Each destination takes the span as its protocol's model has it.
        let span = S::render(span);
        let key = self.key_of(span.process());
        let size = self.size.as_ref().map(|f| f(&span));
        let bytes = size.unwrap_or(0);
        if let Some(g) = self.groups.get(&key)
            && !g.spans.is_empty()
            && g.bytes.saturating_add(bytes) > self.limits.max_bytes
            && let Some(g) = self.groups.remove(&key)
        {
            out.push(g.close());
        }
        let host = &self.host;
        let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
            process: host.complete(span.process()),
            spans: Vec::new(),
            sizes: Vec::new(),
            bytes: 0,
            opened: now,
        });
        g.spans.push(span);
        g.sizes.extend(size);
        g.bytes = g.bytes.saturating_add(bytes);
        if (g.spans.len() >= self.limits.max_spans || g.bytes >= self.limits.max_bytes)
            && let Some(g) = self.groups.remove(&key)
        {
            out.push(g.close());
        }
    }

    /// When the oldest open batch reaches its age limit.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.values().map(|g| g.opened + self.limits.max_age).min()
    }

    /// Closes the batches that reached their age limit at `now`.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<Batch<S>>) {
        let max_age = self.limits.max_age;
        let keys: Vec<Arc<str>> =
            self.groups.iter().filter(|(_, g)| g.opened + max_age <= now).map(|(k, _)| k.clone()).collect();
        for k in keys {
            if let Some(g) = self.groups.remove(&k) {
                out.push(g.close());
            }
        }
    }

    /// Closes every open batch, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Batch<S>>) {
        let mut groups: Vec<Group<S>> = self.groups.drain().map(|(_, g)| g).collect();
        groups.sort_by_key(|g| g.opened);
        out.extend(groups.into_iter().map(Group::close));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Tag, TraceId};
    use crate::render;
    use std::time::Duration;

    fn span(process: &Arc<Process>, id: u64, op_len: usize) -> Span {
        Span::from_app(JaegerSpan {
            trace_id: TraceId { high: 0, low: 1 },
            span_id: id,
            parent_span_id: 0,
            operation: "x".repeat(op_len),
            flags: 1,
            start_us: 0,
            duration_us: 1,
            tags: vec![],
            logs: vec![],
            references: vec![],
            process: process.clone(),
        })
    }

    fn limits(spans: usize, bytes: usize, age_ms: u64) -> BatchLimits {
        BatchLimits { max_spans: spans, max_bytes: bytes, max_age: Duration::from_millis(age_ms) }
    }

    fn proc_(name: &str) -> Arc<Process> {
        Arc::new(Process { service_name: name.into(), tags: vec![Tag::str("hostname", "h")] })
    }

    #[test]
    fn one_batch_per_process_closed_by_count() {
        let mut b = Batcher::new(limits(3, usize::MAX, 1000), Some(Protocol::Binary), HostInfo::new("h", "1.1.1.1"));
        let (a, c) = (proc_("a"), proc_("c"));
        let a2 = Arc::new(Process::clone(&a)); // equal value, another allocation
        let t = Instant::now();
        let mut out = Vec::new();
        b.push(&span(&a, 1, 1), t, &mut out);
        b.push(&span(&c, 2, 1), t, &mut out);
        b.push(&span(&a2, 3, 1), t, &mut out);
        assert!(out.is_empty());
        b.push(&span(&a, 4, 1), t, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].process.service_name, "a");
        assert_eq!(out[0].spans.iter().map(|s| s.span_id).collect::<Vec<_>>(), [1, 3, 4]);
        // The wire process carries the host tags the span's process lacked.
        assert!(out[0].process.tags.contains(&Tag::str("ip", "1.1.1.1")));
        assert_eq!(b.pending_spans(), 1);
    }

    #[test]
    fn bytes_limit_closes_before_overflow() {
        let p = proc_("a");
        let one = span_len(Protocol::Compact, &render::jaeger::render(&span(&p, 1, 100)));
        let mut b = Batcher::new(limits(100, one * 2 + 10, 1000), Some(Protocol::Compact), HostInfo::new("h", "i"));
        let t = Instant::now();
        let mut out = Vec::new();
        for id in 1..=3 {
            b.push(&span(&p, id, 100), t, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].spans.len(), 2);
        assert_eq!(out[0].sizes, [one, one], "the sizes travel with the batch (the UDP sender plans with them)");
        // A span larger than the limit on its own still goes, alone.
        b.push(&span(&p, 9, 10_000), t, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].spans.len(), 1);
        assert_eq!(out[2].spans[0].span_id, 9);
    }

    #[test]
    fn age_limit_and_drain() {
        let mut b = Batcher::new(limits(100, usize::MAX, 1000), None, HostInfo::new("h", "i"));
        let t = Instant::now();
        let mut out = Vec::new();
        b.push(&span(&proc_("a"), 1, 1), t, &mut out);
        b.push(&span(&proc_("b"), 2, 1), t + Duration::from_millis(500), &mut out);
        assert_eq!(b.next_deadline(), Some(t + Duration::from_millis(1000)));
        b.expired(t + Duration::from_millis(999), &mut out);
        assert!(out.is_empty());
        b.expired(t + Duration::from_millis(1000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].process.service_name, "a");
        b.drain(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(b.next_deadline(), None);
    }
}
