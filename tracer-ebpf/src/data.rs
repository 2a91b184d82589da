//! Data calls on TCP sockets: the first `capture_bytes` of what moved, across iovecs for the
//! vector calls, written to the ring buffer as one `DataEvent` record followed by the payload.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated};
use tracer_common::*;

use crate::{
    event::{self, Failed, Outcome},
    filter, kernel, loss, maps,
};

pub(crate) const EAGAIN: i64 = 11;
const MASK: u64 = MAX_CAPTURE as u64 - 1;
/// `struct user_msghdr`: `msg_iov` at 16, `msg_iovlen` at 24.
pub(crate) const MSG_IOV: u64 = 16;
const MSG_IOVLEN: u64 = 24;

#[inline(always)]
pub fn emit(args: &SyscallArgs, ret: i64) -> Outcome {
    if ret == -EAGAIN {
        return Ok(());
    }
    let direction = direction_of(args.syscall);
    let Some(tuple) = kernel::tuple_of(args.sock) else {
        loss::mark(args.sock, loss::bit(direction));
        return Err(event::fail(COUNTER_READ_ERROR));
    };
    if !filter::ports_traced(tuple.lport, tuple.rport) {
        maps::count(COUNTER_FILTERED);
        return Ok(());
    }
    let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
        loss::mark(args.sock, loss::bit(direction));
        return Err(Failed);
    };
    // SAFETY: per-CPU scratch slot, used by this program run only.
    let scratch = unsafe { &mut *scratch };
    let degraded = maps::ring_fill().degraded();
    let mut captured: u64 = 0;
    if ret > 0 {
        let mut cap = (maps::SETTINGS.load().capture_bytes as u64).min(MASK);
        if degraded && cap > DEGRADED_CAPTURE as u64 {
            cap = DEGRADED_CAPTURE as u64;
        }
        let want = (ret as u64).min(cap);
        let payload = scratch.payload.as_mut_ptr();
        captured = match args.syscall {
            SYS_READV | SYS_WRITEV => copy_iov(payload, args.ptr, args.len, want),
            SYS_SENDMSG | SYS_RECVMSG => {
                // SAFETY: user memory read through the helper.
                let iov: u64 = unsafe { bpf_probe_read_user((args.ptr + MSG_IOV) as *const u64) }.unwrap_or(0);
                let n: u64 = unsafe { bpf_probe_read_user((args.ptr + MSG_IOVLEN) as *const u64) }.unwrap_or(0);
                copy_iov(payload, iov, n, want)
            }
            _ => copy(payload, 0, args.ptr, want),
        };
    }
    let e = &mut scratch.event;
    e.header = event::header(EVENT_DATA, bpf_get_current_pid_tgid(), event::now());
    e.conn_id = args.sock;
    e.ts_enter_ns = args.ts_enter_ns;
    e.ret = ret;
    e.fd = args.fd;
    e.syscall = args.syscall;
    e.direction = direction;
    e.captured = captured as u32;
    e.flags = if ret > 0 && (ret as u64) > captured { FLAG_TRUNCATED } else { 0 };
    if degraded && ret > 0 && (ret as u64) > DEGRADED_CAPTURE as u64 {
        e.flags |= FLAG_DEGRADED;
        maps::count(COUNTER_DEGRADED);
    }
    if args.has_seq != 0 {
        e.flags |= FLAG_SEQ;
    }
    e.flags |= loss::take(args.sock);
    e.ctx_kind = args.ctx_kind;
    e.tuple = tuple;
    e.ctx = args.ctx;
    e.seq = args.seq;
    e.netns = kernel::netns_of(args.sock, &maps::OFFSETS.load());
    e.goid = args.goid;
    let header = core::mem::size_of::<DataEvent>() as u64;
    // The mask is a no-op (captured < MAX_CAPTURE); it gives the verifier the bound.
    let len = (header + captured) & (2 * MAX_CAPTURE as u64 - 1);
    // SAFETY: `scratch` is `header + 2 * MAX_CAPTURE` bytes and `len` is below that.
    let bytes = unsafe { core::slice::from_raw_parts(scratch as *const _ as *const u8, len as usize) };
    let sent = event::submit::<[u8]>(bytes, maps::wakeup());
    if sent.is_err() {
        // This call is lost, and with it the mark it carried.
        let carried = scratch.event.flags & (FLAG_LOST_INGRESS | FLAG_LOST_EGRESS);
        loss::mark(args.sock, carried | loss::bit(direction));
    }
    sent
}

/// `DIR_INGRESS` for the calls that receive, `DIR_EGRESS` for those that send.
#[inline(always)]
pub(crate) fn direction_of(syscall: u32) -> u32 {
    match syscall {
        SYS_READ | SYS_RECVFROM | SYS_RECVMSG | SYS_READV => DIR_INGRESS,
        _ => DIR_EGRESS,
    }
}

/// Where a data call's first bytes are: its buffer, or its first iovec's (the vector calls and
/// the msghdr calls). `None` when the user memory cannot be read.
#[inline(always)]
pub(crate) fn first_buffer(syscall: u32, ptr: u64) -> Option<u64> {
    let read = |at: u64| -> Option<u64> {
        // SAFETY: user memory read through the helper.
        unsafe { bpf_probe_read_user(at as *const u64) }.ok()
    };
    match syscall {
        SYS_READV | SYS_WRITEV => read(ptr),
        SYS_SENDMSG | SYS_RECVMSG => read(read(ptr + MSG_IOV)?),
        _ => Some(ptr),
    }
}

/// Copies `len` user bytes from `src` to `payload[offset..]`; returns the bytes copied.
#[inline(always)]
fn copy(payload: *mut u8, offset: u64, src: u64, len: u64) -> u64 {
    let offset = offset & MASK;
    let len = len & MASK;
    if len == 0 {
        return 0;
    }
    // SAFETY: offset < MAX_CAPTURE and len < MAX_CAPTURE inside a 2 * MAX_CAPTURE buffer.
    let rc =
        unsafe { generated::bpf_probe_read_user(payload.add(offset as usize) as *mut _, len as u32, src as *const _) };
    if rc == 0 {
        len
    } else {
        maps::count(COUNTER_READ_ERROR);
        0
    }
}

/// Copies up to `want` bytes from an iovec array of `count` entries.
#[inline(always)]
fn copy_iov(payload: *mut u8, iov: u64, count: u64, want: u64) -> u64 {
    let mut copied: u64 = 0;
    for i in 0..MAX_IOV as u64 {
        if i >= count || copied >= want {
            break;
        }
        // SAFETY: user memory read through the helper.
        let entry: [u64; 2] = match unsafe { bpf_probe_read_user((iov + i * 16) as *const [u64; 2]) } {
            Ok(e) => e,
            Err(_) => break,
        };
        let chunk = entry[1].min(want - copied);
        let n = copy(payload, copied, entry[0], chunk);
        if n != chunk {
            break;
        }
        copied += n;
    }
    copied
}
