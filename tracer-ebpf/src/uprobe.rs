//! Client-library calls: one uprobe and one uretprobe program serve every traced function of
//! hiredis and libmysqlclient / libmariadb; the attach cookie names the function (`FN_*`) and
//! carries the few struct offsets that differ between library versions.
//!
//! Only the outermost traced call on a thread is reported (a traced function calling another,
//! like `mysql_query` → `mysql_real_query`, nests): `enter` at its entry with the statement when
//! the arguments carry one, `exit` at its return with the return value. The connection the call
//! used is not read from library structs: the daemon ties the call to the socket events of the
//! same thread between entry and exit.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, generated},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::*;

use crate::{
    event::{self, Failed, Outcome},
    filter, hiredis, maps, mysql,
};

const MASK: u64 = MAX_LIB_CAPTURE as u64 - 1;
/// A library call in flight longer than this (ns) is taken as one whose return was lost.
const STALE_LIB_NS: u64 = 600 * 1_000_000_000;

#[uprobe]
pub fn lib_enter(ctx: ProbeContext) -> u32 {
    event::finish(PROG_INDEX_LIB_ENTER, try_lib_enter(&ctx));
    0
}

#[uretprobe]
pub fn lib_exit(ctx: RetProbeContext) -> u32 {
    event::finish(PROG_INDEX_LIB_EXIT, try_lib_exit(&ctx));
    0
}

#[inline(always)]
fn try_lib_enter(ctx: &ProbeContext) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    if !filter::process_traced(tgid) {
        return Ok(());
    }
    let now = event::now();
    if let Some(state) = maps::LIB_INFLIGHT.get_ptr_mut(tid) {
        // SAFETY: the entry belongs to this thread; nothing else writes it meanwhile.
        let state = unsafe { &mut *state };
        // A call that never returned (the thread left it with longjmp, or its uretprobe was
        // missed) must not hide the thread's later calls for ever: past `STALE_LIB_NS` the
        // entry is replaced.
        if state.depth > 0 && now.wrapping_sub(state.ts_enter_ns) < STALE_LIB_NS {
            state.depth += 1;
            return Ok(());
        }
        if state.depth > 0 {
            maps::count(COUNTER_INFLIGHT_STALE);
        }
    }
    // SAFETY: plain helper call.
    let cookie = unsafe { generated::bpf_get_attach_cookie(ctx.as_ptr()) };
    let func = (cookie & 0xffff) as u32;
    let state = LibState {
        func,
        depth: 1,
        ts_enter_ns: now,
        handle: ctx.arg::<u64>(0).unwrap_or(0),
        out: ctx.arg::<u64>(1).unwrap_or(0),
        cookie,
    };
    maps::LIB_INFLIGHT.insert(tid, state, 0).map_err(|_| event::fail(COUNTER_INFLIGHT_FULL))?;
    let scratch = maps::LIB_SCRATCH.get_ptr_mut(0).ok_or(Failed)?;
    // SAFETY: per-CPU scratch slot, used by this program run only.
    let scratch = unsafe { &mut *scratch };
    let lib = ((cookie >> 32) & 0xff) as u32;
    let (captured, arg) = if func < FN_MYSQL_REAL_CONNECT {
        (0, 0)
    } else {
        mysql::enter_payload(ctx, func, scratch.payload.as_mut_ptr())
    };
    scratch.event = LibEvent {
        header: event::header(EVENT_LIB_ENTER, id, now),
        lib,
        func,
        ts_enter_ns: now,
        ret: 0,
        handle: state.handle,
        arg,
        status: 0,
        captured: captured as u32,
    };
    output(scratch, captured)
}

#[inline(always)]
fn try_lib_exit(ctx: &RetProbeContext) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    let Some(state) = maps::LIB_INFLIGHT.get_ptr_mut(tid) else { return Ok(()) };
    // SAFETY: the entry belongs to this thread.
    let state = unsafe { &mut *state };
    if state.depth > 1 {
        state.depth -= 1;
        return Ok(());
    }
    let s = *state;
    let _ = maps::LIB_INFLIGHT.remove(tid);
    let ret: i64 = ctx.ret::<i64>();
    let scratch = maps::LIB_SCRATCH.get_ptr_mut(0).ok_or(Failed)?;
    // SAFETY: per-CPU scratch slot, used by this program run only.
    let scratch = unsafe { &mut *scratch };
    let lib = ((s.cookie >> 32) & 0xff) as u32;
    let (status, captured) = if s.func < FN_MYSQL_REAL_CONNECT {
        hiredis::exit_payload(&s, ret, scratch.payload.as_mut_ptr())
    } else {
        mysql::exit_payload(&s, ret, scratch.payload.as_mut_ptr())
    };
    scratch.event = LibEvent {
        header: event::header(EVENT_LIB_EXIT, id, event::now()),
        lib,
        func: s.func,
        ts_enter_ns: s.ts_enter_ns,
        ret,
        handle: s.handle,
        arg: 0,
        status,
        captured: captured as u32,
    };
    output(scratch, captured)
}

/// Writes the scratch event and its first `captured` payload bytes to the ring buffer.
#[inline(always)]
pub fn output(scratch: &maps::LibScratch, captured: u64) -> Outcome {
    let header = core::mem::size_of::<LibEvent>() as u64;
    // The mask is a no-op (captured < MAX_LIB_CAPTURE); it gives the verifier the bound.
    let len = (header + (captured & MASK)) & (2 * MAX_LIB_CAPTURE as u64 - 1);
    // SAFETY: `scratch` is `header + 2 * MAX_LIB_CAPTURE` bytes and `len` is below that.
    let bytes = unsafe { core::slice::from_raw_parts(scratch as *const _ as *const u8, len as usize) };
    event::submit::<[u8]>(bytes, 0)
}

/// Copies `len` user bytes at `src` to `dst + offset`; returns the bytes copied.
#[inline(always)]
pub fn copy(dst: *mut u8, offset: u64, src: u64, len: u64) -> u64 {
    let offset = offset & MASK;
    let len = len & MASK;
    if len == 0 || src == 0 {
        return 0;
    }
    // SAFETY: offset and len are below MAX_LIB_CAPTURE inside a 2 * MAX_LIB_CAPTURE buffer.
    let rc = unsafe { generated::bpf_probe_read_user(dst.add(offset as usize) as *mut _, len as u32, src as *const _) };
    if rc == 0 {
        len
    } else {
        maps::count(COUNTER_READ_ERROR);
        0
    }
}

/// Copies a NUL-terminated user string at `src` to `dst + offset` (at most `max` bytes, the
/// NUL included); returns the bytes copied without the NUL.
#[inline(always)]
pub fn copy_str(dst: *mut u8, offset: u64, src: u64, max: u64) -> u64 {
    let offset = offset & MASK;
    let max = max & MASK;
    if max == 0 || src == 0 {
        return 0;
    }
    // SAFETY: as in `copy`.
    let rc =
        unsafe { generated::bpf_probe_read_user_str(dst.add(offset as usize) as *mut _, max as u32, src as *const _) };
    if rc > 0 { (rc as u64 - 1) & MASK } else { 0 }
}
