//! Attaching a loaded uprobe program to one function of one file: a uprobe perf event on
//! (path, file offset) for every process that maps the file, and a BPF link that binds the
//! program to it with an attach cookie. Closing the returned descriptors detaches.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

/// `perf_event_attr`, as far as uprobes need it (the kernel accepts this size, 128 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// uprobe: pointer to the file path.
    config1: u64,
    /// uprobe: file offset of the probed instruction.
    config2: u64,
    rest: [u64; 7],
}
const _: () = assert!(size_of::<PerfEventAttr>() == 128);

/// `bpf_attr` for `BPF_LINK_CREATE` with a perf event target.
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
    rest: [u64; 4],
}

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PERF_EVENT: u32 = 41;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// The uprobe PMU of the running kernel.
#[derive(Clone, Copy, Debug)]
pub struct Pmu {
    type_: u32,
    /// Bit of `config` that makes a uretprobe.
    retprobe_bit: u32,
}

impl Pmu {
    pub fn detect() -> io::Result<Pmu> {
        let base = "/sys/bus/event_source/devices/uprobe";
        let type_ = std::fs::read_to_string(format!("{base}/type"))?
            .trim()
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("uprobe PMU type: {e}")))?;
        // "config:0"
        let retprobe_bit = std::fs::read_to_string(format!("{base}/format/retprobe"))
            .ok()
            .and_then(|s| s.trim().strip_prefix("config:").and_then(|b| b.parse().ok()))
            .unwrap_or(0);
        Ok(Pmu { type_, retprobe_bit })
    }
}

/// An attached probe; dropping it detaches.
pub struct Attached {
    _link: OwnedFd,
    _event: OwnedFd,
}

/// Attaches `prog` at `offset` of the file at `path` (every process mapping it) with `cookie`.
pub fn attach(
    pmu: Pmu,
    prog: BorrowedFd<'_>,
    path: &str,
    offset: u64,
    retprobe: bool,
    cookie: u64,
) -> io::Result<Attached> {
    let c_path = CString::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let attr = PerfEventAttr {
        type_: pmu.type_,
        size: size_of::<PerfEventAttr>() as u32,
        config: if retprobe { 1 << pmu.retprobe_bit } else { 0 },
        config1: c_path.as_ptr() as u64,
        config2: offset,
        ..PerfEventAttr::default()
    };
    // SAFETY: perf_event_open reads `attr` (and the path it points to, alive for the call).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as libc::c_int,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    let event = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: event.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        bpf_cookie: cookie,
        ..LinkCreate::default()
    };
    // SAFETY: the bpf syscall reads `attr` of the given size.
    let link = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_LINK_CREATE, &attr as *const LinkCreate, size_of::<LinkCreate>() as u32)
    };
    if link < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let link = unsafe { OwnedFd::from_raw_fd(link as i32) };
    Ok(Attached { _link: link, _event: event })
}
