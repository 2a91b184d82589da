//! Span assembly: per connection, detects the protocol from the first bytes, feeds each captured
//! call to the protocol session, asks the stitcher for ids when a request starts, and turns each
//! finished exchange into a client or server span with the conventional tags. Client-library
//! calls seen by uprobes are joined with the wire spans of the same thread (`library`).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::Arc,
};

mod library;

use crate::{
    conn::{Conn, Role},
    model::{Log, Process, Span, SpanKind, Tag},
    protocol::{self, Detect, Direction as PDir, Exchange, Redaction, Session},
    reader::{
        clock::WallClock,
        decode::{DataRecord, KernelContext, LibFunction, LibRecord, OptionRecord},
    },
    model::{TraceId, conn::Direction},
    stitch::{IdSource, Ids, KernelIds, Origin, RandomIds, StitchConfig, Stitcher},
};

/// Bytes kept while the protocol of a connection is not yet known.
const DETECT_BYTES: usize = 4096;
/// Calls kept while the protocol of a connection is not yet known.
const DETECT_CALLS: usize = 8;

const ECONNRESET: i64 = 104;
const EPIPE: i64 = 32;

/// A captured call kept for replay once the protocol is known.
struct Buffered {
    dir: PDir,
    data: Vec<u8>,
    total: usize,
    tid: u32,
    enter: u64,
    exit: u64,
    /// Trace context the kernel attached to the call.
    context: Option<KernelContext>,
    /// TCP sequence number of the call's first byte.
    seq: Option<u32>,
}

/// One captured call as the protocol session reads it.
struct Call<'a> {
    dir: PDir,
    data: &'a [u8],
    total: usize,
    tid: u32,
    enter: u64,
    exit: u64,
    context: Option<KernelContext>,
    seq: Option<u32>,
}

impl Buffered {
    fn view(&self) -> Call<'_> {
        let Buffered { dir, ref data, total, tid, enter, exit, context, seq } = *self;
        Call { dir, data, total, tid, enter, exit, context, seq }
    }
}

impl Call<'_> {
    fn to_owned(&self) -> Buffered {
        let Call { dir, data, total, tid, enter, exit, context, seq } = *self;
        Buffered { dir, data: data.to_vec(), total, tid, enter, exit, context, seq }
    }
}

#[derive(Default)]
enum Proto {
    #[default]
    Fresh,
    Detecting(Vec<Buffered>),
    Active(Box<Session>),
    /// Not a protocol the daemon parses; the connection gives no spans.
    Unknown,
    /// The other end is the daemon itself (its exporter or admin traffic): never traced.
    Own,
}

/// What the kernel said of one call in a connection's request direction.
#[derive(Clone, Copy, Debug)]
struct CallNote {
    /// The call's entry time as fed to the session (`At::call`).
    call: u64,
    /// TCP sequence number of its first byte.
    seq: Option<u32>,
    context: Option<KernelContext>,
}

/// Most calls remembered per connection for `CallNote` lookups.
const MAX_CALL_NOTES: usize = 32;
/// Most peer options waiting per connection for their request.
const MAX_OPTIONS_PER_CONN: usize = 64;
/// Most connections with peer options waiting.
const MAX_OPTION_CONNS: usize = 16 * 1024;

/// Per-connection assembly state (the connection table's payload).
#[derive(Default)]
pub struct ConnSpans {
    proto: Proto,
    /// Requests started and not finished: seq → (ids, thread that carried the request).
    open: HashMap<u64, (Ids, u32)>,
    /// The connection saw a reset (ECONNRESET / EPIPE).
    reset: bool,
    /// Recent calls in the request direction that the kernel gave a sequence number or a
    /// context, oldest first: a request that begins in one of them takes its kernel ids.
    calls: VecDeque<CallNote>,
    /// The address tags of every span of the connection, formatted once.
    addr_tags: std::cell::OnceCell<Vec<Tag>>,
}

fn address_tags(conn: &Conn<ConnSpans>) -> Vec<Tag> {
    let peer = conn.tuple.remote;
    let mut tags = vec![
        Tag::str("net.peer.ip", peer.ip().to_string()),
        Tag::long("net.peer.port", peer.port() as i64),
        Tag::str("net.host.ip", conn.tuple.local.ip().to_string()),
        Tag::long("net.host.port", conn.tuple.local.port() as i64),
    ];
    if conn.role == Role::Client {
        // A peer that is not traced is named by its address.
        tags.push(Tag::str("peer.service", peer.to_string()));
    }
    tags
}

/// Counts for metrics, read by the pipeline.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssemblyStats {
    pub spans: u64,
    pub unknown_protocol: u64,
    /// Connections whose other end is the daemon itself.
    pub own_traffic: u64,
    /// Client-library calls joined with a wire span of the same call.
    pub lib_merged: u64,
    /// Client-library calls that became spans of their own (no wire exchange: TLS).
    pub lib_alone: u64,
    pub detected: [u64; 3],
    /// Server requests linked by a peer's option, and options that matched no request start.
    pub options_matched: u64,
    pub options_unmatched: u64,
}

pub struct Assembler<I: IdSource = RandomIds> {
    pub stitcher: Stitcher<I>,
    redaction: Redaction,
    clock: WallClock,
    resolve: Box<dyn Fn(u32) -> Arc<Process> + Send>,
    /// Local endpoints of the daemon's own connections.
    own: HashSet<SocketAddr>,
    /// The daemon's listening addresses (an unspecified address matches any on this host).
    own_listeners: Vec<SocketAddr>,
    /// Client-library calls in flight, per thread.
    lib: library::Calls,
    /// Peers' options not yet matched to a request, per connection id (sequence number of the
    /// packet's first byte, parent ids), in arrival order.
    options: HashMap<u64, VecDeque<(u32, KernelIds)>>,
    pub stats: AssemblyStats,
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

impl Assembler<RandomIds> {
    pub fn new(
        redaction: Redaction,
        clock: WallClock,
        stitch: StitchConfig,
        resolve: Box<dyn Fn(u32) -> Arc<Process> + Send>,
    ) -> Self {
        Self::with_stitcher(redaction, clock, Stitcher::new(stitch), resolve)
    }
}

impl<I: IdSource> Assembler<I> {
    pub fn with_stitcher(
        redaction: Redaction,
        clock: WallClock,
        stitcher: Stitcher<I>,
        resolve: Box<dyn Fn(u32) -> Arc<Process> + Send>,
    ) -> Self {
        Assembler {
            stitcher,
            redaction,
            clock,
            resolve,
            own: HashSet::new(),
            own_listeners: Vec::new(),
            lib: library::Calls::default(),
            options: HashMap::new(),
            stats: AssemblyStats::default(),
        }
    }

    /// A process opened a connection: its service name is read now, while the process is
    /// surely alive, so that a short-lived client (a `curl` that exits as soon as it has its
    /// answer) keeps its name on spans finished after it exited.
    pub fn process_seen(&self, pid: u32) {
        let _ = (self.resolve)(pid);
    }

    /// The daemon opened (`open`) or closed a connection with this local endpoint: traffic whose
    /// other end it is belongs to the daemon (exporting to a collector on this host, a scrape of
    /// its admin endpoint) and is never traced.
    /// A listening address of the daemon (admin endpoint, sampling endpoint): connections to it
    /// are the daemon's own traffic from their first byte, before its `accept` returns.
    pub fn own_listener(&mut self, addr: SocketAddr) {
        self.own_listeners.push(addr);
    }

    fn is_own(&self, remote: SocketAddr) -> bool {
        self.own.contains(&remote)
            || self.own_listeners.iter().any(|l| l.port() == remote.port() && (l.ip().is_unspecified() || l.ip() == remote.ip()))
    }

    pub fn own_endpoint(&mut self, local: SocketAddr, open: bool) {
        if open {
            self.own.insert(local);
        } else {
            self.own.remove(&local);
        }
    }

    /// One captured data call on `conn`.
    pub fn on_data(&mut self, conn: &mut Conn<ConnSpans>, rec: &DataRecord) {
        if rec.ret < 0 {
            if rec.ret == -ECONNRESET || rec.ret == -EPIPE {
                conn.state.reset = true;
            }
            return;
        }
        if rec.ret == 0 {
            return;
        }
        if let Some(call) = self.lib.active(conn.pid, rec.tid) {
            call.tuple = Some(conn.tuple);
            if let (Role::Client, Some(KernelContext::Client { .. }), None) = (conn.role, rec.context, call.kernel) {
                // Encrypted traffic: the library call's own span is the request the option names.
                call.kernel = rec.context.and_then(|c| kernel_ids(Role::Client, c));
            }
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
            enter,
            exit: rec.ts_exit_ns,
            context: rec.context,
            seq: rec.seq,
        };
        let role = prole(conn.role);
        let pending = match std::mem::take(&mut conn.state.proto) {
            Proto::Active(mut session) => {
                // The common case: the payload is parsed where it lies, never copied.
                self.feed(conn, &mut session, &call);
                conn.state.proto = Proto::Active(session);
                return;
            }
            Proto::Fresh if self.is_own(conn.tuple.remote) => {
                self.stats.own_traffic += 1;
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
        // Detect on everything seen so far in the first direction that spoke.
        let first_dir = pending[0].dir;
        let seen: Vec<u8> = pending.iter().filter(|c| c.dir == first_dir).flat_map(|c| c.data.iter().copied()).collect();
        match protocol::detect(&seen, first_dir, role) {
            Detect::Found(p) => {
                self.stats.detected[p as usize] += 1;
                let mut session = Box::new(Session::new(p, role, self.redaction));
                for call in &pending {
                    self.feed(conn, &mut session, &call.view());
                }
                conn.state.proto = Proto::Active(session);
            }
            Detect::NeedMore if seen.len() < DETECT_BYTES && pending.len() < DETECT_CALLS => {
                conn.state.proto = Proto::Detecting(pending);
            }
            _ => {
                self.stats.unknown_protocol += 1;
                conn.state.proto = Proto::Unknown;
            }
        }
    }

    fn feed(&mut self, conn: &mut Conn<ConnSpans>, session: &mut Session, call: &Call<'_>) {
        let request_dir = match conn.role {
            Role::Client => PDir::Egress,
            Role::Server => PDir::Ingress,
        };
        if call.dir == request_dir && (call.seq.is_some() || call.context.is_some()) {
            let notes = &mut conn.state.calls;
            if notes.len() >= MAX_CALL_NOTES {
                notes.pop_front();
            }
            notes.push_back(CallNote { call: call.enter, seq: call.seq, context: call.context });
        }
        let mut done = Vec::new();
        session.feed(call.dir, call.data, call.total, call.enter, call.exit, &mut done);
        self.start_requests(conn, session, call.tid, call.exit);
        for ex in done {
            self.finish(conn, ex, call.exit);
        }
    }

    fn start_requests(&mut self, conn: &mut Conn<ConnSpans>, session: &mut Session, tid: u32, ts: u64) {
        let redis = session.protocol() == protocol::Protocol::Redis;
        for started in session.take_started() {
            let origin = Origin { pid: conn.pid, tid, tuple: conn.tuple, seq: started.seq, ts_ns: ts };
            let kernel = started.at.and_then(|at| self.kernel_ids_at(conn, at));
            let ids = match conn.role {
                Role::Server => self.stitcher.server_request(origin, started.context.as_ref(), kernel),
                Role::Client => self.stitcher.client_request(origin, started.context.as_ref(), kernel),
            };
            if conn.role == Role::Client {
                if let Some(call) = self.lib.active(conn.pid, tid) {
                    call.started.push(ids.span_id);
                    call.wire = true;
                } else if redis {
                    self.lib.take_async(conn.pid, ids.span_id);
                }
            }
            conn.state.open.insert(started.seq, (ids, tid));
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
            && let Some(peer) = self.take_option(conn.id, seq.wrapping_add(at.offset as u32))
        {
            return Some(peer);
        }
        if at.offset != 0 {
            return None;
        }
        note.context.and_then(|c| kernel_ids(conn.role, c))
    }

    /// The peer's option for the byte at `seq` of connection `id`; options for earlier bytes
    /// (mid-request writes, requests that were not parsed) are dropped.
    fn take_option(&mut self, id: u64, seq: u32) -> Option<KernelIds> {
        let queue = self.options.get_mut(&id)?;
        while let Some(&(at, ids)) = queue.front() {
            if tracer_common::seq_before(seq, at) {
                break;
            }
            queue.pop_front();
            if at == seq {
                self.stats.options_matched += 1;
                return Some(ids);
            }
            self.stats.options_unmatched += 1;
        }
        None
    }

    /// A peer's option arrived on a packet of a server connection (before the read of its
    /// bytes: the kernel queues both in order).
    pub fn on_option(&mut self, rec: &OptionRecord) {
        let Some(ids) = kernel_ids(Role::Server, rec.context) else { return };
        if !self.options.contains_key(&rec.conn_id) && self.options.len() >= MAX_OPTION_CONNS {
            // Connections nobody reads (filtered processes) must not grow the table.
            let victim = self.options.keys().next().copied();
            if let Some(q) = victim.and_then(|v| self.options.remove(&v)) {
                self.stats.options_unmatched += q.len() as u64;
            }
        }
        let queue = self.options.entry(rec.conn_id).or_default();
        if queue.len() >= MAX_OPTIONS_PER_CONN {
            queue.pop_front();
            self.stats.options_unmatched += 1;
        }
        queue.push_back((rec.seq, ids));
    }

    /// The kernel socket `id` is gone: its unmatched options with it.
    pub fn forget_options(&mut self, id: u64) {
        if let Some(q) = self.options.remove(&id) {
            self.stats.options_unmatched += q.len() as u64;
        }
    }

    fn finish(&mut self, conn: &mut Conn<ConnSpans>, ex: Exchange, now_ns: u64) {
        let (ids, tid) = match conn.state.open.remove(&ex.seq) {
            Some(v) => v,
            None => {
                // A request that never reported its start (should not happen): stitch it now.
                let origin = Origin { pid: conn.pid, tid: 0, tuple: conn.tuple, seq: ex.seq, ts_ns: ex.start_ns };
                let ids = match conn.role {
                    Role::Server => self.stitcher.server_request(origin, ex.context.as_ref(), None),
                    Role::Client => self.stitcher.client_request(origin, ex.context.as_ref(), None),
                };
                (ids, 0)
            }
        };
        if conn.role == Role::Server {
            self.stitcher.server_done(conn.pid, Some(tid), ids.span_id);
        }
        let mut span = self.span(conn, &ex, &ids, tid);
        self.stats.spans += 1;
        if conn.role == Role::Client {
            let active = self.lib.active(conn.pid, tid);
            if let Some(call) = active {
                // This call's request (or the one it completes) is on the wire.
                call.wire = true;
                if call.started.contains(&ids.span_id) {
                    // Held until the library call returns, to carry its details.
                    call.parked.push(span);
                    return;
                }
            }
            if let Some((_, out)) = self.lib.pending.remove(&ids.span_id) {
                library::merge(&mut span, &out);
                self.stats.lib_merged += 1;
            } else if let Some(q) = self.lib.async_pending.remove(&ids.span_id) {
                if q.operation == span.operation {
                    library::merge(&mut span, &q.out);
                    self.stats.lib_merged += 1;
                }
            }
        }
        self.stitcher.finish(span, now_ns);
    }

    /// One client-library event (uprobe): calls are tied to the wire by thread and time.
    pub fn on_lib(&mut self, rec: &LibRecord) {
        let (lost, done) = self.lib.on_event(rec);
        if let Some(call) = lost {
            self.release(call, rec.ts_ns);
        }
        let Some(mut call) = done else { return };
        let out = library::outcome(&call, rec);
        let parked = std::mem::take(&mut call.parked);
        if let Some((first, rest)) = parked.split_first() {
            let mut first = first.clone();
            library::merge(&mut first, &out);
            self.stats.lib_merged += 1;
            self.stitcher.finish(first, rec.ts_ns);
            for s in rest {
                self.stitcher.finish(s.clone(), rec.ts_ns);
            }
            return;
        }
        if let Some(&span_id) = call.started.first() {
            // The wire request is still waiting for its response: it takes the details then.
            self.lib.pending.insert(span_id, (rec.ts_ns, out));
            return;
        }
        if call.function.is_async() && !call.wire {
            // Queued for the event loop: the details wait for the request on the wire.
            let (operation, _) = library::request_facts(&call, self.redaction);
            self.lib.queue_async(call.pid, library::Queued { operation, out, at_ns: rec.ts_ns });
            return;
        }
        if !library::stands_alone(&call, &out) {
            return;
        }
        match call.function {
            LibFunction::MysqlSendQuery => {
                // Encrypted: one span once mysql_read_query_result returns for this handle.
                let sent = library::SentQuery { call, out, tid: rec.tid, exit_ns: rec.ts_ns };
                if let Some(old) = self.lib.hold_send(rec.handle, sent) {
                    self.emit_alone(&old.call, &old.out, old.tid, old.exit_ns);
                }
            }
            LibFunction::MysqlReadQueryResult => match self.lib.sent.remove(&(call.pid, rec.handle)) {
                Some(mut sent) => {
                    // The read's result (error number and message) is the request's.
                    sent.call.tuple = sent.call.tuple.or(call.tuple);
                    sent.out.tags.retain(|t| t.key != "db.mysql.return_code");
                    for t in out.tags {
                        if !sent.out.tags.iter().any(|s| s.key == t.key) {
                            sent.out.tags.push(t);
                        }
                    }
                    sent.out.error = out.error.or(sent.out.error);
                    self.emit_alone(&sent.call, &sent.out, rec.tid, rec.ts_ns);
                }
                None => self.emit_alone(&call, &out, rec.tid, rec.ts_ns),
            },
            _ => self.emit_alone(&call, &out, rec.tid, rec.ts_ns),
        }
    }

    fn emit_alone(&mut self, call: &library::LibCall, out: &library::Outcome, tid: u32, end_ns: u64) {
        let span = self.lib_span(call, out, tid, end_ns);
        self.stats.spans += 1;
        self.stats.lib_alone += 1;
        self.stitcher.finish(span, end_ns);
    }

    /// A call whose exit never came: its held wire spans leave as they are.
    fn release(&mut self, mut call: library::LibCall, now_ns: u64) {
        for s in call.parked.drain(..) {
            self.stitcher.finish(s, now_ns);
        }
    }

    /// The client span of a library call that produced no wire exchange (encrypted traffic).
    fn lib_span(&mut self, call: &library::LibCall, out: &library::Outcome, tid: u32, end_ns: u64) -> Span {
        let (operation, facts) = library::request_facts(call, self.redaction);
        self.lib.next_seq += 1;
        let tuple = call.tuple.unwrap_or(crate::model::conn::Tuple {
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
        });
        // Keys of calls alone never meet a server side's (their sequence has the top bit set).
        let origin = Origin { pid: call.pid, tid, tuple, seq: (1 << 63) | self.lib.next_seq, ts_ns: call.enter_ns };
        let ids = self.stitcher.client_request(origin, None, call.kernel);
        let kind = library::Calls::span_kind();
        let mut tags = vec![Tag::str("span.kind", kind.as_str())];
        tags.extend(facts);
        if let Some(t) = call.tuple {
            tags.push(Tag::str("net.peer.ip", t.remote.ip().to_string()));
            tags.push(Tag::long("net.peer.port", t.remote.port() as i64));
            tags.push(Tag::str("net.host.ip", t.local.ip().to_string()));
            tags.push(Tag::long("net.host.port", t.local.port() as i64));
            tags.push(Tag::str("peer.service", t.remote.to_string()));
        }
        tags.push(Tag::long("thread.id", tid as i64));
        if let Some(link) = ids.link {
            tags.push(Tag::str("tracer.link", link.as_str()));
        }
        if ids.ambiguous {
            tags.push(Tag::bool("tracer.link.ambiguous", true));
        }
        let mut span = Span {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            parent_span_id: ids.parent_span_id,
            operation,
            flags: 1,
            start_us: self.clock.unix_us(call.enter_ns),
            duration_us: (end_ns.saturating_sub(call.enter_ns) / 1000) as i64,
            tags,
            logs: Vec::new(),
            references: Vec::new(),
            process: (self.resolve)(call.pid),
        };
        library::merge(&mut span, out);
        if let Some(msg) = &out.error {
            span.logs.push(Log {
                timestamp_us: self.clock.unix_us(end_ns),
                fields: vec![Tag::str("event", "error"), Tag::str("message", msg.clone())],
            });
        }
        span
    }

    fn span(&self, conn: &Conn<ConnSpans>, ex: &Exchange, ids: &Ids, tid: u32) -> Span {
        let kind = match conn.role {
            Role::Client => SpanKind::Client,
            Role::Server => SpanKind::Server,
        };
        let mut tags = Vec::with_capacity(ex.tags.len() + 10);
        tags.push(Tag::str("span.kind", kind.as_str()));
        tags.extend(ex.tags.iter().cloned());
        tags.extend(conn.state.addr_tags.get_or_init(|| address_tags(conn)).iter().cloned());
        if tid != 0 {
            tags.push(Tag::long("thread.id", tid as i64));
        }
        if let Some(link) = ids.link {
            tags.push(Tag::str("tracer.link", link.as_str()));
        }
        if ids.ambiguous {
            tags.push(Tag::bool("tracer.link.ambiguous", true));
        }
        let start_us = self.clock.unix_us(ex.start_ns);
        let mut logs = Vec::new();
        if let Some(msg) = &ex.error {
            tags.push(Tag::bool("error", true));
            tags.push(Tag::str("error.message", msg.clone()));
            logs.push(Log {
                timestamp_us: self.clock.unix_us(ex.end_ns),
                fields: vec![Tag::str("event", "error"), Tag::str("message", msg.clone())],
            });
        }
        Span {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            parent_span_id: ids.parent_span_id,
            operation: ex.operation.clone(),
            flags: 1,
            start_us,
            duration_us: (ex.end_ns.saturating_sub(ex.start_ns) / 1000) as i64,
            tags,
            logs,
            references: Vec::new(),
            process: (self.resolve)(conn.pid),
        }
    }

    /// The connection ended (close, final TCP state, process exit or eviction): requests still
    /// open end with an error span.
    pub fn on_close(&mut self, mut conn: Conn<ConnSpans>, ts_ns: u64) {
        self.forget_options(conn.id);
        if let Proto::Active(mut session) = std::mem::take(&mut conn.state.proto) {
            let mut done = Vec::new();
            let reset = conn.state.reset;
            session.close(ts_ns, reset, &mut done);
            for ex in done {
                self.finish(&mut conn, ex, ts_ns);
            }
        }
        for (_, (ids, tid)) in conn.state.open.drain() {
            if conn.role == Role::Server {
                self.stitcher.server_done(conn.pid, Some(tid), ids.span_id);
            }
        }
    }

    /// Spans ready to leave at `now_ns` (all with `flush`).
    pub fn drain(&mut self, now_ns: u64, flush: bool, out: &mut Vec<Span>) {
        for call in self.lib.take_stale(now_ns, flush) {
            self.release(call, now_ns);
        }
        for sent in self.lib.take_stale_sends(now_ns, flush) {
            self.emit_alone(&sent.call, &sent.out, sent.tid, sent.exit_ns);
        }
        self.stitcher.drain(now_ns, flush, out);
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
