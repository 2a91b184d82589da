//! The current goroutine of a Go process: Go keeps the running `g` in the thread's TLS slot at
//! FS base - 8 (amd64), and its id at an offset that depends on the Go version, which the daemon
//! finds in the executable (DWARF, else a table by version) and writes in `GO_PROCESSES`.
//! Serving state is keyed by goroutine in those processes (DESIGN.md, Runtimes): net/http serves
//! a connection in one goroutine, and database drivers write from the calling goroutine.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_user};
use tracer_common::{COUNTER_GOID_UNREADABLE, ServingKey, UNIT_GOROUTINE, UNIT_THREAD};

use crate::{kernel, maps};

/// The goid of the goroutine running on the current thread of process `tgid`; 0 when the process
/// is not a known Go process or the goroutine could not be read (counted).
#[inline(always)]
pub fn current_goid(tgid: u32) -> u64 {
    // SAFETY: the value is copied out.
    let Some(go) = (unsafe { maps::GO_PROCESSES.get(tgid) }).copied() else { return 0 };
    match read_goid(go.goid_offset) {
        Some(id) if id != 0 => id,
        _ => {
            maps::count(COUNTER_GOID_UNREADABLE);
            0
        }
    }
}

#[inline(always)]
fn read_goid(goid_offset: u32) -> Option<u64> {
    let off = maps::OFFSETS.load();
    if off.task_fsbase == 0 {
        return None;
    }
    // SAFETY: kernel and user reads go through the helpers, which tolerate any address.
    unsafe {
        let fsbase: u64 = kernel::read(bpf_get_current_task(), off.task_fsbase)?;
        if fsbase < 8 {
            return None;
        }
        let g: u64 = bpf_probe_read_user((fsbase - 8) as *const u64).ok()?;
        if g == 0 {
            return None;
        }
        bpf_probe_read_user((g + goid_offset as u64) as *const u64).ok()
    }
}

/// Who serves the requests a call reads: the goroutine when `goid` is known, else the thread.
#[inline(always)]
pub fn serving_key(tgid: u32, tid: u32, goid: u64) -> ServingKey {
    if goid != 0 {
        ServingKey { id: goid, tgid, kind: UNIT_GOROUTINE }
    } else {
        ServingKey { id: tid as u64, tgid, kind: UNIT_THREAD }
    }
}
