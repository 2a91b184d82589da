//! The trace store proper: recent traces within a byte budget, oldest evicted first, with
//! indexes by service (and its operations), error and trace id. Spans are held typed, shared
//! with the exporters (`Arc<Span>`), and rendered as Jaeger has them only when a query reads
//! them. Pure: no clock, no I/O.

use std::{
    collections::{VecDeque, hash_map::Entry},
    mem::size_of,
    sync::Arc,
};

use crate::{
    model::{
        AppSpan, Attributes, Body, JaegerSpan, Log, Process, Span, SpanRef, Status, Tag, TagValue, TraceId, Traced,
        hash::{FastMap, FastSet},
    },
    render,
};

use super::StoreCounters;

/// Bookkeeping charged per trace: its map entry, eviction slot and index entries (estimate).
const TRACE_OVERHEAD: usize = size_of::<(TraceId, Trace)>() + size_of::<TraceId>() * 4 + 64;
/// Charged per span for its slots in the service and operation indexes (estimate).
const SPAN_INDEX_OVERHEAD: usize = 48;

/// One trace as held: its spans, typed (`rendered` gives them as Jaeger has them).
#[derive(Clone, Debug)]
pub struct Trace {
    pub id: TraceId,
    pub spans: Vec<Arc<Span>>,
    /// Earliest span start and latest span end (Unix epoch µs).
    pub start_us: i64,
    pub end_us: i64,
    pub error: bool,
    bytes: usize,
    processes: Vec<Arc<Process>>,
}

#[derive(Debug, Default)]
struct ServiceEntry {
    /// Trace → spans of this service in it.
    traces: FastMap<TraceId, u32>,
    /// Operation → span kind (or "") → spans.
    operations: FastMap<String, FastMap<String, u32>>,
}

impl ServiceEntry {
    /// Counts one more span of `operation` and `kind` (keys are copied only when new).
    fn add_operation(&mut self, operation: &str, kind: &str) {
        let kinds = match self.operations.get_mut(operation) {
            Some(k) => k,
            None => self.operations.entry(operation.to_owned()).or_default(),
        };
        match kinds.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                kinds.insert(kind.to_owned(), 1);
            }
        }
    }

    fn remove_operation(&mut self, operation: &str, kind: &str) {
        let Some(kinds) = self.operations.get_mut(operation) else { return };
        if let Some(n) = kinds.get_mut(kind) {
            *n -= 1;
            if *n == 0 {
                kinds.remove(kind);
            }
        }
        if kinds.is_empty() {
            self.operations.remove(operation);
        }
    }
}

/// What a search asks for. A trace matches when one of its spans meets every condition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// `key` = `value` against span tags, process tags or log fields, compared as text.
    pub tags: Vec<(String, String)>,
    /// Span start within `[start_us, end_us]` (Unix epoch µs).
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub min_duration_us: Option<i64>,
    pub max_duration_us: Option<i64>,
    /// Traces returned at most (newest first).
    pub limit: usize,
}

pub struct TraceStore {
    max_bytes: usize,
    bytes: usize,
    spans: usize,
    traces: FastMap<TraceId, Trace>,
    /// Trace ids by arrival of their first span, oldest first; each held trace once.
    order: VecDeque<TraceId>,
    /// Hashed, not ordered: a span's insert and its eviction each look up its service and
    /// operation; the listings sort.
    services: FastMap<String, ServiceEntry>,
    errors: FastSet<TraceId>,
    counters: StoreCounters,
}

impl TraceStore {
    pub fn new(max_bytes: usize, counters: StoreCounters) -> Self {
        TraceStore {
            max_bytes,
            bytes: 0,
            spans: 0,
            traces: FastMap::default(),
            order: VecDeque::new(),
            services: FastMap::default(),
            errors: FastSet::default(),
            counters,
        }
    }

    /// Estimated bytes held (never above the budget once `insert` returns).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    pub fn span_count(&self) -> usize {
        self.spans
    }

    /// Adds a finished span to its trace, then evicts the oldest traces until the budget holds.
    pub fn insert(&mut self, mut span: Arc<Span>) {
        let id = span.trace_id;
        let trace = match self.traces.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.order.push_back(id);
                self.bytes += TRACE_OVERHEAD;
                e.insert(Trace {
                    id,
                    spans: Vec::new(),
                    start_us: span.start_us,
                    end_us: span.start_us.saturating_add(span.duration_us),
                    error: false,
                    bytes: TRACE_OVERHEAD,
                    processes: Vec::new(),
                })
            }
        };
        let mut cost = span_bytes(&span) + SPAN_INDEX_OVERHEAD;
        // Spans of one process share one copy of it: a span whose equal process is another
        // allocation (as decoded app batches give) takes the trace's copy.
        match trace.processes.iter().find(|p| Arc::ptr_eq(p, &span.process)) {
            Some(_) => {}
            None => match trace.processes.iter().find(|p| ***p == *span.process) {
                Some(p) => Arc::make_mut(&mut span).process = p.clone(),
                None => {
                    cost += process_bytes(&span.process) + size_of::<Arc<Process>>();
                    trace.processes.push(span.process.clone());
                }
            },
        }
        let name = &span.process.service_name;
        let service = match self.services.get_mut(name) {
            Some(s) => s,
            None => self.services.entry(name.clone()).or_default(),
        };
        *service.traces.entry(id).or_default() += 1;
        service.add_operation(&span.operation, kind_text(&span));
        if is_error(&span) {
            trace.error = true;
            self.errors.insert(id);
        }
        trace.start_us = trace.start_us.min(span.start_us);
        trace.end_us = trace.end_us.max(span.start_us.saturating_add(span.duration_us));
        // The Vec's own growth is charged as it happens.
        let before = trace.spans.capacity();
        trace.spans.push(span);
        cost += (trace.spans.capacity() - before) * size_of::<Arc<Span>>();
        trace.bytes += cost;
        self.bytes += cost;
        self.spans += 1;
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else { break };
            self.remove(oldest);
            self.counters.evicted.inc();
        }
        self.publish();
    }

    fn remove(&mut self, id: TraceId) {
        let Some(trace) = self.traces.remove(&id) else { return };
        self.bytes -= trace.bytes;
        self.spans -= trace.spans.len();
        self.errors.remove(&id);
        for span in &trace.spans {
            let name = &span.process.service_name;
            let Some(service) = self.services.get_mut(name) else { continue };
            service.traces.remove(&id);
            service.remove_operation(&span.operation, kind_text(span));
            if service.traces.is_empty() {
                self.services.remove(name);
            }
        }
    }

    fn publish(&self) {
        self.counters.bytes.set(i64::try_from(self.bytes).unwrap_or(i64::MAX));
        self.counters.traces.set(i64::try_from(self.traces.len()).unwrap_or(i64::MAX));
        self.counters.spans.set(i64::try_from(self.spans).unwrap_or(i64::MAX));
    }

    /// Services with spans held, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self.services.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// The operations of a service as (name, span kind or ""), sorted; `kind` filters.
    pub fn operations(&self, service: &str, kind: Option<&str>) -> Vec<(String, String)> {
        let Some(s) = self.services.get(service) else { return Vec::new() };
        let mut ops = s
            .operations
            .iter()
            .flat_map(|(op, kinds)| kinds.keys().map(move |k| (op, k)))
            .filter(|(_, k)| kind.is_none_or(|want| want == *k))
            .map(|(op, k)| (op.clone(), k.clone()))
            .collect::<Vec<_>>();
        ops.sort_unstable();
        ops
    }

    pub fn trace(&self, id: TraceId) -> Option<&Trace> {
        self.traces.get(&id)
    }

    /// Matching traces, newest start first, at most `q.limit`.
    pub fn search(&self, q: &Query) -> Vec<&Trace> {
        let errors_only = q.tags.iter().any(|(k, v)| k == "error" && v == "true");
        let mut found: Vec<&Trace> = match &q.service {
            Some(name) => match self.services.get(name) {
                Some(s) => s
                    .traces
                    .keys()
                    .filter(|id| !errors_only || self.errors.contains(id))
                    .filter_map(|id| self.traces.get(id))
                    .collect(),
                None => Vec::new(),
            },
            None if errors_only => self.errors.iter().filter_map(|id| self.traces.get(id)).collect(),
            None => self.traces.values().collect(),
        };
        found.retain(|t| t.spans.iter().any(|s| span_matches(s, q)));
        found.sort_by(|a, b| b.start_us.cmp(&a.start_us).then(b.id.cmp(&a.id)));
        found.truncate(q.limit);
        found
    }
}

impl Trace {
    /// The trace's spans as Jaeger's model has them.
    pub fn rendered(&self) -> Vec<JaegerSpan> {
        rendered(&self.spans)
    }

    /// What a search results list shows of the trace, from the typed spans (nothing rendered).
    pub fn summary(&self) -> Summary {
        let ids: FastSet<u64> = self.spans.iter().map(|s| s.span_id).collect();
        // The root: a span without a parent, the earliest if several.
        let root = self
            .spans
            .iter()
            .filter(|s| s.parent_span_id == 0)
            .min_by(|a, b| a.start_us.cmp(&b.start_us).then(a.span_id.cmp(&b.span_id)));
        let mut services: Vec<ServiceSummary> = Vec::new();
        let (mut errors, mut orphans) = (0, 0);
        for s in &self.spans {
            let failed = is_error(s);
            errors += usize::from(failed);
            orphans += usize::from(s.parent_span_id != 0 && !ids.contains(&s.parent_span_id));
            let name = &s.process.service_name;
            let entry = match services.iter_mut().position(|e| e.name == *name) {
                Some(i) => &mut services[i],
                None => {
                    services.push(ServiceSummary { name: name.clone(), spans: 0, errors: 0 });
                    services.last_mut().expect("just pushed")
                }
            };
            entry.spans += 1;
            entry.errors += usize::from(failed);
        }
        services.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Summary {
            id: self.id,
            root_service: root.map(|r| r.process.service_name.clone()).unwrap_or_default(),
            root_operation: root.map(|r| r.operation.clone()).unwrap_or_default(),
            start_us: self.start_us,
            end_us: self.end_us,
            spans: self.spans.len(),
            errors,
            orphans,
            services,
        }
    }
}

/// A trace as a search results row shows it (Jaeger's `TraceSummary`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub id: TraceId,
    /// Service and operation of the root span (the earliest span without a parent); empty when
    /// the trace holds no such span.
    pub root_service: String,
    pub root_operation: String,
    /// Earliest span start and latest span end (Unix epoch µs).
    pub start_us: i64,
    pub end_us: i64,
    pub spans: usize,
    /// Spans that failed.
    pub errors: usize,
    /// Spans whose parent is not in the trace: a partial trace.
    pub orphans: usize,
    /// One entry per service, sorted by name.
    pub services: Vec<ServiceSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    pub spans: usize,
    pub errors: usize,
}

/// Spans as Jaeger's model has them (outside the store's lock: take the `Arc`s, then render).
pub fn rendered(spans: &[Arc<Span>]) -> Vec<JaegerSpan> {
    spans.iter().map(|s| render::jaeger::render(s)).collect()
}

fn span_matches(s: &Span, q: &Query) -> bool {
    q.service.as_ref().is_none_or(|v| *v == s.process.service_name)
        && q.operation.as_ref().is_none_or(|v| *v == s.operation)
        && q.start_us.is_none_or(|v| s.start_us >= v)
        && q.end_us.is_none_or(|v| s.start_us <= v)
        && q.min_duration_us.is_none_or(|v| s.duration_us >= v)
        && q.max_duration_us.is_none_or(|v| s.duration_us <= v)
        && (q.tags.is_empty() || {
            // Tags are compared as Jaeger renders them: an app's as it sent them, the daemon's
            // rendered here, for the spans that passed the conditions above.
            match &s.body {
                Body::App(a) => q.tags.iter().all(|(k, v)| has_tag(&a.tags, &a.logs, &s.process, k, v)),
                Body::Traced(t) => {
                    let (tags, logs) = render::jaeger::traced(t);
                    q.tags.iter().all(|(k, v)| has_tag(&tags, &logs, &s.process, k, v))
                }
            }
        })
}

fn has_tag(tags: &[Tag], logs: &[Log], process: &Process, key: &str, value: &str) -> bool {
    let eq = |t: &Tag| t.key == key && tag_text(&t.value) == value;
    tags.iter().any(eq) || process.tags.iter().any(eq) || logs.iter().any(|l| l.fields.iter().any(eq))
}

/// A tag's value as search compares it (as Jaeger's `AsString`).
pub fn tag_text(v: &TagValue) -> String {
    match v {
        TagValue::Str(s) => s.clone(),
        TagValue::Bool(b) => b.to_string(),
        TagValue::Long(n) => n.to_string(),
        TagValue::Double(f) => f.to_string(),
        TagValue::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// The span's `span.kind` as Jaeger renders it ("" when it has none).
fn kind_text(s: &Span) -> &str {
    match &s.body {
        Body::Traced(t) => t.kind.as_str(),
        Body::App(a) => app_tag_str(a, "span.kind").unwrap_or(""),
    }
}

fn app_tag_str<'a>(a: &'a AppSpan, key: &str) -> Option<&'a str> {
    a.tags.iter().find_map(|t| match (&t.value, t.key == key) {
        (TagValue::Str(s), true) => Some(s.as_str()),
        _ => None,
    })
}

/// Whether the span failed as Jaeger renders it (an `error` tag that is true).
fn is_error(s: &Span) -> bool {
    match &s.body {
        Body::Traced(t) => t.status.is_error(),
        Body::App(a) => app_failed(&a.tags),
    }
}

fn app_failed(tags: &[Tag]) -> bool {
    tags.iter().any(|t| {
        t.key == "error"
            && match &t.value {
                TagValue::Bool(b) => *b,
                TagValue::Str(v) => v == "true",
                _ => false,
            }
    })
}

/// What an allocation of `n` bytes takes from the allocator: a header and 16-byte rounding,
/// at least 32 bytes (glibc's malloc; mimalloc's size classes are no larger).
fn alloc(n: usize) -> usize {
    if n == 0 { 0 } else { (n + 8).next_multiple_of(16).max(32) }
}

fn tag_bytes(t: &Tag) -> usize {
    size_of::<Tag>()
        + match &t.key {
            std::borrow::Cow::Borrowed(_) => 0,
            std::borrow::Cow::Owned(k) => alloc(k.capacity()),
        }
        + match &t.value {
            TagValue::Str(s) => alloc(s.capacity()),
            TagValue::Binary(b) => alloc(b.capacity()),
            _ => 0,
        }
}

fn log_bytes(l: &Log) -> usize {
    size_of::<Log>() + alloc(l.fields.capacity() * size_of::<Tag>()) - l.fields.len() * size_of::<Tag>()
        + l.fields.iter().map(tag_bytes).sum::<usize>()
}

fn opt_bytes(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| alloc(s.capacity()))
}

fn attributes_bytes(a: &Attributes) -> usize {
    match a {
        Attributes::Http(h) => alloc(h.method.capacity()) + alloc(h.target.capacity()) + opt_bytes(&h.host),
        Attributes::Http2(h) => {
            opt_bytes(&h.method)
                + opt_bytes(&h.path)
                + opt_bytes(&h.authority)
                + h.grpc.as_ref().map_or(0, |g| opt_bytes(&g.service) + opt_bytes(&g.method) + opt_bytes(&g.message))
        }
        Attributes::Redis(r) => opt_bytes(&r.operation) + opt_bytes(&r.statement),
        Attributes::Mysql(m) => {
            opt_bytes(&m.database)
                + opt_bytes(&m.user)
                + opt_bytes(&m.operation)
                + opt_bytes(&m.statement)
                + opt_bytes(&m.peer_name)
        }
    }
}

fn traced_bytes(t: &Traced) -> usize {
    let status = match &t.status {
        Status::Ok => 0,
        Status::Error { message, .. } => alloc(message.capacity()),
    };
    alloc(size_of::<Traced>()) + attributes_bytes(&t.attrs) + status
}

fn app_bytes(a: &AppSpan) -> usize {
    alloc(size_of::<AppSpan>()) + alloc(a.tags.capacity() * size_of::<Tag>()) - a.tags.len() * size_of::<Tag>()
        + a.tags.iter().map(tag_bytes).sum::<usize>()
        + alloc(a.logs.capacity() * size_of::<Log>())
        + a.logs.iter().map(log_bytes).sum::<usize>()
        + alloc(a.references.capacity() * size_of::<SpanRef>())
}

/// Heap bytes a span owns beyond its own slot in the trace's Vec (which is charged there): the
/// shared allocation (with its counts), the operation and the body.
fn span_bytes(s: &Span) -> usize {
    let body = match &s.body {
        Body::Traced(t) => traced_bytes(t),
        Body::App(a) => app_bytes(a),
    };
    alloc(16 + size_of::<Span>()) + alloc(s.operation.capacity()) + body
}

fn process_bytes(p: &Process) -> usize {
    // The Arc's counts and the Process itself.
    alloc(16 + size_of::<Process>()) + alloc(p.service_name.capacity()) + alloc(p.tags.capacity() * size_of::<Tag>())
        - p.tags.len() * size_of::<Tag>()
        + p.tags.iter().map(tag_bytes).sum::<usize>()
}
