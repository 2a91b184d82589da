//! Maps, globals and counters shared by every program. Their names are the `MAP_*` / `GLOBAL_*`
//! constants of `tracer-common`; `#[map(name = …)]` takes only a literal, so a daemon test
//! (`probes::object_names`) checks the built object against those constants.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    COUNTERS_LEN, DataEvent, GoGrpcProbe, GoProcess, KernelOffsets, LibEvent, LibState, MAX_CAPTURE,
    MAX_FILTER_ENTRIES, MAX_GO_GRPC_PROBES, MAX_GO_PROCESSES, MAX_INFLIGHT, MAX_LIB_CAPTURE, MAX_LOST_SOCKETS,
    MAX_SOCKETS, OptionKey, PROGRAMS_LEN, ServingKey, Settings, SockState, SyscallArgs, ThreadServing, WireContext,
};

/// Ring buffer of events. Key: none. Bound: bytes, set by the daemon at load time (the value
/// here is only the default). Full: the event is dropped and `COUNTER_RINGBUF_FULL` counts it.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Submit flags for `EVENTS`: wake the daemon only once an eighth of the ring is waiting.
/// Below that the daemon drains the ring on its own short timer. A wakeup per event would cost
/// the traced thread an irq_work and the daemon a context switch on every syscall.
#[inline(always)]
pub fn wakeup() -> u64 {
    ring_fill().wakeup()
}

/// How much of the ring is waiting for the daemon.
#[derive(Clone, Copy)]
pub struct RingFill {
    waiting: u64,
    size: u64,
}

impl RingFill {
    /// The submit flags `wakeup` gives.
    #[inline(always)]
    pub fn wakeup(self) -> u64 {
        const NO_WAKEUP: u64 = 1;
        if self.waiting >= self.size / 8 { WAKE_NOW } else { NO_WAKEUP }
    }

    /// Half the ring or more is waiting: data calls capture only `DEGRADED_CAPTURE` bytes, so
    /// that the ring holds more calls before any is lost.
    #[inline(always)]
    pub fn degraded(self) -> bool {
        self.waiting >= self.size / 2
    }
}

#[inline(always)]
pub fn ring_fill() -> RingFill {
    // Flags of `bpf_ringbuf_query` (uapi `BPF_RB_*`).
    const AVAIL_DATA: u64 = 0;
    const RING_SIZE: u64 = 1;
    RingFill { waiting: EVENTS.query(AVAIL_DATA), size: EVENTS.query(RING_SIZE) }
}

/// Submit flag for connection and process-exit events: wake the daemon at once. They are rare
/// next to data, and the daemon reads a process's name and environment from `/proc` when it
/// sees its first connection, which a short-lived client (a `curl`) must not outrun.
pub const WAKE_NOW: u64 = 2;

/// Per-CPU counters. Key: `COUNTER_*` index. Value: u64. Bound: `COUNTERS_LEN`. No eviction.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);

/// Failed runs per program. Key: `PROG_INDEX_*`. Value: u64. Bound: `PROGRAMS_LEN`. No
/// eviction.
#[map(name = "PROGRAM_ERRORS")]
pub static PROGRAM_ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROGRAMS_LEN, 0);

/// Syscalls in flight. Key: thread id. Value: `SyscallArgs`. Bound: `MAX_INFLIGHT`; when full,
/// the call is not traced and `COUNTER_INFLIGHT_FULL` counts it. No eviction: removed at the
/// call's exit, or when the thread ends inside it (`process_exit`). A plain hash costs the
/// traced call less than an LRU one, whose list upkeep doubled the cost of each insert.
#[map(name = "INFLIGHT")]
pub static INFLIGHT: HashMap<u32, SyscallArgs> = HashMap::with_max_entries(MAX_INFLIGHT, 0);

/// Process filter. Key: tgid. Value: `FILTER_INCLUDE` / `FILTER_EXCLUDE`. Bound:
/// `MAX_FILTER_ENTRIES`, written by the daemon at start. No eviction.
#[map(name = "PID_FILTER")]
pub static PID_FILTER: HashMap<u32, u32> = HashMap::with_max_entries(MAX_FILTER_ENTRIES, 0);

/// Command filter. Key: command name, NUL padded. Value and bound as `PID_FILTER`.
#[map(name = "COMM_FILTER")]
pub static COMM_FILTER: HashMap<[u8; 16], u32> = HashMap::with_max_entries(MAX_FILTER_ENTRIES, 0);

/// Port filter. Key: local or remote TCP port, host order. Value and bound as `PID_FILTER`.
#[map(name = "PORT_FILTER")]
pub static PORT_FILTER: HashMap<u16, u32> = HashMap::with_max_entries(MAX_FILTER_ENTRIES, 0);

/// Scratch space to build one data event per CPU: header, then payload. The payload area is
/// twice `MAX_CAPTURE` so that `offset < MAX_CAPTURE` plus `len < MAX_CAPTURE` always fits,
/// which is what the verifier checks. Key: 0. Bound: 1 entry per CPU.
#[repr(C)]
pub struct Scratch {
    pub event: DataEvent,
    pub payload: [u8; 2 * MAX_CAPTURE],
}

#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Role and last data direction per socket. Key: `struct sock *`. Value: `SockState`. Bound:
/// `MAX_SOCKETS`. Eviction: LRU; removed at close.
#[map(name = "SOCK_STATE")]
pub static SOCK_STATE: LruHashMap<u64, SockState> = LruHashMap::with_max_entries(MAX_SOCKETS, 0);

/// Contexts to write on client requests' first packets, for starts that a later start on the
/// same socket overtook before their packet was built (pipelining); the latest start's context
/// is held in its `SockState`. Key: `OptionKey` (socket, sequence number of the request's first
/// byte). Value: `WireContext`. Bound: `MAX_SOCKETS`. Eviction: LRU; removed once written (a
/// request that shares its packet with earlier bytes never is).
#[map(name = "PENDING_OPTION")]
pub static PENDING_OPTION: LruHashMap<OptionKey, WireContext> = LruHashMap::with_max_entries(MAX_SOCKETS, 0);

/// Contexts read from peers' options. Key: `OptionKey` (socket, sequence number of the packet's
/// first byte). Value: `WireContext`. Bound: `MAX_SOCKETS`. Eviction: LRU; removed when a read
/// consumes that byte.
#[map(name = "RECEIVED_OPTION")]
pub static RECEIVED_OPTION: LruHashMap<OptionKey, WireContext> = LruHashMap::with_max_entries(MAX_SOCKETS, 0);

/// Inbound requests each thread (or goroutine of a Go process) serves (`ThreadServing`). Key:
/// `ServingKey`. Bound: `MAX_INFLIGHT`. Eviction: LRU. A thread's entry stays at count 0 between
/// requests (updated in place) and is removed when the thread exits.
#[map(name = "THREAD_TRACE")]
pub static THREAD_TRACE: LruHashMap<ServingKey, ThreadServing> = LruHashMap::with_max_entries(MAX_INFLIGHT, 0);

/// Go processes (`GoProcess`: where the goroutine id lives). Key: tgid. Bound:
/// `MAX_GO_PROCESSES`, written by the daemon when it finds a Go executable. No eviction: removed
/// when the process exits (here and by the daemon's rescan).
#[map(name = "GO_PROCESSES")]
pub static GO_PROCESSES: HashMap<u32, GoProcess> = HashMap::with_max_entries(MAX_GO_PROCESSES, 0);

/// grpc-go layouts of the Go executables whose streams are followed (`GoGrpcProbe`). Key: the
/// probe id in the attach cookie. Bound: `MAX_GO_GRPC_PROBES`, written by the daemon before it
/// attaches, removed when it detaches. No eviction.
#[map(name = "GO_GRPC_PROBES")]
pub static GO_GRPC_PROBES: HashMap<u32, GoGrpcProbe> = HashMap::with_max_entries(MAX_GO_GRPC_PROBES, 0);

/// Sockets whose data calls were lost, with the `FLAG_LOST_*` directions (`loss`). Key: socket.
/// Bound: `MAX_LOST_SOCKETS` (full: `COUNTER_LOSS_UNMARKED`). No eviction: taken by the
/// socket's next data event or its close.
#[map(name = "LOST_SOCKETS")]
pub static LOST_SOCKETS: HashMap<u64, u32> = HashMap::with_max_entries(MAX_LOST_SOCKETS, 0);

/// How many sockets `LOST_SOCKETS` holds (one `u64`, changed atomically).
#[map(name = "LOST_COUNT")]
pub static LOST_COUNT: Array<u64> = Array::with_max_entries(1, 0);

/// Kernel struct offsets, resolved by the daemon from BTF before load.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    task_files: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_inode: 0,
    file_private_data: 0,
    inode_mode: 0,
    socket_sk: 0,
    skc_family: 0,
    skc_num: 0,
    skc_dport: 0,
    skc_rcv_saddr: 0,
    skc_daddr: 0,
    skc_v6_rcv_saddr: 0,
    skc_v6_daddr: 0,
    sk_protocol: 0,
    sk_type: 0,
    skc_net: 0,
    net_ns_inum: 0,
    task_tgid: 0,
    tcp_write_seq: 0,
    tcp_copied_seq: 0,
    ops_kern_sk: 0,
    ops_kern_skb: 0,
    skb_cb: 0,
    task_fsbase: 0,
    _pad: 0,
});

/// Runtime settings, written by the daemon before load.
#[unsafe(no_mangle)]
pub static SETTINGS: Global<Settings> = Global::new(Settings {
    self_tgid: 0,
    capture_bytes: tracer_common::DEFAULT_CAPTURE,
    filter_flags: 0,
    propagate: 0,
    netns_inum: 0,
});

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(ptr) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *ptr += 1 };
    }
}

/// Client-library calls in flight. Key: thread id. Value: `LibState`. Bound: `MAX_INFLIGHT`;
/// when full, the call is not traced and `COUNTER_INFLIGHT_FULL` counts it. No eviction:
/// removed when the outermost call returns, or when the thread ends inside it.
#[map(name = "LIB_INFLIGHT")]
pub static LIB_INFLIGHT: HashMap<u32, LibState> = HashMap::with_max_entries(MAX_INFLIGHT, 0);

/// Scratch space to build one library event per CPU: header, then payload (twice
/// `MAX_LIB_CAPTURE` so that masked offset plus masked length always fits). Key: 0. Bound: 1
/// entry per CPU.
#[repr(C)]
pub struct LibScratch {
    pub event: LibEvent,
    pub payload: [u8; 2 * MAX_LIB_CAPTURE],
}

#[map(name = "LIB_SCRATCH")]
pub static LIB_SCRATCH: PerCpuArray<LibScratch> = PerCpuArray::with_max_entries(1, 0);
