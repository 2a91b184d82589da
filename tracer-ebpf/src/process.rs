//! Thread and process exit: a thread's calls in flight end with it, and the daemon drops a
//! process's connections and metadata.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::{COUNTER_EVENTS, COUNTER_RINGBUF_FULL, EVENT_PROCESS_EXIT, EventHeader, ExitEvent};

use crate::{filter, maps};

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn process_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    // A thread that ends inside a traced call never reaches its exit hook.
    let _ = maps::INFLIGHT.remove(&tid);
    let _ = maps::LIB_INFLIGHT.remove(&tid);
    // One event per process: when the thread group leader exits.
    if tgid != tid || !filter::process_traced(tgid) {
        return 0;
    }
    let event = ExitEvent {
        header: EventHeader {
            kind: EVENT_PROCESS_EXIT,
            pid: tgid,
            tid,
            _pad: 0,
            // SAFETY: plain helper call.
            ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        },
    };
    match maps::EVENTS.output::<ExitEvent>(&event, maps::WAKE_NOW) {
        Ok(()) => maps::count(COUNTER_EVENTS),
        Err(_) => maps::count(COUNTER_RINGBUF_FULL),
    }
    0
}
