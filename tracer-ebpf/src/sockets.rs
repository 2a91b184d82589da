//! Connection lifecycle: connect and accept (which give a connection its role), close, and TCP
//! state changes from `sock:inet_sock_set_state` (non-blocking connects completing, final close).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::*;

use crate::{
    event::{self, Outcome},
    filter, kernel, loss, maps, propagate,
};

const EINPROGRESS: i64 = 115;

#[inline(always)]
fn emit_conn(kind: u32, syscall: u32, sk: u64, fd: i64, ret: i64, ts_enter_ns: u64) -> Outcome {
    let tuple = kernel::tuple_of(sk).ok_or_else(|| event::fail(COUNTER_READ_ERROR))?;
    if !filter::ports_traced(tuple.lport, tuple.rport) {
        maps::count(COUNTER_FILTERED);
        return Ok(());
    }
    let header = event::header(kind, bpf_get_current_pid_tgid(), event::now());
    let event = ConnEvent {
        ts_enter_ns: if ts_enter_ns == 0 { header.ts_ns } else { ts_enter_ns },
        header,
        conn_id: sk,
        ret,
        fd: fd as i32,
        syscall,
        tuple,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    event::submit(&event, maps::WAKE_NOW)
}

#[inline(always)]
fn is_self() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == maps::SETTINGS.load().self_tgid
}

/// `close(fd)` on a TCP socket, sent at entry while the fd still resolves.
#[inline(always)]
pub fn emit_close(sk: u64, fd: i64) -> Outcome {
    propagate::on_close(sk);
    // What the socket lost no longer matters to anything after it.
    let _ = loss::take(sk);
    emit_conn(EVENT_CLOSE, SYS_CLOSE, sk, fd, 0, 0)
}

#[inline(always)]
pub fn on_connect_exit(args: &SyscallArgs, ret: i64) -> Outcome {
    if ret != 0 && ret != -EINPROGRESS {
        return Ok(());
    }
    let Some(sk) = kernel::tcp_sock_of_fd(args.fd as i64) else { return Ok(()) };
    let sent = emit_conn(EVENT_CONNECT, SYS_CONNECT, sk, args.fd as i64, ret, args.ts_enter_ns);
    // The role holds whether or not the event made it to the ring.
    if !is_self() {
        propagate::on_role(sk, ROLE_CLIENT);
    }
    sent
}

#[inline(always)]
pub fn on_accept_exit(args: &SyscallArgs, ret: i64) -> Outcome {
    if ret < 0 {
        return Ok(());
    }
    let Some(sk) = kernel::tcp_sock_of_fd(ret) else { return Ok(()) };
    let sent = emit_conn(EVENT_ACCEPT, args.syscall, sk, ret, ret, args.ts_enter_ns);
    if !is_self() {
        propagate::on_role(sk, ROLE_SERVER);
    }
    sent
}

/// `sock:inet_sock_set_state` record offsets (stable since Linux 4.16).
const TP_SKADDR: usize = 8;
const TP_OLDSTATE: usize = 16;
const TP_NEWSTATE: usize = 20;
const TP_PROTOCOL: usize = 30;

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    event::finish(PROG_INDEX_INET_SOCK_SET_STATE, try_inet_sock_set_state(&ctx));
    0
}

#[inline(always)]
fn try_inet_sock_set_state(ctx: &TracePointContext) -> Outcome {
    let read_error = |_| event::fail(COUNTER_READ_ERROR);
    // SAFETY: offsets of the tracepoint record, checked against its format file.
    let (protocol, old, new, sk) = unsafe {
        (
            ctx.read_at::<u16>(TP_PROTOCOL).map_err(read_error)?,
            ctx.read_at::<i32>(TP_OLDSTATE).map_err(read_error)? as u32,
            ctx.read_at::<i32>(TP_NEWSTATE).map_err(read_error)? as u32,
            ctx.read_at::<u64>(TP_SKADDR).map_err(read_error)?,
        )
    };
    if protocol != 6 {
        return Ok(());
    }
    // Only transitions the daemon acts on: a connect that completed, and a socket's end.
    let wanted = (old == TCP_SYN_SENT && new == TCP_ESTABLISHED) || new == TCP_CLOSE;
    if !wanted {
        return Ok(());
    }
    let off = maps::OFFSETS.load();
    if !kernel::is_traced_tcp(sk, &off) {
        return Ok(());
    }
    let tuple = kernel::tuple_of(sk).ok_or_else(|| event::fail(COUNTER_READ_ERROR))?;
    if !filter::ports_traced(tuple.lport, tuple.rport) {
        return Ok(());
    }
    // Raised in whatever context changed the state (often softirq): no process to name.
    let header = event::header(EVENT_STATE, 0, event::now());
    let event = StateEvent { header, conn_id: sk, old_state: old, new_state: new, tuple };
    event::submit(&event, maps::wakeup())
}
