//! Trace-context propagation, syscall side: decides when a request may start on a connection,
//! chooses the ids of client requests in the kernel (they must exist when the request's first
//! packet leaves, before the daemon sees the write) and hands them to `sock_ops` to put in the
//! TCP option; on the server side, attaches the context a peer's option carried to the read that
//! consumes a request's first byte, and gives the daemon every read's sequence number so that it
//! can match options to requests that begin later in a read (pipelining).
//!
//! Request starts on a client socket: the first egress call after ingress (or none), and any
//! later egress call whose first byte can begin a request of a protocol that pipelines (an HTTP
//! method's capital letter, a RESP array's `*`). Each gets its own context, keyed by the
//! sequence number of its first byte; the daemon uses it only when a request really begins at
//! that byte. On a server socket a request starts at the first ingress call after egress.
//!
//! Client ids follow the stitching rule (DESIGN.md): an outbound request carries the trace of
//! the request its thread serves only when that is proven, i.e. the thread has exactly one
//! inbound request read and not answered, and has not had two in flight since it last had
//! none (event loops serve many requests on one thread). Otherwise its trace id is fresh. In Go
//! processes the goroutine takes the thread's place (`goroutine`).

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_probe_read_user};
use tracer_common::*;

use crate::{data, kernel, maps};

const LAST_NONE: u32 = 0;
const LAST_EGRESS: u32 = 1 + DIR_EGRESS;
const LAST_INGRESS: u32 = 1 + DIR_INGRESS;

#[inline(always)]
fn enabled() -> bool {
    maps::SETTINGS.load().propagate != 0
}

#[inline(always)]
fn random64() -> u64 {
    // SAFETY: plain helper calls.
    let v = unsafe { ((bpf_get_prandom_u32() as u64) << 32) | bpf_get_prandom_u32() as u64 };
    if v == 0 { 1 } else { v }
}

/// A connection got its role (connect: client, accept: server).
#[inline(always)]
pub fn on_role(sk: u64, role: u32) {
    if enabled() {
        let _ = maps::SOCK_STATE.insert(
            sk,
            SockState {
                role,
                last: LAST_NONE,
                pending_seq: 0,
                pending: 0,
                reading: READ_NONE,
                read_seq: 0,
                serving: ServingKey::default(),
                ctx: WireContext::default(),
                ctx_held: 0,
                _pad: 0,
            },
            0,
        );
    }
}

/// The socket is being closed. Closing a server connection ends whatever request was read on
/// it, answered or not (whichever thread read it).
#[inline(always)]
pub fn on_close(sk: u64) {
    if !enabled() {
        return;
    }
    // SAFETY: the value is copied out before removal.
    if let Some(state) = unsafe { maps::SOCK_STATE.get(sk) }.copied() {
        if state.role == ROLE_SERVER && state.serving.kind != 0 {
            release(state.serving);
        }
        let _ = maps::SOCK_STATE.remove(sk);
    }
}

/// Thread or goroutine `who` read a new inbound request of trace `trace`. A thread's entry
/// stays when it serves nothing (count 0) and is updated in place from then on: a server
/// thread costs one insert in its life, not one per request (the map is LRU).
#[inline(always)]
fn acquire(who: ServingKey, trace: [u64; 2]) {
    if let Some(t) = maps::THREAD_TRACE.get_ptr_mut(who) {
        // SAFETY: map value pointer, valid for this program run.
        let t = unsafe { &mut *t };
        if t.serving == 0 {
            *t = ThreadServing { trace_hi: trace[0], trace_lo: trace[1], serving: 1, known: 1 };
        } else {
            // A second request in flight: which one a later call belongs to is not provable.
            t.serving = t.serving.saturating_add(1);
            t.known = 0;
        }
        return;
    }
    let value = ThreadServing { trace_hi: trace[0], trace_lo: trace[1], serving: 1, known: 1 };
    let _ = maps::THREAD_TRACE.insert(who, value, 0);
}

/// One request counted for `who` was answered (or its socket closed).
#[inline(always)]
fn release(who: ServingKey) {
    let Some(t) = maps::THREAD_TRACE.get_ptr_mut(who) else { return };
    // SAFETY: map value pointer, valid for this program run.
    let t = unsafe { &mut *t };
    // Above one, still unprovable: `known` stays cleared until the thread serves nothing.
    t.serving = t.serving.saturating_sub(1);
}

/// The trace of the request `who` provably serves alone.
#[inline(always)]
fn proven_trace(who: ServingKey) -> Option<[u64; 2]> {
    // SAFETY: the value is copied out.
    let t = unsafe { maps::THREAD_TRACE.get(who) }.copied()?;
    (t.serving == 1 && t.known != 0).then_some([t.trace_hi, t.trace_lo])
}

#[inline(always)]
fn tcp_seq(sk: u64, offset: u32) -> Option<u32> {
    // SAFETY: read through bpf_probe_read_kernel.
    unsafe { kernel::read::<u32>(sk, offset) }
}

/// The first byte an egress call sends (first iovec for the vector calls).
#[inline(always)]
fn first_byte(args: &SyscallArgs) -> Option<u8> {
    if !matches!(args.syscall, SYS_WRITE | SYS_SENDTO | SYS_WRITEV | SYS_SENDMSG) {
        return None;
    }
    let ptr = data::first_buffer(args.syscall, args.ptr)?;
    // SAFETY: user memory read through the helper.
    unsafe { bpf_probe_read_user(ptr as *const u8) }.ok()
}

/// Whether an egress call that follows another egress call may begin a pipelined request.
#[inline(always)]
fn may_start_request(args: &SyscallArgs) -> bool {
    matches!(first_byte(args), Some(b'*' | b'A'..=b'Z'))
}

/// Syscall entry of a data call on `sk`: for a server read, its sequence number; for a client
/// request start, the ids (`args.ctx_kind = CTX_CLIENT`) and the option to write on the packet
/// that begins with its first byte.
#[inline(always)]
pub fn on_enter(args: &mut SyscallArgs, who: ServingKey, egress: bool) {
    if !enabled() {
        return;
    }
    let sk = args.sock;
    let Some(state) = maps::SOCK_STATE.get_ptr_mut(sk) else { return };
    // SAFETY: map value pointer, valid for this program run.
    let state = unsafe { &mut *state };
    let off = maps::OFFSETS.load();
    if !egress {
        if state.role == ROLE_SERVER {
            state.reading = READ_UNKNOWN;
            if let Some(seq) = tcp_seq(sk, off.tcp_copied_seq) {
                args.seq = seq;
                args.has_seq = 1;
                state.reading = READ_AT;
                state.read_seq = seq;
            }
        }
        return;
    }
    let turned = state.last != LAST_EGRESS;
    state.last = LAST_EGRESS;
    match state.role {
        ROLE_CLIENT => {
            if !turned && !may_start_request(args) {
                return;
            }
            let Some(seq) = tcp_seq(sk, off.tcp_write_seq) else { return };
            let trace = match proven_trace(who) {
                Some(t) => t,
                None => [random64(), random64()],
            };
            let ctx = WireContext { trace_hi: trace[0], trace_lo: trace[1], span_id: random64() };
            if state.ctx_held != 0 && state.pending != 0 {
                // The previous start's packet is not built yet (pipelining): its context waits
                // in the map, keyed by its sequence number. The usual case costs no map update.
                let key = OptionKey { sock: sk, seq: state.pending_seq, _pad: 0 };
                let _ = maps::PENDING_OPTION.insert(key, state.ctx, 0);
            }
            state.ctx = ctx;
            state.ctx_held = 1;
            state.pending_seq = seq;
            state.pending = 1;
            args.seq = seq;
            args.has_seq = 1;
            args.ctx_kind = CTX_CLIENT;
            args.ctx = ctx;
        }
        ROLE_SERVER if turned && state.serving.kind != 0 => {
            // The response starts: the thread that read the request no longer serves it.
            release(state.serving);
            state.serving = ServingKey::default();
        }
        _ => {}
    }
}

/// Syscall exit of a data call: for a server read, the context of the request it starts.
#[inline(always)]
pub fn on_exit(args: &mut SyscallArgs, who: ServingKey, egress: bool, ret: i64) {
    if !enabled() {
        return;
    }
    let sk = args.sock;
    if egress && (ret > 0 || args.ctx_kind != CTX_CLIENT) {
        // A write's work was done at entry.
        return;
    }
    let Some(state) = maps::SOCK_STATE.get_ptr_mut(sk) else { return };
    // SAFETY: map value pointer, valid for this program run.
    let state = unsafe { &mut *state };
    if egress {
        // Nothing was sent (EAGAIN, error): the next write starts the request again.
        if state.ctx_held != 0 && state.pending_seq == args.seq {
            state.ctx_held = 0;
        } else {
            let _ = maps::PENDING_OPTION.remove(OptionKey { sock: sk, seq: args.seq, _pad: 0 });
        }
        state.last = LAST_NONE;
        args.ctx_kind = CTX_NONE;
        args.has_seq = 0;
        return;
    }
    if state.role == ROLE_SERVER {
        state.reading = READ_NONE;
    }
    if ret <= 0 {
        return;
    }
    let starts = state.last != LAST_INGRESS;
    state.last = LAST_INGRESS;
    if state.role != ROLE_SERVER {
        return;
    }
    let key = OptionKey { sock: sk, seq: args.seq, _pad: 0 };
    // SAFETY: the value is copied out before removal.
    let peer = unsafe { maps::RECEIVED_OPTION.get(key) }.copied();
    if let Some(ctx) = peer {
        let _ = maps::RECEIVED_OPTION.remove(key);
        maps::count(COUNTER_OPTION_MATCHED);
        args.ctx_kind = CTX_PEER;
        args.ctx = ctx;
    }
    if !starts {
        return;
    }
    let trace = match peer {
        Some(ctx) => [ctx.trace_hi, ctx.trace_lo],
        None => {
            let t = [random64(), random64()];
            args.ctx_kind = CTX_SERVER;
            args.ctx = WireContext { trace_hi: t[0], trace_lo: t[1], span_id: 0 };
            t
        }
    };
    if state.serving.kind != 0 {
        // The previous request on this socket got no response before this one: it is over.
        release(state.serving);
    }
    acquire(who, trace);
    state.serving = who;
}
