//! Stitching: gives each span its trace id and parent from the strongest evidence available
//! (DESIGN.md, Stitching), recorded as the span's [`Link`]. Ids are assigned when a request
//! starts, so calls made while it is served can name it as their parent before it ends.
//!
//! Evidence, strongest first:
//! 1. an adopted context (`traceparent`, `uber-trace-id`, SQL comment) in the request;
//! 2. a TCP-option context written by the peer host's daemon (when present);
//! 3. the same-host tuple join: the client's n-th request on a connection is the server's n-th
//!    on the same connection seen from the other end. Loopback tuples are keyed with the network
//!    namespace (every namespace has its own 127.0.0.1); a connection's entries go when it
//!    closes; a connection whose count may have drifted (its session lost framing) makes no
//!    join, so request n is never paired with response n±1;
//! 4. thread causality: a call made by the thread serving exactly one inbound request is that
//!    request's child, provided the thread has not had two in flight since it last had none
//!    (the kernel applies the same rule to the ids it puts in the TCP option). Otherwise no link
//!    is made, and the span never takes the thread's trace id: it starts a trace of its own.
//!    In Go programs the rule holds per goroutine (the kernel reads the current goroutine's id):
//!    calls whose goroutine is known are keyed by it, others by their thread ([`Runner`]).
//!    A goroutine handed a request by the one that read it (grpc-go runs each stream's handler
//!    in a goroutine of its own) serves it too ([`Stitcher::server_handoff`]); a call written
//!    by another goroutine than the one that makes it (grpc-go's writer) is that goroutine's
//!    ([`Stitcher::client_caller`]).
//!
//! The kernel may report the server's read before the client's write (both return around the
//! same instant on two CPUs). The server then starts with a provisional trace id; when the
//! client's request arrives, the server span gets its parent and the provisional trace id is
//! aliased to the client's. Finished spans are held for `hold_ns` before they leave, so aliases
//! and late parents are applied to them; this is a pure state machine driven by event times.

mod joins;
mod links;

use std::collections::VecDeque;

use crate::model::hash::FastMap;
use std::net::IpAddr;

use joins::{ClientEntry, Joins, WaitingServer};
use links::AgingMap;

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

/// Who serves a request or makes a call, for thread causality: the thread, or in a Go program
/// the goroutine (Go runs many goroutines on one thread and moves them between threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runner {
    Thread(u32),
    Goroutine(u64),
}

impl Runner {
    /// The goroutine when the kernel read it, else the thread.
    pub fn of(tid: u32, goid: Option<u64>) -> Self {
        match goid {
            Some(g) => Runner::Goroutine(g),
            None => Runner::Thread(tid),
        }
    }
}

/// Where a request started.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub pid: u32,
    pub tid: u32,
    /// Go programs: the goroutine that made the call, when the kernel read it.
    pub goid: Option<u64>,
    /// The connection as seen by this process.
    pub tuple: Tuple,
    pub seq: u64,
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// Inode number of the connection's network namespace (0: unknown).
    pub netns: u32,
    /// False when `seq` may have drifted from the other end's count (the session lost framing,
    /// or events of the connection were lost): no same-host join is made.
    pub aligned: bool,
}

impl Origin {
    fn runner(&self) -> Runner {
        Runner::of(self.tid, self.goid)
    }

    /// The join key of this request's connection, as the client sees it.
    fn conn_key(&self, client_view: Tuple) -> ConnKey {
        ConnKey::new(self.netns, client_view)
    }
}

/// A connection in the join tables: its tuple as the client sees it, and for loopback tuples
/// the network namespace (identical loopback tuples in two namespaces are two connections;
/// other addresses may join across namespaces of this host, over a veth pair).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    netns: u32,
    tuple: Tuple,
}

impl ConnKey {
    pub fn new(netns: u32, client_view: Tuple) -> Self {
        let lo = |ip: IpAddr| ip.to_canonical().is_loopback();
        let loopback = lo(client_view.local.ip()) && lo(client_view.remote.ip());
        ConnKey { netns: if loopback { netns } else { 0 }, tuple: client_view }
    }
}

/// Inbound requests a thread or goroutine serves (mirrors the kernel's `ThreadServing`).
#[derive(Debug, Default)]
struct Serving {
    /// By span id: a request's end removes it at once, however many a thread serves (an event
    /// loop may have hundreds read and not yet answered).
    requests: FastMap<u64, TraceId>,
    /// Two were in flight at once since the thread last served none: not provable.
    mixed: bool,
}

/// What thread causality proves for a call made by a thread.
enum ThreadLink {
    /// The thread serves exactly this request: (span id, trace id).
    Proven(u64, TraceId),
    /// The thread serves several requests (or did since it last served none).
    Ambiguous,
    /// The thread serves nothing.
    None,
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

/// Stitcher settings.
#[derive(Clone, Copy, Debug)]
pub struct StitchConfig {
    /// How long finished spans are held for late links (ns).
    pub hold_ns: u64,
    /// How long a client request waits for its server side to appear (ns).
    pub join_window_ns: u64,
    /// How long an alias (provisional trace → joined trace), a late parent or a disowned span
    /// is kept after it was made (ns): long enough for the request that made it to finish and
    /// its spans to leave the hold.
    pub link_window_ns: u64,
    /// Most entries of each link table (aliases, late parents, disowned spans); beyond it the
    /// oldest goes first, counted as `link_limit` (count).
    pub max_links: usize,
    /// Most requests waiting for their other side, in each direction (client first, server
    /// first); beyond it the oldest eighth goes, counted as `join_limit` (count).
    pub max_joins: usize,
}

impl Default for StitchConfig {
    fn default() -> Self {
        (&crate::config::StitchSettings::default()).into()
    }
}

impl From<&crate::config::StitchSettings> for StitchConfig {
    fn from(s: &crate::config::StitchSettings) -> Self {
        let ns = |ms: u64| ms.saturating_mul(1_000_000);
        StitchConfig {
            hold_ns: ns(s.hold_ms),
            join_window_ns: ns(s.join_window_ms),
            link_window_ns: ns(s.link_window_ms),
            max_links: s.max_links.max(1),
            max_joins: s.max_joins.max(1),
        }
    }
}

pub struct Stitcher<I: IdSource = RandomIds> {
    cfg: StitchConfig,
    ids: I,
    /// Client requests by connection and request number, waiting for the server side.
    clients: Joins<ClientEntry>,
    /// Server requests that started before their client side was seen, by the client's key.
    waiting: Joins<WaitingServer>,
    /// Inbound requests being served, by (pid, thread or goroutine).
    serving: FastMap<(u32, Runner), Serving>,
    /// Requests also served by a goroutine they were handed to: span id → (pid, goroutine).
    /// Entries go when the request is done; bound: `max_links`.
    handed: FastMap<u64, (u32, Runner)>,
    /// Client spans whose kernel ids named a served trace the stitcher could not prove: span id
    /// → the fresh trace the span got instead (a same-host server joined by the option follows).
    disowned: AgingMap<u64, TraceId>,
    /// Provisional trace id → the trace it joined.
    aliases: AgingMap<TraceId, TraceId>,
    /// Parents found after a span started: span id → (parent span id, link).
    late_parents: AgingMap<u64, (u64, Link)>,
    /// Finished spans waiting out the hold, in order of arrival.
    held: VecDeque<(u64, Span)>,
    /// Joins given up, by [`JoinDropped`].
    expired: [Counter; JoinDropped::ALL.len()],
    figures: Figures,
}

/// A same-host join given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinDropped {
    /// A client request whose server side was never seen (an untraced or remote server).
    Client,
    /// A server request that started first and whose client side never came.
    Server,
    /// Entries of a connection that closed before the other side's request came.
    Closed,
    /// A request on a connection whose request count may have drifted: no join was tried.
    Unaligned,
    /// A waiting request given up because `max_joins` were waiting (the oldest go first).
    JoinLimit,
    /// An alias, late parent or disowned span older than the link window.
    LinkExpired,
    /// An alias, late parent or disowned span evicted because `max_links` were kept.
    LinkLimit,
}

impl JoinDropped {
    pub const ALL: [JoinDropped; 7] = [
        JoinDropped::Client,
        JoinDropped::Server,
        JoinDropped::Closed,
        JoinDropped::Unaligned,
        JoinDropped::JoinLimit,
        JoinDropped::LinkExpired,
        JoinDropped::LinkLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinDropped::Client => "client_join_expired",
            JoinDropped::Server => "server_join_expired",
            JoinDropped::Closed => "join_connection_closed",
            JoinDropped::Unaligned => "join_unaligned",
            JoinDropped::JoinLimit => "join_limit",
            JoinDropped::LinkExpired => "link_expired",
            JoinDropped::LinkLimit => "link_limit",
        }
    }
}

/// Label of spans that left with no link.
pub const NO_LINK: &str = "none";

/// Stitching figures of the spans that left: by link evidence, ambiguous, orphaned.
struct Figures {
    /// Index `Link as usize`; the last: no link.
    by_link: [Counter; Link::ALL.len() + 1],
    ambiguous: Counter,
    orphaned: Counter,
}

impl Figures {
    fn detached() -> Self {
        Figures {
            by_link: std::array::from_fn(|_| Counter::detached()),
            ambiguous: Counter::detached(),
            orphaned: Counter::detached(),
        }
    }

    fn registered(reg: &Registry) -> Self {
        let label = |i: usize| Link::ALL.get(i).map_or(NO_LINK, |l| l.as_str());
        Figures {
            by_link: std::array::from_fn(|i| {
                reg.counter(
                    "tracer_stitch_spans_total",
                    "Spans stitched, by the evidence of their link",
                    &[("link", label(i))],
                )
            }),
            ambiguous: reg.counter(
                "tracer_stitch_ambiguous_total",
                "Spans whose thread served several requests: thread causality was not provable and no link was made",
                &[],
            ),
            orphaned: reg.counter("tracer_stitch_orphaned_total", "Spans that left with no parent", &[]),
        }
    }

    fn count(&self, span: &Span) {
        let Some(t) = span.traced() else { return };
        let i = t.link.map_or(Link::ALL.len(), |l| Link::ALL.iter().position(|x| *x == l).unwrap_or(Link::ALL.len()));
        self.by_link[i].inc();
        if t.ambiguous {
            self.ambiguous.inc();
        }
        if span.parent_span_id == 0 {
            self.orphaned.inc();
        }
    }
}

/// A snapshot of the stitching figures (tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FigureStats {
    pub by_link: [u64; Link::ALL.len() + 1],
    pub ambiguous: u64,
    pub orphaned: u64,
}

impl Stitcher<RandomIds> {
    pub fn new(cfg: StitchConfig) -> Self {
        Self::with_ids(cfg, RandomIds)
    }

    /// A stitcher that counts the joins it gives up in `tracer_stitch_dropped_total{reason}`.
    pub fn registered(cfg: StitchConfig, reg: &Registry) -> Self {
        let mut s = Self::new(cfg);
        s.expired = JoinDropped::ALL.map(|r| {
            reg.counter(
                "tracer_stitch_dropped_total",
                "Same-host joins given up (other side never came, connection closed, request count not aligned), by reason",
                &[("reason", r.as_str())],
            )
        });
        s.figures = Figures::registered(reg);
        s
    }
}

impl<I: IdSource> Stitcher<I> {
    pub fn with_ids(cfg: StitchConfig, ids: I) -> Self {
        Stitcher {
            cfg,
            ids,
            clients: Joins::new(),
            waiting: Joins::new(),
            serving: FastMap::default(),
            handed: FastMap::default(),
            disowned: AgingMap::new(cfg.link_window_ns, cfg.max_links),
            aliases: AgingMap::new(cfg.link_window_ns, cfg.max_links),
            late_parents: AgingMap::new(cfg.link_window_ns, cfg.max_links),
            held: VecDeque::new(),
            expired: JoinDropped::ALL.map(|_| Counter::detached()),
            figures: Figures::detached(),
        }
    }

    /// Joins given up so far for `reason`.
    pub fn expired(&self, reason: JoinDropped) -> u64 {
        self.expired[reason as usize].get()
    }

    /// The stitching figures of the spans that left so far.
    pub fn figures(&self) -> FigureStats {
        FigureStats {
            by_link: std::array::from_fn(|i| self.figures.by_link[i].get()),
            ambiguous: self.figures.ambiguous.get(),
            orphaned: self.figures.orphaned.get(),
        }
    }

    /// What thread causality proves for a call made by (pid, runner) now.
    fn thread_link(&self, pid: u32, runner: Runner) -> ThreadLink {
        match self.serving.get(&(pid, runner)) {
            Some(Serving { requests, mixed: false }) if requests.len() == 1 => {
                let (&span, &trace) = requests.iter().next().expect("one request");
                ThreadLink::Proven(span, trace)
            }
            Some(_) => ThreadLink::Ambiguous,
            None => ThreadLink::None,
        }
    }

    /// Whether `t` is (or joined) the trace of a request (pid, runner) serves.
    fn served_by(&self, pid: u32, runner: Runner, t: TraceId) -> bool {
        let t = self.resolve(t);
        self.serving.get(&(pid, runner)).is_some_and(|s| s.requests.values().any(|trace| self.resolve(*trace) == t))
    }

    /// A fresh span id for a child of `parent`: never the parent's own (a span is never its
    /// own parent, whatever ids a peer or the kernel chose).
    fn child_id(&mut self, parent: u64) -> u64 {
        let mut id = self.ids.span_id();
        for _ in 0..3 {
            if id != parent {
                break;
            }
            id = self.ids.span_id();
        }
        if id == parent { parent.wrapping_add(1).max(1) } else { id }
    }

    fn adopt(&mut self, ctx: &TraceContext) -> Ids {
        Ids {
            trace_id: ctx.trace_id,
            span_id: self.child_id(ctx.span_id),
            parent_span_id: ctx.span_id,
            link: Some(link_from_source(ctx.source)),
            ambiguous: false,
        }
    }

    /// A server request that the client's TCP option linked: when its client is on this host
    /// and came first (as it does, its write preceding the server's read), the client's join
    /// entry is done with. Left, it would wait out the join window for nothing, and under load
    /// fill the table and push out joins still needed.
    fn settle_client(&mut self, o: &Origin) {
        self.clients.take(&o.conn_key(o.tuple.reversed()), o.seq);
    }

    /// A server read a request. `context` is what the request carried; `kernel` what the kernel
    /// attached (the peer daemon's TCP option, or the trace id it gave the serving thread).
    pub fn server_request(&mut self, o: Origin, context: Option<&TraceContext>, kernel: Option<KernelIds>) -> Ids {
        let mut kernel_trace = kernel.and_then(KernelIds::server_trace);
        let ids = if let Some(ctx) = context {
            self.adopt(ctx)
        } else if let Some(KernelIds::Peer { trace_id, parent_span_id }) = kernel {
            // A client on this host whose kernel ids named a trace it could not prove: its span
            // got a fresh trace, and so does its server (the named trace stays the other
            // request's: it is not aliased).
            let trace_id = match self.disowned.get(&parent_span_id) {
                Some(fresh) => {
                    kernel_trace = None;
                    *fresh
                }
                None => trace_id,
            };
            let ids = Ids {
                trace_id,
                span_id: self.child_id(parent_span_id),
                parent_span_id,
                link: Some(Link::TcpOption),
                ambiguous: false,
            };
            if o.aligned {
                self.settle_client(&o);
            }
            ids
        } else if !o.aligned {
            self.expired[JoinDropped::Unaligned as usize].inc();
            let trace_id = kernel_trace.unwrap_or_else(|| self.ids.trace_id());
            Ids { trace_id, span_id: self.ids.span_id(), parent_span_id: 0, link: None, ambiguous: false }
        } else {
            let key = o.conn_key(o.tuple.reversed());
            let found = self.clients.take(&key, o.seq);
            match found {
                Some(c) => Ids {
                    trace_id: c.trace_id,
                    span_id: self.child_id(c.span_id),
                    parent_span_id: c.span_id,
                    link: Some(Link::SameHostTuple),
                    ambiguous: false,
                },
                None => {
                    let trace_id = kernel_trace.unwrap_or_else(|| self.ids.trace_id());
                    let ids =
                        Ids { trace_id, span_id: self.ids.span_id(), parent_span_id: 0, link: None, ambiguous: false };
                    let w = WaitingServer { provisional: ids.trace_id, span_id: ids.span_id, ts_ns: o.ts_ns };
                    let (closed, limit) =
                        (&self.expired[JoinDropped::Closed as usize], &self.expired[JoinDropped::JoinLimit as usize]);
                    self.waiting.add(key, o.seq, w, self.cfg.max_joins, closed, limit);
                    ids
                }
            }
        };
        // Calls the serving thread makes carry the kernel's trace id: on this host they join the
        // trace the request joined.
        if let Some(kt) = kernel_trace.filter(|kt| *kt != ids.trace_id) {
            self.aliases.insert(kt, ids.trace_id, o.ts_ns, &self.expired[JoinDropped::LinkLimit as usize]);
        }
        let serving = self.serving.entry((o.pid, o.runner())).or_default();
        serving.requests.insert(ids.span_id, ids.trace_id);
        if serving.requests.len() > 1 {
            serving.mixed = true;
        }
        ids
    }

    /// A server finished (or abandoned) a request: its thread (or goroutine) no longer serves it,
    /// nor does a goroutine it was handed to.
    pub fn server_done(&mut self, pid: u32, hint: Option<Runner>, span_id: u64) {
        let mut keys: Vec<(u32, Runner)> = match hint {
            Some(r) if self.serving.contains_key(&(pid, r)) => vec![(pid, r)],
            _ => self.serving.keys().filter(|(p, _)| *p == pid).copied().collect(),
        };
        keys.extend(self.handed.remove(&span_id));
        for key in keys {
            self.unserve(key, span_id);
        }
    }

    fn unserve(&mut self, key: (u32, Runner), span_id: u64) {
        if let Some(s) = self.serving.get_mut(&key) {
            s.requests.remove(&span_id);
            if s.requests.is_empty() {
                self.serving.remove(&key);
            }
        }
    }

    /// The request `ids` names (being served) was handed to `runner` (grpc-go runs a stream's
    /// handler in a goroutine of its own): `runner` serves it too until it is done, and the
    /// goroutine rule makes its calls the request's children. Taking up the same request again
    /// changes nothing; a second request in flight makes the runner ambiguous, as for a thread.
    pub fn server_handoff(&mut self, pid: u32, runner: Runner, ids: &Ids) {
        let span_id = ids.span_id;
        match self.handed.get(&span_id) {
            Some(at) if *at == (pid, runner) => return,
            Some(&other) => self.unserve(other, span_id),
            None if self.handed.len() >= self.cfg.max_links => {
                self.expired[JoinDropped::LinkLimit as usize].inc();
                return;
            }
            None => {}
        }
        self.handed.insert(span_id, (pid, runner));
        let serving = self.serving.entry((pid, runner)).or_default();
        serving.requests.entry(span_id).or_insert(ids.trace_id);
        if serving.requests.len() > 1 {
            serving.mixed = true;
        }
    }

    /// The client request `ids` names, which started without a parent, is a call of `runner`
    /// (grpc-go's writer goroutine wrote it; `runner` sends on its stream): when thread
    /// causality proves the request `runner` serves, that request is its parent, found late, and
    /// its trace joins that one.
    pub fn client_caller(&mut self, pid: u32, runner: Runner, ids: &Ids, ts_ns: u64) {
        if ids.parent_span_id != 0 || ids.link.is_some() {
            return;
        }
        let ThreadLink::Proven(parent, trace) = self.thread_link(pid, runner) else { return };
        let (own, joined) = (self.resolve(ids.trace_id), self.resolve(trace));
        // The request's trace is its own (fresh, or its server's): never one a request of this
        // process is served in, which would merge two requests.
        let served =
            self.serving.iter().any(|((p, _), s)| *p == pid && s.requests.values().any(|t| self.resolve(*t) == own));
        if served && own != joined {
            return;
        }
        let limit = &self.expired[JoinDropped::LinkLimit as usize];
        if own != joined {
            self.aliases.insert(ids.trace_id, joined, ts_ns, limit);
        }
        self.late_parents.insert(ids.span_id, (parent, Link::Thread), ts_ns, limit);
    }

    /// A client sent a request. `kernel` holds the ids the kernel put in the request's TCP
    /// option: the span uses them, so that the server host's span names it as parent. A span
    /// whose thread causality is not proven never takes a served trace id.
    pub fn client_request(&mut self, o: Origin, context: Option<&TraceContext>, kernel: Option<KernelIds>) -> Ids {
        let mut ids = if let Some(ctx) = context {
            self.adopt(ctx)
        } else {
            let thread = self.thread_link(o.pid, o.runner());
            let ambiguous = matches!(thread, ThreadLink::Ambiguous);
            match (kernel, thread) {
                (Some(KernelIds::Client { trace_id, span_id }), ThreadLink::Proven(parent, trace))
                    if span_id != parent =>
                {
                    let (kt, t) = (self.resolve(trace_id), self.resolve(trace));
                    if kt != t {
                        self.aliases.insert(trace_id, t, o.ts_ns, &self.expired[JoinDropped::LinkLimit as usize]);
                    }
                    Ids { trace_id, span_id, parent_span_id: parent, link: Some(Link::Thread), ambiguous: false }
                }
                (Some(KernelIds::Client { trace_id, span_id }), _) => {
                    // The kernel gives a thread's trace only when it proves causality; should
                    // it have named a trace served here (its view and this one differ after
                    // lost events), the span still does not join it.
                    let trace_id = if self.served_by(o.pid, o.runner(), trace_id) {
                        let fresh = self.ids.trace_id();
                        self.disowned.insert(span_id, fresh, o.ts_ns, &self.expired[JoinDropped::LinkLimit as usize]);
                        fresh
                    } else {
                        trace_id
                    };
                    Ids { trace_id, span_id, parent_span_id: 0, link: None, ambiguous }
                }
                (_, ThreadLink::Proven(parent, trace)) => Ids {
                    trace_id: trace,
                    span_id: self.child_id(parent),
                    parent_span_id: parent,
                    link: Some(Link::Thread),
                    ambiguous: false,
                },
                _ => Ids {
                    trace_id: self.ids.trace_id(),
                    span_id: self.ids.span_id(),
                    parent_span_id: 0,
                    link: None,
                    ambiguous,
                },
            }
        };
        if !o.aligned {
            self.expired[JoinDropped::Unaligned as usize].inc();
            return ids;
        }
        let key = o.conn_key(o.tuple);
        match self.waiting.take(&key, o.seq) {
            // The server side started first: it joins this trace now.
            Some(w) => {
                let canonical = self.resolve(ids.trace_id);
                let limit = &self.expired[JoinDropped::LinkLimit as usize];
                if w.provisional != canonical {
                    self.aliases.insert(w.provisional, canonical, o.ts_ns, limit);
                }
                if w.span_id != ids.span_id {
                    self.late_parents.insert(w.span_id, (ids.span_id, Link::SameHostTuple), o.ts_ns, limit);
                }
                ids.trace_id = canonical;
            }
            None => {
                let c = ClientEntry { trace_id: ids.trace_id, span_id: ids.span_id, ts_ns: o.ts_ns };
                let (closed, limit) =
                    (&self.expired[JoinDropped::Closed as usize], &self.expired[JoinDropped::JoinLimit as usize]);
                self.clients.add(key, o.seq, c, self.cfg.max_joins, closed, limit);
            }
        }
        ids
    }

    /// One end of a connection closed (`client_view`: its tuple as the client sees it): its
    /// join entries wait only the hold for the other end's late events, then go, so that a
    /// later connection with the same tuple never meets them.
    pub fn closed(&mut self, netns: u32, client_view: Tuple, now_ns: u64) {
        let key = ConnKey::new(netns, client_view);
        self.clients.close(&key, now_ns);
        self.waiting.close(&key, now_ns);
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
            self.figures.count(&span);
            out.push(span);
        }
        let (window, hold) = (self.cfg.join_window_ns, self.cfg.hold_ns);
        let closed = &self.expired[JoinDropped::Closed as usize];
        self.clients.expire(now_ns, window, hold, closed, &self.expired[JoinDropped::Client as usize]);
        self.waiting.expire(now_ns, window, hold, closed, &self.expired[JoinDropped::Server as usize]);
        let aged = &self.expired[JoinDropped::LinkExpired as usize];
        self.aliases.expire(now_ns, aged);
        self.late_parents.expire(now_ns, aged);
        self.disowned.expire(now_ns, aged);
        if self.held.is_empty() && self.waiting.is_empty() {
            self.aliases.clear();
            self.late_parents.clear();
            self.disowned.clear();
        }
    }

    /// Entries of the link tables: (aliases, late parents, disowned spans).
    pub fn link_entries(&self) -> (usize, usize, usize) {
        (self.aliases.len(), self.late_parents.len(), self.disowned.len())
    }

    /// An estimate of the heap bytes of the stitcher's tables (metrics): join tables, link
    /// tables, serving threads, and the held spans' fixed part.
    pub fn heap_bytes(&self) -> usize {
        let serving = self.serving.capacity() * (std::mem::size_of::<((u32, u32), Serving)>() + 1)
            + self.handed.capacity() * (std::mem::size_of::<(u64, (u32, Runner))>() + 1)
            + self.serving.values().map(|s| s.requests.capacity() * 25).sum::<usize>();
        self.clients.heap_bytes()
            + self.waiting.heap_bytes()
            + self.aliases.heap_bytes()
            + self.late_parents.heap_bytes()
            + self.disowned.heap_bytes()
            + serving
            + self.held.capacity() * std::mem::size_of::<(u64, Span)>()
    }

    /// Requests waiting to be joined, for metrics.
    pub fn pending_joins(&self) -> usize {
        self.clients.len + self.waiting.len
    }
}

#[cfg(test)]
mod tests;
