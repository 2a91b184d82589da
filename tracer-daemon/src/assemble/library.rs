//! Client-library calls (hiredis, libmysqlclient / libmariadb uprobes) joined with the wire.
//!
//! A library call is tied to its connection by thread and time, never by reading the library's
//! structs (`redisContext`, `MYSQL`), whose layouts change between versions: the socket events
//! raised on the calling thread between the call's entry and exit belong to it. Then:
//!
//! - a plaintext call produces, on that thread during the call, a wire-level client exchange:
//!   its span is held until the call returns and gets the library's details (function, library,
//!   return code, the library's error when the wire showed none). One span, never two;
//! - when no exchange appears (TLS: the bytes are encrypted and the protocol is unknown), the
//!   call itself becomes the client span, with the statement from the library's arguments and
//!   the tuple of the connection the thread wrote to or read from during the call;
//! - calls that touch no socket (`redisAppendCommand` only buffers) give no span;
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

use std::collections::HashMap;

use crate::{
    model::{Span, SpanKind, Tag},
    protocol::{self, Direction as PDir, Redaction, Session, redact::redact_sql, redact::sql_operation},
    reader::decode::{LibFunction, LibPhase, LibRecord, Library}, model::conn::Tuple,
    stitch::KernelIds,
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
    /// Tags every span of the call carries.
    pub tags: Vec<Tag>,
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
    let mut tags = vec![
        Tag::str("code.function", call.function.symbol()),
        Tag::str(format!("db.{}.library", call.library.db_system()), call.library.name()),
        Tag::str("tracer.source", "uprobe"),
    ];
    let error = if call.function.is_hiredis() {
        if let Some(t) = reply_type(exit.status) {
            tags.push(Tag::str("db.redis.reply_type", t));
        }
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
        match call.function {
            LibFunction::MysqlRealConnect => {}
            LibFunction::MysqlReadQueryResult => tags.push(Tag::long("db.mysql.return_code", (exit.ret as u8) as i64)),
            _ => tags.push(Tag::long("db.mysql.return_code", (exit.ret as i32) as i64)),
        }
        if failed && exit.status != 0 {
            tags.push(Tag::long("db.mysql.error_code", exit.status as i64));
        }
        let msg = lossy(&exit.payload);
        failed.then(|| if msg.is_empty() { format!("{} failed", call.function.symbol()) } else { msg })
    };
    Outcome { tags, error }
}

/// The `FN_*` id of a function.
fn lib_id(f: LibFunction) -> u32 {
    LibFunction::ALL.iter().find(|e| e.0 == f).map_or(0, |e| e.1)
}

/// Adds the library's details to a wire span of the call.
pub(super) fn merge(span: &mut Span, out: &Outcome) {
    for t in &out.tags {
        if !span.tags.iter().any(|s| s.key == t.key) {
            span.tags.push(t.clone());
        }
    }
    if let Some(msg) = &out.error {
        if !span.tags.iter().any(|t| t.key == "error") {
            span.tags.push(Tag::bool("error", true));
            span.tags.push(Tag::str("error.message", msg.clone()));
        }
    }
}

/// Operation name and statement tags of a call, from the library's arguments.
pub(super) fn request_facts(call: &LibCall, redaction: Redaction) -> (String, Vec<Tag>) {
    let system = call.library.db_system();
    if let Some((port, params)) = &call.connect {
        let mut parts = params.split(|&b| b == 0).map(lossy);
        let (host, user, db) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let mut tags = vec![Tag::str("db.system", system), Tag::str("db.operation", "connect")];
        if !host.is_empty() {
            tags.push(Tag::str("net.peer.name", host));
        }
        if *port != 0 {
            tags.push(Tag::long("db.mysql.connect_port", *port as i64));
        }
        if !user.is_empty() {
            tags.push(Tag::str("db.user", user));
        }
        if !db.is_empty() {
            tags.push(Tag::str("db.name", db));
        }
        return ("mysql connect".into(), tags);
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
                return (ex.operation, ex.tags);
            }
        }
        return (format!("redis {}", call.function.symbol()), vec![Tag::str("db.system", system)]);
    }
    let sql = lossy(&call.statement);
    // Named as the wire parser names the same request (`PREPARE` for a preparation).
    let op = match call.function {
        LibFunction::MysqlStmtPrepare => "PREPARE".to_string(),
        _ => sql_operation(call.statement.as_slice()).unwrap_or_else(|| call.function.symbol().to_string()),
    };
    let mut tags = vec![Tag::str("db.system", system), Tag::str("db.operation", op.clone())];
    if !sql.is_empty() {
        let stmt = if redaction.enabled { redact_sql(&sql) } else { sql };
        tags.push(Tag::str("db.statement", stmt));
    }
    (format!("mysql {op}"), tags)
}

/// Whether a call that produced no wire exchange becomes a span of its own.
pub(super) fn stands_alone(call: &LibCall, out: &Outcome) -> bool {
    match call.function {
        // Buffering only: the wire request leaves with a later redisGetReply.
        LibFunction::RedisAppendCommand | LibFunction::RedisAppendCommandArgv => false,
        // Queued for the event loop: the request leaves later, from the loop's thread.
        LibFunction::RedisAsyncCommand | LibFunction::RedisAsyncCommandArgv | LibFunction::RedisAsyncFormattedCommand => false,
        // Without socket activity it only hands over a reply already read (also inside the
        // async API's read handler): the request's span is the wire's.
        LibFunction::RedisGetReply => !call.wire && call.tuple.is_some(),
        _ => !call.wire && (call.tuple.is_some() || out.error.is_some()),
    }
}

/// A `mysql_send_query` that produced no wire exchange, waiting for the
/// `mysql_read_query_result` of its handle.
pub(super) struct SentQuery {
    pub call: LibCall,
    pub out: Outcome,
    pub tid: u32,
    pub exit_ns: u64,
}

/// Bound of the per-handle tables below (entries); beyond it the oldest state is given up.
const MAX_HANDLES: usize = 4096;
/// Queued async commands remembered per process.
const MAX_QUEUED: usize = 1024;

/// An async command queued by the library: its operation name and details.
pub(super) struct Queued {
    pub operation: String,
    pub out: Outcome,
    pub at_ns: u64,
}

/// Per-thread library calls in flight, keyed by thread id.
#[derive(Default)]
pub(super) struct Calls {
    pub by_tid: HashMap<u32, LibCall>,
    /// Library details waiting for a wire span that started during a call and had not
    /// finished when the call returned: span id → details.
    pub pending: HashMap<u64, (u64, Outcome)>,
    /// Sequence for the stitcher's keys of spans made from calls alone.
    pub next_seq: u64,
    /// (pid, `MYSQL *`) → a send waiting for its read (TLS).
    pub sent: HashMap<(u32, u64), SentQuery>,
    /// (pid, `MYSQL_STMT *`) → the statement it was prepared with.
    pub prepared: HashMap<(u32, u64), Vec<u8>>,
    /// pid → async commands queued and not yet seen on the wire, oldest first.
    pub queued: HashMap<u32, std::collections::VecDeque<Queued>>,
    /// Span id of a wire request → the async command it is expected to carry.
    pub async_pending: HashMap<u64, Queued>,
}

impl Calls {
    /// Routes a library event: returns the finished call (with its exit record) on exit.
    pub fn on_event(&mut self, rec: &LibRecord) -> (Option<LibCall>, Option<LibCall>) {
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
    pub fn hold_send(&mut self, handle: u64, sent: SentQuery) -> Option<SentQuery> {
        let key = (sent.call.pid, handle);
        let old = self.sent.remove(&key);
        if self.sent.len() >= MAX_HANDLES {
            return Some(sent);
        }
        self.sent.insert(key, sent);
        old
    }

    /// The call in flight on `tid` of `pid`, if any.
    pub fn active(&mut self, pid: u32, tid: u32) -> Option<&mut LibCall> {
        self.by_tid.get_mut(&tid).filter(|c| c.pid == pid)
    }

    /// Remembers an async command queued by process `pid`.
    pub fn queue_async(&mut self, pid: u32, q: Queued) {
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
    pub fn take_async(&mut self, pid: u32, span_id: u64) {
        if let Some(q) = self.queued.get_mut(&pid).and_then(|v| v.pop_front()) {
            if self.async_pending.len() >= MAX_HANDLES {
                self.async_pending.clear();
            }
            self.async_pending.insert(span_id, q);
        }
    }

    /// Sends whose read did not come within `STALE_NS` (all with `flush`).
    pub fn take_stale_sends(&mut self, now_ns: u64, flush: bool) -> Vec<SentQuery> {
        let old: Vec<(u32, u64)> = self
            .sent
            .iter()
            .filter(|(_, s)| flush || s.exit_ns.saturating_add(STALE_NS) < now_ns)
            .map(|(k, _)| *k)
            .collect();
        old.into_iter().filter_map(|k| self.sent.remove(&k)).collect()
    }

    /// Calls whose entry is older than `STALE_NS` at `now_ns` (all with `flush`).
    pub fn take_stale(&mut self, now_ns: u64, flush: bool) -> Vec<LibCall> {
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
        old.into_iter().filter_map(|t| self.by_tid.remove(&t)).collect()
    }

    pub fn span_kind() -> SpanKind {
        SpanKind::Client
    }
}
