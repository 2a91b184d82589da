//! Assembly over synthetic captured calls with real protocol bytes: spans, tags and links.

use std::sync::Arc;

use super::*;
use crate::{
    conn::{ConnTable, Removal},
    model::conn::{ConnKind, Tuple},
    model::{JaegerSpan, TagValue},
    reader::decode::{ConnRecord, LibFunction, Syscall},
    render,
    stitch::StitchConfig,
};

fn process(pid: u32) -> Arc<Process> {
    Arc::new(Process { service_name: format!("svc-{pid}"), tags: vec![] })
}

fn assembler(counters: &AssembleCounters) -> Assembler {
    Assembler::new(Redaction::default(), WallClock::with_offset(0), Box::new(process), counters.clone())
}

/// What the assembler counted, as the pipeline exports it.
struct Stats<'a>(&'a AssembleCounters);

impl Stats<'_> {
    fn unknown_protocol(&self) -> u64 {
        self.0.unknown_protocol.get()
    }
    fn options(&self) -> (u64, u64) {
        use counters::OptionOutcome::{Matched, Unmatched};
        (self.0.option(Matched).get(), self.0.option(Unmatched).get())
    }
}

fn tuple(local: &str, remote: &str) -> Tuple {
    Tuple { local: local.parse().unwrap(), remote: remote.parse().unwrap() }
}

struct Host {
    table: ConnTable<ConnSpans>,
    asm: Assembler,
    st: Stitcher,
    counters: AssembleCounters,
    ts: u64,
    /// Context for the next data call.
    pending_context: Option<KernelContext>,
    /// What the kernel says the next call's socket lost before it.
    pending_lost: crate::reader::decode::LostBefore,
    /// Whether the next call's capture was cut short (the ring buffer half full).
    pending_degraded: bool,
    /// Sequence number of the next data call's first byte.
    pending_seq: Option<u32>,
    /// The goroutine the next data calls run on (Go programs).
    goid: Option<u64>,
}

impl Host {
    fn new() -> Self {
        let counters = AssembleCounters::detached();
        Host {
            table: ConnTable::new(64),
            asm: assembler(&counters),
            st: Stitcher::new(StitchConfig::default()),
            counters,
            ts: 1_000_000,
            pending_context: None,
            pending_lost: Default::default(),
            pending_degraded: false,
            pending_seq: None,
            goid: None,
        }
    }

    fn open(&mut self, kind: ConnKind, id: u64, pid: u32, t: Tuple) {
        self.ts += 1000;
        let rec = ConnRecord {
            kind,
            pid,
            tid: pid,
            ts_enter_ns: self.ts,
            ts_exit_ns: self.ts,
            conn_id: id,
            fd: 3,
            ret: 0,
            syscall: Syscall::Connect,
            tuple: t,
            comm: "x".into(),
        };
        for (c, _) in self.table.on_conn(&rec) {
            self.asm.on_close(c, self.ts, &mut self.st);
        }
    }

    fn data(&mut self, id: u64, tid: u32, dir: Direction, bytes: &[u8]) {
        self.data_waited(id, tid, dir, bytes, 0);
    }

    /// A call to which the kernel attached a trace context (TCP-option propagation).
    fn data_ctx(&mut self, id: u64, tid: u32, dir: Direction, bytes: &[u8], context: KernelContext) {
        self.pending_context = Some(context);
        self.data(id, tid, dir, bytes);
    }

    /// A call whose first byte has TCP sequence number `seq`, with the kernel's context if any.
    fn data_seq(&mut self, id: u64, tid: u32, dir: Direction, bytes: &[u8], seq: u32, context: Option<KernelContext>) {
        self.pending_seq = Some(seq);
        self.pending_context = context;
        self.data(id, tid, dir, bytes);
    }

    /// A peer's option on the packet of connection `id` that begins at `seq`.
    fn option(&mut self, id: u64, seq: u32, span_id: u64) {
        let context = KernelContext::Peer { trace_hi: 5, trace_lo: 6, span_id };
        self.asm.on_option(&OptionRecord { ts_ns: self.ts, conn_id: id, seq, context });
    }

    /// A call that blocked `wait_ns` inside the kernel before it moved `bytes`.
    fn data_waited(&mut self, id: u64, tid: u32, dir: Direction, bytes: &[u8], wait_ns: u64) {
        self.ts += 1000;
        let enter = self.ts;
        self.ts += wait_ns;
        let conn = self.table.get(id).expect("open connection");
        let rec = DataRecord {
            pid: conn.pid,
            tid,
            ts_enter_ns: enter,
            ts_exit_ns: self.ts + 500,
            conn_id: id,
            fd: 3,
            syscall: Syscall::Read,
            direction: dir,
            ret: bytes.len() as i64,
            truncated: false,
            context: self.pending_context.take(),
            seq: self.pending_seq.take(),
            netns: 0,
            goid: self.goid,
            tuple: conn.tuple,
            lost_before: std::mem::take(&mut self.pending_lost),
            degraded: std::mem::take(&mut self.pending_degraded),
            payload: bytes.to_vec(),
        };
        let mut ev = Vec::new();
        let conn = self.table.on_data(&rec, |_, _| false, &mut ev);
        self.asm.on_data(conn, &rec, &mut self.st);
    }

    fn close(&mut self, id: u64) {
        self.ts += 1000;
        if let Some(c) = self.table.on_final_state(id) {
            self.asm.on_close(c, self.ts, &mut self.st);
        }
    }

    /// The spans as the Jaeger exporters write them.
    fn spans(&mut self) -> Vec<JaegerSpan> {
        let mut out = Vec::new();
        self.asm.drain(0, true, &mut self.st, &mut out);
        out.iter().map(render::jaeger::render).collect()
    }

    fn stats(&self) -> Stats<'_> {
        Stats(&self.counters)
    }
}

fn tag<'a>(s: &'a JaegerSpan, key: &str) -> Option<&'a TagValue> {
    s.tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

const GET: &[u8] = b"GET /users/7?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn http_client_and_server_on_one_host_make_one_trace() {
    let mut h = Host::new();
    let (c, s) = (tuple("127.0.0.1:40000", "127.0.0.1:8080"), tuple("127.0.0.1:8080", "127.0.0.1:40000"));
    h.open(ConnKind::Connect, 1, 100, c);
    h.open(ConnKind::Accept, 2, 200, s);
    h.data(1, 100, Direction::Egress, GET);
    h.data(2, 200, Direction::Ingress, GET);
    // The server calls Redis from the serving thread.
    h.open(ConnKind::Connect, 3, 200, tuple("127.0.0.1:50000", "127.0.0.1:6379"));
    h.data(3, 200, Direction::Egress, b"*2\r\n$3\r\nGET\r\n$6\r\nuser:7\r\n");
    h.data(3, 200, Direction::Ingress, b"$5\r\nalice\r\n");
    h.data(2, 200, Direction::Egress, OK);
    h.data(1, 100, Direction::Ingress, OK);
    let spans = h.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let client = spans.iter().find(|s| s.kind() == Some("client") && s.operation.starts_with("GET")).unwrap();
    let server = spans.iter().find(|s| s.kind() == Some("server")).unwrap();
    let redis = spans.iter().find(|s| s.operation == "redis GET").unwrap();
    assert_eq!(client.operation, "GET /users/7");
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(redis.parent_span_id, server.span_id);
    assert!(spans.iter().all(|s| s.trace_id == client.trace_id));
    assert_eq!(client.parent_span_id, 0);
    assert_eq!(server.tag_str("tracer.link"), Some("same-host-tuple"));
    assert_eq!(redis.tag_str("tracer.link"), Some("thread"));
    assert_eq!(server.process.service_name, "svc-200");
    assert_eq!(tag(server, "http.status_code"), Some(&TagValue::Long(200)));
    assert_eq!(redis.tag_str("peer.service"), Some("127.0.0.1:6379"));
    assert_eq!(redis.tag_str("net.peer.ip"), Some("127.0.0.1"));
    assert_eq!(tag(redis, "net.peer.port"), Some(&TagValue::Long(6379)));
    assert!(client.duration_us >= server.duration_us);
}

/// Go: two requests served by two goroutines that share one thread. Each goroutine's Redis call
/// is its own request's child; a call whose goroutine is unknown falls back to the thread,
/// which serves two requests: ambiguous, no link.
#[test]
fn go_calls_are_children_of_the_request_their_goroutine_serves() {
    let mut h = Host::new();
    let get = |k: u8| format!("*2\r\n$3\r\nGET\r\n$5\r\nreq:{}\r\n", k as char).into_bytes();
    h.open(ConnKind::Accept, 1, 200, tuple("127.0.0.1:8080", "127.0.0.1:40100"));
    h.open(ConnKind::Accept, 2, 200, tuple("127.0.0.1:8080", "127.0.0.1:40101"));
    h.open(ConnKind::Connect, 3, 200, tuple("127.0.0.1:50001", "127.0.0.1:6379"));
    h.open(ConnKind::Connect, 4, 200, tuple("127.0.0.1:50002", "127.0.0.1:6379"));
    h.open(ConnKind::Connect, 5, 200, tuple("127.0.0.1:50003", "127.0.0.1:6379"));
    h.goid = Some(10);
    h.data(1, 7, Direction::Ingress, b"GET /r/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    h.goid = Some(11);
    h.data(2, 7, Direction::Ingress, b"GET /r/2 HTTP/1.1\r\nHost: a\r\n\r\n");
    // Goroutine 10 moved to another thread: it is still the same goroutine.
    h.goid = Some(10);
    h.data(3, 8, Direction::Egress, &get(b'1'));
    h.data(3, 8, Direction::Ingress, b"$1\r\n1\r\n");
    h.goid = Some(11);
    h.data(4, 7, Direction::Egress, &get(b'2'));
    h.data(4, 7, Direction::Ingress, b"$1\r\n2\r\n");
    h.goid = None;
    h.data(5, 7, Direction::Egress, &get(b'3'));
    h.data(5, 7, Direction::Ingress, b"$1\r\n3\r\n");
    h.goid = Some(10);
    h.data(1, 7, Direction::Egress, OK);
    h.goid = Some(11);
    h.data(2, 7, Direction::Egress, OK);
    let spans = h.spans();
    let server = |path: &str| spans.iter().find(|s| s.kind() == Some("server") && s.operation.ends_with(path)).unwrap();
    let redis =
        |key: &str| spans.iter().find(|s| s.tag_str("db.statement").is_some_and(|st| st.contains(key))).unwrap();
    let (s1, s2) = (server("/r/1"), server("/r/2"));
    assert_eq!(redis("req:1").parent_span_id, s1.span_id);
    assert_eq!(redis("req:1").trace_id, s1.trace_id);
    assert_eq!(redis("req:2").parent_span_id, s2.span_id);
    assert_eq!(redis("req:1").tag_str("tracer.link"), Some("thread"));
    let unknown = redis("req:3");
    assert_eq!(unknown.parent_span_id, 0, "no goroutine, and the thread proves nothing: no link");
    assert!(unknown.trace_id != s1.trace_id && unknown.trace_id != s2.trace_id);
}

#[test]
fn a_server_span_starts_when_the_request_arrives_not_when_the_read_began_waiting() {
    let mut h = Host::new();
    h.open(ConnKind::Accept, 2, 200, tuple("127.0.0.1:8080", "127.0.0.1:40009"));
    // A blocking read that waited 10 s before the request arrived.
    h.data_waited(2, 200, Direction::Ingress, GET, 10_000_000_000);
    h.data(2, 200, Direction::Egress, OK);
    let spans = h.spans();
    assert_eq!(spans.len(), 1);
    assert!(spans[0].duration_us < 10, "duration {} us includes the wait", spans[0].duration_us);
}

#[test]
fn server_read_reported_before_client_write_still_joins() {
    let mut h = Host::new();
    let (c, s) = (tuple("127.0.0.1:40001", "127.0.0.1:8080"), tuple("127.0.0.1:8080", "127.0.0.1:40001"));
    h.open(ConnKind::Connect, 1, 100, c);
    h.open(ConnKind::Accept, 2, 200, s);
    h.data(2, 200, Direction::Ingress, GET);
    h.data(1, 100, Direction::Egress, GET);
    h.data(2, 200, Direction::Egress, OK);
    h.data(1, 100, Direction::Ingress, OK);
    let spans = h.spans();
    let client = spans.iter().find(|s| s.kind() == Some("client")).unwrap();
    let server = spans.iter().find(|s| s.kind() == Some("server")).unwrap();
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(server.trace_id, client.trace_id);
}

#[test]
fn pipelined_redis_gives_one_span_per_command_and_errors_are_error_spans() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40002", "127.0.0.1:6379"));
    h.data(
        1,
        100,
        Direction::Egress,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    );
    h.data(
        1,
        100,
        Direction::Ingress,
        b"+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\nv\r\n",
    );
    let spans = h.spans();
    let ops: Vec<&str> = spans.iter().map(|s| s.operation.as_str()).collect();
    assert_eq!(ops, ["redis SET", "redis LPOP", "redis GET"]);
    let lpop = &spans[1];
    assert_eq!(tag(lpop, "error"), Some(&TagValue::Bool(true)));
    assert!(lpop.tag_str("error.message").unwrap().starts_with("WRONGTYPE"));
    assert_eq!(lpop.logs.len(), 1);
    assert_eq!(spans[0].tag_str("db.statement"), Some("SET k ?"), "values are redacted");
    assert!(tag(&spans[2], "error").is_none());
}

#[test]
fn a_connection_closed_mid_request_ends_its_span_with_an_error() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40003", "127.0.0.1:8080"));
    h.data(1, 100, Direction::Egress, GET);
    h.close(1);
    let spans = h.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(tag(&spans[0], "error"), Some(&TagValue::Bool(true)));
}

#[test]
fn unknown_protocols_give_no_spans_and_are_counted() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40004", "127.0.0.1:9999"));
    h.data(1, 100, Direction::Egress, &[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00]);
    h.data(1, 100, Direction::Ingress, b"\x16\x03\x03binary");
    assert!(h.spans().is_empty());
    assert_eq!(h.stats().unknown_protocol(), 1);
    let _ = Removal::Closed;
}

#[test]
fn traffic_to_the_daemons_own_sockets_is_never_traced() {
    let mut h = Host::new();
    // The daemon posts a batch to a collector on this host.
    h.asm.own_endpoint("127.0.0.1:45000".parse().unwrap(), true);
    h.open(ConnKind::Accept, 9, 300, tuple("127.0.0.1:14268", "127.0.0.1:45000"));
    h.data(9, 300, Direction::Ingress, b"POST /api/traces HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    h.data(9, 300, Direction::Egress, b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    assert!(h.spans().is_empty());
    assert_eq!(h.counters.own_traffic.get(), 1);
}

#[test]
fn requests_to_the_daemons_listeners_are_never_traced_even_before_accept() {
    let mut h = Host::new();
    h.asm.own_listener("0.0.0.0:14271".parse().unwrap());
    h.open(ConnKind::Connect, 9, 300, tuple("127.0.0.1:45001", "127.0.0.1:14271"));
    h.data(9, 300, Direction::Egress, b"GET /metrics HTTP/1.0\r\n\r\n");
    h.data(9, 300, Direction::Ingress, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.open(ConnKind::Connect, 10, 300, tuple("127.0.0.1:45002", "127.0.0.1:8080"));
    h.data(10, 300, Direction::Egress, b"GET /other HTTP/1.0\r\n\r\n");
    h.data(10, 300, Direction::Ingress, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let spans = h.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].operation, "GET /other");
}

#[test]
fn kernel_contexts_give_ids_and_parents_per_request_on_split_and_keep_alive_requests() {
    let mut h = Host::new();
    let s = tuple("10.0.0.2:8080", "10.0.0.1:40000");
    h.open(ConnKind::Accept, 2, 200, s);
    let peer = |span_id| KernelContext::Peer { trace_hi: 5, trace_lo: 6, span_id };
    // The request arrives in two reads; the first carried the peer's option.
    h.data_ctx(2, 200, Direction::Ingress, &GET[..10], peer(0x77));
    h.data(2, 200, Direction::Ingress, &GET[10..]);
    // The serving thread calls Redis: the kernel chose the call's ids and sent them.
    h.open(ConnKind::Connect, 3, 200, tuple("10.0.1.1:50000", "10.0.1.2:6379"));
    let call = KernelContext::Client { trace_hi: 5, trace_lo: 6, span_id: 0x99 };
    h.data_ctx(3, 200, Direction::Egress, b"*2\r\n$3\r\nGET\r\n$6\r\nuser:7\r\n", call);
    h.data(3, 200, Direction::Ingress, b"$5\r\nalice\r\n");
    h.data(2, 200, Direction::Egress, OK);
    // Keep-alive: the next request on the connection carries its own context.
    h.data_ctx(2, 200, Direction::Ingress, GET, peer(0x88));
    h.data(2, 200, Direction::Egress, OK);
    let spans = h.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let trace = TraceId { high: 5, low: 6 };
    let servers: Vec<&JaegerSpan> = spans.iter().filter(|s| s.kind() == Some("server")).collect();
    assert_eq!(servers.len(), 2);
    assert_eq!((servers[0].trace_id, servers[0].parent_span_id), (trace, 0x77));
    assert_eq!((servers[1].trace_id, servers[1].parent_span_id), (trace, 0x88));
    assert!(servers.iter().all(|s| s.tag_str("tracer.link") == Some("tcp-option")));
    let redis = spans.iter().find(|s| s.operation == "redis GET").unwrap();
    assert_eq!((redis.trace_id, redis.span_id, redis.parent_span_id), (trace, 0x99, servers[0].span_id));
    assert_eq!(redis.tag_str("tracer.link"), Some("thread"));
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const PONG: &[u8] = b"+PONG\r\n";

#[test]
fn pipelined_client_requests_use_the_context_of_the_write_they_begin() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("10.0.0.1:40000", "10.0.0.2:6379"));
    let ctx = |span_id| Some(KernelContext::Client { trace_hi: 5, trace_lo: 6, span_id });
    // Two requests in their own writes, then two in one write: the kernel gave each write a
    // context, and the second request of the shared write has none of its own.
    h.data_seq(1, 100, Direction::Egress, PING, 1000, ctx(0x11));
    h.data_seq(1, 100, Direction::Egress, PING, 1014, ctx(0x22));
    h.data_seq(1, 100, Direction::Egress, &[PING, PING].concat(), 1028, ctx(0x33));
    h.data(1, 100, Direction::Ingress, &[PONG, PONG, PONG, PONG].concat());
    let spans = h.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let ids: Vec<u64> = spans.iter().map(|s| s.span_id).collect();
    assert_eq!(&ids[..3], &[0x11, 0x22, 0x33]);
    assert!(![0x11, 0x22, 0x33].contains(&ids[3]), "the fourth request made its own ids");
}

#[test]
fn pipelined_server_requests_find_their_options_anywhere_in_a_read() {
    let mut h = Host::new();
    h.open(ConnKind::Accept, 2, 200, tuple("10.0.0.2:6379", "10.0.0.1:40000"));
    let len = PING.len() as u32;
    // Options on the packets of the first two requests, and one on a packet that begins
    // inside the third request (a write that did not start a request): never a parent.
    h.option(2, 5000, 0x11);
    h.option(2, 5000 + len, 0x22);
    h.option(2, 5000 + 2 * len + 3, 0x44);
    // One read takes three requests; the last one has no option at its first byte.
    h.data_seq(2, 200, Direction::Ingress, &[PING, PING, PING].concat(), 5000, None);
    h.data(2, 200, Direction::Egress, &[PONG, PONG, PONG].concat());
    // The next read begins with a request whose option came before it.
    h.option(2, 5000 + 3 * len, 0x55);
    h.data_seq(2, 200, Direction::Ingress, PING, 5000 + 3 * len, None);
    h.data(2, 200, Direction::Egress, PONG);
    let spans = h.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let trace = TraceId { high: 5, low: 6 };
    let parents: Vec<(TraceId, u64)> = spans.iter().map(|s| (s.trace_id, s.parent_span_id)).collect();
    assert_eq!(parents[0], (trace, 0x11));
    assert_eq!(parents[1], (trace, 0x22));
    assert_eq!(parents[2].1, 0, "no option at its first byte: no parent");
    assert_eq!(parents[3], (trace, 0x55));
    assert_eq!(spans[2].tag_str("tracer.link"), None);
    assert_eq!(h.stats().options(), (3, 1));
    // Closing forgets nothing twice.
    h.option(2, 9999, 0x66);
    h.close(2);
    assert_eq!(h.stats().options().1, 2);
}

// ---------------------------------------------------------------------------------------------
// Client-library calls (uprobes) joined with the wire

impl Host {
    #[expect(clippy::too_many_arguments, reason = "mirrors the fields of the uprobe record it builds")]
    fn lib(
        &mut self,
        phase: LibPhase,
        pid: u32,
        tid: u32,
        function: LibFunction,
        handle: u64,
        ret: i64,
        status: i32,
        payload: &[u8],
    ) {
        use crate::reader::decode::Library;
        self.ts += 1000;
        let library = if function.is_hiredis() { Library::Hiredis } else { Library::Mariadb };
        let rec = LibRecord {
            phase,
            library,
            function,
            pid,
            tid,
            ts_ns: self.ts,
            ts_enter_ns: self.ts,
            ret,
            handle,
            arg: 0,
            status,
            payload: payload.to_vec(),
        };
        self.asm.on_lib(&rec, &mut self.st);
    }
}

use crate::reader::decode::LibPhase;

const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nsecret\r\n";

#[test]
fn a_plaintext_library_call_and_its_wire_exchange_are_one_span() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40000", "127.0.0.1:6379"));
    h.lib(LibPhase::Enter, 100, 101, LibFunction::RedisCommand, 0xc0, 0, 0, b"");
    h.lib(LibPhase::Arg, 100, 101, LibFunction::RedisCommand, 0xc0, SET.len() as i64, 0, SET);
    h.data(1, 101, Direction::Egress, SET);
    h.data(1, 101, Direction::Ingress, b"+OK\r\n");
    h.lib(LibPhase::Exit, 100, 101, LibFunction::RedisCommand, 0xc0, 0x5555, 5, b"");
    let spans = h.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let s = &spans[0];
    assert_eq!(s.operation, "redis SET");
    assert_eq!(tag(s, "code.function"), Some(&TagValue::Str("redisCommand".into())));
    assert_eq!(tag(s, "db.redis.reply_type"), Some(&TagValue::Str("status".into())));
    assert_eq!(tag(s, "net.peer.port"), Some(&TagValue::Long(6379)));
    assert!(!format!("{s:?}").contains("secret"));
}

#[test]
fn an_encrypted_send_and_read_make_one_span_with_the_library_error() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40000", "127.0.0.1:3306"));
    h.lib(LibPhase::Enter, 100, 101, LibFunction::MysqlSendQuery, 0xd0, 0, 0, b"SELECT * FROM t WHERE pw = 'x'");
    // The kernel put these ids in the option of the query's first packet.
    let sent = KernelContext::Client { trace_hi: 5, trace_lo: 6, span_id: 0x99 };
    h.data_ctx(1, 101, Direction::Egress, b"\x17\x03\x03\x00\x10encrypted-bytes!", sent);
    h.lib(LibPhase::Exit, 100, 101, LibFunction::MysqlSendQuery, 0xd0, 0, 0, b"");
    h.lib(LibPhase::Enter, 100, 101, LibFunction::MysqlReadQueryResult, 0xd0, 0, 0, b"");
    h.data(1, 101, Direction::Ingress, b"\x17\x03\x03\x00\x10encrypted-bytes!");
    h.lib(LibPhase::Exit, 100, 101, LibFunction::MysqlReadQueryResult, 0xd0, 1, 1146, b"Table 'd.t' doesn't exist");
    let spans = h.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let s = &spans[0];
    assert_eq!(s.operation, "mysql SELECT");
    assert_eq!(tag(s, "db.statement"), Some(&TagValue::Str("SELECT * FROM t WHERE pw = ?".into())));
    assert_eq!(tag(s, "db.mysql.error_code"), Some(&TagValue::Long(1146)));
    assert_eq!(
        tag(s, "error.message"),
        Some(&TagValue::Str("Table ? doesn't exist".into())),
        "the library's message, its quoted values redacted"
    );
    assert_eq!(tag(s, "net.peer.port"), Some(&TagValue::Long(3306)));
    assert_eq!((s.trace_id, s.span_id), (TraceId { high: 5, low: 6 }, 0x99), "the ids the peer was sent");
}

#[test]
fn a_plaintext_send_and_read_make_one_span() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40000", "127.0.0.1:3306"));
    // The protocol is detected from the server's greeting.
    let greeting = b"\x4a\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB\x00\x08\x00\x00\x00abcdefgh\x00\xfe\xf7\x2d\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00";
    h.data(1, 101, Direction::Ingress, greeting);
    let query = b"\x09\x00\x00\x00\x03SELECT 1";
    h.lib(LibPhase::Enter, 100, 101, LibFunction::MysqlSendQuery, 0xd0, 0, 0, b"SELECT 1");
    h.data(1, 101, Direction::Egress, query);
    h.lib(LibPhase::Exit, 100, 101, LibFunction::MysqlSendQuery, 0xd0, 0, 0, b"");
    h.lib(LibPhase::Enter, 100, 101, LibFunction::MysqlReadQueryResult, 0xd0, 0, 0, b"");
    h.data(1, 101, Direction::Ingress, b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00");
    h.lib(LibPhase::Exit, 100, 101, LibFunction::MysqlReadQueryResult, 0xd0, 0, 0, b"");
    let spans = h.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].operation, "mysql SELECT");
    assert_eq!(tag(&spans[0], "code.function"), Some(&TagValue::Str("mysql_send_query".into())));
}

#[test]
fn async_commands_lend_their_details_to_the_matching_wire_request_only() {
    let mut h = Host::new();
    h.open(ConnKind::Connect, 1, 100, tuple("127.0.0.1:40000", "127.0.0.1:6379"));
    let get = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    // Two commands queued: SET then GET.
    for cmd in [SET, &get[..]] {
        h.lib(LibPhase::Enter, 100, 101, LibFunction::RedisAsyncCommand, 0xa0, 0, 0, b"");
        h.lib(LibPhase::Arg, 100, 101, LibFunction::RedisAsyncCommand, 0xa0, cmd.len() as i64, 0, cmd);
        h.lib(LibPhase::Exit, 100, 101, LibFunction::RedisAsyncCommand, 0xa0, 0, -1, b"");
    }
    // The event loop writes both, outside any traced call, and reads both replies.
    let mut both = SET.to_vec();
    both.extend_from_slice(get);
    h.data(1, 101, Direction::Egress, &both);
    h.data(1, 101, Direction::Ingress, b"+OK\r\n$1\r\nv\r\n");
    // The read handler hands the buffered replies over through redisGetReply (no socket
    // activity inside it): no span of its own, even for an error reply.
    h.lib(LibPhase::Enter, 100, 101, LibFunction::RedisGetReply, 0xa0, 0, 0, b"");
    h.lib(LibPhase::Exit, 100, 101, LibFunction::RedisGetReply, 0xa0, 0, 6, b"ERR value is not an integer");
    let spans = h.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for s in &spans {
        assert_eq!(tag(s, "code.function"), Some(&TagValue::Str("redisAsyncCommand".into())), "{s:#?}");
    }
    // A queued command whose request never shows (or another one does) lends nothing.
    h.lib(LibPhase::Enter, 100, 101, LibFunction::RedisAsyncCommand, 0xa0, 0, 0, b"");
    h.lib(LibPhase::Arg, 100, 101, LibFunction::RedisAsyncCommand, 0xa0, SET.len() as i64, 0, SET);
    h.lib(LibPhase::Exit, 100, 101, LibFunction::RedisAsyncCommand, 0xa0, 0, -1, b"");
    h.data(1, 101, Direction::Egress, get);
    h.data(1, 101, Direction::Ingress, b"$1\r\nv\r\n");
    let spans = h.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(tag(&spans[0], "code.function"), None);
}

#[test]
fn grpc_streams_on_one_host_join_by_stream_id_whatever_the_interleaving() {
    // Eight concurrent calls on one connection (a real grpc-go capture): each server span is
    // parented by the client span of the same stream, though responses end out of order.
    let chunks = crate::protocol::tests::harness::load("http2", "grpc_concurrent");
    let mut h = Host::new();
    let (c, s) = (tuple("127.0.0.1:40100", "127.0.0.1:50051"), tuple("127.0.0.1:50051", "127.0.0.1:40100"));
    h.open(ConnKind::Connect, 1, 100, c);
    h.open(ConnKind::Accept, 2, 200, s);
    // The server reads what the client wrote after it; the client reads responses later.
    for chunk in &chunks {
        if chunk.from_client {
            h.data(1, 100, Direction::Egress, &chunk.data);
            h.data(2, 200, Direction::Ingress, &chunk.data);
        } else {
            h.data(2, 200, Direction::Egress, &chunk.data);
        }
    }
    for chunk in chunks.iter().filter(|c| !c.from_client) {
        h.data(1, 100, Direction::Ingress, &chunk.data);
    }
    let spans = h.spans();
    assert_eq!(spans.len(), 16, "{spans:#?}");
    let stream = |s: &JaegerSpan| match tag(s, "http2.stream_id") {
        Some(TagValue::Long(v)) => *v,
        other => panic!("no stream id: {other:?}"),
    };
    for server in spans.iter().filter(|s| s.kind() == Some("server")) {
        let client = spans
            .iter()
            .find(|c| c.kind() == Some("client") && stream(c) == stream(server))
            .expect("a client span of the same stream");
        assert_eq!(server.parent_span_id, client.span_id, "stream {}", stream(server));
        assert_eq!(server.trace_id, client.trace_id);
        assert_eq!(server.tag_str("tracer.link"), Some("same-host-tuple"));
        assert_eq!(server.operation, "/demo.Greeter/SayHello");
        assert_eq!(server.tag_str("rpc.system"), Some("grpc"));
    }
}

#[test]
fn requests_beyond_the_pending_bound_open_no_span_state_and_are_counted() {
    use crate::protocol::session::MAX_PENDING;
    let mut h = Host::new();
    h.open(ConnKind::Accept, 1, 100, tuple("127.0.0.1:6379", "127.0.0.1:40000"));
    let ping = b"*1\r\n$4\r\nPING\r\n";
    // Pipelined requests whose responses never come, past the session's bound.
    let calls = MAX_PENDING / 64 + 2;
    for _ in 0..calls {
        h.data(1, 100, Direction::Ingress, &ping.repeat(64));
    }
    let open = h.table.get(1).expect("connection").state.open.len();
    assert_eq!(open, MAX_PENDING, "requests the session dropped keep no ids");
    let beyond = (calls * 64 - MAX_PENDING) as u64;
    assert_eq!(h.counters.dropped(counters::AssembleDrop::OpenFull), beyond);
}

/// grpc-go on one host: an api process (pid 100) serves eight HTTP requests, each in goroutine
/// 20 + i, and calls an rpc process (pid 200) on one HTTP/2 connection whose frames goroutine 50
/// writes (a real grpc-go capture, streams 1, 3, … 15). The rpc process reads every stream in
/// goroutine 60, runs each handler in goroutine 40 + i, which calls Redis, and answers from
/// goroutine 61. With the stream hand-offs, some before the stream's request started and some
/// after, every Redis call chains up to its HTTP request: Redis → rpc server → api client →
/// api server, in one trace per request.
#[test]
fn grpc_go_hand_offs_chain_handler_calls_and_calls_to_their_requests() {
    use crate::reader::decode::{GoStreamRecord, StreamRole};
    let chunks = crate::protocol::tests::harness::load("http2", "grpc_concurrent");
    let mut h = Host::new();
    let (c, s) = (tuple("127.0.0.1:40100", "127.0.0.1:50051"), tuple("127.0.0.1:50051", "127.0.0.1:40100"));
    let hand_off = |h: &mut Host, conn: u64, pid: u32, goid: u64, stream: u32, role: StreamRole| {
        let rec = GoStreamRecord { pid, tid: 1, ts_ns: h.ts, conn_id: conn, goid, stream_id: stream, role };
        h.asm.on_go_stream(h.table.get_mut(conn), &rec, &mut h.st);
    };
    for i in 0..8u64 {
        h.open(ConnKind::Accept, 10 + i, 100, tuple("127.0.0.1:8080", &format!("127.0.0.1:{}", 41000 + i)));
        h.goid = Some(20 + i);
        h.data(10 + i, 7, Direction::Ingress, format!("GET /r/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    h.open(ConnKind::Connect, 1, 100, c);
    h.open(ConnKind::Accept, 2, 200, s);
    let stream = |i: u64| (2 * i + 1) as u32;
    for i in (0..8).step_by(2) {
        hand_off(&mut h, 1, 100, 20 + i, stream(i), StreamRole::Client);
    }
    hand_off(&mut h, 2, 200, 40, stream(0), StreamRole::Server);
    for chunk in chunks.iter().filter(|c| c.from_client) {
        h.goid = Some(50);
        h.data(1, 8, Direction::Egress, &chunk.data);
        h.goid = Some(60);
        h.data(2, 9, Direction::Ingress, &chunk.data);
    }
    for i in (1..8).step_by(2) {
        hand_off(&mut h, 1, 100, 20 + i, stream(i), StreamRole::Client);
    }
    for i in 0..8u64 {
        if i > 0 {
            hand_off(&mut h, 2, 200, 40 + i, stream(i), StreamRole::Server);
        }
        h.open(ConnKind::Connect, 30 + i, 200, tuple(&format!("127.0.0.1:{}", 51000 + i), "127.0.0.1:6379"));
        h.goid = Some(40 + i);
        h.data(30 + i, 9, Direction::Egress, format!("*2\r\n$3\r\nGET\r\n$5\r\nreq:{i}\r\n").as_bytes());
        h.data(30 + i, 9, Direction::Ingress, b"$1\r\n1\r\n");
    }
    // A hand-off on an unknown connection, and one whose role is not the connection's.
    hand_off(&mut h, 99, 200, 70, 1, StreamRole::Server);
    hand_off(&mut h, 2, 200, 70, 1, StreamRole::Client);
    for chunk in chunks.iter().filter(|c| !c.from_client) {
        h.goid = Some(61);
        h.data(2, 9, Direction::Egress, &chunk.data);
        h.goid = Some(51);
        h.data(1, 8, Direction::Ingress, &chunk.data);
    }
    for i in 0..8u64 {
        h.goid = Some(20 + i);
        h.data(10 + i, 7, Direction::Egress, OK);
    }
    let spans = h.spans();
    let by_id = |id: u64| spans.iter().find(|s| s.span_id == id);
    let stream_of = |s: &JaegerSpan| match tag(s, "http2.stream_id") {
        Some(TagValue::Long(v)) => *v as u64,
        _ => 0,
    };
    for i in 0..8u64 {
        let front = spans.iter().find(|s| s.kind() == Some("server") && s.operation.ends_with(&format!("/r/{i}")));
        let front = front.expect("the api's server span");
        let redis = spans.iter().find(|s| s.tag_str("db.statement").is_some_and(|st| st.contains(&format!("req:{i}"))));
        let redis = redis.expect("the handler's Redis span");
        let handler = by_id(redis.parent_span_id).expect("Redis call → rpc server span");
        assert_eq!((handler.kind(), stream_of(handler)), (Some("server"), u64::from(stream(i))), "request {i}");
        let call = by_id(handler.parent_span_id).expect("rpc server → api client span");
        assert_eq!((call.kind(), stream_of(call)), (Some("client"), u64::from(stream(i))), "request {i}");
        assert_eq!(call.parent_span_id, front.span_id, "request {i}: the call is its HTTP request's child");
        for span in [redis, handler, call] {
            assert_eq!(span.trace_id, front.trace_id, "request {i}: one trace");
        }
    }
    let outcomes = h.counters.streams.iter().map(|c| c.get()).collect::<Vec<_>>();
    // applied, waiting, unknown connection, mismatch, waiting full.
    assert_eq!(outcomes, [11, 5, 1, 1, 0]);
}

mod loss;
