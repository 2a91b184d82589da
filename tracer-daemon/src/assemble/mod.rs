//! Span assembly: per connection, detects the protocol from the first bytes (`detect`), feeds
//! each captured call to the protocol session, asks the stitcher for ids when a request starts
//! (with the peer's option, `options`, or the kernel's context as evidence), and turns each
//! finished exchange into a typed client or server span (`build`). Client-library calls seen
//! by uprobes are joined with the wire spans of the same thread (`library`).
//!
//! The stitcher is a sibling stage owned by the processing loop: assembly borrows it for each
//! event and hands it every finished span.

use std::{collections::VecDeque, net::SocketAddr, sync::Arc};

use crate::model::hash::{FastMap, FastSet};

mod build;
pub mod counters;
mod detect;
mod handoff;
mod library;
mod options;

pub use counters::AssembleCounters;

use self::detect::{Call, Detection, Proto};
use crate::{
    conn::{Conn, Role},
    model::{Process, Span, SpanKind, TraceId, conn::Direction},
    protocol::{self, Direction as PDir, Exchange, Redaction, Session},
    reader::{
        clock::WallClock,
        decode::{DataRecord, KernelContext, LibRecord, OptionRecord},
    },
    stitch::{IdSource, Ids, KernelIds, Origin, Runner, Stitcher},
};

const ECONNRESET: i64 = 104;
const EPIPE: i64 = 32;

/// What the kernel said of one call in a connection's request direction.
#[derive(Clone, Copy, Debug)]
struct CallNote {
    /// The call's entry time as fed to the session (`At::call`).
    call: u64,
    /// TCP sequence number of its first byte.
    seq: Option<u32>,
    context: Option<KernelContext>,
}

/// The thread (and in Go programs the goroutine) of the call that carried a request.
#[derive(Clone, Copy, Debug, Default)]
struct Caller {
    tid: u32,
    goid: Option<u64>,
}

impl Caller {
    fn runner(self) -> Runner {
        Runner::of(self.tid, self.goid)
    }
}
/// Most open requests kept per connection: what a protocol session keeps waiting for their
/// responses (requests beyond it are dropped by the session and never complete).
const MAX_OPEN: usize = {
    let (fifo, h2) = (protocol::session::MAX_PENDING, protocol::http2::session::MAX_STREAMS);
    if fifo > h2 { fifo } else { h2 }
};

/// Most calls remembered per connection for `CallNote` lookups.
const MAX_CALL_NOTES: usize = 32;

/// Per-connection assembly state (the connection table's payload).
#[derive(Default)]
pub struct ConnSpans {
    proto: Proto,
    /// Requests started and not finished: seq → (ids, thread and goroutine that carried the
    /// request).
    open: FastMap<u64, (Ids, Caller)>,
    /// The connection saw a reset (ECONNRESET / EPIPE).
    reset: bool,
    /// Recent calls in the request direction that the kernel gave a sequence number or a
    /// context, oldest first: a request that begins in one of them takes its kernel ids.
    calls: VecDeque<CallNote>,
    /// Inode number of the connection's network namespace (0 until a record names it).
    netns: u32,
    /// TCP sequence number the next call in the request direction should start at, when known
    /// (server reads and client writes carry it with propagation on).
    next_seq: Option<u32>,
    /// Calls of the connection were lost (a sequence number jumped): request numbers may
    /// differ from the other end's.
    lost: bool,
    /// The exit (CLOCK_MONOTONIC ns) of the connection's latest call captured short because
    /// the ring buffer was half full: spans begun before it may miss details.
    degraded_until_ns: Option<u64>,
    /// grpc-go streams a goroutine took up before their request started: (stream id, goid).
    handoffs: VecDeque<(u64, u64)>,
}

impl ConnSpans {
    /// An estimate of the heap bytes held for the connection: its protocol session, open
    /// requests and call notes.
    pub fn heap_bytes(&self) -> usize {
        let proto = match &self.proto {
            Proto::Active(s) => s.heap_bytes(),
            Proto::Detecting(calls) => calls.iter().map(|c| c.heap_bytes()).sum(),
            Proto::Fresh | Proto::Unknown | Proto::Own => 0,
        };
        proto
            + self.open.capacity() * (std::mem::size_of::<(u64, (Ids, u32))>() + 1)
            + self.calls.capacity() * std::mem::size_of::<CallNote>()
    }
}

/// What span building needs besides the ids: settings, the clock, process names, counters.
pub(crate) struct Env {
    redaction: Redaction,
    clock: WallClock,
    resolve: Box<dyn Fn(u32) -> Arc<Process> + Send>,
    /// The process of spans not yet handed on.
    unresolved: Arc<Process>,
    counters: AssembleCounters,
}

pub struct Assembler {
    env: Env,
    /// Local endpoints of the daemon's own connections.
    own: FastSet<SocketAddr>,
    /// The daemon's listening addresses (an unspecified address matches any on this host).
    own_listeners: Vec<SocketAddr>,
    /// Client-library calls in flight and their details.
    lib: library::Calls,
    /// Peers' options not yet matched to a request.
    options: options::PeerOptions,
}

fn pdir(d: Direction) -> PDir {
    match d {
        Direction::Egress => PDir::Egress,
        Direction::Ingress => PDir::Ingress,
    }
}

fn prole(r: Role) -> protocol::Role {
    match r {
        Role::Client => protocol::Role::Client,
        Role::Server => protocol::Role::Server,
    }
}

impl Assembler {
    pub fn new(
        redaction: Redaction,
        clock: WallClock,
        resolve: Box<dyn Fn(u32) -> Arc<Process> + Send>,
        counters: AssembleCounters,
    ) -> Self {
        let options = options::PeerOptions::new(
            counters.option(counters::OptionOutcome::Matched).clone(),
            counters.option(counters::OptionOutcome::Unmatched).clone(),
        );
        Assembler {
            env: Env {
                redaction,
                clock,
                resolve,
                unresolved: Arc::new(Process { service_name: String::new(), tags: Vec::new() }),
                counters,
            },
            own: FastSet::default(),
            own_listeners: Vec::new(),
            lib: library::Calls::default(),
            options,
        }
    }

    /// A process opened a connection: its service name is read now, while the process is
    /// surely alive, so that a short-lived client (a `curl` that exits as soon as it has its
    /// answer) keeps its name on spans finished after it exited.
    pub fn process_seen(&self, pid: u32) {
        let _ = (self.env.resolve)(pid);
    }

    /// A listening address of the daemon (admin endpoint, sampling endpoint): connections to it
    /// are the daemon's own traffic from their first byte, before its `accept` returns.
    pub fn own_listener(&mut self, addr: SocketAddr) {
        self.own_listeners.push(addr);
    }

    fn is_own(&self, remote: SocketAddr) -> bool {
        self.own.contains(&remote)
            || self
                .own_listeners
                .iter()
                .any(|l| l.port() == remote.port() && (l.ip().is_unspecified() || l.ip() == remote.ip()))
    }

    /// The daemon opened (`open`) or closed a connection with this local endpoint: traffic whose
    /// other end it is belongs to the daemon (exporting to a collector on this host, a scrape of
    /// its admin endpoint) and is never traced.
    pub fn own_endpoint(&mut self, local: SocketAddr, open: bool) {
        if open {
            self.own.insert(local);
        } else {
            self.own.remove(&local);
        }
    }

    /// The kernel lost calls of `conn` before `rec` (its ring buffer or in-flight table was
    /// full): the spans that follow are marked, make no same-host joins by number, and the
    /// session re-pairs from the next message boundary in each direction that lost calls.
    fn on_lost(&mut self, conn: &mut Conn<ConnSpans>, rec: &DataRecord) {
        let st = &mut conn.state;
        if !st.lost {
            st.lost = true;
            self.env.counters.lost_calls.inc();
        }
        if let Proto::Active(session) = &mut st.proto {
            for dir in [Direction::Ingress, Direction::Egress] {
                if rec.lost_before.has(dir) {
                    session.lost_calls(pdir(dir));
                }
            }
        }
        // A sequence number after the loss is the new reference.
        st.next_seq = None;
    }

    /// One captured data call on `conn`.
    pub fn on_data<I: IdSource>(&mut self, conn: &mut Conn<ConnSpans>, rec: &DataRecord, st: &mut Stitcher<I>) {
        if !rec.lost_before.is_none() {
            self.on_lost(conn, rec);
        }
        if rec.degraded {
            conn.state.degraded_until_ns = Some(rec.ts_exit_ns);
        }
        if rec.ret < 0 {
            if rec.ret == -ECONNRESET || rec.ret == -EPIPE {
                conn.state.reset = true;
            }
            return;
        }
        if rec.ret == 0 {
            return;
        }
        self.lib.on_wire(conn.pid, rec.tid, conn.tuple, conn.role == Role::Client, rec.context);
        if rec.netns != 0 {
            conn.state.netns = rec.netns;
        }
        let request_dir = match conn.role {
            Role::Client => Direction::Egress,
            Role::Server => Direction::Ingress,
        };
        if rec.direction == request_dir {
            let st = &mut conn.state;
            if let (Some(seq), Some(expected)) = (rec.seq, st.next_seq)
                && seq != expected
                && !st.lost
            {
                st.lost = true;
                self.env.counters.lost_calls.inc();
            }
            st.next_seq = rec.seq.or(st.next_seq).map(|s| s.wrapping_add(rec.ret as u32));
        }
        // Bytes a process receives exist for it when its read returns: a blocking read's entry
        // only says when it started waiting. Bytes it sends leave from the write's entry.
        let enter = match rec.direction {
            Direction::Ingress => rec.ts_exit_ns,
            Direction::Egress => rec.ts_enter_ns,
        };
        let call = Call {
            dir: pdir(rec.direction),
            data: &rec.payload,
            total: rec.ret as usize,
            tid: rec.tid,
            goid: rec.goid,
            enter,
            exit: rec.ts_exit_ns,
            context: rec.context,
            seq: rec.seq,
        };
        let pending = match std::mem::take(&mut conn.state.proto) {
            Proto::Active(mut session) => {
                // The common case: the payload is parsed where it lies, never copied.
                self.feed(conn, &mut session, &call, st);
                conn.state.proto = Proto::Active(session);
                return;
            }
            Proto::Fresh if self.is_own(conn.tuple.remote) => {
                self.env.counters.own_traffic.inc();
                conn.state.proto = Proto::Own;
                return;
            }
            Proto::Fresh => vec![call.to_owned()],
            Proto::Detecting(mut calls) => {
                calls.push(call.to_owned());
                calls
            }
            state @ (Proto::Unknown | Proto::Own) => {
                conn.state.proto = state;
                return;
            }
        };
        let sessions = &self.env.counters.sessions;
        conn.state.proto = match detect::detect(pending, prole(conn.role), self.env.redaction, sessions) {
            Detection::Found(p, mut session, pending) => {
                self.env.counters.detected(p);
                for call in &pending {
                    self.feed(conn, &mut session, &call.view(), st);
                }
                Proto::Active(session)
            }
            Detection::Wait(pending) => Proto::Detecting(pending),
            Detection::Unknown => {
                self.env.counters.unknown_protocol.inc();
                Proto::Unknown
            }
        };
    }

    fn feed<I: IdSource>(
        &mut self,
        conn: &mut Conn<ConnSpans>,
        session: &mut Session,
        call: &Call<'_>,
        st: &mut Stitcher<I>,
    ) {
        let request_dir = prole(conn.role).request_direction();
        if call.dir == request_dir && (call.seq.is_some() || call.context.is_some()) {
            let notes = &mut conn.state.calls;
            if notes.len() >= MAX_CALL_NOTES {
                notes.pop_front();
            }
            notes.push_back(CallNote { call: call.enter, seq: call.seq, context: call.context });
        }
        let mut done = Vec::new();
        session.feed(call.dir, call.data, call.total, call.enter, call.exit, &mut done);
        self.start_requests(conn, session, Caller { tid: call.tid, goid: call.goid }, call.exit, st);
        for ex in done {
            self.finish(conn, ex, call.exit, st);
        }
    }

    fn start_requests<I: IdSource>(
        &mut self,
        conn: &mut Conn<ConnSpans>,
        session: &mut Session,
        caller: Caller,
        ts: u64,
        st: &mut Stitcher<I>,
    ) {
        let redis = session.protocol() == protocol::Protocol::Redis;
        let drifted = session.drifted();
        for started in session.take_started() {
            let origin = Origin {
                pid: conn.pid,
                tid: caller.tid,
                goid: caller.goid,
                tuple: conn.tuple,
                seq: started.seq,
                ts_ns: ts,
                netns: conn.state.netns,
                aligned: !conn.state.lost && !drifted,
            };
            let kernel = started.at.and_then(|at| self.kernel_ids_at(conn, at));
            let handoff = handoff::take(&mut conn.state, started.seq);
            let ids = match conn.role {
                Role::Server => {
                    let ids = st.server_request(origin, started.context.as_ref(), kernel);
                    if let Some(goid) = handoff {
                        st.server_handoff(conn.pid, Runner::Goroutine(goid), &ids);
                    }
                    ids
                }
                Role::Client => {
                    // The goroutine that sends on the stream makes the call, whichever wrote it.
                    let origin = Origin { goid: handoff.or(origin.goid), ..origin };
                    st.client_request(origin, started.context.as_ref(), kernel)
                }
            };
            if conn.state.open.len() >= MAX_OPEN && !conn.state.open.contains_key(&started.seq) {
                // The session dropped this request (its queue is full): it never completes.
                self.env.counters.dropped[counters::AssembleDrop::OpenFull as usize].inc();
                if conn.role == Role::Server {
                    st.server_done(conn.pid, Some(caller.runner()), ids.span_id);
                }
                continue;
            }
            if conn.role == Role::Client {
                self.lib.on_request_started(conn.pid, caller.tid, ids.span_id, redis);
            }
            conn.state.open.insert(started.seq, (ids, caller));
        }
    }

    /// The kernel ids of a request that begins at `at`: on a client, the context of the call
    /// when the request begins at its first byte (the option went on that byte's packet); on a
    /// server, the peer's option keyed by the request's first byte, wherever it is in the read,
    /// else the kernel's own choice for a read that begins with the request.
    fn kernel_ids_at(&mut self, conn: &mut Conn<ConnSpans>, at: protocol::At) -> Option<KernelIds> {
        let notes = &mut conn.state.calls;
        // Requests begin in order: calls before this one name no later request.
        while notes.front().is_some_and(|n| n.call < at.call) {
            notes.pop_front();
        }
        let note = *notes.front().filter(|n| n.call == at.call)?;
        if conn.role == Role::Server
            && let Some(seq) = note.seq
            && let Some(peer) = self.options.take(conn.id, seq.wrapping_add(at.offset as u32))
        {
            return Some(peer);
        }
        if at.offset != 0 {
            return None;
        }
        note.context.and_then(|c| kernel_ids(conn.role, c))
    }

    /// A peer's option arrived on a packet of a server connection (before the read of its
    /// bytes: the kernel queues both in order).
    pub fn on_option(&mut self, rec: &OptionRecord) {
        if let Some(ids) = kernel_ids(Role::Server, rec.context) {
            self.options.add(rec.conn_id, rec.seq, ids);
        }
    }

    /// The kernel socket `id` is gone: its unmatched options with it.
    pub fn forget_options(&mut self, id: u64) {
        self.options.forget(id);
    }

    fn finish<I: IdSource>(&mut self, conn: &mut Conn<ConnSpans>, ex: Exchange, now_ns: u64, st: &mut Stitcher<I>) {
        let (ids, caller) = match conn.state.open.remove(&ex.seq) {
            Some(v) => v,
            None => {
                // A request that never reported its start (should not happen): stitch it now.
                let origin = Origin {
                    pid: conn.pid,
                    tid: 0,
                    goid: None,
                    tuple: conn.tuple,
                    seq: ex.seq,
                    ts_ns: ex.start_ns,
                    netns: conn.state.netns,
                    aligned: false,
                };
                let ids = match conn.role {
                    Role::Server => st.server_request(origin, ex.context.as_ref(), None),
                    Role::Client => st.client_request(origin, ex.context.as_ref(), None),
                };
                (ids, Caller::default())
            }
        };
        let tid = caller.tid;
        if conn.role == Role::Server {
            st.server_done(conn.pid, Some(caller.runner()), ids.span_id);
        }
        let kind = match conn.role {
            Role::Client => SpanKind::Client,
            Role::Server => SpanKind::Server,
        };
        let facts = build::Facts {
            kind,
            pid: conn.pid,
            tid,
            tuple: Some(conn.tuple),
            operation: ex.operation,
            attrs: ex.attrs,
            truncated: ex.truncated,
            data_lost: conn.state.lost,
            // The span began before the connection's last call captured short ended.
            capture_degraded: conn.state.degraded_until_ns.is_some_and(|until| ex.start_ns <= until),
            start_ns: ex.start_ns,
            end_ns: ex.end_ns,
            error: ex.error,
        };
        let span = build::span(facts, &ids, &self.env);
        self.env.counters.span();
        let span = match conn.role {
            Role::Client => self.lib.on_wire_span(conn.pid, tid, span, &self.env),
            Role::Server => Some(span),
        };
        if let Some(span) = span {
            st.finish(span, now_ns);
        }
    }

    /// One client-library event (uprobe): calls are tied to the wire by thread and time.
    pub fn on_lib<I: IdSource>(&mut self, rec: &LibRecord, st: &mut Stitcher<I>) {
        if rec.phase == crate::reader::decode::LibPhase::Enter {
            // A client that talks only over unix sockets opens no TCP connection: its process
            // is looked up (and read in the background when new) at its calls, so that their
            // spans carry its name when they leave.
            let _ = (self.env.resolve)(rec.pid);
        }
        self.lib.on_event(rec, st, &self.env);
    }

    /// The connection ended (close, final TCP state, process exit or eviction): requests still
    /// open end with an error span.
    pub fn on_close<I: IdSource>(&mut self, mut conn: Conn<ConnSpans>, ts_ns: u64, st: &mut Stitcher<I>) {
        self.forget_options(conn.id);
        let client_view = match conn.role {
            Role::Client => conn.tuple,
            Role::Server => conn.tuple.reversed(),
        };
        st.closed(conn.state.netns, client_view, ts_ns);
        if let Proto::Active(mut session) = std::mem::take(&mut conn.state.proto) {
            let mut done = Vec::new();
            let reset = conn.state.reset;
            session.close(ts_ns, reset, &mut done);
            for ex in done {
                self.finish(&mut conn, ex, ts_ns, st);
            }
        }
        for (_, (ids, caller)) in conn.state.open.drain() {
            if conn.role == Role::Server {
                st.server_done(conn.pid, Some(caller.runner()), ids.span_id);
            }
        }
    }

    /// Gives up library calls that went stale at `now_ns` (all with `flush`), then hands over
    /// the spans whose hold is over, each with its process's metadata: looked up only now, so
    /// that the metadata worker has read a new process's `/proc` during the hold.
    pub fn drain<I: IdSource>(&mut self, now_ns: u64, flush: bool, st: &mut Stitcher<I>, out: &mut Vec<Span>) {
        self.lib.expire(now_ns, flush, st, &self.env);
        let from = out.len();
        st.drain(now_ns, flush, out);
        for span in &mut out[from..] {
            if let Some(pid) = span.traced().map(|t| t.pid) {
                span.process = (self.env.resolve)(pid);
            }
        }
    }
}

/// The kernel context of a call, as stitching evidence for a connection with this role (a
/// context of the other side's kind is ignored).
fn kernel_ids(role: Role, c: KernelContext) -> Option<KernelIds> {
    let trace = |high, low| TraceId { high, low };
    match (role, c) {
        (Role::Client, KernelContext::Client { trace_hi, trace_lo, span_id }) => {
            Some(KernelIds::Client { trace_id: trace(trace_hi, trace_lo), span_id })
        }
        (Role::Server, KernelContext::Peer { trace_hi, trace_lo, span_id }) => {
            Some(KernelIds::Peer { trace_id: trace(trace_hi, trace_lo), parent_span_id: span_id })
        }
        (Role::Server, KernelContext::Server { trace_hi, trace_lo }) => {
            Some(KernelIds::Server { trace_id: trace(trace_hi, trace_lo) })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
