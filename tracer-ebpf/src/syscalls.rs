//! Syscall entry and exit hooks. Two attachments share one dispatcher: raw tracepoints on
//! `sys_enter` / `sys_exit` (one program for all syscalls, filtered by number here) and classic
//! `syscalls:sys_enter_*` / `sys_exit_*` tracepoints (attached only to the calls we trace). The
//! daemon chooses one at load time; `cargo xtask bench` compares their cost.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use tracer_common::*;

use crate::{
    data,
    event::{self, Outcome},
    filter, goroutine, kernel, loss, maps, propagate, sockets,
};

// x86_64 syscall numbers of the calls we trace or count.
const NR_READ: i64 = 0;
const NR_WRITE: i64 = 1;
const NR_CLOSE: i64 = 3;
const NR_READV: i64 = 19;
const NR_WRITEV: i64 = 20;
const NR_SENDFILE: i64 = 40;
const NR_CONNECT: i64 = 42;
const NR_ACCEPT: i64 = 43;
const NR_SENDTO: i64 = 44;
const NR_RECVFROM: i64 = 45;
const NR_SENDMSG: i64 = 46;
const NR_RECVMSG: i64 = 47;
const NR_SPLICE: i64 = 275;
const NR_ACCEPT4: i64 = 288;
const NR_RECVMMSG: i64 = 299;
const NR_SENDMMSG: i64 = 307;

/// Calls that are only counted, not captured.
const COUNTED: u32 = 100;

/// Our identity for a syscall number; 0 for calls we ignore. Counted-only calls map to
/// `COUNTED + counter index`.
#[inline(always)]
pub(crate) fn classify(nr: i64) -> u32 {
    match nr {
        NR_READ => SYS_READ,
        NR_WRITE => SYS_WRITE,
        NR_CLOSE => SYS_CLOSE,
        NR_READV => SYS_READV,
        NR_WRITEV => SYS_WRITEV,
        NR_CONNECT => SYS_CONNECT,
        NR_ACCEPT => SYS_ACCEPT,
        NR_ACCEPT4 => SYS_ACCEPT4,
        NR_SENDTO => SYS_SENDTO,
        NR_RECVFROM => SYS_RECVFROM,
        NR_SENDMSG => SYS_SENDMSG,
        NR_RECVMSG => SYS_RECVMSG,
        NR_SENDFILE => COUNTED + COUNTER_SENDFILE,
        NR_SPLICE => COUNTED + COUNTER_SPLICE,
        NR_RECVMMSG => COUNTED + COUNTER_RECVMMSG,
        NR_SENDMMSG => COUNTED + COUNTER_SENDMMSG,
        _ => 0,
    }
}

// x86_64 `struct pt_regs` offsets of the syscall argument registers and the syscall number.
pub(crate) const REG_DI: u64 = 112;
pub(crate) const REG_SI: u64 = 104;
pub(crate) const REG_DX: u64 = 96;
const REG_R10: u64 = 56;
/// `recv*` flag: look at the data without consuming it.
const MSG_PEEK: u64 = 2;
const REG_ORIG_AX: u64 = 120;

#[inline(always)]
pub(crate) fn reg(regs: u64, offset: u64) -> u64 {
    // SAFETY: reading the saved user registers of the current task.
    unsafe { bpf_probe_read_kernel((regs + offset) as *const u64) }.unwrap_or(0)
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter(ctx: RawTracePointContext) -> i32 {
    event::finish(PROG_INDEX_RAW_SYS_ENTER, try_raw_sys_enter(&ctx));
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_sys_exit(ctx: RawTracePointContext) -> i32 {
    event::finish(PROG_INDEX_RAW_SYS_EXIT, try_raw_sys_exit(&ctx));
    0
}

/// Classic `syscalls:sys_enter_*` layout: syscall number at 8, arguments from 16, 8 bytes each.
#[tracepoint]
pub fn tp_sys_enter(ctx: TracePointContext) -> u32 {
    event::finish(PROG_INDEX_TP_SYS_ENTER, try_tp_sys_enter(&ctx));
    0
}

/// Classic `syscalls:sys_exit_*` layout: syscall number at 8, return value at 16.
#[tracepoint]
pub fn tp_sys_exit(ctx: TracePointContext) -> u32 {
    event::finish(PROG_INDEX_TP_SYS_EXIT, try_tp_sys_exit(&ctx));
    0
}

#[inline(always)]
fn try_raw_sys_enter(ctx: &RawTracePointContext) -> Outcome {
    let nr: i64 = ctx.arg(1);
    let sys = classify(nr);
    if sys == 0 {
        return Ok(());
    }
    let regs: u64 = ctx.arg(0);
    // The fourth argument only where it is read: `recvfrom`'s flags.
    let a3 = if sys == SYS_RECVFROM { reg(regs, REG_R10) } else { 0 };
    on_enter(sys, reg(regs, REG_DI), reg(regs, REG_SI), reg(regs, REG_DX), a3)
}

#[inline(always)]
fn try_raw_sys_exit(ctx: &RawTracePointContext) -> Outcome {
    let regs: u64 = ctx.arg(0);
    let sys = classify(reg(regs, REG_ORIG_AX) as i64);
    if sys == 0 || sys >= COUNTED {
        return Ok(());
    }
    let ret: i64 = ctx.arg(1);
    on_exit(sys, ret)
}

#[inline(always)]
fn try_tp_sys_enter(ctx: &TracePointContext) -> Outcome {
    // SAFETY: offsets of the stable syscall tracepoint record.
    let nr = unsafe { ctx.read_at::<i32>(8) }.map_err(|_| event::fail(COUNTER_READ_ERROR))? as i64;
    let sys = classify(nr);
    if sys == 0 {
        return Ok(());
    }
    let arg = |i: usize| unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0);
    let a3 = if sys == SYS_RECVFROM { arg(3) } else { 0 };
    on_enter(sys, arg(0), arg(1), arg(2), a3)
}

#[inline(always)]
fn try_tp_sys_exit(ctx: &TracePointContext) -> Outcome {
    // SAFETY: offsets of the stable syscall tracepoint record.
    let nr = unsafe { ctx.read_at::<i32>(8) }.map_err(|_| event::fail(COUNTER_READ_ERROR))? as i64;
    let sys = classify(nr);
    if sys == 0 || sys >= COUNTED {
        return Ok(());
    }
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    let _ = ctx.as_ptr();
    on_exit(sys, ret)
}

/// Whether a read only peeks (`MSG_PEEK` in `recvfrom`'s or `recvmsg`'s flags).
#[inline(always)]
fn peeks(sys: u32, a2: u64, a3: u64) -> bool {
    match sys {
        SYS_RECVFROM => a3 & MSG_PEEK != 0,
        SYS_RECVMSG => a2 & MSG_PEEK != 0,
        _ => false,
    }
}

#[inline(always)]
fn on_enter(sys: u32, a0: u64, a1: u64, a2: u64, a3: u64) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    // The daemon's own connections are reported (connect, accept, close only) so that it can
    // recognise its exporter traffic at the other end; its data calls never are.
    let is_self = tgid == maps::SETTINGS.load().self_tgid;
    let fd = a0 as i32 as i64;
    match sys {
        SYS_CONNECT | SYS_ACCEPT | SYS_ACCEPT4 => {
            if is_self || filter::process_traced(tgid) {
                return stash(id, sys, fd, 0, 0, 0);
            }
        }
        SYS_CLOSE => {
            if let Some(sk) = kernel::tcp_sock_of_fd(fd)
                && (is_self || filter::process_traced(tgid))
            {
                return sockets::emit_close(sk, fd);
            }
        }
        _ if is_self => {}
        _ if sys >= COUNTED => {
            let counter = sys - COUNTED;
            // splice may have the socket on either end.
            let hit = kernel::tcp_sock_of_fd(fd).is_some()
                || (counter == COUNTER_SPLICE && kernel::tcp_sock_of_fd(a2 as i32 as i64).is_some());
            if hit {
                maps::count(counter);
            }
        }
        _ => {
            // The process first: a filtered-out process never pays for resolving the fd.
            if !filter::process_traced(tgid) {
                maps::count(COUNTER_FILTERED);
                return Ok(());
            }
            let Some(sk) = kernel::tcp_sock_of_fd(fd) else { return Ok(()) };
            if peeks(sys, a2, a3) {
                // The bytes stay for the read that consumes them.
                maps::count(COUNTER_PEEKED);
                return Ok(());
            }
            return stash(id, sys, fd, a1, a2, sk);
        }
    }
    Ok(())
}

#[inline(always)]
fn is_egress(sys: u32) -> bool {
    data::direction_of(sys) == DIR_EGRESS
}

#[inline(always)]
fn stash(id: u64, syscall: u32, fd: i64, ptr: u64, len: u64, sock: u64) -> Outcome {
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    let mut args = SyscallArgs {
        syscall,
        fd: fd as i32,
        ptr,
        len,
        sock,
        ts_enter_ns: event::now(),
        seq: 0,
        ctx_kind: CTX_NONE,
        ctx: WireContext::default(),
        has_seq: 0,
        _pad: 0,
        goid: 0,
    };
    if sock != 0 {
        args.goid = goroutine::current_goid(tgid);
        let key = goroutine::serving_key(tgid, tid, args.goid);
        propagate::on_enter(&mut args, key, is_egress(syscall));
    }
    maps::INFLIGHT.insert(tid, args, 0).map_err(|_| {
        // A data call not traced: its socket is marked for the daemon.
        if sock != 0 && syscall != SYS_CONNECT && syscall != SYS_ACCEPT && syscall != SYS_ACCEPT4 {
            loss::mark(sock, loss::bit(data::direction_of(syscall)));
        }
        event::fail(COUNTER_INFLIGHT_FULL)
    })
}

#[inline(always)]
fn on_exit(sys: u32, ret: i64) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    let Some(ptr) = maps::INFLIGHT.get_ptr_mut(tid) else { return Ok(()) };
    // SAFETY: map value pointer, valid for this program run (removed only at the end).
    let args = unsafe { &mut *ptr };
    let outcome = if args.syscall != sys {
        // An exit this thread missed earlier, not a failure of this run.
        maps::count(COUNTER_INFLIGHT_STALE);
        Ok(())
    } else {
        match sys {
            SYS_CONNECT => sockets::on_connect_exit(args, ret),
            SYS_ACCEPT | SYS_ACCEPT4 => sockets::on_accept_exit(args, ret),
            _ => {
                let key = goroutine::serving_key(tgid, tid, args.goid);
                propagate::on_exit(args, key, is_egress(sys), ret);
                data::emit(args, ret)
            }
        }
    };
    let _ = maps::INFLIGHT.remove(tid);
    outcome
}
