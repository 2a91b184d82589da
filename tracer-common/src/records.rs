//! The records the kernel programs write to the ring buffer and keep in maps, and the globals
//! the daemon sets before load. `#[repr(C)]`, padding-free, sized at compile time.

use core::mem::size_of;

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
    /// While a read on this server socket is in flight: `READ_AT` (it began at `read_seq`)
    /// or `READ_UNKNOWN` (where it began could not be read); `READ_NONE` otherwise.
    pub reading: u32,
    /// The sequence number of the first byte the read in flight consumes.
    pub read_seq: u32,
    /// Server sockets: the thread or goroutine whose `ThreadServing` count holds this socket's
    /// unanswered request (the one that read it); `kind` 0 when none does.
    pub serving: ServingKey,
    /// Client sockets: the context to write for the request start at `pending_seq`, while
    /// `ctx_held` is non-zero (until a packet carries it). An earlier start whose packet was
    /// not built yet (pipelining) waits in `MAP_PENDING_OPTION` instead.
    pub ctx: WireContext,
    pub ctx_held: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<SockState>() == 72);

/// `SockState.reading`: no read in flight.
pub const READ_NONE: u32 = 0;
/// `SockState.reading`: a read is in flight from `read_seq`.
pub const READ_AT: u32 = 1;
/// `SockState.reading`: a read is in flight from a sequence number not known.
pub const READ_UNKNOWN: u32 = 2;

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
    /// flight, and stays cleared until the count is back to zero (the entry then stays, with
    /// count 0, for the thread's next request).
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

/// `EVENT_FLOOR`: one data call on a TCP socket as the benchmark's minimal-capture floor
/// (`--probe-floor minimal`) records it: when, which socket, what it returned, and its first
/// bytes. The daemon counts these records and discards them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FloorEvent {
    pub header: EventHeader,
    pub conn_id: u64,
    /// Syscall entry, CLOCK_MONOTONIC ns.
    pub ts_enter_ns: u64,
    pub ret: i64,
    /// Bytes of `payload` filled (at most `FLOOR_CAPTURE - 1`).
    pub captured: u32,
    pub _pad: u32,
    pub payload: [u8; crate::FLOOR_CAPTURE],
}
const _: () = assert!(size_of::<FloorEvent>() == 24 + 32 + crate::FLOOR_CAPTURE);

/// `EVENT_GO_STREAM`: goroutine `goid` of the header's process took up stream `stream_id` of the
/// HTTP/2 connection `conn_id` (the kernel socket, as in `DataEvent`), on the side `role`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GoStreamEvent {
    pub header: EventHeader,
    pub conn_id: u64,
    /// `runtime.g.goid` of the current goroutine (never 0).
    pub goid: u64,
    pub stream_id: u32,
    /// `GO_STREAM_CLIENT` or `GO_STREAM_SERVER`.
    pub role: u32,
}
const _: () = assert!(size_of::<GoStreamEvent>() == 24 + 24);

/// Value of `MAP_GO_GRPC_PROBES`: byte offsets in one executable's build, from its DWARF, and
/// the interface tables (`go.itab.*`, absolute addresses of a non-PIE executable) that prove
/// what an interface value holds before the program follows its pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoGrpcProbe {
    /// `GO_STREAM_CLIENT` (receiver `*http2Client` in RAX, stream in RBX) or `GO_STREAM_SERVER`
    /// (the `ServerTransport` interface in RBX:RCX, stream in RDI).
    pub role: u32,
    /// `transport.Stream.id` (uint32).
    pub stream_id_off: u32,
    /// `http2Client.conn` / `http2Server.conn` (a `net.Conn` interface: itab, data).
    pub conn_off: u32,
    /// `net.TCPConn` → `conn.fd` (`*net.netFD`).
    pub netfd_off: u32,
    /// `net.netFD` → `pfd.Sysfd` (int).
    pub sysfd_off: u32,
    pub _pad: u32,
    /// Server: the itab of `*http2Server` as `transport.ServerTransport`. Client: 0.
    pub transport_itab: u64,
    /// The itab of `*net.TCPConn` as `net.Conn`.
    pub conn_itab: u64,
}
const _: () = assert!(size_of::<GoGrpcProbe>() == 40);

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
