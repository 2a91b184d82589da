//! Connection lifecycle: connect and accept (which give a connection its role), close, and TCP
//! state changes from `sock:inet_sock_set_state` (non-blocking connects completing, final close).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::*;

use crate::{filter, kernel, maps, propagate};

const EINPROGRESS: i64 = 115;

#[inline(always)]
fn header(kind: u32) -> EventHeader {
    let id = bpf_get_current_pid_tgid();
    EventHeader {
        kind,
        pid: (id >> 32) as u32,
        tid: id as u32,
        _pad: 0,
        // SAFETY: plain helper call.
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

#[inline(always)]
fn emit_conn(kind: u32, syscall: u32, sk: u64, fd: i64, ret: i64, ts_enter_ns: u64) {
    let Some(tuple) = kernel::tuple_of(sk) else {
        maps::count(COUNTER_READ_ERROR);
        return;
    };
    if !filter::ports_traced(tuple.lport, tuple.rport) {
        maps::count(COUNTER_FILTERED);
        return;
    }
    let header = header(kind);
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
    match maps::EVENTS.output::<ConnEvent>(&event, maps::WAKE_NOW) {
        Ok(()) => maps::count(COUNTER_EVENTS),
        Err(_) => maps::count(COUNTER_RINGBUF_FULL),
    }
}

#[inline(always)]
fn is_self() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == maps::SETTINGS.load().self_tgid
}

/// `close(fd)` on a TCP socket, sent at entry while the fd still resolves.
#[inline(always)]
pub fn emit_close(sk: u64, fd: i64) {
    propagate::on_close(sk);
    emit_conn(EVENT_CLOSE, SYS_CLOSE, sk, fd, 0, 0);
}

#[inline(always)]
pub fn on_connect_exit(args: &SyscallArgs, ret: i64) {
    if ret != 0 && ret != -EINPROGRESS {
        return;
    }
    if let Some(sk) = kernel::tcp_sock_of_fd(args.fd as i64) {
        emit_conn(EVENT_CONNECT, SYS_CONNECT, sk, args.fd as i64, ret, args.ts_enter_ns);
        if !is_self() {
            propagate::on_role(sk, ROLE_CLIENT);
        }
    }
}

#[inline(always)]
pub fn on_accept_exit(args: &SyscallArgs, ret: i64) {
    if ret < 0 {
        return;
    }
    if let Some(sk) = kernel::tcp_sock_of_fd(ret) {
        emit_conn(EVENT_ACCEPT, args.syscall, sk, ret, ret, args.ts_enter_ns);
        if !is_self() {
            propagate::on_role(sk, ROLE_SERVER);
        }
    }
}

/// `sock:inet_sock_set_state` record offsets (stable since Linux 4.16).
const TP_SKADDR: usize = 8;
const TP_OLDSTATE: usize = 16;
const TP_NEWSTATE: usize = 20;
const TP_PROTOCOL: usize = 30;

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let _ = try_inet_sock_set_state(&ctx);
    0
}

#[inline(always)]
fn try_inet_sock_set_state(ctx: &TracePointContext) -> Option<()> {
    // SAFETY: offsets of the tracepoint record, checked against its format file.
    let (protocol, old, new, sk) = unsafe {
        (
            ctx.read_at::<u16>(TP_PROTOCOL).ok()?,
            ctx.read_at::<i32>(TP_OLDSTATE).ok()? as u32,
            ctx.read_at::<i32>(TP_NEWSTATE).ok()? as u32,
            ctx.read_at::<u64>(TP_SKADDR).ok()?,
        )
    };
    if protocol != 6 {
        return None;
    }
    // Only transitions the daemon acts on: a connect that completed, and a socket's end.
    let wanted = (old == TCP_SYN_SENT && new == TCP_ESTABLISHED) || new == TCP_CLOSE;
    if !wanted {
        return None;
    }
    let off = maps::OFFSETS.load();
    if !kernel::is_traced_tcp(sk, &off) {
        return None;
    }
    let tuple = kernel::tuple_of(sk)?;
    if !filter::ports_traced(tuple.lport, tuple.rport) {
        return None;
    }
    // Raised in whatever context changed the state (often softirq): no process to name.
    let mut header = header(EVENT_STATE);
    header.pid = 0;
    header.tid = 0;
    let event = StateEvent { header, conn_id: sk, old_state: old, new_state: new, tuple };
    match maps::EVENTS.output::<StateEvent>(&event, maps::wakeup()) {
        Ok(()) => maps::count(COUNTER_EVENTS),
        Err(_) => maps::count(COUNTER_RINGBUF_FULL),
    }
    Some(())
}
