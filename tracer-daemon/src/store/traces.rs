//! The trace store proper: recent traces within a byte budget, oldest evicted first, with
//! indexes by service (and its operations), error and trace id. Pure: no clock, no I/O.

use std::{
    collections::{BTreeMap, VecDeque, hash_map::Entry},
    mem::size_of,
    sync::Arc,
};

use crate::model::{
    JaegerSpan, Log, Process, SpanRef, Tag, TagValue, TraceId,
    hash::{FastMap, FastSet},
};

use super::StoreCounters;

/// Bookkeeping charged per trace: its map entry, eviction slot and index entries (estimate).
const TRACE_OVERHEAD: usize = size_of::<(TraceId, Trace)>() + size_of::<TraceId>() * 4 + 64;
/// Charged per span for its slots in the service and operation indexes (estimate).
const SPAN_INDEX_OVERHEAD: usize = 48;

/// One trace as held: its spans as Jaeger renders them.
#[derive(Clone, Debug)]
pub struct Trace {
    pub id: TraceId,
    pub spans: Vec<JaegerSpan>,
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
    operations: BTreeMap<String, BTreeMap<String, u32>>,
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
    services: BTreeMap<String, ServiceEntry>,
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
            services: BTreeMap::new(),
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
    pub fn insert(&mut self, mut span: JaegerSpan) {
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
        // Spans of one process share one copy of it.
        match trace.processes.iter().find(|p| Arc::ptr_eq(p, &span.process) || ***p == *span.process) {
            Some(p) => span.process = p.clone(),
            None => {
                cost += process_bytes(&span.process) + size_of::<Arc<Process>>();
                trace.processes.push(span.process.clone());
            }
        }
        let name = &span.process.service_name;
        let service = match self.services.get_mut(name) {
            Some(s) => s,
            None => self.services.entry(name.clone()).or_default(),
        };
        *service.traces.entry(id).or_default() += 1;
        service.add_operation(&span.operation, span.kind().unwrap_or(""));
        if is_error(&span) {
            trace.error = true;
            self.errors.insert(id);
        }
        trace.start_us = trace.start_us.min(span.start_us);
        trace.end_us = trace.end_us.max(span.start_us.saturating_add(span.duration_us));
        // The Vec's own growth is charged as it happens.
        let before = trace.spans.capacity();
        trace.spans.push(span);
        cost += (trace.spans.capacity() - before) * size_of::<JaegerSpan>();
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
            service.remove_operation(&span.operation, span.kind().unwrap_or(""));
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
        self.services.keys().cloned().collect()
    }

    /// The operations of a service as (name, span kind or ""), sorted; `kind` filters.
    pub fn operations(&self, service: &str, kind: Option<&str>) -> Vec<(String, String)> {
        let Some(s) = self.services.get(service) else { return Vec::new() };
        s.operations
            .iter()
            .flat_map(|(op, kinds)| kinds.keys().map(move |k| (op, k)))
            .filter(|(_, k)| kind.is_none_or(|want| want == *k))
            .map(|(op, k)| (op.clone(), k.clone()))
            .collect()
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

fn span_matches(s: &JaegerSpan, q: &Query) -> bool {
    q.service.as_ref().is_none_or(|v| *v == s.process.service_name)
        && q.operation.as_ref().is_none_or(|v| *v == s.operation)
        && q.start_us.is_none_or(|v| s.start_us >= v)
        && q.end_us.is_none_or(|v| s.start_us <= v)
        && q.min_duration_us.is_none_or(|v| s.duration_us >= v)
        && q.max_duration_us.is_none_or(|v| s.duration_us <= v)
        && q.tags.iter().all(|(k, v)| has_tag(s, k, v))
}

fn has_tag(s: &JaegerSpan, key: &str, value: &str) -> bool {
    let eq = |t: &Tag| t.key == key && tag_text(&t.value) == value;
    s.tags.iter().any(eq) || s.process.tags.iter().any(eq) || s.logs.iter().any(|l| l.fields.iter().any(eq))
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

fn is_error(s: &JaegerSpan) -> bool {
    s.tags.iter().any(|t| {
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

/// Heap bytes a span owns beyond its own slot in the trace's Vec (which is charged there).
fn span_bytes(s: &JaegerSpan) -> usize {
    alloc(s.operation.capacity()) + alloc(s.tags.capacity() * size_of::<Tag>()) - s.tags.len() * size_of::<Tag>()
        + s.tags.iter().map(tag_bytes).sum::<usize>()
        + alloc(s.logs.capacity() * size_of::<Log>())
        + s.logs.iter().map(log_bytes).sum::<usize>()
        + alloc(s.references.capacity() * size_of::<SpanRef>())
}

fn process_bytes(p: &Process) -> usize {
    // The Arc's counts and the Process itself.
    alloc(16 + size_of::<Process>()) + alloc(p.service_name.capacity()) + alloc(p.tags.capacity() * size_of::<Tag>())
        - p.tags.len() * size_of::<Tag>()
        + p.tags.iter().map(tag_bytes).sum::<usize>()
}
