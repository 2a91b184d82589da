//! Records, map names and limits shared by the kernel programs (`tracer-ebpf`) and the daemon.
//!
//! Every record is `#[repr(C)]`, free of implicit padding (explicit `_pad` fields) and checked
//! for size at compile time. Kinds are `u32` constants; the daemon decodes them with `TryFrom`.
//! All timestamps are CLOCK_MONOTONIC nanoseconds as returned by `bpf_ktime_get_ns`.
#![no_std]

use core::mem::size_of;

// ---------------------------------------------------------------------------------------------
// Map and program names
// ---------------------------------------------------------------------------------------------

/// Ring buffer of events. Bound: set by the daemon at load time (bytes, power of two).
/// When full, the kernel drops the event and increments `COUNTER_RINGBUF_FULL`.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU array of `u64` counters, indexed by the `COUNTER_*` constants. Never evicts.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Hash map thread id (`u32`) → in-flight syscall arguments (`SyscallArgs`), written at syscall
/// entry and removed at exit or thread exit. Bound: `MAX_INFLIGHT` (full: `COUNTER_INFLIGHT_FULL`).
pub const MAP_INFLIGHT: &str = "INFLIGHT";
/// Hash map tgid (`u32`) → `FILTER_INCLUDE` / `FILTER_EXCLUDE`. Bound: `MAX_FILTER_ENTRIES`.
pub const MAP_PID_FILTER: &str = "PID_FILTER";
/// Hash map command name (`[u8; 16]`, NUL padded) → `FILTER_INCLUDE` / `FILTER_EXCLUDE`.
pub const MAP_COMM_FILTER: &str = "COMM_FILTER";
/// Hash map TCP port (`u16`, host order, local or remote) → `FILTER_INCLUDE` / `FILTER_EXCLUDE`.
pub const MAP_PORT_FILTER: &str = "PORT_FILTER";
/// Per-CPU array with one `DataEvent` scratch slot (header + `2 * MAX_CAPTURE` bytes).
pub const MAP_SCRATCH: &str = "SCRATCH";
/// LRU hash map socket (`struct sock *` as `u64`) → `SockState`: role and last data direction of
/// the sockets whose role the kernel saw (connect / accept). Bound: `MAX_SOCKETS`.
pub const MAP_SOCK_STATE: &str = "SOCK_STATE";
/// LRU hash map `OptionKey` (socket, sequence number of a client request's first byte) →
/// `WireContext` to write on the packet that starts with that byte. Bound: `MAX_SOCKETS`.
pub const MAP_PENDING_OPTION: &str = "PENDING_OPTION";
/// LRU hash map `OptionKey` (socket, sequence number) → `WireContext` read from a peer's TCP
/// option, until the read that consumes that byte. Bound: `MAX_SOCKETS`.
pub const MAP_RECEIVED_OPTION: &str = "RECEIVED_OPTION";
/// LRU hash map `ServingKey` (a thread, or a goroutine of a Go process) → `ThreadServing`: how
/// many inbound requests it has read and not yet answered, and the trace id of the one it serves
/// when that is provable (exactly one in flight, never two since the count was last zero).
/// Bound: `MAX_INFLIGHT`.
pub const MAP_THREAD_TRACE: &str = "THREAD_TRACE";
/// Hash map tgid (`u32`) → `GoProcess`: the Go processes whose goroutine the programs read
/// (written by the daemon when it finds a Go executable, removed when the process exits).
/// Bound: `MAX_GO_PROCESSES` (full: the process keeps the thread rule).
pub const MAP_GO_PROCESSES: &str = "GO_PROCESSES";

/// Global set by the daemon: kernel struct offsets, resolved from the running kernel's BTF.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Global set by the daemon: runtime settings (`Settings`).
pub const GLOBAL_SETTINGS: &str = "SETTINGS";

/// Program names (the Rust function names in `tracer-ebpf`).
pub const PROG_RAW_SYS_ENTER: &str = "raw_sys_enter";
pub const PROG_RAW_SYS_EXIT: &str = "raw_sys_exit";
/// Classic `syscalls:sys_enter_*` tracepoints: the fallback (or chosen) syscall entry hook.
pub const PROG_TP_SYS_ENTER: &str = "tp_sys_enter";
/// Classic `syscalls:sys_exit_*` tracepoints: the fallback (or chosen) syscall exit hook.
pub const PROG_TP_SYS_EXIT: &str = "tp_sys_exit";
pub const PROG_INET_SOCK_SET_STATE: &str = "inet_sock_set_state";
pub const PROG_PROCESS_EXIT: &str = "process_exit";
/// `sched_process_exec`: a process that runs a new executable is no longer known to be Go.
pub const PROG_PROCESS_EXEC: &str = "process_exec";
/// The `sock_ops` program on the cgroup2 root that writes and reads the trace-context option.
pub const PROG_SOCK_OPS: &str = "tracer_sock_ops";
/// Client-library uprobes: entry of a traced library function (the attach cookie says which).
pub const PROG_LIB_ENTER: &str = "lib_enter";
/// Client-library uretprobe: return of a traced library function.
pub const PROG_LIB_EXIT: &str = "lib_exit";
/// Uprobe on hiredis `__redisAppendCommand(ctx, cmd, len)`: the RESP-formatted command.
pub const PROG_HIREDIS_APPEND: &str = "hiredis_append";

/// Hash map thread id (`u32`) → the library call in flight on it (`LibState`). Bound:
/// `MAX_INFLIGHT` (full: `COUNTER_INFLIGHT_FULL`); removed at return or thread exit.
pub const MAP_LIB_INFLIGHT: &str = "LIB_INFLIGHT";
/// Per-CPU array with one `LibEvent` scratch slot (header + `2 * MAX_LIB_CAPTURE` bytes).
pub const MAP_LIB_SCRATCH: &str = "LIB_SCRATCH";
/// Per-CPU array of `u64`: failed runs of each program, indexed by the `PROG_INDEX_*`
/// constants (`PROGRAM_NAMES` gives the names). Bound: `PROGRAMS_LEN`. Never evicts.
pub const MAP_PROGRAM_ERRORS: &str = "PROGRAM_ERRORS";

/// Every map of the kernel object, by name.
pub const MAP_NAMES: [&str; 15] = [
    MAP_EVENTS,
    MAP_COUNTERS,
    MAP_INFLIGHT,
    MAP_PID_FILTER,
    MAP_COMM_FILTER,
    MAP_PORT_FILTER,
    MAP_SCRATCH,
    MAP_SOCK_STATE,
    MAP_PENDING_OPTION,
    MAP_RECEIVED_OPTION,
    MAP_THREAD_TRACE,
    MAP_LIB_INFLIGHT,
    MAP_LIB_SCRATCH,
    MAP_PROGRAM_ERRORS,
    MAP_GO_PROCESSES,
];

/// Every global the daemon sets before load, by name.
pub const GLOBAL_NAMES: [&str; 2] = [GLOBAL_OFFSETS, GLOBAL_SETTINGS];

/// Index of each program in `MAP_PROGRAM_ERRORS` and `PROGRAM_NAMES`.
pub const PROG_INDEX_RAW_SYS_ENTER: u32 = 0;
pub const PROG_INDEX_RAW_SYS_EXIT: u32 = 1;
pub const PROG_INDEX_TP_SYS_ENTER: u32 = 2;
pub const PROG_INDEX_TP_SYS_EXIT: u32 = 3;
pub const PROG_INDEX_INET_SOCK_SET_STATE: u32 = 4;
pub const PROG_INDEX_PROCESS_EXIT: u32 = 5;
pub const PROG_INDEX_SOCK_OPS: u32 = 6;
pub const PROG_INDEX_LIB_ENTER: u32 = 7;
pub const PROG_INDEX_LIB_EXIT: u32 = 8;
pub const PROG_INDEX_HIREDIS_APPEND: u32 = 9;
pub const PROG_INDEX_PROCESS_EXEC: u32 = 10;
/// Number of programs, and entries of `MAP_PROGRAM_ERRORS`.
pub const PROGRAMS_LEN: u32 = 11;

/// Every program of the kernel object, by name (index = `PROG_INDEX_*`).
pub const PROGRAM_NAMES: [&str; PROGRAMS_LEN as usize] = [
    PROG_RAW_SYS_ENTER,
    PROG_RAW_SYS_EXIT,
    PROG_TP_SYS_ENTER,
    PROG_TP_SYS_EXIT,
    PROG_INET_SOCK_SET_STATE,
    PROG_PROCESS_EXIT,
    PROG_SOCK_OPS,
    PROG_LIB_ENTER,
    PROG_LIB_EXIT,
    PROG_HIREDIS_APPEND,
    PROG_PROCESS_EXEC,
];

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Largest number of payload bytes one data event can carry (the configured capture size is
/// clamped to this). Power of two: the kernel masks offsets with `MAX_CAPTURE - 1`.
pub const MAX_CAPTURE: usize = 8192;
/// Default number of payload bytes captured per data call.
pub const DEFAULT_CAPTURE: u32 = 4096;
/// iovec entries walked per vector call (readv, writev, sendmsg, recvmsg).
pub const MAX_IOV: u32 = 16;
/// Threads with a syscall in flight that the kernel remembers.
pub const MAX_INFLIGHT: u32 = 16384;
pub const MAX_FILTER_ENTRIES: u32 = 1024;
/// Sockets whose propagation state the kernel keeps (LRU beyond that).
pub const MAX_SOCKETS: u32 = 65536;
/// Go processes whose goroutines the kernel tells apart (`MAP_GO_PROCESSES`).
pub const MAX_GO_PROCESSES: u32 = 4096;
/// Bytes of a library argument (statement, command, error string) one library event carries.
/// Power of two: the kernel masks offsets with `MAX_LIB_CAPTURE - 1`.
pub const MAX_LIB_CAPTURE: usize = 2048;

// ---------------------------------------------------------------------------------------------
// Trace-context TCP option (RFC 6994 experimental option)
// ---------------------------------------------------------------------------------------------

/// TCP option kind: 253, "RFC3692-style Experiment 1" (RFC 4727), shared through an ExID.
pub const TCP_OPTION_KIND: u8 = 253;
/// The ExID that names tracer's option inside kind 253 (RFC 6994), network order on the wire:
/// bytes `0x7A 0xC1` ("tracer context 1"). Options of kind 253 with another ExID are ignored.
pub const TCP_OPTION_EXID: u16 = 0x7AC1;
/// Length of the option on the wire: kind, length, ExID (2), trace id (16), span id (8).
pub const TCP_OPTION_LEN: u32 = 28;

pub const FILTER_INCLUDE: u32 = 1;
pub const FILTER_EXCLUDE: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Counters (indices into MAP_COUNTERS)
// ---------------------------------------------------------------------------------------------

/// Ring buffer full: an event was lost in the kernel.
pub const COUNTER_RINGBUF_FULL: u32 = 0;
/// A kernel read (`bpf_probe_read_*`) failed while building an event.
pub const COUNTER_READ_ERROR: u32 = 1;
/// The in-flight entry found at syscall exit belonged to another call (an exit was missed), or a
/// client-library call on the thread never returned.
pub const COUNTER_INFLIGHT_STALE: u32 = 2;
pub const COUNTER_SENDMMSG: u32 = 3;
pub const COUNTER_RECVMMSG: u32 = 4;
pub const COUNTER_SENDFILE: u32 = 5;
pub const COUNTER_SPLICE: u32 = 6;
/// Data calls on TCP sockets that were filtered out by pid, command or port.
pub const COUNTER_FILTERED: u32 = 7;
/// Events written to the ring buffer.
pub const COUNTER_EVENTS: u32 = 8;
/// A trace-context option was written on a request's first packet.
pub const COUNTER_OPTION_WRITTEN: u32 = 9;
/// A request's first packet had no room left for the option (other options used it): the
/// request goes without and the peer falls back to other evidence.
pub const COUNTER_OPTION_NO_SPACE: u32 = 10;
/// A trace-context option was read from a peer's packet.
pub const COUNTER_OPTION_RECEIVED: u32 = 11;
/// A received context was attached to the read that consumed the request's first byte.
pub const COUNTER_OPTION_MATCHED: u32 = 12;
/// A kind-253 option with tracer's ExID but the wrong length was seen and ignored.
pub const COUNTER_OPTION_FOREIGN: u32 = 13;
/// A call could not be traced: `MAX_INFLIGHT` threads were already inside traced calls.
pub const COUNTER_INFLIGHT_FULL: u32 = 14;
/// A data call of a Go process whose current goroutine could not be read (thread-local `g`
/// or its `goid`): the call is keyed by its thread, as in other programs.
pub const COUNTER_GOID_UNREADABLE: u32 = 15;
pub const COUNTERS_LEN: u32 = 16;

/// Names of the counters, for metrics (index = counter id).
pub const COUNTER_NAMES: [&str; 16] = [
    "ringbuf_full",
    "read_error",
    "inflight_stale",
    "sendmmsg",
    "recvmmsg",
    "sendfile",
    "splice",
    "filtered",
    "events",
    "option_written",
    "option_no_space",
    "option_received",
    "option_matched",
    "option_foreign",
    "inflight_full",
    "goid_unreadable",
];

// ---------------------------------------------------------------------------------------------
// Event kinds and flags
// ---------------------------------------------------------------------------------------------

/// `ConnEvent`: a `connect` on a TCP socket returned 0 or -EINPROGRESS (role client).
pub const EVENT_CONNECT: u32 = 1;
/// `ConnEvent`: `accept` / `accept4` returned a TCP socket (role server).
pub const EVENT_ACCEPT: u32 = 2;
/// `ConnEvent`: `close` of a TCP socket fd (sent at entry, while the fd still resolves).
pub const EVENT_CLOSE: u32 = 3;
/// `DataEvent`: a data call on a TCP socket, followed by `captured` payload bytes.
pub const EVENT_DATA: u32 = 4;
/// `StateEvent`: a TCP state change of a socket (from `sock:inet_sock_set_state`).
pub const EVENT_STATE: u32 = 5;
/// `ExitEvent`: a process (thread group) exited.
pub const EVENT_PROCESS_EXIT: u32 = 6;
/// `LibEvent`: a traced client-library function was entered (outermost call on the thread).
/// The payload is the statement (MySQL) or connection parameters (`mysql_real_connect`).
pub const EVENT_LIB_ENTER: u32 = 7;
/// `LibEvent`: an argument seen inside the call in flight on the thread (hiredis: the
/// RESP-formatted command passed to `__redisAppendCommand`).
pub const EVENT_LIB_ARG: u32 = 8;
/// `LibEvent`: the outermost traced library call on the thread returned. The payload is the
/// error string when the library reported one (hiredis error reply or context error).
pub const EVENT_LIB_EXIT: u32 = 9;
/// `OptionEvent`: a packet of a traced server connection carried a peer's trace-context option
/// that may begin a request inside a read: it arrived behind unread bytes or during a read
/// (from `sock_ops`, in softirq context: the header's pid and tid are not attributable).
pub const EVENT_OPTION: u32 = 10;

/// `LibEvent.lib`: hiredis.
pub const LIB_HIREDIS: u32 = 1;
/// `LibEvent.lib`: libmysqlclient.
pub const LIB_MYSQLCLIENT: u32 = 2;
/// `LibEvent.lib`: libmariadb (the same API as libmysqlclient).
pub const LIB_MARIADB: u32 = 3;

/// Traced library functions (`LibEvent.func`, low 16 bits of the attach cookie).
pub const FN_REDIS_COMMAND: u32 = 1;
pub const FN_REDISV_COMMAND: u32 = 2;
pub const FN_REDIS_COMMAND_ARGV: u32 = 3;
pub const FN_REDIS_GET_REPLY: u32 = 4;
pub const FN_REDIS_APPEND_COMMAND: u32 = 5;
pub const FN_REDIS_APPEND_COMMAND_ARGV: u32 = 6;
pub const FN_REDIS_ASYNC_COMMAND: u32 = 7;
pub const FN_REDIS_ASYNC_COMMAND_ARGV: u32 = 8;
pub const FN_REDIS_ASYNC_FORMATTED_COMMAND: u32 = 9;
pub const FN_MYSQL_REAL_CONNECT: u32 = 20;
pub const FN_MYSQL_REAL_QUERY: u32 = 21;
pub const FN_MYSQL_QUERY: u32 = 22;
pub const FN_MYSQL_SEND_QUERY: u32 = 23;
pub const FN_MYSQL_READ_QUERY_RESULT: u32 = 24;
pub const FN_MYSQL_STMT_PREPARE: u32 = 25;
pub const FN_MYSQL_STMT_EXECUTE: u32 = 26;

/// Attach cookie of the library probes: bits 0..16 the `FN_*` id, bits 16..24 the byte offset
/// of `redisReply.str`, bits 24..32 the byte offset of `redisContext.errstr` (hiredis layouts
/// differ by version; the daemon picks them from the library's version), bits 32..40 the
/// `LIB_*` id.
pub const fn lib_cookie(func: u32, lib: u32, reply_str: u32, ctx_errstr: u32) -> u64 {
    (func as u64 & 0xffff)
        | ((reply_str as u64 & 0xff) << 16)
        | ((ctx_errstr as u64 & 0xff) << 24)
        | ((lib as u64 & 0xff) << 32)
}

/// Attach cookie of the MySQL API probes: bits 0..16 the `FN_*` id, bits 16..32 the byte offset
/// of the error number (`unsigned int`) in the handle (`MYSQL.net.last_errno` or
/// `MYSQL_STMT.last_errno`), bits 32..40 the `LIB_*` id, bits 40..56 the byte offset of the error
/// message (`char[512]`). Offsets 0: not read (layout unknown for that library build).
pub const fn mysql_cookie(func: u32, lib: u32, errno_off: u32, errmsg_off: u32) -> u64 {
    (func as u64 & 0xffff)
        | ((errno_off as u64 & 0xffff) << 16)
        | ((lib as u64 & 0xff) << 32)
        | ((errmsg_off as u64 & 0xffff) << 40)
}

/// Whether a MySQL API function's return value `ret` (raw register) says it failed:
/// `mysql_real_connect` returns a pointer (NULL on failure), `mysql_read_query_result` a
/// `my_bool` (non-zero on failure), the others an `int` (non-zero on failure).
pub const fn mysql_failed(func: u32, ret: i64) -> bool {
    match func {
        FN_MYSQL_REAL_CONNECT => ret == 0,
        FN_MYSQL_READ_QUERY_RESULT => ret as u8 != 0,
        _ => ret as i32 != 0,
    }
}

/// hiredis `REDIS_REPLY_ERROR`.
pub const REDIS_REPLY_ERROR: i32 = 6;

/// `DataEvent.direction`: bytes leaving the process.
pub const DIR_EGRESS: u32 = 0;
/// `DataEvent.direction`: bytes entering the process.
pub const DIR_INGRESS: u32 = 1;

/// `DataEvent.flags`: the call moved more bytes than were captured.
pub const FLAG_TRUNCATED: u32 = 1;
/// `DataEvent.flags`: `seq` holds the TCP sequence number of the call's first byte.
pub const FLAG_SEQ: u32 = 2;

/// `DataEvent.ctx_kind`: no context.
pub const CTX_NONE: u32 = 0;
/// `DataEvent.ctx_kind`: this egress call started a client request; `ctx` holds the trace id and
/// the client span id the kernel chose and put in the TCP option. The client span must use them.
pub const CTX_CLIENT: u32 = 1;
/// `DataEvent.ctx_kind`: this ingress call consumed a request's first byte, whose packet carried
/// the peer's option; `ctx` holds the trace id and the peer's client span id (the parent).
pub const CTX_PEER: u32 = 2;
/// `DataEvent.ctx_kind`: this ingress call started a server request with no option; `ctx` holds
/// the trace id the kernel chose for it (span id 0). Calls the serving thread makes use it.
pub const CTX_SERVER: u32 = 3;

/// Socket roles in `SockState`.
pub const ROLE_CLIENT: u32 = 1;
pub const ROLE_SERVER: u32 = 2;

/// Syscall identities carried in events (independent of the architecture's numbers).
pub const SYS_READ: u32 = 1;
pub const SYS_WRITE: u32 = 2;
pub const SYS_SENDTO: u32 = 3;
pub const SYS_RECVFROM: u32 = 4;
pub const SYS_SENDMSG: u32 = 5;
pub const SYS_RECVMSG: u32 = 6;
pub const SYS_READV: u32 = 7;
pub const SYS_WRITEV: u32 = 8;
pub const SYS_CONNECT: u32 = 9;
pub const SYS_ACCEPT: u32 = 10;
pub const SYS_ACCEPT4: u32 = 11;
pub const SYS_CLOSE: u32 = 12;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A TCP connection's addresses as the kernel socket holds them.
/// IPv4 addresses occupy the first 4 bytes of `laddr` / `raddr` (network order) with
/// `family == AF_INET`; IPv6 (including IPv4-mapped) use all 16 bytes with `AF_INET6`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuple {
    pub family: u16,
    /// Local port, host byte order.
    pub lport: u16,
    /// Remote port, host byte order.
    pub rport: u16,
    pub _pad: u16,
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
}
const _: () = assert!(size_of::<Tuple>() == 40);

/// Common first fields of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    /// One of the `EVENT_*` constants.
    pub kind: u32,
    /// Thread group id (the user-visible pid); 0 for events raised outside process context.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub _pad: u32,
    /// When the event happened (for syscalls: the exit), CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
}
const _: () = assert!(size_of::<EventHeader>() == 24);

/// `EVENT_CONNECT`, `EVENT_ACCEPT`, `EVENT_CLOSE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnEvent {
    pub header: EventHeader,
    /// Stable identity of the connection: the kernel socket's address, unique while it lives.
    pub conn_id: u64,
    /// Syscall entry, CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// Syscall return value (the new fd for accept).
    pub ret: i64,
    pub fd: i32,
    /// One of the `SYS_*` constants.
    pub syscall: u32,
    pub tuple: Tuple,
    /// Command name of the calling thread group, NUL padded.
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<ConnEvent>() == 24 + 32 + 40 + 16);

/// `EVENT_DATA`, followed in the ring buffer record by `captured` payload bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DataEvent {
    pub header: EventHeader,
    pub conn_id: u64,
    /// Syscall entry, CLOCK_MONOTONIC ns (the header's `ts_ns` is the exit).
    pub ts_enter_ns: u64,
    /// Syscall return value: bytes moved, or a negative errno.
    pub ret: i64,
    pub fd: i32,
    /// One of the `SYS_*` constants.
    pub syscall: u32,
    /// `DIR_EGRESS` or `DIR_INGRESS`.
    pub direction: u32,
    /// Payload bytes that follow this header.
    pub captured: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `CTX_*`: what `ctx` holds.
    pub ctx_kind: u32,
    pub tuple: Tuple,
    /// Propagated trace context (see `ctx_kind`); zero when `ctx_kind` is `CTX_NONE`.
    pub ctx: WireContext,
    /// TCP sequence number of the call's first byte when `FLAG_SEQ` is set (server reads and
    /// client request starts, with propagation on).
    pub seq: u32,
    /// Inode number of the socket's network namespace (0 when unknown): identical tuples in two
    /// namespaces are two connections.
    pub netns: u32,
    /// Go processes: the id of the goroutine that made the call (`runtime.g.goid`); 0 when the
    /// process is not Go or the goroutine could not be read.
    pub goid: u64,
}
const _: () = assert!(size_of::<DataEvent>() == 24 + 48 + 40 + 24 + 8 + 8);

/// The trace context of the TCP option's payload (in the option: big-endian, trace id high,
/// trace id low, span id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireContext {
    pub trace_hi: u64,
    pub trace_lo: u64,
    pub span_id: u64,
}
const _: () = assert!(size_of::<WireContext>() == 24);

/// Value of `MAP_SOCK_STATE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockState {
    /// `ROLE_CLIENT` or `ROLE_SERVER`.
    pub role: u32,
    /// Direction of the last data call: 0 none, 1 + `DIR_*` otherwise.
    pub last: u32,
    /// Sequence number of the latest client request start with a context to write.
    pub pending_seq: u32,
    /// Non-zero while the packet starting at `pending_seq` has not been built: segments are
    /// sized with room for the option.
    pub pending: u32,
    /// Non-zero while a read on this server socket is in flight.
    pub reading: u32,
    pub _pad: u32,
    /// Server sockets: the thread or goroutine whose `ThreadServing` count holds this socket's
    /// unanswered request (the one that read it); `kind` 0 when none does.
    pub serving: ServingKey,
}
const _: () = assert!(size_of::<SockState>() == 40);

/// `ServingKey.kind`: `id` is a thread id.
pub const UNIT_THREAD: u32 = 1;
/// `ServingKey.kind`: `id` is the goid of a goroutine of process `tgid`.
pub const UNIT_GOROUTINE: u32 = 2;

/// Key of `MAP_THREAD_TRACE`: who serves inbound requests. Threads in general; in Go processes
/// the goroutine, since Go runs many goroutines on one thread and moves them between threads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServingKey {
    /// Thread id or goid, by `kind`.
    pub id: u64,
    pub tgid: u32,
    /// `UNIT_*`; 0: none.
    pub kind: u32,
}
const _: () = assert!(size_of::<ServingKey>() == 16);

/// Value of `MAP_GO_PROCESSES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoProcess {
    /// Byte offset of `goid` (int64) in the runtime's `g` struct for the executable's Go version.
    pub goid_offset: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<GoProcess>() == 8);

/// Value of `MAP_THREAD_TRACE`: the inbound requests a thread has read and not yet answered.
/// Outbound requests of the thread carry `trace` only while `serving == 1` and `known != 0`;
/// otherwise causality is not proven and they get fresh ids (never the thread's last trace).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadServing {
    pub trace_hi: u64,
    pub trace_lo: u64,
    /// Requests read by this thread whose response has not started (or whose socket is open).
    pub serving: u32,
    /// Non-zero while `trace` is the one request's: cleared when a second request comes in
    /// flight, and stays cleared until the count is back to zero (the entry is then removed).
    pub known: u32,
}
const _: () = assert!(size_of::<ThreadServing>() == 24);

/// Whether TCP sequence number `a` comes before `b`, modulo 2^32 (RFC 1982 serial arithmetic).
#[inline(always)]
pub const fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Key of `MAP_PENDING_OPTION` and `MAP_RECEIVED_OPTION`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionKey {
    pub sock: u64,
    /// TCP sequence number of the first payload byte of the packet that carries the option.
    pub seq: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<OptionKey>() == 16);

/// `EVENT_STATE`: raised from `sock:inet_sock_set_state`, possibly in softirq context (the
/// header's pid and tid are then those of whatever ran; do not attribute them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StateEvent {
    pub header: EventHeader,
    pub conn_id: u64,
    /// Kernel TCP states (`TCP_ESTABLISHED` = 1 … `TCP_CLOSE` = 7 …).
    pub old_state: u32,
    pub new_state: u32,
    pub tuple: Tuple,
}
const _: () = assert!(size_of::<StateEvent>() == 24 + 16 + 40);

/// `EVENT_OPTION`: the trace context a peer's option carried on a packet of a server connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OptionEvent {
    pub header: EventHeader,
    pub conn_id: u64,
    /// TCP sequence number of the packet's first payload byte.
    pub seq: u32,
    pub _pad: u32,
    pub ctx: WireContext,
}
const _: () = assert!(size_of::<OptionEvent>() == 24 + 16 + 24);

/// `EVENT_PROCESS_EXIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitEvent {
    pub header: EventHeader,
}
const _: () = assert!(size_of::<ExitEvent>() == 24);

pub const TCP_ESTABLISHED: u32 = 1;
pub const TCP_SYN_SENT: u32 = 2;
pub const TCP_CLOSE: u32 = 7;

// ---------------------------------------------------------------------------------------------
// Globals set at load time
// ---------------------------------------------------------------------------------------------

/// Byte offsets of the kernel struct fields the programs read, resolved by the daemon from the
/// running kernel's BTF (`/sys/kernel/btf/vmlinux`) so one object works across kernel builds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.files` (struct files_struct *).
    pub task_files: u32,
    /// `files_struct.fdt` (struct fdtable *).
    pub files_fdt: u32,
    /// `fdtable.max_fds` (unsigned int).
    pub fdt_max_fds: u32,
    /// `fdtable.fd` (struct file **).
    pub fdt_fd: u32,
    /// `file.f_inode` (struct inode *).
    pub file_inode: u32,
    /// `file.private_data` (void *, a struct socket * for sockets).
    pub file_private_data: u32,
    /// `inode.i_mode` (umode_t).
    pub inode_mode: u32,
    /// `socket.sk` (struct sock *).
    pub socket_sk: u32,
    /// `sock_common.skc_family` (unsigned short) inside `sock.__sk_common` at offset 0.
    pub skc_family: u32,
    /// `sock_common.skc_num` (local port, host order).
    pub skc_num: u32,
    /// `sock_common.skc_dport` (remote port, network order).
    pub skc_dport: u32,
    /// `sock_common.skc_rcv_saddr` (local IPv4).
    pub skc_rcv_saddr: u32,
    /// `sock_common.skc_daddr` (remote IPv4).
    pub skc_daddr: u32,
    /// `sock_common.skc_v6_rcv_saddr` (local IPv6).
    pub skc_v6_rcv_saddr: u32,
    /// `sock_common.skc_v6_daddr` (remote IPv6).
    pub skc_v6_daddr: u32,
    /// `sock.sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `sock.sk_type` (u16).
    pub sk_type: u32,
    /// `sock_common.skc_net` (possible_net_t, a struct net *).
    pub skc_net: u32,
    /// `net.ns` + `ns_common.inum`: offset of the namespace inode number inside struct net.
    pub net_ns_inum: u32,
    /// `task_struct.tgid`.
    pub task_tgid: u32,
    /// `tcp_sock.write_seq`: sequence number of the next byte a write queues.
    pub tcp_write_seq: u32,
    /// `tcp_sock.copied_seq`: sequence number of the next byte a read returns.
    pub tcp_copied_seq: u32,
    /// `bpf_sock_ops_kern.sk`: the socket behind a `sock_ops` context.
    pub ops_kern_sk: u32,
    /// `bpf_sock_ops_kern.skb`: the packet behind a `sock_ops` header-option callback.
    pub ops_kern_skb: u32,
    /// `sk_buff.cb`: where `struct tcp_skb_cb` (`seq`, then `end_seq`) lives.
    pub skb_cb: u32,
    /// `task_struct.thread` + `thread_struct.fsbase` (x86-64): the thread's FS base, where Go
    /// keeps the current `g` at -8.
    pub task_fsbase: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<KernelOffsets>() == 27 * 4);

/// Runtime settings, written once by the daemon before the programs load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The daemon's own tgid: its syscalls are never traced.
    pub self_tgid: u32,
    /// Payload bytes captured per data call (at most `MAX_CAPTURE - 1`).
    pub capture_bytes: u32,
    /// `FILTER_FLAG_*` bits: which filter maps hold entries and whether they include or exclude.
    pub filter_flags: u32,
    /// 1: propagate trace context in a TCP option (client request ids chosen in the kernel).
    pub propagate: u32,
    /// Network namespace inode to trace; 0 traces every namespace.
    pub netns_inum: u64,
}
const _: () = assert!(size_of::<Settings>() == 24);

/// `PID_FILTER` holds entries.
pub const FILTER_FLAG_PID: u32 = 1;
/// `COMM_FILTER` holds entries.
pub const FILTER_FLAG_COMM: u32 = 2;
/// `PORT_FILTER` holds entries.
pub const FILTER_FLAG_PORT: u32 = 4;
/// Some pid or command is included: processes matching no include entry are not traced.
pub const FILTER_FLAG_PROCESS_INCLUDE: u32 = 8;
/// Some port is included: connections on no included port are not traced.
pub const FILTER_FLAG_PORT_INCLUDE: u32 = 16;

/// Syscall arguments remembered between entry and exit (value of `MAP_INFLIGHT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallArgs {
    /// One of the `SYS_*` constants.
    pub syscall: u32,
    pub fd: i32,
    /// Buffer, iovec array or msghdr pointer, by syscall.
    pub ptr: u64,
    /// Buffer length or iovec count, by syscall.
    pub len: u64,
    /// The socket (`struct sock *`) resolved at entry; 0 for connect / accept.
    pub sock: u64,
    /// Entry time, CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// TCP sequence number at entry, when `has_seq`: `write_seq` for a client request start,
    /// `copied_seq` for a server read.
    pub seq: u32,
    /// `CTX_*`: what `ctx` holds (decided at entry for egress, at exit for ingress).
    pub ctx_kind: u32,
    pub ctx: WireContext,
    /// Non-zero when `seq` was read.
    pub has_seq: u32,
    pub _pad: u32,
    /// Go processes: the goid of the goroutine that made the call, read at entry (0: none).
    pub goid: u64,
}
const _: () = assert!(size_of::<SyscallArgs>() == 40 + 8 + 24 + 8 + 8);

/// `EVENT_LIB_ENTER`, `EVENT_LIB_ARG`, `EVENT_LIB_EXIT`, followed in the ring buffer record by
/// `captured` payload bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LibEvent {
    pub header: EventHeader,
    /// One of the `LIB_*` constants.
    pub lib: u32,
    /// One of the `FN_*` constants (of the outermost call in flight).
    pub func: u32,
    /// Entry of the outermost call, CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// Exit: the function's return value (a pointer or an int, sign-extended). Otherwise 0.
    pub ret: i64,
    /// The call's first argument (`redisContext *`, `MYSQL *`, `MYSQL_STMT *`): an opaque
    /// identity of the connection handle, never dereferenced by the daemon.
    pub handle: u64,
    /// Enter of `mysql_real_connect`: the port argument. Otherwise 0.
    pub arg: u64,
    /// Exit of a hiredis call: the reply's `type` (`REDIS_REPLY_*`), or -1 without a reply.
    /// Exit of a failed MySQL call: the library's error number (0 when not read). Otherwise 0.
    pub status: i32,
    /// Payload bytes that follow this header.
    pub captured: u32,
}
const _: () = assert!(size_of::<LibEvent>() == 24 + 48);

/// A library call in flight on a thread (value of `MAP_LIB_INFLIGHT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LibState {
    /// `FN_*` of the outermost call.
    pub func: u32,
    /// Nesting depth of traced calls (a traced function calling another one).
    pub depth: u32,
    /// Entry, CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    /// First argument.
    pub handle: u64,
    /// Second argument (`redisGetReply`'s `void **reply`).
    pub out: u64,
    /// The attach cookie of the outermost call.
    pub cookie: u64,
}
const _: () = assert!(size_of::<LibState>() == 40);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, padding-free and valid for any bit pattern.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::SyscallArgs {}
    unsafe impl aya::Pod for super::Tuple {}
    unsafe impl aya::Pod for super::WireContext {}
    unsafe impl aya::Pod for super::OptionKey {}
    unsafe impl aya::Pod for super::SockState {}
    unsafe impl aya::Pod for super::GoProcess {}
    unsafe impl aya::Pod for super::ServingKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_follow_their_indices() {
        let pairs = [
            (PROG_INDEX_RAW_SYS_ENTER, PROG_RAW_SYS_ENTER),
            (PROG_INDEX_RAW_SYS_EXIT, PROG_RAW_SYS_EXIT),
            (PROG_INDEX_TP_SYS_ENTER, PROG_TP_SYS_ENTER),
            (PROG_INDEX_TP_SYS_EXIT, PROG_TP_SYS_EXIT),
            (PROG_INDEX_INET_SOCK_SET_STATE, PROG_INET_SOCK_SET_STATE),
            (PROG_INDEX_PROCESS_EXIT, PROG_PROCESS_EXIT),
            (PROG_INDEX_SOCK_OPS, PROG_SOCK_OPS),
            (PROG_INDEX_LIB_ENTER, PROG_LIB_ENTER),
            (PROG_INDEX_LIB_EXIT, PROG_LIB_EXIT),
            (PROG_INDEX_HIREDIS_APPEND, PROG_HIREDIS_APPEND),
            (PROG_INDEX_PROCESS_EXEC, PROG_PROCESS_EXEC),
        ];
        assert_eq!(pairs.len(), PROGRAMS_LEN as usize, "every program has an index");
        for (index, name) in pairs {
            assert_eq!(PROGRAM_NAMES[index as usize], name, "PROGRAM_NAMES[{index}]");
        }
    }

    #[test]
    fn names_are_unique() {
        let names = MAP_NAMES.iter().chain(&GLOBAL_NAMES).chain(&PROGRAM_NAMES);
        for (i, a) in names.clone().enumerate() {
            assert!(!names.clone().skip(i + 1).any(|b| b == a), "{a} is used twice");
        }
    }

    #[test]
    fn sequence_order_wraps_around() {
        assert!(seq_before(1, 2));
        assert!(!seq_before(2, 2));
        assert!(!seq_before(3, 2));
        assert!(seq_before(u32::MAX - 5, 10), "across the wrap");
        assert!(!seq_before(10, u32::MAX - 5));
    }
}
