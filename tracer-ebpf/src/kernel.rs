//! Reads of kernel structures: from a file descriptor to its TCP socket, and a socket's tuple.
//! Field offsets come from the `OFFSETS` global, resolved by the daemon from the running kernel's
//! BTF, so the same object works across kernel builds.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use tracer_common::{AF_INET, AF_INET6, KernelOffsets, Tuple};

use crate::maps::{OFFSETS, SETTINGS};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const IPPROTO_TCP: u16 = 6;

#[inline(always)]
pub(crate) unsafe fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel tolerates any address and reports faults as errors.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// The kernel `struct sock *` behind `fd` in the current process, when it is a TCP socket
/// (IPv4 or IPv6) in the traced network namespace.
#[inline(always)]
pub fn tcp_sock_of_fd(fd: i64) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    let off = OFFSETS.load();
    // SAFETY: every pointer is only ever passed to bpf_probe_read_kernel.
    unsafe {
        let task = bpf_get_current_task();
        let files: u64 = read(task, off.task_files)?;
        let fdt: u64 = read(files, off.files_fdt)?;
        let max_fds: u32 = read(fdt, off.fdt_max_fds)?;
        if fd as u64 >= max_fds as u64 {
            return None;
        }
        let fd_array: u64 = read(fdt, off.fdt_fd)?;
        let file: u64 = read(fd_array, (fd as u32).wrapping_mul(8))?;
        if file == 0 {
            return None;
        }
        let inode: u64 = read(file, off.file_inode)?;
        let mode: u16 = read(inode, off.inode_mode)?;
        if mode & S_IFMT != S_IFSOCK {
            return None;
        }
        let socket: u64 = read(file, off.file_private_data)?;
        let sk: u64 = read(socket, off.socket_sk)?;
        if sk == 0 {
            return None;
        }
        if is_traced_tcp(sk, &off) { Some(sk) } else { None }
    }
}

/// Whether `sk` is an IPv4/IPv6 TCP socket in the traced network namespace.
#[inline(always)]
pub fn is_traced_tcp(sk: u64, off: &KernelOffsets) -> bool {
    // SAFETY: reads go through bpf_probe_read_kernel.
    unsafe {
        let family: u16 = match read(sk, off.skc_family) {
            Some(f) => f,
            None => return false,
        };
        if family != AF_INET && family != AF_INET6 {
            return false;
        }
        let protocol: u16 = match read(sk, off.sk_protocol) {
            Some(p) => p,
            None => return false,
        };
        if protocol != IPPROTO_TCP {
            return false;
        }
        let want = SETTINGS.load().netns_inum;
        if want != 0 {
            let net: u64 = match read(sk, off.skc_net) {
                Some(n) => n,
                None => return false,
            };
            let inum: u32 = match read(net, off.net_ns_inum) {
                Some(i) => i,
                None => return false,
            };
            if inum as u64 != want {
                return false;
            }
        }
    }
    true
}

/// Inode number of the socket's network namespace; 0 when the kernel read fails.
#[inline(always)]
pub fn netns_of(sk: u64, off: &KernelOffsets) -> u32 {
    // SAFETY: reads go through bpf_probe_read_kernel.
    unsafe { read::<u64>(sk, off.skc_net).and_then(|net| read::<u32>(net, off.net_ns_inum)) }.unwrap_or(0)
}

/// The socket's current addresses and ports. `None` when the kernel read fails.
#[inline(always)]
pub fn tuple_of(sk: u64) -> Option<Tuple> {
    let off = OFFSETS.load();
    let mut t = Tuple::default();
    // Every kernel's `sock_common` starts with the IPv4 addresses, hash, ports and family, and
    // keeps the two IPv6 addresses side by side: then one read takes each group. (The offsets
    // are constants to the verifier, which drops the branch not taken.)
    let grouped = off.skc_rcv_saddr == off.skc_daddr + 4
        && off.skc_dport == off.skc_daddr + 12
        && off.skc_num == off.skc_daddr + 14
        && off.skc_family == off.skc_daddr + 16
        && off.skc_v6_rcv_saddr == off.skc_v6_daddr + 16;
    if grouped {
        // SAFETY: reads go through bpf_probe_read_kernel.
        let b: [u8; 18] = unsafe { read(sk, off.skc_daddr) }?;
        t.family = u16::from_ne_bytes([b[16], b[17]]);
        t.lport = u16::from_ne_bytes([b[14], b[15]]);
        t.rport = u16::from_be_bytes([b[12], b[13]]);
        if t.family == AF_INET {
            t.raddr[..4].copy_from_slice(&b[..4]);
            t.laddr[..4].copy_from_slice(&b[4..8]);
        } else {
            // SAFETY: as above.
            let v6: [u8; 32] = unsafe { read(sk, off.skc_v6_daddr) }?;
            t.raddr.copy_from_slice(&v6[..16]);
            t.laddr.copy_from_slice(&v6[16..]);
        }
        return Some(t);
    }
    // SAFETY: reads go through bpf_probe_read_kernel.
    unsafe {
        t.family = read(sk, off.skc_family)?;
        t.lport = read(sk, off.skc_num)?;
        let dport: u16 = read(sk, off.skc_dport)?;
        t.rport = u16::from_be(dport);
        if t.family == AF_INET {
            let l: [u8; 4] = read(sk, off.skc_rcv_saddr)?;
            let r: [u8; 4] = read(sk, off.skc_daddr)?;
            t.laddr[..4].copy_from_slice(&l);
            t.raddr[..4].copy_from_slice(&r);
        } else {
            t.laddr = read(sk, off.skc_v6_rcv_saddr)?;
            t.raddr = read(sk, off.skc_v6_daddr)?;
        }
    }
    Some(t)
}
