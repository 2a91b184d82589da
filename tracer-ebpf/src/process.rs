//! Thread and process exit: a thread's calls in flight and its serving state end with it, and
//! the daemon drops a process's connections and metadata. Exec: the process is no longer known to be Go.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::{
    EVENT_PROCESS_EXIT, ExitEvent, PROG_INDEX_PROCESS_EXEC, PROG_INDEX_PROCESS_EXIT, ServingKey, UNIT_THREAD,
};

use crate::{
    event::{self, Outcome},
    filter, maps,
};

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn process_exit(_ctx: RawTracePointContext) -> i32 {
    event::finish(PROG_INDEX_PROCESS_EXIT, try_process_exit());
    0
}

#[inline(always)]
fn try_process_exit() -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    // A thread that ends inside a traced call never reaches its exit hook.
    let _ = maps::INFLIGHT.remove(tid);
    let _ = maps::LIB_INFLIGHT.remove(tid);
    // What the thread served ends with it (a goroutine's entry goes by LRU: goroutines are
    // not threads).
    let _ = maps::THREAD_TRACE.remove(ServingKey { id: u64::from(tid), tgid, kind: UNIT_THREAD });
    // One event per process: when the thread group leader exits.
    if tgid != tid {
        return Ok(());
    }
    // A later process with this pid is not Go until the daemon says so.
    let _ = maps::GO_PROCESSES.remove(tgid);
    if !filter::process_traced(tgid) {
        return Ok(());
    }
    let event = ExitEvent { header: event::header(EVENT_PROCESS_EXIT, id, event::now()) };
    event::submit(&event, maps::WAKE_NOW)
}

/// A new executable: its goroutines (if it is Go at all) are the daemon's to find again, at its
/// next scan; until then the process keeps the thread rule.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn process_exec(_ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let _ = maps::GO_PROCESSES.remove(tgid);
    event::finish(PROG_INDEX_PROCESS_EXEC, Ok(()));
    0
}
