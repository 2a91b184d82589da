//! Include / exclude decisions by process, command name and port, from the daemon's filter maps.

use aya_ebpf::helpers::bpf_get_current_comm;
use tracer_common::{
    FILTER_EXCLUDE, FILTER_FLAG_COMM, FILTER_FLAG_PID, FILTER_FLAG_PORT, FILTER_FLAG_PORT_INCLUDE,
    FILTER_FLAG_PROCESS_INCLUDE, FILTER_INCLUDE,
};

use crate::maps::{COMM_FILTER, PID_FILTER, PORT_FILTER, SETTINGS};

/// Whether the current process (thread group `tgid`) is traced. The daemon itself never is.
#[inline(always)]
pub fn process_traced(tgid: u32) -> bool {
    let s = SETTINGS.load();
    if tgid == s.self_tgid {
        return false;
    }
    let flags = s.filter_flags;
    if flags & (FILTER_FLAG_PID | FILTER_FLAG_COMM) == 0 {
        return true;
    }
    let mut included = false;
    if flags & FILTER_FLAG_PID != 0 {
        // SAFETY: the value is copied out before the map can change.
        match unsafe { PID_FILTER.get(tgid) }.copied() {
            Some(FILTER_EXCLUDE) => return false,
            Some(FILTER_INCLUDE) => included = true,
            _ => {}
        }
    }
    if flags & FILTER_FLAG_COMM != 0
        && let Ok(comm) = bpf_get_current_comm()
    {
        // SAFETY: as above.
        match unsafe { COMM_FILTER.get(comm) }.copied() {
            Some(FILTER_EXCLUDE) => return false,
            Some(FILTER_INCLUDE) => included = true,
            _ => {}
        }
    }
    included || flags & FILTER_FLAG_PROCESS_INCLUDE == 0
}

/// Whether a connection between these ports (host order) is traced.
#[inline(always)]
pub fn ports_traced(lport: u16, rport: u16) -> bool {
    let flags = SETTINGS.load().filter_flags;
    if flags & FILTER_FLAG_PORT == 0 {
        return true;
    }
    // Plain values, not `Option`s: LLVM may read an `Option`'s payload register on the `None`
    // path too, which the verifier rejects as a read of an uninitialised register.
    // SAFETY: values are copied out before the map can change.
    let l = unsafe { PORT_FILTER.get(lport) }.copied().unwrap_or(0);
    let r = unsafe { PORT_FILTER.get(rport) }.copied().unwrap_or(0);
    if l == FILTER_EXCLUDE || r == FILTER_EXCLUDE {
        return false;
    }
    flags & FILTER_FLAG_PORT_INCLUDE == 0 || l == FILTER_INCLUDE || r == FILTER_INCLUDE
}
