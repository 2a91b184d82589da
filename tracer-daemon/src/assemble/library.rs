//! Client-library calls (hiredis, libmysqlclient / libmariadb uprobes) joined with the wire.
//!
//! A library call is tied to its connection by thread and time, never by reading the library's
//! structs (`redisContext`, `MYSQL`), whose layouts change between versions: the socket events
//! raised on the calling thread between the call's entry and exit belong to it. Then:
//!
//! - a plaintext call produces, on that thread during the call, a wire-level client exchange:
//!   its span is held until the call returns and gets the library's details (function, library,
//!   return code, the library's error when the wire showed none). One span, never two;
//! - when no exchange appears (TLS: the bytes are encrypted and the protocol is unknown; or
//!   a transport the socket probes do not capture, a unix socket), the call itself becomes the
//!   client span, with the statement from the library's arguments and the tuple of the TCP
//!   connection the thread wrote to or read from during the call, when there was one;
//! - calls that only buffer (`redisAppendCommand`) give no span, nor does a `redisGetReply`
//!   without TCP activity (it may only hand over a reply already read);
//! - `mysql_send_query` + `mysql_read_query_result` on one handle are one request: over TLS the
//!   send is held until the read returns and they make one span; in plaintext the wire span
//!   started by the send takes the details when the read completes it;
//! - `mysql_stmt_execute` over TLS takes the statement of the `mysql_stmt_prepare` that created
//!   its handle;
//! - the async hiredis API (`redisAsyncCommand…`) only queues the command: the event loop writes
//!   it later, outside any traced call. Queued commands wait per process, in order; the next
//!   Redis request the process starts outside a traced call takes the details of the oldest,
//!   and only when its operation is the queued command's (otherwise none: a wrong detail is
//!   worse than none).
//!
//! Spans made here are stitched like wire client spans (thread causality gives the parent).

use std::collections::VecDeque;

use crate::model::hash::FastMap;

use super::{Env, build};
use crate::{
    model::conn::Tuple,
    model::{
        Attributes, Span, Status,
        attrs::{LibraryCall, Mysql, Redis},
    },
    protocol::{self, Direction as PDir, Redaction, Session, redact::redact_sql, redact::sql_operation},
    reader::decode::{KernelContext, LibFunction, LibPhase, LibRecord, Library},
    stitch::{IdSource, KernelIds, Origin, Stitcher},
};

/// Calls in flight older than this are given up (their exit was lost), CLOCK_MONOTONIC ns.
pub(super) const STALE_NS: u64 = 120 * 1_000_000_000;

/// A library call in flight on one thread.
pub(super) struct LibCall {
    pub pid: u32,
    pub library: Library,
    pub function: LibFunction,
    pub enter_ns: u64,
    /// The statement (MySQL) or RESP-formatted command (hiredis) from the arguments.
    pub statement: Vec<u8>,
    /// `mysql_real_connect`: port and the payload "host\0user\0db".
    pub connect: Option<(u64, Vec<u8>)>,
    /// The connection the thread last moved bytes on during the call.
    pub tuple: Option<Tuple>,
    /// The ids the kernel put in the TCP option of the call's first request start (encrypted
    /// traffic: the call's own span must use them).
    pub kernel: Option<KernelIds>,
    /// Span ids of wire requests the thread started during the call.
    pub started: Vec<u64>,
    /// Wire spans finished during the call, held until it returns.
    pub parked: Vec<Span>,
    /// A wire-level client exchange of the thread started or finished during the call: the
    /// call's request is on the wire and never makes a span of its own.
    pub wire: bool,
}

impl LibCall {
    pub fn new(rec: &LibRecord) -> Self {
        let connect = (rec.function == LibFunction::MysqlRealConnect).then(|| (rec.arg, rec.payload.clone()));
        let statement = if connect.is_some() { Vec::new() } else { rec.payload.clone() };
        LibCall {
            pid: rec.pid,
            library: rec.library,
            function: rec.function,
            enter_ns: rec.ts_enter_ns,
            statement,
            connect,
            tuple: None,
            kernel: None,
            started: Vec::new(),
            parked: Vec::new(),
            wire: false,
        }
    }

    /// Adds an argument seen inside the call (hiredis: the formatted command; the first one is
    /// the call's command).
    pub fn on_arg(&mut self, rec: &LibRecord) {
        if self.statement.is_empty() {
            self.statement = rec.payload.clone();
        }
    }
}

/// What the library said about a finished call.
pub(super) struct Outcome {
    /// Details every span of the call carries.
    pub lib: LibraryCall,
    /// The library reported a failure; with its message when it gave one.
    pub error: Option<String>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end_matches('\0').to_string()
}

/// hiredis `REDIS_REPLY_*` names.
fn reply_type(t: i32) -> Option<&'static str> {
    Some(match t {
        1 => "string",
        2 => "array",
        3 => "integer",
        4 => "nil",
        5 => "status",
        6 => "error",
        7 => "double",
        8 => "bool",
        9 => "map",
        10 => "set",
        11 => "attr",
        12 => "push",
        13 => "bignum",
        14 => "verb",
        _ => return None,
    })
}

pub(super) fn outcome(call: &LibCall, exit: &LibRecord) -> Outcome {
    let mut lib = LibraryCall {
        function: call.function.symbol(),
        library: call.library.name(),
        system: call.library.db_system(),
        reply_type: None,
        return_code: None,
        error_code: None,
    };
    let error = if call.function.is_hiredis() {
        lib.reply_type = reply_type(exit.status);
        let failed = match call.function {
            LibFunction::RedisCommand | LibFunction::RedisvCommand | LibFunction::RedisCommandArgv => {
                exit.ret == 0 || exit.status == tracer_common::REDIS_REPLY_ERROR
            }
            LibFunction::RedisGetReply => exit.ret != 0 || exit.status == tracer_common::REDIS_REPLY_ERROR,
            _ => exit.ret != 0,
        };
        let msg = lossy(&exit.payload);
        failed.then(|| if msg.is_empty() { format!("{} failed", call.function.symbol()) } else { msg })
    } else {
        // int for queries (0 is success), a pointer for mysql_real_connect (NULL is failure).
        let failed = tracer_common::mysql_failed(lib_id(call.function), exit.ret);
        lib.return_code = match call.function {
            LibFunction::MysqlRealConnect => None,
            LibFunction::MysqlReadQueryResult => Some(i64::from(exit.ret as u8)),
            _ => Some(i64::from(exit.ret as i32)),
        };
        if failed && exit.status != 0 {
            lib.error_code = Some(i64::from(exit.status));
        }
        let msg = lossy(&exit.payload);
        failed.then(|| if msg.is_empty() { format!("{} failed", call.function.symbol()) } else { msg })
    };
    Outcome { lib, error }
}

/// The `FN_*` id of a function.
fn lib_id(f: LibFunction) -> u32 {
    LibFunction::ALL.iter().find(|e| e.0 == f).map_or(0, |e| e.1)
}

/// Adds the library's details to a wire span of the call.
pub(super) fn merge(span: &mut Span, out: &Outcome) {
    let Some(t) = span.traced_mut() else { return };
    if t.library.is_none() {
        t.library = Some(out.lib.clone());
    }
    if let Some(msg) = &out.error
        && !t.status.is_error()
    {
        t.status = Status::Error { message: msg.clone(), log_at_us: None };
    }
}

/// Operation name and attributes of a call, from the library's arguments.
pub(super) fn request_facts(call: &LibCall, redaction: Redaction) -> (String, Attributes) {
    if let Some((port, params)) = &call.connect {
        let mut parts = params.split(|&b| b == 0).map(lossy);
        let (host, user, db) =
            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let some = |s: String| (!s.is_empty()).then_some(s);
        let attrs = Mysql {
            operation: Some("connect".into()),
            peer_name: some(host),
            connect_port: Some(*port as i64).filter(|p| *p != 0),
            user: some(user),
            database: some(db),
            ..Mysql::default()
        };
        return ("mysql connect".into(), Attributes::Mysql(attrs));
    }
    if call.function.is_hiredis() {
        if !call.statement.is_empty() {
            // The RESP-formatted command goes through the wire parser, which names and redacts
            // it exactly as it does captured traffic.
            let mut session = Session::new(protocol::Protocol::Redis, protocol::Role::Client, redaction);
            let mut done = Vec::new();
            session.feed(PDir::Egress, &call.statement, call.statement.len(), 0, 0, &mut done);
            session.close(0, false, &mut done);
            if let Some(ex) = done.into_iter().next() {
                return (ex.operation, ex.attrs);
            }
        }
        return (format!("redis {}", call.function.symbol()), Attributes::Redis(Redis::default()));
    }
    let sql = lossy(&call.statement);
    // Named as the wire parser names the same request (`PREPARE` for a preparation).
    let op = match call.function {
        LibFunction::MysqlStmtPrepare => "PREPARE".to_string(),
        _ => sql_operation(call.statement.as_slice()).unwrap_or_else(|| call.function.symbol().to_string()),
    };
    let statement = (!sql.is_empty()).then(|| if redaction.enabled { redact_sql(&sql) } else { sql });
    let attrs = Mysql { operation: Some(op.clone()), statement, ..Mysql::default() };
    (format!("mysql {op}"), Attributes::Mysql(attrs))
}

/// Whether a call that produced no wire exchange becomes a span of its own.
pub(super) fn stands_alone(call: &LibCall) -> bool {
    match call.function {
        // Buffering only: the wire request leaves with a later redisGetReply.
        LibFunction::RedisAppendCommand | LibFunction::RedisAppendCommandArgv => false,
        // Queued for the event loop: the request leaves later, from the loop's thread.
        LibFunction::RedisAsyncCommand
        | LibFunction::RedisAsyncCommandArgv
        | LibFunction::RedisAsyncFormattedCommand => false,
        // Without socket activity it only hands over a reply already read (also inside the
        // async API's read handler): the request's span is the wire's.
        LibFunction::RedisGetReply => !call.wire && call.tuple.is_some(),
        // The others always write a request and read its reply: without a TCP exchange the
        // bytes were encrypted, or went over a transport the socket probes do not capture (a
        // unix socket, MySQL's default for `localhost`). Either way the call is a span.
        _ => !call.wire,
    }
}

/// A `mysql_send_query` that produced no wire exchange, waiting for the
/// `mysql_read_query_result` of its handle.
struct SentQuery {
    call: LibCall,
    out: Outcome,
    tid: u32,
    exit_ns: u64,
}

/// Bound of the per-handle tables below (entries); beyond it the oldest state is given up.
const MAX_HANDLES: usize = 4096;
/// Queued async commands remembered per process.
const MAX_QUEUED: usize = 1024;

/// An async command queued by the library: its operation name and details.
struct Queued {
    operation: String,
    out: Outcome,
    at_ns: u64,
}

/// Client-library calls: per-thread calls in flight and the details waiting for their wire
/// spans.
#[derive(Default)]
pub(super) struct Calls {
    by_tid: FastMap<u32, LibCall>,
    /// Library details waiting for a wire span that started during a call and had not
    /// finished when the call returned: span id → details.
    pending: FastMap<u64, (u64, Outcome)>,
    /// Sequence for the stitcher's keys of spans made from calls alone.
    next_seq: u64,
    /// (pid, `MYSQL *`) → a send waiting for its read (TLS).
    sent: FastMap<(u32, u64), SentQuery>,
    /// (pid, `MYSQL_STMT *`) → the statement it was prepared with.
    prepared: FastMap<(u32, u64), Vec<u8>>,
    /// pid → async commands queued and not yet seen on the wire, oldest first.
    queued: FastMap<u32, VecDeque<Queued>>,
    /// Span id of a wire request → the async command it is expected to carry.
    async_pending: FastMap<u64, Queued>,
}

impl Calls {
    /// A thread moved bytes on a connection (`tuple`) of this client-side (`client`) process:
    /// a call in flight on it learns its connection, and over TLS the ids the kernel put in the
    /// option of its first request.
    pub fn on_wire(&mut self, pid: u32, tid: u32, tuple: Tuple, client: bool, context: Option<KernelContext>) {
        let Some(call) = self.active(pid, tid) else { return };
        call.tuple = Some(tuple);
        if let (true, Some(KernelContext::Client { .. }), None) = (client, context, call.kernel) {
            // Encrypted traffic: the library call's own span is the request the option names.
            call.kernel = context.and_then(|c| super::kernel_ids(crate::conn::Role::Client, c));
        }
    }

    /// A client request started on the wire with span id `span_id`.
    pub fn on_request_started(&mut self, pid: u32, tid: u32, span_id: u64, redis: bool) {
        if let Some(call) = self.active(pid, tid) {
            call.started.push(span_id);
            call.wire = true;
        } else if redis {
            self.take_async(pid, span_id);
        }
    }

    /// A client wire span finished: it is held while the call that started it runs, else it
    /// takes the details of its call that already returned. `Some`: the span leaves now.
    pub fn on_wire_span(&mut self, pid: u32, tid: u32, mut span: Span, env: &Env) -> Option<Span> {
        if let Some(call) = self.active(pid, tid) {
            // This call's request (or the one it completes) is on the wire.
            call.wire = true;
            if call.started.contains(&span.span_id) {
                // Held until the library call returns, to carry its details.
                call.parked.push(span);
                return None;
            }
        }
        if let Some((_, out)) = self.pending.remove(&span.span_id) {
            merge(&mut span, &out);
            env.counters.library(true);
        } else if let Some(q) = self.async_pending.remove(&span.span_id)
            && q.operation == span.operation
        {
            merge(&mut span, &q.out);
            env.counters.library(true);
        }
        Some(span)
    }

    /// One client-library event (uprobe): calls are tied to the wire by thread and time.
    pub fn on_event<I: IdSource>(&mut self, rec: &LibRecord, st: &mut Stitcher<I>, env: &Env) {
        let (lost, done) = self.route(rec);
        if let Some(call) = lost {
            release(call, rec.ts_ns, st);
        }
        let Some(mut call) = done else { return };
        let mut out = outcome(&call, rec);
        if env.redaction.enabled
            && !call.function.is_hiredis()
            && let Some(message) = &mut out.error
        {
            // libmysqlclient's error messages echo the statement's values.
            *message = protocol::redact::redact_message(message);
        }
        let parked = std::mem::take(&mut call.parked);
        if let Some((first, rest)) = parked.split_first() {
            let mut first = first.clone();
            merge(&mut first, &out);
            env.counters.library(true);
            st.finish(first, rec.ts_ns);
            for s in rest {
                st.finish(s.clone(), rec.ts_ns);
            }
            return;
        }
        if let Some(&span_id) = call.started.first() {
            // The wire request is still waiting for its response: it takes the details then.
            self.pending.insert(span_id, (rec.ts_ns, out));
            return;
        }
        if call.function.is_async() && !call.wire {
            // Queued for the event loop: the details wait for the request on the wire.
            let (operation, _) = request_facts(&call, env.redaction);
            self.queue_async(call.pid, Queued { operation, out, at_ns: rec.ts_ns });
            return;
        }
        if !stands_alone(&call) {
            return;
        }
        match call.function {
            LibFunction::MysqlSendQuery => {
                // Encrypted: one span once mysql_read_query_result returns for this handle.
                let sent = SentQuery { call, out, tid: rec.tid, exit_ns: rec.ts_ns };
                if let Some(old) = self.hold_send(rec.handle, sent) {
                    self.emit_alone(&old.call, &old.out, old.tid, old.exit_ns, st, env);
                }
            }
            LibFunction::MysqlReadQueryResult => match self.sent.remove(&(call.pid, rec.handle)) {
                Some(mut sent) => {
                    // The read's result (return code, error number and message) is the request's.
                    sent.call.tuple = sent.call.tuple.or(call.tuple);
                    sent.out.lib.return_code = out.lib.return_code;
                    sent.out.lib.error_code = sent.out.lib.error_code.or(out.lib.error_code);
                    sent.out.error = out.error.or(sent.out.error);
                    self.emit_alone(&sent.call, &sent.out, rec.tid, rec.ts_ns, st, env);
                }
                None => self.emit_alone(&call, &out, rec.tid, rec.ts_ns, st, env),
            },
            _ => self.emit_alone(&call, &out, rec.tid, rec.ts_ns, st, env),
        }
    }

    /// The client span of a library call that produced no wire exchange (encrypted traffic).
    fn emit_alone<I: IdSource>(
        &mut self,
        call: &LibCall,
        out: &Outcome,
        tid: u32,
        end_ns: u64,
        st: &mut Stitcher<I>,
        env: &Env,
    ) {
        let (operation, attrs) = request_facts(call, env.redaction);
        self.next_seq += 1;
        let tuple = call.tuple.unwrap_or(Tuple {
            local: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        });
        // Keys of calls alone never meet a server side's (their sequence has the top bit set).
        let origin = Origin {
            pid: call.pid,
            tid,
            // Client libraries in C: their callers are threads.
            goid: None,
            tuple,
            seq: (1 << 63) | self.next_seq,
            ts_ns: call.enter_ns,
            netns: 0,
            aligned: true,
        };
        let ids = st.client_request(origin, None, call.kernel);
        let facts = build::Facts {
            kind: crate::model::SpanKind::Client,
            pid: call.pid,
            tid,
            tuple: call.tuple,
            operation,
            attrs,
            truncated: false,
            data_lost: false,
            capture_degraded: false,
            start_ns: call.enter_ns,
            end_ns,
            error: out.error.clone(),
        };
        let mut span = build::span(facts, &ids, env);
        if let Some(t) = span.traced_mut() {
            t.library = Some(out.lib.clone());
        }
        env.counters.library(false);
        env.counters.span();
        st.finish(span, end_ns);
    }

    /// Routes a library event: returns the finished call (with its exit record) on exit.
    fn route(&mut self, rec: &LibRecord) -> (Option<LibCall>, Option<LibCall>) {
        match rec.phase {
            LibPhase::Enter => {
                // A call still recorded on this thread lost its exit: hand it back as it is.
                let lost = self.by_tid.insert(rec.tid, LibCall::new(rec));
                (lost, None)
            }
            LibPhase::Arg => {
                if let Some(c) = self.by_tid.get_mut(&rec.tid) {
                    c.on_arg(rec);
                }
                (None, None)
            }
            LibPhase::Exit => {
                let mut done = self.by_tid.remove(&rec.tid);
                if let Some(call) = done.as_mut() {
                    self.on_exit(call, rec);
                }
                (None, done)
            }
        }
    }

    /// Remembers prepared statements by handle and gives a statement-less execute the text of
    /// its preparation.
    fn on_exit(&mut self, call: &mut LibCall, rec: &LibRecord) {
        match call.function {
            LibFunction::MysqlStmtPrepare if rec.ret as i32 == 0 && !call.statement.is_empty() => {
                if self.prepared.len() >= MAX_HANDLES {
                    self.prepared.clear();
                }
                self.prepared.insert((call.pid, rec.handle), call.statement.clone());
            }
            LibFunction::MysqlStmtExecute if call.statement.is_empty() => {
                if let Some(s) = self.prepared.get(&(call.pid, rec.handle)) {
                    call.statement = s.clone();
                }
            }
            _ => {}
        }
    }

    /// Holds a send alone until its read returns; a send still held for the handle is handed
    /// back (its read never came).
    fn hold_send(&mut self, handle: u64, sent: SentQuery) -> Option<SentQuery> {
        let key = (sent.call.pid, handle);
        let old = self.sent.remove(&key);
        if self.sent.len() >= MAX_HANDLES {
            return Some(sent);
        }
        self.sent.insert(key, sent);
        old
    }

    /// The call in flight on `tid` of `pid`, if any.
    fn active(&mut self, pid: u32, tid: u32) -> Option<&mut LibCall> {
        self.by_tid.get_mut(&tid).filter(|c| c.pid == pid)
    }

    /// Remembers an async command queued by process `pid`.
    fn queue_async(&mut self, pid: u32, q: Queued) {
        if !self.queued.contains_key(&pid) && self.queued.len() >= MAX_HANDLES {
            self.queued.clear();
        }
        let v = self.queued.entry(pid).or_default();
        if v.len() >= MAX_QUEUED {
            v.pop_front();
        }
        v.push_back(q);
    }

    /// The oldest async command of `pid` for a Redis request that starts outside a traced call.
    fn take_async(&mut self, pid: u32, span_id: u64) {
        if let Some(q) = self.queued.get_mut(&pid).and_then(|v| v.pop_front()) {
            if self.async_pending.len() >= MAX_HANDLES {
                self.async_pending.clear();
            }
            self.async_pending.insert(span_id, q);
        }
    }

    /// Gives up calls whose exit was lost and sends whose read never came, older than
    /// `STALE_NS` at `now_ns` (all with `flush`): their held wire spans leave as they are, the
    /// sends as spans of their own.
    pub fn expire<I: IdSource>(&mut self, now_ns: u64, flush: bool, st: &mut Stitcher<I>, env: &Env) {
        let old: Vec<u32> = self
            .by_tid
            .iter()
            .filter(|(_, c)| flush || c.enter_ns.saturating_add(STALE_NS) < now_ns)
            .map(|(t, _)| *t)
            .collect();
        self.pending.retain(|_, (at, _)| !flush && at.saturating_add(STALE_NS) >= now_ns);
        self.async_pending.retain(|_, q| !flush && q.at_ns.saturating_add(STALE_NS) >= now_ns);
        for v in self.queued.values_mut() {
            v.retain(|q| !flush && q.at_ns.saturating_add(STALE_NS) >= now_ns);
        }
        self.queued.retain(|_, v| !v.is_empty());
        for call in old.into_iter().filter_map(|t| self.by_tid.remove(&t)) {
            release(call, now_ns, st);
        }
        let sends: Vec<(u32, u64)> = self
            .sent
            .iter()
            .filter(|(_, s)| flush || s.exit_ns.saturating_add(STALE_NS) < now_ns)
            .map(|(k, _)| *k)
            .collect();
        let sends: Vec<SentQuery> = sends.into_iter().filter_map(|k| self.sent.remove(&k)).collect();
        for sent in sends {
            self.emit_alone(&sent.call, &sent.out, sent.tid, sent.exit_ns, st, env);
        }
    }
}

/// A call whose exit never came: its held wire spans leave as they are.
fn release<I: IdSource>(mut call: LibCall, now_ns: u64, st: &mut Stitcher<I>) {
    for s in call.parked.drain(..) {
        st.finish(s, now_ns);
    }
}
