//! hiredis: the RESP-formatted command of the call in flight (every synchronous API path formats
//! the command and hands it to `__redisAppendCommand`), and at return the reply's type and, for
//! error replies or a failed context, the error string. `redisReply.type` is the first field in
//! every hiredis version; the offsets of `redisReply.str` and `redisContext.errstr` differ (0.14:
//! 24 and 4; 1.x: 32 and 12) and come in the attach cookie, chosen by the daemon from the
//! library's exported symbols.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::*;

use crate::{
    event::{self, Failed, Outcome},
    maps, uprobe,
};

#[uprobe]
pub fn hiredis_append(ctx: ProbeContext) -> u32 {
    event::finish(PROG_INDEX_HIREDIS_APPEND, try_hiredis_append(&ctx));
    0
}

#[inline(always)]
fn try_hiredis_append(ctx: &ProbeContext) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    // SAFETY: the value is copied out at once.
    let Some(state) = (unsafe { maps::LIB_INFLIGHT.get(tid) }).copied() else { return Ok(()) };
    let cmd: u64 = ctx.arg(1).unwrap_or(0);
    let len: u64 = ctx.arg(2).unwrap_or(0);
    let scratch = maps::LIB_SCRATCH.get_ptr_mut(0).ok_or(Failed)?;
    // SAFETY: per-CPU scratch slot, used by this program run only.
    let scratch = unsafe { &mut *scratch };
    let want = len.min(MAX_LIB_CAPTURE as u64 - 1);
    let n = uprobe::copy(scratch.payload.as_mut_ptr(), 0, cmd, want);
    scratch.event = LibEvent {
        header: event::header(EVENT_LIB_ARG, id, event::now()),
        lib: LIB_HIREDIS,
        func: state.func,
        ts_enter_ns: state.ts_enter_ns,
        ret: len as i64,
        handle: state.handle,
        arg: 0,
        status: 0,
        captured: n as u32,
    };
    uprobe::output(scratch, n)
}

/// At the return of the outermost hiredis call: the reply type (or -1 without a reply) and the
/// error string bytes written to `payload`.
#[inline(always)]
pub fn exit_payload(s: &LibState, ret: i64, payload: *mut u8) -> (i32, u64) {
    let reply_str = (s.cookie >> 16) & 0xff;
    let ctx_errstr = (s.cookie >> 24) & 0xff;
    let reply: u64 = match s.func {
        // int redisGetReply(redisContext *c, void **reply): the reply comes through `out`.
        FN_REDIS_GET_REPLY if ret == 0 && s.out != 0 => {
            // SAFETY: user memory read through the helper.
            unsafe { bpf_probe_read_user(s.out as *const u64) }.unwrap_or(0)
        }
        FN_REDIS_COMMAND | FN_REDISV_COMMAND | FN_REDIS_COMMAND_ARGV => ret as u64,
        _ => 0,
    };
    if reply == 0 {
        let failed = match s.func {
            FN_REDIS_COMMAND | FN_REDISV_COMMAND | FN_REDIS_COMMAND_ARGV => ret == 0,
            _ => ret != 0,
        };
        if failed && s.handle != 0 && ctx_errstr != 0 {
            let n = uprobe::copy_str(payload, 0, s.handle + ctx_errstr, 128);
            return (-1, n);
        }
        return (-1, 0);
    }
    // SAFETY: user memory read through the helper.
    let kind: i32 = unsafe { bpf_probe_read_user(reply as *const i32) }.unwrap_or(-1);
    if kind == REDIS_REPLY_ERROR && reply_str != 0 {
        // SAFETY: as above.
        let str_ptr: u64 = unsafe { bpf_probe_read_user((reply + reply_str) as *const u64) }.unwrap_or(0);
        let n = uprobe::copy_str(payload, 0, str_ptr, 512);
        return (kind, n);
    }
    (kind, 0)
}
