//! `sock_ops` on the cgroup2 root: carries trace context in an experimental TCP option (kind 253,
//! ExID `TCP_OPTION_EXID`, RFC 6994). On connections of the traced network namespace it enables
//! the header-option callbacks (writing on connected sockets, parsing on accepted ones); it writes
//! the context the syscall side chose on the packet that begins with a client request's first
//! byte, and reads the option on the server side, keyed by the sequence number of the packet's
//! first byte (kept for the read that starts there, and sent to the daemon as an event when the
//! request may begin inside a read).
//! Several daemons (one per namespace) attach their own copy; each acts only on sockets of its
//! namespace.

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_HDR_OPT_LEN_CB, BPF_SOCK_OPS_PARSE_HDR_OPT_CB,
        BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_WRITE_HDR_OPT_CB,
        BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG,
    },
    helpers::generated::{bpf_load_hdr_opt, bpf_reserve_hdr_opt, bpf_store_hdr_opt},
    macros::sock_ops,
    programs::SockOpsContext,
};
use tracer_common::*;

use crate::{
    event::{self, Failed, Outcome},
    kernel, maps,
};

const LEN: usize = TCP_OPTION_LEN as usize;

#[sock_ops]
pub fn tracer_sock_ops(ctx: SockOpsContext) -> u32 {
    event::finish(PROG_INDEX_SOCK_OPS, try_sock_ops(&ctx));
    1
}

/// The kernel `struct sock *` and `struct sk_buff *` behind the context (scalars, so they key
/// maps and feed `bpf_probe_read_kernel` like the syscall side's socket pointers).
#[inline(always)]
fn sock_and_skb(ctx: &SockOpsContext) -> (u64, u64) {
    let off = maps::OFFSETS.load();
    let base = ctx.ops as u64;
    // SAFETY: reads of the kernel context through bpf_probe_read_kernel.
    unsafe {
        (
            kernel::read::<u64>(base, off.ops_kern_sk).unwrap_or(0),
            kernel::read::<u64>(base, off.ops_kern_skb).unwrap_or(0),
        )
    }
}

/// The kernel `struct sock *` from the context's own `sk` field: a load the verifier
/// rewrites, no helper call. Only a map key: the verifier forbids arithmetic on it, so the
/// paths that read the socket take `sock_and_skb`'s instead.
#[inline(always)]
fn ctx_sock(ctx: &SockOpsContext) -> u64 {
    // SAFETY: `ops` is the program's context; `sk` is one of its readable fields.
    unsafe { (*ctx.ops).__bindgen_anon_2.sk as u64 }
}

/// The `struct sk_buff *` behind the context (0 when the callback has no packet).
#[inline(always)]
fn ctx_skb(ctx: &SockOpsContext) -> u64 {
    // SAFETY: read of the kernel context through bpf_probe_read_kernel.
    unsafe { kernel::read::<u64>(ctx.ops as u64, maps::OFFSETS.load().ops_kern_skb) }.unwrap_or(0)
}

/// `TCP_SKB_CB(skb)->seq` and `end_seq`, adjacent: one read.
#[inline(always)]
fn skb_seq(skb: u64) -> Result<(u32, u32), Failed> {
    let cb = maps::OFFSETS.load().skb_cb;
    // SAFETY: read through bpf_probe_read_kernel.
    let [seq, end] = unsafe { kernel::read::<[u32; 2]>(skb, cb) }.ok_or_else(|| event::fail(COUNTER_READ_ERROR))?;
    Ok((seq, end))
}

#[inline(always)]
fn try_sock_ops(ctx: &SockOpsContext) -> Outcome {
    if maps::SETTINGS.load().propagate == 0 {
        return Ok(());
    }
    match ctx.op() {
        op @ (BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) => {
            let (sk, _) = sock_and_skb(ctx);
            if sk == 0 || !kernel::is_traced_tcp(sk, &maps::OFFSETS.load()) {
                return Ok(());
            }
            // The connecting side writes the option (requests), the accepting side reads it:
            // each packet runs only the callback its direction needs.
            let wanted = if op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB {
                BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
            } else {
                BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG
            };
            let _ = ctx.set_cb_flags((ctx.cb_flags() | wanted) as i32);
        }
        BPF_SOCK_OPS_HDR_OPT_LEN_CB => {
            // Runs for every segment a client socket sends and every sizing of its MSS: the
            // common case (nothing pending) costs one context load and one lookup.
            let sk = ctx_sock(ctx);
            // Not a socket whose role the kernel saw: nothing to write.
            let Some(state) = maps::SOCK_STATE.get_ptr_mut(sk) else { return Ok(()) };
            // SAFETY: map value pointer, valid for this program run.
            let state = unsafe { &mut *state };
            if state.pending == 0 {
                // Every request start with a context is already on a built packet.
                return Ok(());
            }
            let skb = ctx_skb(ctx);
            if skb == 0 {
                // Sizing the MSS (no packet yet): keep room while a request start is pending.
                // SAFETY: helper on this program's context.
                unsafe { bpf_reserve_hdr_opt(ctx.ops, TCP_OPTION_LEN, 0) };
                return Ok(());
            }
            let (start, end) = skb_seq(skb)?;
            let latest = state.pending_seq;
            if seq_before(latest, end) {
                // Packets are built in sequence order: this one reaches the latest start.
                state.pending = 0;
            }
            // The option rides only on a packet that begins with the request's first byte: a
            // request that shares its packet with earlier bytes goes without (the receiver keys
            // the option by the packet's first byte).
            let held = state.ctx_held != 0 && latest == start;
            let key = OptionKey { sock: sk, seq: start, _pad: 0 };
            // SAFETY: the value is only tested.
            if !held && unsafe { maps::PENDING_OPTION.get(key) }.is_none() {
                if state.pending == 0 {
                    // The latest start is inside this packet, not at its head: never written.
                    state.ctx_held = 0;
                }
                return Ok(());
            }
            // SAFETY: helper on this program's context.
            if unsafe { bpf_reserve_hdr_opt(ctx.ops, TCP_OPTION_LEN, 0) } != 0 {
                maps::count(COUNTER_OPTION_NO_SPACE);
                if held {
                    state.ctx_held = 0;
                } else {
                    let _ = maps::PENDING_OPTION.remove(key);
                }
            }
        }
        BPF_SOCK_OPS_WRITE_HDR_OPT_CB => {
            let (sk, skb) = (ctx_sock(ctx), ctx_skb(ctx));
            let (start, _) = skb_seq(skb)?;
            // The latest start's context is held by the socket's state; earlier ones in the map.
            let Some(state) = maps::SOCK_STATE.get_ptr_mut(sk) else { return Ok(()) };
            // SAFETY: map value pointer, valid for this program run.
            let state = unsafe { &mut *state };
            let pending = if state.ctx_held != 0 && state.pending_seq == start {
                state.ctx_held = 0;
                state.ctx
            } else {
                let key = OptionKey { sock: sk, seq: start, _pad: 0 };
                // SAFETY: the value is copied out.
                let Some(found) = unsafe { maps::PENDING_OPTION.get(key) }.copied() else { return Ok(()) };
                let _ = maps::PENDING_OPTION.remove(key);
                found
            };
            let mut opt = [0u8; LEN];
            opt[0] = TCP_OPTION_KIND;
            opt[1] = LEN as u8;
            opt[2..4].copy_from_slice(&TCP_OPTION_EXID.to_be_bytes());
            opt[4..12].copy_from_slice(&pending.trace_hi.to_be_bytes());
            opt[12..20].copy_from_slice(&pending.trace_lo.to_be_bytes());
            opt[20..28].copy_from_slice(&pending.span_id.to_be_bytes());
            // SAFETY: helper on this program's context with a stack buffer of LEN bytes.
            let rc = unsafe { bpf_store_hdr_opt(ctx.ops, opt.as_ptr() as *const _, TCP_OPTION_LEN, 0) };
            maps::count(if rc == 0 { COUNTER_OPTION_WRITTEN } else { COUNTER_OPTION_NO_SPACE });
        }
        BPF_SOCK_OPS_PARSE_HDR_OPT_CB => {
            let (sk, skb) = sock_and_skb(ctx);
            if sk == 0 || !kernel::is_traced_tcp(sk, &maps::OFFSETS.load()) {
                return Ok(());
            }
            // Search by kind and ExID: for the experimental kinds the kernel matches the 2-byte
            // ExID given after a search length of 4, and copies the whole option back.
            let mut opt = [0u8; LEN];
            opt[0] = TCP_OPTION_KIND;
            opt[1] = 4;
            opt[2..4].copy_from_slice(&TCP_OPTION_EXID.to_be_bytes());
            // SAFETY: helper on this program's context with a stack buffer of LEN bytes.
            let rc = unsafe { bpf_load_hdr_opt(ctx.ops, opt.as_mut_ptr() as *mut _, TCP_OPTION_LEN, 0) };
            if rc <= 0 {
                // No option of ours on this packet.
                return Ok(());
            }
            if rc != TCP_OPTION_LEN as i64
                || opt[1] != LEN as u8
                || u16::from_be_bytes([opt[2], opt[3]]) != TCP_OPTION_EXID
            {
                maps::count(COUNTER_OPTION_FOREIGN);
                return Ok(());
            }
            let (seq, _) = skb_seq(skb)?;
            let be = |i: usize| {
                u64::from_be_bytes([
                    opt[i],
                    opt[i + 1],
                    opt[i + 2],
                    opt[i + 3],
                    opt[i + 4],
                    opt[i + 5],
                    opt[i + 6],
                    opt[i + 7],
                ])
            };
            let ctx = WireContext { trace_hi: be(4), trace_lo: be(12), span_id: be(20) };
            let _ = maps::RECEIVED_OPTION.insert(OptionKey { sock: sk, seq, _pad: 0 }, ctx, 0);
            maps::count(COUNTER_OPTION_RECEIVED);
            // A packet that begins where the server's next read will begin (nothing unread
            // ahead of it) starts that read, and the read's own lookup finds its option: when no
            // read is in flight, or when the read in flight began at this very byte (a server
            // blocked in `read`). A read in flight that began earlier may go on into this
            // packet, so its request may begin inside a read, as with pipelining or a request
            // that arrived before `accept` returned: the daemon matches those by `seq`.
            if let Some(state) = maps::SOCK_STATE.get_ptr_mut(sk) {
                // SAFETY: map value pointer, valid for this program run.
                let (reading, read_seq) = unsafe { ((*state).reading, (*state).read_seq) };
                // SAFETY: read through bpf_probe_read_kernel. (A failed read never equals.)
                let copied = unsafe { kernel::read::<u32>(sk, maps::OFFSETS.load().tcp_copied_seq) }.unwrap_or(!seq);
                let starts_read = reading == READ_NONE || (reading == READ_AT && read_seq == seq);
                if copied == seq && starts_read {
                    return Ok(());
                }
            }
            // Softirq context: no process to name.
            let header = event::header(EVENT_OPTION, 0, event::now());
            let event = OptionEvent { header, conn_id: sk, seq, _pad: 0, ctx };
            return event::submit(&event, maps::wakeup());
        }
        _ => {}
    }
    Ok(())
}
