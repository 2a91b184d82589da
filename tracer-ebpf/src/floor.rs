//! Benchmark floors (`--probe-floor`), against which `cargo xtask bench` reads the tracer's own
//! cost. `null`: programs that return at once, on the hooks the tracer uses. `minimal`: the
//! least any socket tracer records — on the syscall hooks, one ring record per data call on a
//! TCP socket with its times, socket, return value and first bytes, copied once, straight into
//! the ring reservation. No tuple, no protocol, no propagation, no per-socket state.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated},
    macros::{raw_tracepoint, sock_ops, tracepoint},
    programs::{RawTracePointContext, SockOpsContext, TracePointContext},
};
use tracer_common::*;

use crate::{
    data,
    event::{self, Outcome},
    filter, kernel, maps,
    syscalls::{REG_DI, REG_DX, REG_SI, classify, reg},
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn floor_null_raw(_ctx: RawTracePointContext) -> i32 {
    0
}

#[tracepoint]
pub fn floor_null_tp(_ctx: TracePointContext) -> u32 {
    0
}

#[sock_ops]
pub fn floor_null_sock_ops(_ctx: SockOpsContext) -> u32 {
    1
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn floor_enter(ctx: RawTracePointContext) -> i32 {
    event::finish(PROG_INDEX_FLOOR_ENTER, try_enter(&ctx));
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn floor_exit(ctx: RawTracePointContext) -> i32 {
    event::finish(PROG_INDEX_FLOOR_EXIT, try_exit(&ctx));
    0
}

#[inline(always)]
fn try_enter(ctx: &RawTracePointContext) -> Outcome {
    let sys = classify(ctx.arg(1));
    if !matches!(
        sys,
        SYS_READ | SYS_WRITE | SYS_READV | SYS_WRITEV | SYS_SENDTO | SYS_RECVFROM | SYS_SENDMSG | SYS_RECVMSG
    ) {
        return Ok(());
    }
    let id = bpf_get_current_pid_tgid();
    if !filter::process_traced((id >> 32) as u32) {
        return Ok(());
    }
    let regs: u64 = ctx.arg(0);
    let fd = reg(regs, REG_DI) as i32 as i64;
    let Some(sock) = kernel::tcp_sock_of_fd(fd) else { return Ok(()) };
    let args = SyscallArgs {
        syscall: sys,
        fd: fd as i32,
        ptr: reg(regs, REG_SI),
        len: reg(regs, REG_DX),
        sock,
        ts_enter_ns: event::now(),
        seq: 0,
        ctx_kind: CTX_NONE,
        ctx: WireContext::default(),
        has_seq: 0,
        _pad: 0,
        goid: 0,
    };
    maps::INFLIGHT.insert(id as u32, args, 0).map_err(|_| event::fail(COUNTER_INFLIGHT_FULL))
}

#[inline(always)]
fn try_exit(ctx: &RawTracePointContext) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    // SAFETY: the value is copied out before removal.
    let Some(args) = (unsafe { maps::INFLIGHT.get(tid) }).copied() else { return Ok(()) };
    let _ = maps::INFLIGHT.remove(tid);
    let ret: i64 = ctx.arg(1);
    if ret == -data::EAGAIN {
        return Ok(());
    }
    let src = data::first_buffer(args.syscall, args.ptr).unwrap_or(0);
    let Some(mut entry) = maps::EVENTS.reserve::<FloorEvent>(0) else {
        return Err(event::fail(COUNTER_RINGBUF_FULL));
    };
    let e = entry.as_mut_ptr();
    const MASK: u64 = FLOOR_CAPTURE as u64 - 1;
    let want = if ret > 0 { (ret as u64).min(MASK) & MASK } else { 0 };
    // SAFETY: `e` points at the reservation, `FloorEvent`-sized; `want` < FLOOR_CAPTURE.
    unsafe {
        (*e).header = event::header(EVENT_FLOOR, id, event::now());
        (*e).conn_id = args.sock;
        (*e).ts_enter_ns = args.ts_enter_ns;
        (*e).ret = ret;
        (*e)._pad = 0;
        let rc = generated::bpf_probe_read_user((*e).payload.as_mut_ptr() as *mut _, want as u32, src as *const _);
        (*e).captured = if rc == 0 { want as u32 } else { 0 };
    }
    entry.submit(maps::wakeup());
    maps::count(COUNTER_EVENTS);
    Ok(())
}
