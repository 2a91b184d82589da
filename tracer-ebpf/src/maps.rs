//! Maps, globals and counters shared by every program (names are in `tracer-common`).

use aya_ebpf::{
    Global,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    COUNTERS_LEN, DataEvent, KernelOffsets, LibEvent, LibState, MAX_CAPTURE, MAX_FILTER_ENTRIES,
    MAX_INFLIGHT, MAX_LIB_CAPTURE, Settings, SyscallArgs,
};

/// Ring buffer of events. Key: none. Bound: bytes, set by the daemon at load time (the value
/// here is only the default). Full: the event is dropped and `COUNTER_RINGBUF_FULL` counts it.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Per-CPU counters. Key: `COUNTER_*` index. Value: u64. Bound: `COUNTERS_LEN`. No eviction.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);

/// Syscalls in flight. Key: thread id. Value: `SyscallArgs`. Bound: `MAX_INFLIGHT`.
/// Eviction: LRU (a thread killed inside a traced call leaves an entry behind).
#[map(name = "INFLIGHT")]
pub static INFLIGHT: LruHashMap<u32, SyscallArgs> = LruHashMap::with_max_entries(MAX_INFLIGHT, 0);

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
});

/// Runtime settings, written by the daemon before load.
#[unsafe(no_mangle)]
pub static SETTINGS: Global<Settings> = Global::new(Settings {
    self_tgid: 0,
    capture_bytes: tracer_common::DEFAULT_CAPTURE,
    filter_flags: 0,
    _pad: 0,
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

/// Client-library calls in flight. Key: thread id. Value: `LibState`. Bound: `MAX_INFLIGHT`.
/// Eviction: LRU (a thread that dies inside a call leaves an entry behind).
#[map(name = "LIB_INFLIGHT")]
pub static LIB_INFLIGHT: LruHashMap<u32, LibState> = LruHashMap::with_max_entries(MAX_INFLIGHT, 0);

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
