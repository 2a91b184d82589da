//! Kernel programs of tracer: syscall hooks that turn TCP socket activity into events, the TCP
//! state tracepoint, process exit, uprobes on the Redis and MySQL client libraries, and on grpc-go. One
//! file per probe family; each program is a thin entry point over a `try_` function whose
//! failures are counted, never fatal.
#![no_std]
#![no_main]
// The atomic add on a map value shared by every CPU (`loss`): the BPF target has no atomic RMW
// in `core::sync::atomic`.
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "core::intrinsics::atomic_xadd, for the BPF atomic add")]

mod data;
mod event;
mod filter;
mod floor;
mod gogrpc;
mod goroutine;
mod hiredis;
mod kernel;
mod loss;
mod maps;
mod mysql;
mod process;
mod propagate;
mod sock_ops;
mod sockets;
mod syscalls;
mod uprobe;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
