//! libmysqlclient / libmariadb: the statement of `mysql_real_query`, `mysql_query`,
//! `mysql_send_query` and `mysql_stmt_prepare`, and the connection parameters of
//! `mysql_real_connect`, read from the arguments only (their types are the same in every
//! version of both libraries). At the return of a failed call, the error number and message are
//! read from the handle at offsets the daemon puts in the attach cookie (it knows them for the
//! library builds it recognises; otherwise they are 0 and nothing is read).

use aya_ebpf::helpers::bpf_probe_read_user;
use aya_ebpf::programs::ProbeContext;
use tracer_common::*;

use crate::uprobe;

/// Writes the entry payload of `func` to `payload`; returns its length and the `arg` field.
#[inline(always)]
pub fn enter_payload(ctx: &ProbeContext, func: u32, payload: *mut u8) -> (u64, u64) {
    let max = MAX_LIB_CAPTURE as u64 - 1;
    match func {
        // (MYSQL *, const char *q, unsigned long len); mysql_stmt_prepare has the same shape.
        FN_MYSQL_REAL_QUERY | FN_MYSQL_SEND_QUERY | FN_MYSQL_STMT_PREPARE => {
            let q: u64 = ctx.arg(1).unwrap_or(0);
            let len: u64 = ctx.arg(2).unwrap_or(0);
            (uprobe::copy(payload, 0, q, len.min(max)), 0)
        }
        // (MYSQL *, const char *q): NUL-terminated.
        FN_MYSQL_QUERY => {
            let q: u64 = ctx.arg(1).unwrap_or(0);
            (uprobe::copy_str(payload, 0, q, max), 0)
        }
        // (MYSQL *, host, user, passwd, db, unsigned int port, ...): "host\0user\0db".
        FN_MYSQL_REAL_CONNECT => {
            let host: u64 = ctx.arg(1).unwrap_or(0);
            let user: u64 = ctx.arg(2).unwrap_or(0);
            let db: u64 = ctx.arg(4).unwrap_or(0);
            let port: u64 = ctx.arg::<u64>(5).unwrap_or(0) & 0xffff_ffff;
            let mut n = uprobe::copy_str(payload, 0, host, 256);
            n += 1;
            n += uprobe::copy_str(payload, n, user, 256);
            n += 1;
            n += uprobe::copy_str(payload, n, db, 256);
            (n, port)
        }
        _ => (0, 0),
    }
}

/// At the return of the outermost MySQL API call: the error number (`status`) and the error
/// message bytes written to `payload` when the call failed.
#[inline(always)]
pub fn exit_payload(s: &LibState, ret: i64, payload: *mut u8) -> (i32, u64) {
    if !mysql_failed(s.func, ret) || s.handle == 0 {
        return (0, 0);
    }
    let errno_off = (s.cookie >> 16) & 0xffff;
    let msg_off = (s.cookie >> 40) & 0xffff;
    let mut errno = 0i32;
    if errno_off != 0 {
        // SAFETY: user memory read through the helper.
        errno = unsafe { bpf_probe_read_user((s.handle + errno_off) as *const i32) }.unwrap_or(0);
    }
    let mut n = 0;
    if msg_off != 0 {
        n = uprobe::copy_str(payload, 0, s.handle + msg_off, 512);
    }
    (errno, n)
}
