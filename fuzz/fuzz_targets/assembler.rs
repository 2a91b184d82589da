//! Fuzzes the processing loop's state machines (connection table, span assembly with protocol
//! detection, the stitcher) with sequences of decoded kernel events built from the input:
//! connections opened, fed, closed and reset in any order, calls on connections never opened,
//! sequence numbers that jump, kernel contexts and peers' options, client-library calls,
//! process exits, and clock ticks, through `pipeline::apply` as the daemon's loop does.
//!
//! Input: a sequence of events, each one op byte (bits 0-2: the kind) followed by its fields
//! (see `Reader::event`). Connections are four client/server pairs on loopback, one per
//! protocol port (HTTP 8080, Redis 6379, MySQL 3306, gRPC 50051); payloads are either one of
//! a few real messages of those protocols or bytes taken from the input.
//!
//! Invariants: no panic; the connection table stays within its capacity; every span that
//! leaves has a trace id and a span id, is not its own parent, lasts no negative time, and
//! renders; requests waiting for their other side stay within the join tables' bounds.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tracer_daemon::assemble::{AssembleCounters, Assembler, ConnSpans};
use tracer_daemon::conn::{ConnTable, listen::ListenTable};
use tracer_daemon::metrics::Counter;
use tracer_daemon::model::conn::{ConnKind, Direction, Tuple};
use tracer_daemon::model::{Process, Span, TraceId};
use tracer_daemon::pipeline::{self, Options};
use tracer_daemon::protocol::Redaction;
use tracer_daemon::reader::clock::WallClock;
use tracer_daemon::reader::decode::{
    ConnRecord, DataRecord, Event, GoStreamRecord, KernelContext, LibFunction, LibPhase, LibRecord, Library,
    LostBefore, OptionRecord, StateRecord, StreamRole, Syscall,
};
use tracer_daemon::render;
use tracer_daemon::stitch::{IdSource, StitchConfig, Stitcher};

/// Counting ids, so that a run is deterministic.
#[derive(Default)]
struct Counting(u64);

impl IdSource for Counting {
    fn trace_id(&mut self) -> TraceId {
        self.0 += 1;
        TraceId { high: 0, low: self.0 }
    }
    fn span_id(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

const PORTS: [u16; 4] = [8080, 6379, 3306, 50051];
const CLIENT_PID: u32 = 1000;
const SERVER_PID: u32 = 2000;
const MAX_CONNECTIONS: usize = 6;

/// Real first messages of each protocol, both directions.
const MESSAGES: &[&[u8]] = &[
    b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"+OK\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"-ERR unknown\r\n",
    b"\x0a\x00\x00\x00\x0a\x35\x2e\x35\x2e\x35\x00\x01\x00\x00\x00\x41\x41\x41\x41\x41\x41\x41\x41\x00\xff\xf7",
    b"\x09\x00\x00\x00\x03SELECT 1",
    b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00",
    b"\x05\x00\x00\x01\xff\x28\x04#42",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    b"\x00\x00\x00\x04\x01\x00\x00\x00\x00",
    b"\x00\x00\x05\x01\x04\x00\x00\x00\x01\x83\x86\x44\x01\x61",
    b"\x00\x00\x03\x01\x05\x00\x00\x00\x01\x88\x40\x00",
];

struct Reader<'a> {
    data: &'a [u8],
    now: u64,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn u64(&mut self) -> u64 {
        let mut v = 0;
        for _ in 0..8 {
            v = v << 8 | u64::from(self.byte().unwrap_or(0));
        }
        v
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken.to_vec()
    }

    /// A payload: a real message, or up to 255 bytes of the input.
    fn payload(&mut self) -> Vec<u8> {
        let b = self.byte().unwrap_or(0);
        match usize::from(b & 0x7f).checked_sub(MESSAGES.len()) {
            None => MESSAGES[usize::from(b & 0x7f)].to_vec(),
            Some(_) => {
                let n = usize::from(self.byte().unwrap_or(0));
                self.bytes(n)
            }
        }
    }

    /// Connection `c` of eight: pair `c % 4` (its protocol's port), from the client (`c < 4`)
    /// or the server. Its id is the kernel's socket cookie; the tuple is as that side sees it.
    fn conn(c: u8) -> (u64, u32, Tuple) {
        let pair = usize::from(c % 4);
        let client: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 40_000 + pair as u16));
        let server: SocketAddr = SocketAddr::from(([127, 0, 0, 1], PORTS[pair]));
        if c % 8 < 4 {
            (1 + u64::from(c % 8), CLIENT_PID, Tuple { local: client, remote: server })
        } else {
            (1 + u64::from(c % 8), SERVER_PID, Tuple { local: server, remote: client })
        }
    }

    fn context(&mut self, b: u8) -> Option<KernelContext> {
        let (trace_hi, trace_lo, span_id) = (u64::from(b >> 6), 1 + u64::from(self.byte().unwrap_or(0)), 7);
        match b & 0x30 {
            0x00 => None,
            0x10 => Some(KernelContext::Client { trace_hi, trace_lo, span_id }),
            0x20 => Some(KernelContext::Peer { trace_hi, trace_lo, span_id }),
            _ => Some(KernelContext::Server { trace_hi, trace_lo }),
        }
    }

    /// The next event, or a clock tick (`None` inside `Some`).
    fn event(&mut self) -> Option<Option<Event>> {
        let op = self.byte()?;
        let b = self.byte().unwrap_or(0);
        self.now += 1_000 + u64::from(b) * 50_000;
        let (conn_id, pid, tuple) = Self::conn(b);
        let tid = pid + u32::from(op >> 7);
        let ts_enter_ns = self.now;
        let ts_exit_ns = self.now + u64::from(op >> 3 & 15) * 1_000;
        Some(Some(match op & 7 {
            0 => Event::Conn(ConnRecord {
                kind: match op >> 3 & 3 {
                    0 => ConnKind::Connect,
                    1 => ConnKind::Accept,
                    _ => ConnKind::Close,
                },
                pid,
                tid,
                ts_enter_ns,
                ts_exit_ns,
                conn_id,
                fd: 3 + i32::from(b & 7),
                ret: if op & 0x20 != 0 { -111 } else { 0 },
                syscall: Syscall::Connect,
                tuple,
                comm: "fuzz".into(),
            }),
            1 | 2 => {
                let flags = self.byte().unwrap_or(0);
                let payload = self.payload();
                let direction = if op & 1 == 1 { Direction::Egress } else { Direction::Ingress };
                let ret = match flags & 3 {
                    0 | 1 => payload.len() as i64,
                    2 => payload.len() as i64 + i64::from(flags >> 2) * 4096,
                    _ => -[104, 32, 11, 4][usize::from(flags >> 2 & 3)],
                };
                let seq = (flags & 4 != 0).then(|| (self.now as u32).wrapping_mul(u32::from(flags >> 4) + 1));
                Event::Data(DataRecord {
                    pid,
                    tid,
                    ts_enter_ns,
                    ts_exit_ns,
                    conn_id,
                    fd: 3,
                    syscall: if direction == Direction::Egress { Syscall::Write } else { Syscall::Read },
                    direction,
                    ret,
                    truncated: ret > payload.len() as i64,
                    tuple,
                    context: self.context(flags),
                    seq,
                    netns: u32::from(flags >> 7),
                    goid: (op & 0x40 != 0).then_some(u64::from(flags & 3)),
                    // Losses the kernel reports, and captures cut short, in any order.
                    lost_before: LostBefore {
                        ingress: op & 0x80 != 0 && flags & 1 != 0,
                        egress: op & 0x80 != 0 && flags & 2 != 0,
                    },
                    degraded: op & 0x10 != 0 && ret > payload.len() as i64,
                    payload,
                })
            }
            3 => Event::State(StateRecord {
                ts_ns: ts_exit_ns,
                conn_id,
                old_state: tracer_common::TCP_ESTABLISHED,
                new_state: if op & 8 != 0 { tracer_common::TCP_CLOSE } else { u32::from(op >> 4 & 15) },
                tuple,
            }),
            4 => Event::Exit { pid, ts_ns: ts_exit_ns },
            5 => {
                let f = self.byte().unwrap_or(0);
                let (function, _) = LibFunction::ALL[usize::from(f & 15)];
                let library = if function.is_hiredis() {
                    Library::Hiredis
                } else if f & 16 != 0 {
                    Library::Mariadb
                } else {
                    Library::Mysqlclient
                };
                let phase = match op >> 3 & 3 {
                    0 => LibPhase::Enter,
                    1 => LibPhase::Arg,
                    _ => LibPhase::Exit,
                };
                Event::Lib(LibRecord {
                    phase,
                    library,
                    function,
                    pid,
                    tid,
                    ts_ns: ts_exit_ns,
                    ts_enter_ns,
                    ret: i64::from(f >> 5) - 1,
                    handle: 0x1000 + u64::from(b & 3),
                    arg: u64::from(PORTS[usize::from(b % 4)]),
                    status: i32::from(f >> 5) - 1,
                    payload: self.payload(),
                })
            }
            6 if op & 0x40 != 0 => {
                // A grpc-go stream hand-off, on a known connection or not, either role.
                let g = self.byte().unwrap_or(0);
                Event::GoStream(GoStreamRecord {
                    pid,
                    tid,
                    ts_ns: ts_exit_ns,
                    conn_id: conn_id + u64::from(g >> 7),
                    goid: 1 + u64::from(g & 7),
                    stream_id: u32::from(g >> 3 & 7) * 2 + 1,
                    role: if g & 0x40 == 0 { StreamRole::Client } else { StreamRole::Server },
                })
            }
            6 => {
                let flags = self.byte().unwrap_or(0);
                let context = self.context(flags & !0x30 | 0x20).unwrap_or(KernelContext::Peer {
                    trace_hi: 0,
                    trace_lo: 1,
                    span_id: 7,
                });
                Event::Option(OptionRecord { ts_ns: ts_exit_ns, conn_id, seq: self.u64() as u32, context })
            }
            _ => {
                // A tick; a long one lets held spans and joins age out.
                if op & 8 != 0 {
                    self.now += 10_000_000_000;
                }
                return Some(None);
            }
        }))
    }
}

fn check(spans: &mut Vec<Span>) {
    for s in spans.drain(..) {
        assert!(s.trace_id != TraceId::default(), "no trace id: {s:?}");
        assert!(s.span_id != 0, "no span id: {s:?}");
        assert!(s.parent_span_id != s.span_id, "its own parent: {s:?}");
        assert!(s.duration_us >= 0, "negative duration: {s:?}");
        let _ = render::jaeger::render(&s);
        let _ = render::otlp::render(&s);
    }
}

fuzz_target!(|data: &[u8]| {
    let process = Arc::new(Process { service_name: "fuzz".into(), tags: Vec::new() });
    let mut asm = Assembler::new(
        Redaction { enabled: data.first().is_some_and(|b| b & 1 == 0) },
        WallClock::with_offset(1_700_000_000_000_000_000),
        Box::new(move |_| process.clone()),
        AssembleCounters::detached(),
    );
    let mut stitcher = Stitcher::with_ids(StitchConfig::default(), Counting::default());
    let mut table: ConnTable<ConnSpans> = ConnTable::new(MAX_CONNECTIONS);
    let mut listen = ListenTable::counting(Counter::detached());
    let opts = Options { print_events: false, max_connections: MAX_CONNECTIONS, on_exit: None, on_seen: None };
    let mut reader = Reader { data, now: 1_000_000 };
    let mut ready = Vec::new();
    while let Some(event) = reader.event() {
        match event {
            Some(e) => pipeline::apply(&e, &mut table, &mut listen, &mut asm, &mut stitcher, &opts),
            None => asm.drain(reader.now, false, &mut stitcher, &mut ready),
        }
        assert!(table.len() <= MAX_CONNECTIONS);
        check(&mut ready);
    }
    asm.drain(reader.now + 1, true, &mut stitcher, &mut ready);
    check(&mut ready);
    // Requests waiting for their other side stay bounded (each direction's table).
    assert!(stitcher.pending_joins() <= 2 * StitchConfig::default().max_joins);
});
