//! Records, map names and limits shared by the kernel programs (`tracer-ebpf`) and the daemon.
//!
//! Every record is `#[repr(C)]`, free of implicit padding (explicit `_pad` fields) and checked
//! for size at compile time. Kinds are `u32` constants; the daemon decodes them with `TryFrom`.
//! All timestamps are CLOCK_MONOTONIC nanoseconds as returned by `bpf_ktime_get_ns`.
#![no_std]

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
/// Uprobe on grpc-go's `(*http2Client).Write` (the calling goroutine sends a message on a
/// stream) and `(*Server).handleStream` (the goroutine that runs a stream's handler): reports
/// the stream, its connection and the current goroutine (`EVENT_GO_STREAM`).
pub const PROG_GO_GRPC_STREAM: &str = "go_grpc_stream";
/// Benchmark floors (`--probe-floor`): programs that do nothing, attached to the raw
/// tracepoints (`sys_enter`, `sys_exit`, `sched_process_exit`, `sched_process_exec`), to the
/// classic tracepoint `sock:inet_sock_set_state`, and as `sock_ops` on the cgroup2 root.
pub const PROG_FLOOR_NULL_RAW: &str = "floor_null_raw";
pub const PROG_FLOOR_NULL_TP: &str = "floor_null_tp";
pub const PROG_FLOOR_NULL_SOCK_OPS: &str = "floor_null_sock_ops";
/// Benchmark floor of the minimal capture (`--probe-floor minimal`), syscall entry and exit:
/// one `FloorEvent` per data call on a TCP socket.
pub const PROG_FLOOR_ENTER: &str = "floor_enter";
pub const PROG_FLOOR_EXIT: &str = "floor_exit";

/// Hash map thread id (`u32`) → the library call in flight on it (`LibState`). Bound:
/// `MAX_INFLIGHT` (full: `COUNTER_INFLIGHT_FULL`); removed at return or thread exit.
pub const MAP_LIB_INFLIGHT: &str = "LIB_INFLIGHT";
/// Per-CPU array with one `LibEvent` scratch slot (header + `2 * MAX_LIB_CAPTURE` bytes).
pub const MAP_LIB_SCRATCH: &str = "LIB_SCRATCH";
/// Per-CPU array of `u64`: failed runs of each program, indexed by the `PROG_INDEX_*`
/// constants (`PROGRAM_NAMES` gives the names). Bound: `PROGRAMS_LEN`. Never evicts.
pub const MAP_PROGRAM_ERRORS: &str = "PROGRAM_ERRORS";
/// Hash map probe id (`u32`, the attach cookie of `go_grpc_stream`) → `GoGrpcProbe`: where the
/// stream id and the connection's file descriptor lie in one Go executable's grpc-go build.
/// Written by the daemon before it attaches the probe, removed when it detaches it. Bound:
/// `MAX_GO_GRPC_PROBES` (full: the executable's gRPC streams are not followed, logged).
pub const MAP_GO_GRPC_PROBES: &str = "GO_GRPC_PROBES";
/// Hash map socket (`struct sock *` as `u64`) → `LOST_*` bits: the directions in which data
/// calls of that socket were lost (ring buffer full, in-flight table full, unreadable tuple).
/// Taken by the socket's next data event, which carries them as `FLAG_LOST_*`, or by its close.
/// Bound: `MAX_LOST_SOCKETS` (full: `COUNTER_LOSS_UNMARKED`). No eviction.
pub const MAP_LOST_SOCKETS: &str = "LOST_SOCKETS";
/// Array of one `u64`: how many entries `MAP_LOST_SOCKETS` holds, so that data calls look it up
/// only while it holds any.
pub const MAP_LOST_COUNT: &str = "LOST_COUNT";

/// Every map of the kernel object, by name.
pub const MAP_NAMES: [&str; 18] = [
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
    MAP_GO_GRPC_PROBES,
    MAP_LOST_SOCKETS,
    MAP_LOST_COUNT,
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
pub const PROG_INDEX_GO_GRPC_STREAM: u32 = 11;
pub const PROG_INDEX_FLOOR_NULL_RAW: u32 = 12;
pub const PROG_INDEX_FLOOR_NULL_TP: u32 = 13;
pub const PROG_INDEX_FLOOR_NULL_SOCK_OPS: u32 = 14;
pub const PROG_INDEX_FLOOR_ENTER: u32 = 15;
pub const PROG_INDEX_FLOOR_EXIT: u32 = 16;
/// Number of programs, and entries of `MAP_PROGRAM_ERRORS`.
pub const PROGRAMS_LEN: u32 = 17;

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
    PROG_GO_GRPC_STREAM,
    PROG_FLOOR_NULL_RAW,
    PROG_FLOOR_NULL_TP,
    PROG_FLOOR_NULL_SOCK_OPS,
    PROG_FLOOR_ENTER,
    PROG_FLOOR_EXIT,
];

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Largest number of payload bytes one data event can carry (the configured capture size is
/// clamped to this). Power of two: the kernel masks offsets with `MAX_CAPTURE - 1`.
pub const MAX_CAPTURE: usize = 8192;
/// Default number of payload bytes captured per data call.
pub const DEFAULT_CAPTURE: u32 = 4096;
/// Payload bytes of a `FloorEvent` (the floor copies at most one less).
pub const FLOOR_CAPTURE: usize = 256;
/// iovec entries walked per vector call (readv, writev, sendmsg, recvmsg).
pub const MAX_IOV: u32 = 16;
/// Threads with a syscall in flight that the kernel remembers.
pub const MAX_INFLIGHT: u32 = 16384;
/// Sockets marked at once as having lost data calls (`MAP_LOST_SOCKETS`).
pub const MAX_LOST_SOCKETS: u32 = 4096;
pub const MAX_FILTER_ENTRIES: u32 = 1024;
/// Sockets whose propagation state the kernel keeps (LRU beyond that).
pub const MAX_SOCKETS: u32 = 65536;
/// Go processes whose goroutines the kernel tells apart (`MAP_GO_PROCESSES`).
pub const MAX_GO_PROCESSES: u32 = 4096;
/// Go executables whose grpc-go streams the kernel follows (`MAP_GO_GRPC_PROBES`): two probes
/// each.
pub const MAX_GO_GRPC_PROBES: u32 = 1024;
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
/// Data calls filtered out: by pid or command (any file descriptor: the process is checked
/// before the descriptor is resolved), or by port (TCP sockets).
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
/// A grpc-go stream whose connection is not a plain `*net.TCPConn` (TLS, a wrapped or custom
/// `net.Conn`, or a server transport other than HTTP/2): not followed.
pub const COUNTER_GO_STREAM_NOT_TCP: u32 = 16;
/// Reads with `MSG_PEEK` (`recv`, `recvfrom`, `recvmsg`): not captured, since they leave the bytes
/// for the next read, which is (a liveness check such as curl's before reusing a connection).
pub const COUNTER_PEEKED: u32 = 17;
/// Data calls lost on a socket that could not be marked for it (`MAX_LOST_SOCKETS` sockets were
/// already marked): its next spans go without `tracer.data_lost`.
pub const COUNTER_LOSS_UNMARKED: u32 = 18;
/// Data calls captured with only their first `DEGRADED_CAPTURE` bytes because half the ring
/// buffer was waiting for the daemon (`FLAG_DEGRADED`).
pub const COUNTER_DEGRADED: u32 = 19;
pub const COUNTERS_LEN: u32 = 20;

/// Names of the counters, for metrics (index = counter id).
pub const COUNTER_NAMES: [&str; COUNTERS_LEN as usize] = [
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
    "go_stream_not_tcp",
    "peeked",
    "loss_unmarked",
    "degraded",
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
/// `GoStreamEvent`: a goroutine of a Go process took up a grpc-go stream (client: it sends a
/// message on it; server: it runs the stream's handler).
pub const EVENT_GO_STREAM: u32 = 11;
/// `FloorEvent`: a data call recorded by the minimal-capture benchmark floor.
pub const EVENT_FLOOR: u32 = 12;

/// `GoStreamEvent.role` and `GoGrpcProbe.role`: the client side (`(*http2Client).Write`).
pub const GO_STREAM_CLIENT: u32 = 1;
/// `GoStreamEvent.role` and `GoGrpcProbe.role`: the server side (`(*Server).handleStream`).
pub const GO_STREAM_SERVER: u32 = 2;

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
/// `DataEvent.flags`: half the ring buffer was waiting for the daemon, so the call's capture was
/// cut to `DEGRADED_CAPTURE` bytes (it moved more).
pub const FLAG_DEGRADED: u32 = 16;
/// Bytes a data call captures while the ring buffer is half full or more.
pub const DEGRADED_CAPTURE: u32 = 1024;
/// `DataEvent.flags`: data calls of this socket that received bytes were lost before this one.
pub const FLAG_LOST_INGRESS: u32 = 4;
/// `DataEvent.flags`: data calls of this socket that sent bytes were lost before this one.
pub const FLAG_LOST_EGRESS: u32 = 8;

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

mod records;
pub use records::*;

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
    unsafe impl aya::Pod for super::GoGrpcProbe {}
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
            (PROG_INDEX_GO_GRPC_STREAM, PROG_GO_GRPC_STREAM),
            (PROG_INDEX_FLOOR_NULL_RAW, PROG_FLOOR_NULL_RAW),
            (PROG_INDEX_FLOOR_NULL_TP, PROG_FLOOR_NULL_TP),
            (PROG_INDEX_FLOOR_NULL_SOCK_OPS, PROG_FLOOR_NULL_SOCK_OPS),
            (PROG_INDEX_FLOOR_ENTER, PROG_FLOOR_ENTER),
            (PROG_INDEX_FLOOR_EXIT, PROG_FLOOR_EXIT),
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
