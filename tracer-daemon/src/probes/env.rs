//! Environment checks before loading: privileges, tracefs, locked-memory limit, cgroup2 and
//! network namespaces. Each failure says what is wrong and what to do.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("tracer-daemon must run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE): effective uid is {0}")]
    NotRoot(u32),
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}); mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    Tracefs(std::io::Error),
    #[error("BPF is unavailable: /sys/kernel/btf/vmlinux is missing (the kernel needs CONFIG_DEBUG_INFO_BTF)")]
    NoBtf,
    #[error("no cgroup2 mount found in /proc/mounts")]
    NoCgroup2,
    #[error("network namespace {name}: {source}")]
    Netns { name: String, source: std::io::Error },
}

pub fn check_privileges() -> Result<(), EnvError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && !has_cap_bpf() {
        return Err(EnvError::NotRoot(euid));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(EnvError::NoBtf);
    }
    Ok(())
}

/// CAP_BPF (39) in the effective set, from /proc/self/status.
fn has_cap_bpf() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 39) != 0)
}

/// Mounts tracefs at /sys/kernel/tracing when it is not mounted there.
pub fn ensure_tracefs() -> Result<(), EnvError> {
    let target = "/sys/kernel/tracing";
    if Path::new(target).join("events").exists() {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in constant");
    let (src, dst, fs) = (c("nodev"), c(target), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(EnvError::Tracefs(std::io::Error::last_os_error()));
    }
    tracing::info!(path = target, "mounted tracefs");
    Ok(())
}

/// Lifts RLIMIT_MEMLOCK for kernels that still charge BPF maps against it.
pub fn raise_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; newer kernels do not need it");
    }
}

/// The cgroup2 mount point, from /proc/mounts (never assumed).
pub fn cgroup2_root() -> Result<PathBuf, EnvError> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|_| EnvError::NoCgroup2)?;
    mounts
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
            (fs == "cgroup2").then(|| PathBuf::from(dir))
        })
        .ok_or(EnvError::NoCgroup2)
}

/// Inode number of a network namespace given as an `ip netns` name or a path to a namespace
/// file (`/proc/PID/ns/net`, `/run/netns/NAME`).
pub fn netns_inode(name: &str) -> Result<u64, EnvError> {
    use std::os::unix::fs::MetadataExt;
    let path = if name.contains('/') { PathBuf::from(name) } else { Path::new("/run/netns").join(name) };
    std::fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|source| EnvError::Netns { name: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    #[test]
    fn netns_of_this_process_resolves_and_a_missing_one_is_named() {
        assert!(super::netns_inode("/proc/self/ns/net").is_ok());
        let err = super::netns_inode("no-such-namespace-xyz").unwrap_err().to_string();
        assert!(err.contains("/run/netns/no-such-namespace-xyz"), "{err}");
    }
}
