//! Pure, total decoding of kernel event records (`tracer-common`) into owned Rust values.
//! Any byte string decodes to an event or a `DecodeError`; nothing here panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;
use tracer_common as k;

use crate::model::conn::{ConnKind, Direction, Tuple};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {what} header ({need} bytes)")]
    Short { what: &'static str, len: usize, need: usize },
    #[error("unknown event kind {0}")]
    Kind(u32),
    #[error("unknown {what} value {value}")]
    Value { what: &'static str, value: u32 },
    #[error("data record claims {claimed} payload bytes but carries {present}")]
    Payload { claimed: u32, present: usize },
}

impl DecodeError {
    /// A short label for the `reason` of the decode-error counter.
    /// Every value of [`Self::reason`].
    pub const REASONS: [&'static str; 4] = ["short", "kind", "value", "payload"];

    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Short { .. } => "short",
            DecodeError::Kind(_) => "kind",
            DecodeError::Value { .. } => "value",
            DecodeError::Payload { .. } => "payload",
        }
    }
}

impl Tuple {
    fn from_kernel(t: &k::Tuple) -> Result<Self, DecodeError> {
        let addr = |raw: &[u8; 16], port: u16| -> Result<SocketAddr, DecodeError> {
            let ip = match t.family {
                k::AF_INET => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
                // IPv4-mapped IPv6 addresses are shown as the IPv4 address they carry.
                k::AF_INET6 => IpAddr::V6(Ipv6Addr::from(*raw)).to_canonical(),
                other => return Err(DecodeError::Value { what: "address family", value: other as u32 }),
            };
            Ok(SocketAddr::new(ip, port))
        };
        Ok(Tuple { local: addr(&t.laddr, t.lport)?, remote: addr(&t.raddr, t.rport)? })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Syscall {
    Read,
    Write,
    Sendto,
    Recvfrom,
    Sendmsg,
    Recvmsg,
    Readv,
    Writev,
    Connect,
    Accept,
    Accept4,
    Close,
}

impl TryFrom<u32> for Syscall {
    type Error = DecodeError;
    fn try_from(v: u32) -> Result<Self, DecodeError> {
        Ok(match v {
            k::SYS_READ => Syscall::Read,
            k::SYS_WRITE => Syscall::Write,
            k::SYS_SENDTO => Syscall::Sendto,
            k::SYS_RECVFROM => Syscall::Recvfrom,
            k::SYS_SENDMSG => Syscall::Sendmsg,
            k::SYS_RECVMSG => Syscall::Recvmsg,
            k::SYS_READV => Syscall::Readv,
            k::SYS_WRITEV => Syscall::Writev,
            k::SYS_CONNECT => Syscall::Connect,
            k::SYS_ACCEPT => Syscall::Accept,
            k::SYS_ACCEPT4 => Syscall::Accept4,
            k::SYS_CLOSE => Syscall::Close,
            value => return Err(DecodeError::Value { what: "syscall", value }),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnRecord {
    pub kind: ConnKind,
    pub pid: u32,
    pub tid: u32,
    /// CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// CLOCK_MONOTONIC ns.
    pub ts_exit_ns: u64,
    pub conn_id: u64,
    pub fd: i32,
    pub ret: i64,
    pub syscall: Syscall,
    pub tuple: Tuple,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataRecord {
    pub pid: u32,
    pub tid: u32,
    /// CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// CLOCK_MONOTONIC ns.
    pub ts_exit_ns: u64,
    pub conn_id: u64,
    pub fd: i32,
    pub syscall: Syscall,
    pub direction: Direction,
    /// Bytes moved, or a negative errno.
    pub ret: i64,
    /// The call moved more than `payload` holds.
    pub truncated: bool,
    pub tuple: Tuple,
    /// Trace context the kernel attached (propagation through the TCP option).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<KernelContext>,
    /// TCP sequence number of the call's first byte (server reads and client request starts,
    /// with propagation on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// Inode number of the socket's network namespace (0: unknown).
    pub netns: u32,
    /// Go processes: the goroutine that made the call (`runtime.g.goid`), when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goid: Option<u64>,
    /// Data calls of this socket the kernel lost before this one, by direction.
    #[serde(skip_serializing_if = "LostBefore::is_none")]
    pub lost_before: LostBefore,
    /// The ring buffer was half full: the call's capture was cut short (`truncated` too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    #[serde(serialize_with = "escaped")]
    pub payload: Vec<u8>,
}

/// Directions in which a socket's data calls were lost in the kernel (ring buffer full,
/// in-flight table full) before the call that reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LostBefore {
    pub ingress: bool,
    pub egress: bool,
}

impl LostBefore {
    pub fn is_none(&self) -> bool {
        !self.ingress && !self.egress
    }

    /// Whether calls moving bytes in `dir` were lost.
    pub fn has(&self, dir: Direction) -> bool {
        match dir {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }
}

/// Trace context attached to a data call by the kernel's propagation (`CTX_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KernelContext {
    /// The call started a client request; the kernel chose its trace id and client span id and
    /// put them in the TCP option of its first packet.
    Client { trace_hi: u64, trace_lo: u64, span_id: u64 },
    /// The call read a request's first byte, whose packet carried the peer's option: the trace
    /// id and the peer's client span id.
    Peer { trace_hi: u64, trace_lo: u64, span_id: u64 },
    /// The call started a server request without an option: the trace id the kernel chose for
    /// it (calls the serving thread makes carry it).
    Server { trace_hi: u64, trace_lo: u64 },
}

impl KernelContext {
    fn from_kernel(kind: u32, c: &k::WireContext) -> Result<Option<Self>, DecodeError> {
        let (trace_hi, trace_lo, span_id) = (c.trace_hi, c.trace_lo, c.span_id);
        Ok(match kind {
            k::CTX_NONE => None,
            // Zero ids are invalid in Jaeger: such a context is ignored, not an error.
            _ if trace_hi == 0 && trace_lo == 0 => None,
            k::CTX_CLIENT | k::CTX_PEER if span_id == 0 => None,
            k::CTX_CLIENT => Some(KernelContext::Client { trace_hi, trace_lo, span_id }),
            k::CTX_PEER => Some(KernelContext::Peer { trace_hi, trace_lo, span_id }),
            k::CTX_SERVER => Some(KernelContext::Server { trace_hi, trace_lo }),
            value => return Err(DecodeError::Value { what: "context kind", value }),
        })
    }
}

fn escaped<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&bytes.escape_ascii().to_string())
}

/// A peer's trace-context option on a packet of a server connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OptionRecord {
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    pub conn_id: u64,
    /// TCP sequence number of the packet's first payload byte.
    pub seq: u32,
    /// Always `KernelContext::Peer`.
    pub context: KernelContext,
}

/// Which side of a gRPC stream a goroutine took up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamRole {
    /// It sends a message on a client stream (it makes the call).
    Client,
    /// It runs the handler of a server stream (it serves the request).
    Server,
}

/// A goroutine of a Go process took up a grpc-go stream (`EVENT_GO_STREAM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GoStreamRecord {
    pub pid: u32,
    pub tid: u32,
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// The kernel socket of the stream's connection (as `DataRecord::conn_id`).
    pub conn_id: u64,
    pub goid: u64,
    pub stream_id: u32,
    pub role: StreamRole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateRecord {
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    pub conn_id: u64,
    pub old_state: u32,
    pub new_state: u32,
    pub tuple: Tuple,
}

/// Which client library a library event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Library {
    Hiredis,
    Mysqlclient,
    Mariadb,
}

impl Library {
    /// The library's usual name, as shown in span tags.
    pub fn name(self) -> &'static str {
        match self {
            Library::Hiredis => "hiredis",
            Library::Mysqlclient => "libmysqlclient",
            Library::Mariadb => "libmariadb",
        }
    }

    /// The database system it talks to (`db.system`).
    pub fn db_system(self) -> &'static str {
        match self {
            Library::Hiredis => "redis",
            Library::Mysqlclient | Library::Mariadb => "mysql",
        }
    }
}

/// A traced client-library function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LibFunction {
    RedisCommand,
    RedisvCommand,
    RedisCommandArgv,
    RedisGetReply,
    RedisAppendCommand,
    RedisAppendCommandArgv,
    RedisAsyncCommand,
    RedisAsyncCommandArgv,
    RedisAsyncFormattedCommand,
    MysqlRealConnect,
    MysqlRealQuery,
    MysqlQuery,
    MysqlSendQuery,
    MysqlReadQueryResult,
    MysqlStmtPrepare,
    MysqlStmtExecute,
}

impl LibFunction {
    /// Every traced function with its `FN_*` id in library events.
    pub const ALL: [(LibFunction, u32); 16] = [
        (LibFunction::RedisCommand, k::FN_REDIS_COMMAND),
        (LibFunction::RedisvCommand, k::FN_REDISV_COMMAND),
        (LibFunction::RedisCommandArgv, k::FN_REDIS_COMMAND_ARGV),
        (LibFunction::RedisGetReply, k::FN_REDIS_GET_REPLY),
        (LibFunction::RedisAppendCommand, k::FN_REDIS_APPEND_COMMAND),
        (LibFunction::RedisAppendCommandArgv, k::FN_REDIS_APPEND_COMMAND_ARGV),
        (LibFunction::RedisAsyncCommand, k::FN_REDIS_ASYNC_COMMAND),
        (LibFunction::RedisAsyncCommandArgv, k::FN_REDIS_ASYNC_COMMAND_ARGV),
        (LibFunction::RedisAsyncFormattedCommand, k::FN_REDIS_ASYNC_FORMATTED_COMMAND),
        (LibFunction::MysqlRealConnect, k::FN_MYSQL_REAL_CONNECT),
        (LibFunction::MysqlRealQuery, k::FN_MYSQL_REAL_QUERY),
        (LibFunction::MysqlQuery, k::FN_MYSQL_QUERY),
        (LibFunction::MysqlSendQuery, k::FN_MYSQL_SEND_QUERY),
        (LibFunction::MysqlReadQueryResult, k::FN_MYSQL_READ_QUERY_RESULT),
        (LibFunction::MysqlStmtPrepare, k::FN_MYSQL_STMT_PREPARE),
        (LibFunction::MysqlStmtExecute, k::FN_MYSQL_STMT_EXECUTE),
    ];

    /// Whether this is a command entry point of the async hiredis API.
    pub fn is_async(self) -> bool {
        matches!(
            self,
            LibFunction::RedisAsyncCommand
                | LibFunction::RedisAsyncCommandArgv
                | LibFunction::RedisAsyncFormattedCommand
        )
    }

    /// Whether this is a hiredis function (otherwise one of the MySQL API).
    pub fn is_hiredis(self) -> bool {
        !matches!(
            self,
            LibFunction::MysqlRealConnect
                | LibFunction::MysqlRealQuery
                | LibFunction::MysqlQuery
                | LibFunction::MysqlSendQuery
                | LibFunction::MysqlReadQueryResult
                | LibFunction::MysqlStmtPrepare
                | LibFunction::MysqlStmtExecute
        )
    }
}

impl TryFrom<u32> for LibFunction {
    type Error = DecodeError;
    fn try_from(v: u32) -> Result<Self, DecodeError> {
        LibFunction::ALL
            .iter()
            .find(|e| e.1 == v)
            .map(|e| e.0)
            .ok_or(DecodeError::Value { what: "library function", value: v })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LibPhase {
    /// The outermost traced call on the thread started.
    Enter,
    /// An argument seen inside the call (hiredis: the RESP-formatted command).
    Arg,
    /// The call returned.
    Exit,
}

/// A client-library call event (`LibEvent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LibRecord {
    pub phase: LibPhase,
    pub library: Library,
    pub function: LibFunction,
    pub pid: u32,
    pub tid: u32,
    /// When the event was raised, CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// Entry of the call, CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// Exit: the return value. Arg: the argument's full length.
    pub ret: i64,
    /// The connection handle (first argument), an opaque identity.
    pub handle: u64,
    /// Enter of `mysql_real_connect`: the port.
    pub arg: u64,
    /// Exit of a hiredis call: the reply type, -1 without a reply.
    pub status: i32,
    #[serde(serialize_with = "escaped")]
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    Conn(ConnRecord),
    Data(DataRecord),
    State(StateRecord),
    Exit { pid: u32, ts_ns: u64 },
    Lib(LibRecord),
    Option(OptionRecord),
    GoStream(GoStreamRecord),
}

impl Event {
    /// The label of the events-by-kind counter.
    /// Every value of [`Self::kind_label`].
    pub const KIND_LABELS: [&'static str; 11] = [
        "connect",
        "accept",
        "close",
        "data",
        "state",
        "exit",
        "option",
        "lib_enter",
        "lib_arg",
        "lib_exit",
        "go_stream",
    ];

    pub fn kind_label(&self) -> &'static str {
        match self {
            Event::Conn(c) => match c.kind {
                ConnKind::Connect => "connect",
                ConnKind::Accept => "accept",
                ConnKind::Close => "close",
            },
            Event::Data(_) => "data",
            Event::State(_) => "state",
            Event::Exit { .. } => "exit",
            Event::Option(_) => "option",
            Event::GoStream(_) => "go_stream",
            Event::Lib(l) => match l.phase {
                LibPhase::Enter => "lib_enter",
                LibPhase::Arg => "lib_arg",
                LibPhase::Exit => "lib_exit",
            },
        }
    }
}

/// Reads a plain-old-data record from the front of `bytes`.
fn read<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short { what, len: bytes.len(), need });
    }
    // SAFETY: the length is checked; `T` is one of the `#[repr(C)]` integer-only records of
    // tracer-common, valid for any bit pattern; the read is unaligned-safe.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Whether a ring-buffer record is a benchmark floor's (`k::FloorEvent`), which is not decoded.
pub fn is_floor(bytes: &[u8]) -> bool {
    bytes.get(..4).is_some_and(|kind| u32::from_ne_bytes([kind[0], kind[1], kind[2], kind[3]]) == k::EVENT_FLOOR)
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: k::EventHeader = read(bytes, "event")?;
    match header.kind {
        k::EVENT_CONNECT | k::EVENT_ACCEPT | k::EVENT_CLOSE => {
            let e: k::ConnEvent = read(bytes, "connection")?;
            Ok(Event::Conn(ConnRecord {
                kind: match header.kind {
                    k::EVENT_CONNECT => ConnKind::Connect,
                    k::EVENT_ACCEPT => ConnKind::Accept,
                    _ => ConnKind::Close,
                },
                pid: header.pid,
                tid: header.tid,
                ts_enter_ns: e.ts_enter_ns,
                ts_exit_ns: header.ts_ns,
                conn_id: e.conn_id,
                fd: e.fd,
                ret: e.ret,
                syscall: Syscall::try_from(e.syscall)?,
                tuple: Tuple::from_kernel(&e.tuple)?,
                comm: comm(&e.comm),
            }))
        }
        k::EVENT_DATA => {
            let e: k::DataEvent = read(bytes, "data")?;
            let payload = &bytes[size_of::<k::DataEvent>()..];
            if payload.len() < e.captured as usize {
                return Err(DecodeError::Payload { claimed: e.captured, present: payload.len() });
            }
            Ok(Event::Data(DataRecord {
                pid: header.pid,
                tid: header.tid,
                ts_enter_ns: e.ts_enter_ns,
                ts_exit_ns: header.ts_ns,
                conn_id: e.conn_id,
                fd: e.fd,
                syscall: Syscall::try_from(e.syscall)?,
                direction: match e.direction {
                    k::DIR_EGRESS => Direction::Egress,
                    k::DIR_INGRESS => Direction::Ingress,
                    value => return Err(DecodeError::Value { what: "direction", value }),
                },
                ret: e.ret,
                truncated: e.flags & k::FLAG_TRUNCATED != 0,
                tuple: Tuple::from_kernel(&e.tuple)?,
                context: KernelContext::from_kernel(e.ctx_kind, &e.ctx)?,
                seq: (e.flags & k::FLAG_SEQ != 0).then_some(e.seq),
                netns: e.netns,
                goid: (e.goid != 0).then_some(e.goid),
                lost_before: LostBefore {
                    ingress: e.flags & k::FLAG_LOST_INGRESS != 0,
                    egress: e.flags & k::FLAG_LOST_EGRESS != 0,
                },
                degraded: e.flags & k::FLAG_DEGRADED != 0,
                payload: payload[..e.captured as usize].to_vec(),
            }))
        }
        k::EVENT_STATE => {
            let e: k::StateEvent = read(bytes, "state")?;
            Ok(Event::State(StateRecord {
                ts_ns: header.ts_ns,
                conn_id: e.conn_id,
                old_state: e.old_state,
                new_state: e.new_state,
                tuple: Tuple::from_kernel(&e.tuple)?,
            }))
        }
        k::EVENT_PROCESS_EXIT => Ok(Event::Exit { pid: header.pid, ts_ns: header.ts_ns }),
        k::EVENT_OPTION => {
            let e: k::OptionEvent = read(bytes, "option")?;
            match KernelContext::from_kernel(k::CTX_PEER, &e.ctx)? {
                Some(context) => {
                    Ok(Event::Option(OptionRecord { ts_ns: header.ts_ns, conn_id: e.conn_id, seq: e.seq, context }))
                }
                None => Err(DecodeError::Value { what: "option span id", value: 0 }),
            }
        }
        k::EVENT_GO_STREAM => {
            let e: k::GoStreamEvent = read(bytes, "go stream")?;
            let role = match e.role {
                k::GO_STREAM_CLIENT => StreamRole::Client,
                k::GO_STREAM_SERVER => StreamRole::Server,
                value => return Err(DecodeError::Value { what: "stream role", value }),
            };
            if e.goid == 0 {
                return Err(DecodeError::Value { what: "goroutine id", value: 0 });
            }
            Ok(Event::GoStream(GoStreamRecord {
                pid: header.pid,
                tid: header.tid,
                ts_ns: header.ts_ns,
                conn_id: e.conn_id,
                goid: e.goid,
                stream_id: e.stream_id,
                role,
            }))
        }
        k::EVENT_LIB_ENTER | k::EVENT_LIB_ARG | k::EVENT_LIB_EXIT => {
            let e: k::LibEvent = read(bytes, "library")?;
            let payload = &bytes[size_of::<k::LibEvent>()..];
            if payload.len() < e.captured as usize {
                return Err(DecodeError::Payload { claimed: e.captured, present: payload.len() });
            }
            let function = LibFunction::try_from(e.func)?;
            let library = match e.lib {
                k::LIB_HIREDIS => Library::Hiredis,
                k::LIB_MYSQLCLIENT => Library::Mysqlclient,
                k::LIB_MARIADB => Library::Mariadb,
                value => return Err(DecodeError::Value { what: "library", value }),
            };
            Ok(Event::Lib(LibRecord {
                phase: match header.kind {
                    k::EVENT_LIB_ENTER => LibPhase::Enter,
                    k::EVENT_LIB_ARG => LibPhase::Arg,
                    _ => LibPhase::Exit,
                },
                library,
                function,
                pid: header.pid,
                tid: header.tid,
                ts_ns: header.ts_ns,
                ts_enter_ns: e.ts_enter_ns,
                ret: e.ret,
                handle: e.handle,
                arg: e.arg,
                status: e.status,
                payload: payload[..e.captured as usize].to_vec(),
            }))
        }
        other => Err(DecodeError::Kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a padding-free repr(C) record.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn v4_tuple() -> k::Tuple {
        let mut t = k::Tuple { family: k::AF_INET, lport: 40000, rport: 6379, ..Default::default() };
        t.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        t.raddr[..4].copy_from_slice(&[127, 0, 0, 2]);
        t
    }

    #[test]
    fn decodes_go_stream_records_and_refuses_bad_roles() {
        let mut e = k::GoStreamEvent {
            header: k::EventHeader { kind: k::EVENT_GO_STREAM, pid: 10, tid: 11, _pad: 0, ts_ns: 5 },
            conn_id: 0xffff_8880_0000_2000,
            goid: 77,
            stream_id: 3,
            role: k::GO_STREAM_SERVER,
        };
        let Event::GoStream(g) = decode(&as_bytes(&e)).unwrap() else { panic!("not a go stream") };
        assert_eq!((g.pid, g.goid, g.stream_id, g.role), (10, 77, 3, StreamRole::Server));
        assert_eq!(g.conn_id, 0xffff_8880_0000_2000);
        e.role = 9;
        assert!(matches!(decode(&as_bytes(&e)), Err(DecodeError::Value { what: "stream role", .. })));
        e.role = k::GO_STREAM_CLIENT;
        e.goid = 0;
        assert!(decode(&as_bytes(&e)).is_err(), "a goroutine id of 0 names no goroutine");
        assert!(decode(&as_bytes(&e)[..30]).is_err(), "short");
    }

    #[test]
    fn decodes_a_data_record_with_payload() {
        let e = k::DataEvent {
            header: k::EventHeader { kind: k::EVENT_DATA, pid: 10, tid: 11, _pad: 0, ts_ns: 200 },
            conn_id: 0xffff_8880_0000_1000,
            ts_enter_ns: 100,
            ret: 9,
            fd: 5,
            syscall: k::SYS_WRITE,
            direction: k::DIR_EGRESS,
            captured: 4,
            flags: k::FLAG_TRUNCATED | k::FLAG_SEQ,
            ctx_kind: k::CTX_CLIENT,
            tuple: v4_tuple(),
            ctx: k::WireContext { trace_hi: 1, trace_lo: 2, span_id: 3 },
            seq: 77,
            netns: 0,
            goid: 42,
        };
        let mut bytes = as_bytes(&e);
        bytes.extend_from_slice(b"PING");
        let Event::Data(d) = decode(&bytes).unwrap() else { panic!("not data") };
        assert_eq!((d.pid, d.tid, d.fd, d.ret), (10, 11, 5, 9));
        assert_eq!((d.ts_enter_ns, d.ts_exit_ns), (100, 200));
        assert_eq!(d.payload, b"PING");
        assert!(d.truncated);
        assert_eq!(d.context, Some(KernelContext::Client { trace_hi: 1, trace_lo: 2, span_id: 3 }));
        assert_eq!(d.seq, Some(77));
        assert_eq!(d.goid, Some(42), "the goroutine of a Go program's call");
        assert_eq!(d.direction, Direction::Egress);
        assert_eq!(d.tuple.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(d.tuple.remote, "127.0.0.2:6379".parse().unwrap());
    }

    #[test]
    fn decodes_an_option_record_and_rejects_zero_ids() {
        let mut e = k::OptionEvent {
            header: k::EventHeader { kind: k::EVENT_OPTION, pid: 0, tid: 0, _pad: 0, ts_ns: 9 },
            conn_id: 0xffff_8880_0000_2000,
            seq: 4_000_000_000,
            _pad: 0,
            ctx: k::WireContext { trace_hi: 1, trace_lo: 2, span_id: 3 },
        };
        let Event::Option(o) = decode(&as_bytes(&e)).unwrap() else { panic!("not an option") };
        assert_eq!((o.ts_ns, o.conn_id, o.seq), (9, 0xffff_8880_0000_2000, 4_000_000_000));
        assert_eq!(o.context, KernelContext::Peer { trace_hi: 1, trace_lo: 2, span_id: 3 });
        e.ctx.span_id = 0;
        assert!(matches!(decode(&as_bytes(&e)), Err(DecodeError::Value { .. })));
        assert!(matches!(decode(&as_bytes(&e)[..30]), Err(DecodeError::Short { .. })));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_shown_as_ipv4() {
        let mut t = k::Tuple { family: k::AF_INET6, lport: 1, rport: 2, ..Default::default() };
        t.laddr = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().octets();
        t.raddr = Ipv6Addr::LOCALHOST.octets();
        let tuple = Tuple::from_kernel(&t).unwrap();
        assert_eq!(tuple.local, "127.0.0.1:1".parse().unwrap());
        assert_eq!(tuple.remote, "[::1]:2".parse().unwrap());
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let e = k::ConnEvent {
            header: k::EventHeader { kind: k::EVENT_CONNECT, pid: 1, tid: 1, _pad: 0, ts_ns: 1 },
            syscall: k::SYS_CONNECT,
            tuple: v4_tuple(),
            ..Default::default()
        };
        let bytes = as_bytes(&e);
        assert!(matches!(decode(&bytes), Ok(Event::Conn(_))));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err());
        }
        // Flip every byte through a few values: decoding must stay total.
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = decode(&b);
            }
        }
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert_eq!(decode(&bad), Err(DecodeError::Kind(99)));
    }

    #[test]
    fn contexts_decode_by_kind_and_zero_ids_are_ignored() {
        let c = k::WireContext { trace_hi: 0, trace_lo: 9, span_id: 4 };
        assert_eq!(KernelContext::from_kernel(k::CTX_NONE, &c), Ok(None));
        assert_eq!(
            KernelContext::from_kernel(k::CTX_PEER, &c),
            Ok(Some(KernelContext::Peer { trace_hi: 0, trace_lo: 9, span_id: 4 }))
        );
        assert_eq!(
            KernelContext::from_kernel(k::CTX_SERVER, &k::WireContext { span_id: 0, ..c }),
            Ok(Some(KernelContext::Server { trace_hi: 0, trace_lo: 9 }))
        );
        assert_eq!(KernelContext::from_kernel(k::CTX_CLIENT, &k::WireContext { span_id: 0, ..c }), Ok(None));
        assert_eq!(KernelContext::from_kernel(k::CTX_PEER, &k::WireContext::default()), Ok(None));
        assert_eq!(KernelContext::from_kernel(77, &c), Err(DecodeError::Value { what: "context kind", value: 77 }));
    }

    #[test]
    fn decodes_library_events_and_rejects_unknown_functions() {
        let e = k::LibEvent {
            header: k::EventHeader { kind: k::EVENT_LIB_ENTER, pid: 7, tid: 8, _pad: 0, ts_ns: 5 },
            lib: k::LIB_MARIADB,
            func: k::FN_MYSQL_REAL_QUERY,
            ts_enter_ns: 5,
            captured: 8,
            ..Default::default()
        };
        let mut bytes = as_bytes(&e);
        bytes.extend_from_slice(b"SELECT 1");
        let Event::Lib(l) = decode(&bytes).unwrap() else { panic!("not a library event") };
        assert_eq!((l.phase, l.library, l.function), (LibPhase::Enter, Library::Mariadb, LibFunction::MysqlRealQuery));
        assert_eq!(l.payload, b"SELECT 1");
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        let bad = k::LibEvent { func: 999, ..e };
        let mut b = as_bytes(&bad);
        b.extend_from_slice(b"SELECT 1");
        assert!(matches!(decode(&b), Err(DecodeError::Value { what: "library function", .. })));
    }

    #[test]
    fn floor_records_are_told_apart_by_their_kind() {
        let floor = k::EventHeader { kind: k::EVENT_FLOOR, ..Default::default() };
        assert!(is_floor(&as_bytes(&floor)));
        let data = k::EventHeader { kind: k::EVENT_DATA, ..Default::default() };
        assert!(!is_floor(&as_bytes(&data)));
        assert!(!is_floor(&[12, 0]), "too short to hold a kind");
    }

    #[test]
    fn payload_shorter_than_claimed_is_rejected() {
        let e = k::DataEvent {
            header: k::EventHeader { kind: k::EVENT_DATA, ..Default::default() },
            syscall: k::SYS_READ,
            direction: k::DIR_INGRESS,
            captured: 10,
            tuple: v4_tuple(),
            ..Default::default()
        };
        assert_eq!(decode(&as_bytes(&e)), Err(DecodeError::Payload { claimed: 10, present: 0 }));
    }
}
