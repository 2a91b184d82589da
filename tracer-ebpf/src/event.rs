//! What every program shares on its way out: the event header, submission to the ring buffer
//! with its counting, and the per-program error counter the thin entry points feed.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tracer_common::{COUNTER_EVENTS, COUNTER_RINGBUF_FULL, EventHeader};

use crate::maps;

/// A program run that could not finish its work. The reason was counted where it happened
/// (`COUNTER_*`); the entry point counts the run in `PROGRAM_ERRORS`.
pub struct Failed;

/// What the `try_` function of a program returns.
pub type Outcome = Result<(), Failed>;

/// Counts `reason` (a `COUNTER_*` index) and gives the failure to return.
#[inline(always)]
pub fn fail(reason: u32) -> Failed {
    maps::count(reason);
    Failed
}

/// CLOCK_MONOTONIC ns.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_ns() }
}

/// The header of an event of `kind` raised by the thread `id` (as `bpf_get_current_pid_tgid`
/// returns it: tgid high, tid low; 0 outside process context) at `ts_ns`.
#[inline(always)]
pub fn header(kind: u32, id: u64, ts_ns: u64) -> EventHeader {
    EventHeader { kind, pid: (id >> 32) as u32, tid: id as u32, _pad: 0, ts_ns }
}

/// Writes `event` to the ring buffer with the submit `flags`; counts it in `COUNTER_EVENTS`, or
/// in `COUNTER_RINGBUF_FULL` when the ring has no room (the event is then lost).
#[inline(always)]
pub fn submit<T: ?Sized>(event: &T, flags: u64) -> Outcome {
    match maps::EVENTS.output::<T>(event, flags) {
        Ok(()) => {
            maps::count(COUNTER_EVENTS);
            Ok(())
        }
        Err(_) => Err(fail(COUNTER_RINGBUF_FULL)),
    }
}

/// Counts a failed run of `program` (a `PROG_INDEX_*`) in `PROGRAM_ERRORS`.
#[inline(always)]
pub fn finish(program: u32, outcome: Outcome) {
    if outcome.is_err()
        && let Some(ptr) = maps::PROGRAM_ERRORS.get_ptr_mut(program)
    {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *ptr += 1 };
    }
}
