//! grpc-go streams and their goroutines. grpc-go writes every frame from one goroutine per
//! connection (its loopy writer) and reads them in another, so the goroutines that serve a
//! request or make a call never touch the socket themselves. Two uprobes name them:
//! `(*http2Client).Write` runs in the goroutine that sends a message on a client stream, and
//! `(*Server).handleStream` in the goroutine that runs a server stream's handler. Each reports the
//! stream id, the connection's kernel socket and the current goroutine (`EVENT_GO_STREAM`).
//!
//! Go passes arguments in registers (amd64 ABIInternal: RAX, RBX, RCX, RDI, …). An interface
//! value is two words (itab, data); the program follows its data pointer only when the itab is
//! the one the daemon found for the expected concrete type, so a TLS or wrapped connection is
//! skipped (counted), never misread.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated},
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    COUNTER_GO_STREAM_NOT_TCP, COUNTER_READ_ERROR, EVENT_GO_STREAM, GO_STREAM_CLIENT, GO_STREAM_SERVER, GoStreamEvent,
    PROG_INDEX_GO_GRPC_STREAM,
};

use crate::{
    event::{self, Failed, Outcome},
    filter, goroutine, kernel, maps,
};

#[uprobe]
pub fn go_grpc_stream(ctx: ProbeContext) -> u32 {
    event::finish(PROG_INDEX_GO_GRPC_STREAM, try_go_grpc_stream(&ctx));
    0
}

/// A user-memory word at `addr`; a fault is counted.
#[inline(always)]
fn user<T>(addr: u64) -> Result<T, Failed> {
    // SAFETY: the helper tolerates any address and reports faults as errors.
    unsafe { bpf_probe_read_user(addr as *const T) }.map_err(|_| event::fail(COUNTER_READ_ERROR))
}

#[inline(always)]
fn try_go_grpc_stream(ctx: &ProbeContext) -> Outcome {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !filter::process_traced(tgid) {
        return Ok(());
    }
    // SAFETY: plain helper call.
    let cookie = unsafe { generated::bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    // SAFETY: the value is copied out.
    let Some(probe) = (unsafe { maps::GO_GRPC_PROBES.get(cookie) }).copied() else { return Ok(()) };
    // SAFETY: `regs` is the probe's context. Volatile loads keep each read a load at a fixed
    // offset from the context pointer (the verifier refuses a load through a moved one).
    let (rax, rbx, rcx, rdi) = unsafe {
        let r = ctx.regs;
        (
            core::ptr::read_volatile(&raw const (*r).rax),
            core::ptr::read_volatile(&raw const (*r).rbx),
            core::ptr::read_volatile(&raw const (*r).rcx),
            core::ptr::read_volatile(&raw const (*r).rdi),
        )
    };
    let (transport, stream) = match probe.role {
        GO_STREAM_CLIENT => (rax, rbx),
        GO_STREAM_SERVER if rbx == probe.transport_itab => (rcx, rdi),
        GO_STREAM_SERVER => {
            // grpc's `ServeHTTP` transport, or another `ServerTransport`.
            maps::count(COUNTER_GO_STREAM_NOT_TCP);
            return Ok(());
        }
        _ => return Ok(()),
    };
    if transport == 0 || stream == 0 {
        return Ok(());
    }
    let stream_id: u32 = user(stream + probe.stream_id_off as u64)?;
    let conn_itab: u64 = user(transport + probe.conn_off as u64)?;
    if conn_itab != probe.conn_itab {
        maps::count(COUNTER_GO_STREAM_NOT_TCP);
        return Ok(());
    }
    let tcp_conn: u64 = user(transport + probe.conn_off as u64 + 8)?;
    let netfd: u64 = user(tcp_conn + probe.netfd_off as u64)?;
    let sysfd: i64 = user(netfd + probe.sysfd_off as u64)?;
    let Some(sock) = kernel::tcp_sock_of_fd(sysfd) else { return Ok(()) };
    let goid = goroutine::current_goid(tgid);
    if goid == 0 {
        return Ok(());
    }
    let e = GoStreamEvent {
        header: event::header(EVENT_GO_STREAM, id, event::now()),
        conn_id: sock,
        goid,
        stream_id,
        role: probe.role,
    };
    event::submit(&e, 0)
}
