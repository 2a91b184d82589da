//! Stitching: gives each span its trace id and parent from the strongest evidence available
//! (DESIGN.md, Stitching), recorded as the span's [`Link`]. Ids are assigned when a request
//! starts, so calls made while it is served can name it as their parent before it ends.
//!
//! Evidence, strongest first:
//! 1. an adopted context (`traceparent`, `uber-trace-id`, SQL comment) in the request;
//! 2. a TCP-option context written by the peer host's daemon (when present);
//! 3. the same-host tuple join: the client's n-th request on a connection is the server's n-th
//!    on the same connection seen from the other end;
//! 4. thread causality: a call made by the thread serving exactly one inbound request is that
//!    request's child. With several inbound requests in flight on the thread, no link is made.
//!
//! The kernel may report the server's read before the client's write (both return around the
//! same instant on two CPUs). The server then starts with a provisional trace id; when the
//! client's request arrives, the server span gets its parent and the provisional trace id is
//! aliased to the client's. Finished spans are held for `hold_ns` before they leave, so aliases
//! and late parents are applied to them; this is a pure state machine driven by event times.

use std::collections::{HashMap, VecDeque};

pub use crate::model::Link;
use crate::{
    metrics::{Counter, Registry},
    model::conn::Tuple,
    model::{Span, TraceId},
    protocol::{ContextSource, TraceContext},
};

fn link_from_source(s: ContextSource) -> Link {
    match s {
        ContextSource::Traceparent => Link::Traceparent,
        ContextSource::UberTraceId => Link::UberTraceId,
        ContextSource::SqlComment => Link::SqlComment,
    }
}

/// The ids a span got when its request started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    pub trace_id: TraceId,
    pub span_id: u64,
    /// 0: no parent (yet).
    pub parent_span_id: u64,
    pub link: Option<Link>,
    /// Several inbound requests were in flight on the calling thread: thread causality was
    /// ambiguous and no link was made.
    pub ambiguous: bool,
}

/// Where a request started.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub pid: u32,
    pub tid: u32,
    /// The connection as seen by this process.
    pub tuple: Tuple,
    pub seq: u64,
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
}

/// Ids the kernel chose or read for a request (trace-context propagation in a TCP option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelIds {
    /// A client request: the ids the kernel put on the wire; the client span must use them.
    Client { trace_id: TraceId, span_id: u64 },
    /// A server request whose first packet carried the peer's option: its trace and the peer's
    /// client span (the parent).
    Peer { trace_id: TraceId, parent_span_id: u64 },
    /// A server request without an option: the trace id the kernel gave the serving thread,
    /// which its outbound calls carry.
    Server { trace_id: TraceId },
}

impl KernelIds {
    fn server_trace(self) -> Option<TraceId> {
        match self {
            KernelIds::Peer { trace_id, .. } | KernelIds::Server { trace_id } => Some(trace_id),
            KernelIds::Client { .. } => None,
        }
    }
}

/// Source of fresh ids (random in the daemon, counting in tests).
pub trait IdSource {
    fn trace_id(&mut self) -> TraceId;
    fn span_id(&mut self) -> u64;
}

/// Random ids from the thread-local generator.
pub struct RandomIds;

impl IdSource for RandomIds {
    fn trace_id(&mut self) -> TraceId {
        TraceId { high: fastrand::u64(1..), low: fastrand::u64(1..) }
    }
    fn span_id(&mut self) -> u64 {
        fastrand::u64(1..)
    }
}

#[derive(Clone, Copy, Debug)]
struct ClientEntry {
    trace_id: TraceId,
    span_id: u64,
    ts_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct WaitingServer {
    provisional: TraceId,
    span_id: u64,
    ts_ns: u64,
}

/// Stitcher settings.
#[derive(Clone, Copy, Debug)]
pub struct StitchConfig {
    /// How long finished spans are held for late links (ns).
    pub hold_ns: u64,
    /// How long a client request waits for its server side to appear (ns).
    pub join_window_ns: u64,
}

impl Default for StitchConfig {
    fn default() -> Self {
        StitchConfig { hold_ns: 300_000_000, join_window_ns: 30_000_000_000 }
    }
}

pub struct Stitcher<I: IdSource = RandomIds> {
    cfg: StitchConfig,
    ids: I,
    /// Client requests by (client tuple, seq), waiting for the server side.
    clients: HashMap<(Tuple, u64), ClientEntry>,
    /// Server requests that started before their client side was seen, by the client's key.
    waiting: HashMap<(Tuple, u64), WaitingServer>,
    /// Inbound requests being served, by (pid, tid).
    serving: HashMap<(u32, u32), Vec<(u64, TraceId)>>,
    /// Provisional trace id → the trace it joined.
    aliases: HashMap<TraceId, TraceId>,
    /// Parents found after a span started: span id → (parent span id, link).
    late_parents: HashMap<u64, (u64, Link)>,
    /// Finished spans waiting out the hold, in order of arrival.
    held: VecDeque<(u64, Span)>,
    /// Joins given up, by [`JoinExpired`].
    expired: [Counter; JoinExpired::ALL.len()],
}

/// A same-host join whose other side never came within the join window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinExpired {
    /// A client request whose server side was never seen (an untraced or remote server).
    Client,
    /// A server request that started first and whose client side never came.
    Server,
}

impl JoinExpired {
    pub const ALL: [JoinExpired; 2] = [JoinExpired::Client, JoinExpired::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinExpired::Client => "client_join_expired",
            JoinExpired::Server => "server_join_expired",
        }
    }
}

impl Stitcher<RandomIds> {
    pub fn new(cfg: StitchConfig) -> Self {
        Self::with_ids(cfg, RandomIds)
    }

    /// A stitcher that counts the joins it gives up in `tracer_stitch_dropped_total{reason}`.
    pub fn registered(cfg: StitchConfig, reg: &Registry) -> Self {
        let mut s = Self::new(cfg);
        s.expired = JoinExpired::ALL.map(|r| {
            reg.counter(
                "tracer_stitch_dropped_total",
                "Same-host joins given up when their other side did not come within the join window, by reason",
                &[("reason", r.as_str())],
            )
        });
        s
    }
}

impl<I: IdSource> Stitcher<I> {
    pub fn with_ids(cfg: StitchConfig, ids: I) -> Self {
        Stitcher {
            cfg,
            ids,
            clients: HashMap::new(),
            waiting: HashMap::new(),
            serving: HashMap::new(),
            aliases: HashMap::new(),
            late_parents: HashMap::new(),
            held: VecDeque::new(),
            expired: JoinExpired::ALL.map(|_| Counter::detached()),
        }
    }

    /// Joins given up so far for `reason`.
    pub fn expired(&self, reason: JoinExpired) -> u64 {
        self.expired[reason as usize].get()
    }

    fn adopt(&mut self, ctx: &TraceContext) -> Ids {
        Ids {
            trace_id: ctx.trace_id,
            span_id: self.ids.span_id(),
            parent_span_id: ctx.span_id,
            link: Some(link_from_source(ctx.source)),
            ambiguous: false,
        }
    }

    /// A server read a request. `context` is what the request carried; `kernel` what the kernel
    /// attached (the peer daemon's TCP option, or the trace id it gave the serving thread).
    pub fn server_request(&mut self, o: Origin, context: Option<&TraceContext>, kernel: Option<KernelIds>) -> Ids {
        let kernel_trace = kernel.and_then(KernelIds::server_trace);
        let ids = if let Some(ctx) = context {
            self.adopt(ctx)
        } else if let Some(KernelIds::Peer { trace_id, parent_span_id }) = kernel {
            Ids { trace_id, span_id: self.ids.span_id(), parent_span_id, link: Some(Link::TcpOption), ambiguous: false }
        } else {
            let key = (o.tuple.reversed(), o.seq);
            match self.clients.remove(&key) {
                Some(c) => Ids {
                    trace_id: c.trace_id,
                    span_id: self.ids.span_id(),
                    parent_span_id: c.span_id,
                    link: Some(Link::SameHostTuple),
                    ambiguous: false,
                },
                None => {
                    let trace_id = kernel_trace.unwrap_or_else(|| self.ids.trace_id());
                    let ids =
                        Ids { trace_id, span_id: self.ids.span_id(), parent_span_id: 0, link: None, ambiguous: false };
                    self.waiting
                        .insert(key, WaitingServer { provisional: ids.trace_id, span_id: ids.span_id, ts_ns: o.ts_ns });
                    ids
                }
            }
        };
        // Calls the serving thread makes carry the kernel's trace id: on this host they join the
        // trace the request joined.
        if let Some(kt) = kernel_trace.filter(|kt| *kt != ids.trace_id) {
            self.aliases.insert(kt, ids.trace_id);
        }
        self.serving.entry((o.pid, o.tid)).or_default().push((ids.span_id, ids.trace_id));
        ids
    }

    /// A server finished (or abandoned) a request: its thread no longer serves it.
    pub fn server_done(&mut self, pid: u32, tid_hint: Option<u32>, span_id: u64) {
        let keys: Vec<(u32, u32)> = match tid_hint {
            Some(tid) if self.serving.contains_key(&(pid, tid)) => vec![(pid, tid)],
            _ => self.serving.keys().filter(|(p, _)| *p == pid).copied().collect(),
        };
        for key in keys {
            if let Some(list) = self.serving.get_mut(&key) {
                list.retain(|(id, _)| *id != span_id);
                if list.is_empty() {
                    self.serving.remove(&key);
                }
            }
        }
    }

    /// A client sent a request. `kernel` holds the ids the kernel put in the request's TCP
    /// option: the span uses them, so that the server host's span names it as parent.
    pub fn client_request(&mut self, o: Origin, context: Option<&TraceContext>, kernel: Option<KernelIds>) -> Ids {
        let mut ids = if let Some(ctx) = context {
            self.adopt(ctx)
        } else if let Some(KernelIds::Client { trace_id, span_id }) = kernel {
            match self.serving.get(&(o.pid, o.tid)).map(|v| v.as_slice()) {
                Some([(parent, trace)]) => {
                    let (kt, t) = (self.resolve(trace_id), self.resolve(*trace));
                    if kt != t {
                        self.aliases.insert(trace_id, t);
                    }
                    Ids { trace_id, span_id, parent_span_id: *parent, link: Some(Link::Thread), ambiguous: false }
                }
                other => Ids {
                    trace_id,
                    span_id,
                    parent_span_id: 0,
                    link: None,
                    ambiguous: other.is_some_and(|v| v.len() > 1),
                },
            }
        } else {
            match self.serving.get(&(o.pid, o.tid)).map(|v| v.as_slice()) {
                Some([(parent, trace)]) => Ids {
                    trace_id: *trace,
                    span_id: self.ids.span_id(),
                    parent_span_id: *parent,
                    link: Some(Link::Thread),
                    ambiguous: false,
                },
                other => Ids {
                    trace_id: self.ids.trace_id(),
                    span_id: self.ids.span_id(),
                    parent_span_id: 0,
                    link: None,
                    ambiguous: other.is_some_and(|v| v.len() > 1),
                },
            }
        };
        let key = (o.tuple, o.seq);
        match self.waiting.remove(&key) {
            // The server side started first: it joins this trace now.
            Some(w) => {
                let canonical = self.resolve(ids.trace_id);
                if w.provisional != canonical {
                    self.aliases.insert(w.provisional, canonical);
                }
                self.late_parents.insert(w.span_id, (ids.span_id, Link::SameHostTuple));
                ids.trace_id = canonical;
            }
            None => {
                self.clients.insert(key, ClientEntry { trace_id: ids.trace_id, span_id: ids.span_id, ts_ns: o.ts_ns });
            }
        }
        ids
    }

    /// Follows aliases to the trace id a provisional one joined.
    pub fn resolve(&self, mut t: TraceId) -> TraceId {
        for _ in 0..16 {
            match self.aliases.get(&t) {
                Some(next) => t = *next,
                None => break,
            }
        }
        t
    }

    /// A finished span; it leaves through `drain` once its hold is over.
    pub fn finish(&mut self, span: Span, now_ns: u64) {
        self.held.push_back((now_ns, span));
    }

    /// Spans whose hold is over at `now_ns` (all of them with `flush`), with aliases and late
    /// parents applied. Also forgets join state older than the join window.
    pub fn drain(&mut self, now_ns: u64, flush: bool, out: &mut Vec<Span>) {
        while let Some((at, _)) = self.held.front() {
            if !flush && at.saturating_add(self.cfg.hold_ns) > now_ns {
                break;
            }
            let (_, mut span) = self.held.pop_front().expect("front exists");
            span.trace_id = self.resolve(span.trace_id);
            if let Some((parent, link)) = self.late_parents.remove(&span.span_id)
                && span.parent_span_id == 0
            {
                span.parent_span_id = parent;
                if let Some(t) = span.traced_mut() {
                    t.link = Some(link);
                }
            }
            out.push(span);
        }
        let window = self.cfg.join_window_ns;
        let fresh = |ts: u64| ts.saturating_add(window) > now_ns;
        let (clients, waiting) = (self.clients.len(), self.waiting.len());
        self.clients.retain(|_, c| fresh(c.ts_ns));
        self.waiting.retain(|_, w| fresh(w.ts_ns));
        self.expired[JoinExpired::Client as usize].add((clients - self.clients.len()) as u64);
        self.expired[JoinExpired::Server as usize].add((waiting - self.waiting.len()) as u64);
        if self.held.is_empty() && self.waiting.is_empty() {
            self.aliases.clear();
            self.late_parents.clear();
        }
    }

    /// Requests waiting to be joined, for metrics.
    pub fn pending_joins(&self) -> usize {
        self.clients.len() + self.waiting.len()
    }
}

#[cfg(test)]
mod tests;
