//! What `/proc/PID` says about a process: service-name variables from `environ`, start time
//! from `stat`, executable name from `exe` or `comm`, and the `cgroup` file. Parsers are pure;
//! readers take the proc root so tests can point them at a directory they build.

use std::path::{Path, PathBuf};

/// The service-name variables, strongest first.
pub const SERVICE_NAME_VARS: [&str; 2] = ["OTEL_SERVICE_NAME", "JAEGER_SERVICE_NAME"];

/// Largest `environ` read, bytes (the kernel's argument + environment limit is far above what
/// real services carry; the name variables are usually near the start).
const MAX_ENVIRON: u64 = 256 * 1024;

/// The value of the strongest service-name variable set (non-empty) in a `/proc/PID/environ`
/// blob (`NAME=value` entries separated by NUL).
pub fn service_from_environ(environ: &[u8]) -> Option<String> {
    SERVICE_NAME_VARS.iter().find_map(|var| environ_value(environ, var))
}

/// The non-empty value of `name` in an environ blob (the first occurrence, as `getenv` does).
pub fn environ_value(environ: &[u8], name: &str) -> Option<String> {
    environ
        .split(|&b| b == 0)
        .find_map(|entry| {
            let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            Some(value)
        })
        .filter(|v| !v.trim_ascii().is_empty())
        .map(|v| String::from_utf8_lossy(v.trim_ascii()).into_owned())
}

/// Field 22 of `/proc/PID/stat` (`starttime`, clock ticks since boot), counted after the
/// parenthesised command name, which may itself hold spaces and parentheses.
pub fn start_time_from_stat(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// The executable's file name from the target of `/proc/PID/exe` (without the ` (deleted)`
/// mark of a replaced binary).
pub fn exe_name(target: &Path) -> Option<String> {
    let name = target.file_name()?.to_string_lossy();
    let name = name.strip_suffix(" (deleted)").unwrap_or(&name);
    (!name.is_empty()).then(|| name.to_owned())
}

/// Reads `/proc/PID/*` under a proc root.
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    /// Start time in clock ticks since boot; `None` when the process is gone.
    pub fn start_time(&self, pid: u32) -> Option<u64> {
        start_time_from_stat(&std::fs::read_to_string(self.path(pid, "stat")).ok()?)
    }

    pub fn exists(&self, pid: u32) -> bool {
        self.root.join(pid.to_string()).exists()
    }

    /// The environment blob (needs ptrace read access to the process: root or
    /// `CAP_SYS_PTRACE`), at most `MAX_ENVIRON` bytes.
    pub fn environ(&self, pid: u32) -> Option<Vec<u8>> {
        use std::io::Read;
        let f = std::fs::File::open(self.path(pid, "environ")).ok()?;
        let mut buf = Vec::new();
        f.take(MAX_ENVIRON).read_to_end(&mut buf).ok()?;
        Some(buf)
    }

    /// The process's name: `comm`, or the executable's name from `exe` (needs ptrace read
    /// access) when `comm` is missing or is the kernel's 15-byte truncation of it. `comm` wins
    /// otherwise: `exe` resolves symlinks (Debian's `redis-server` is a link to
    /// `redis-check-rdb`) and interpreters (`python3.11` for `python3`).
    pub fn executable_name(&self, pid: u32) -> Option<String> {
        let comm = self.comm(pid);
        let exe = || std::fs::read_link(self.path(pid, "exe")).ok().and_then(|t| exe_name(&t));
        match comm {
            Some(c) if c.len() >= 15 => exe().filter(|e| e.starts_with(&c)).or(Some(c)),
            Some(c) => Some(c),
            None => exe(),
        }
    }

    /// The kernel's command name (at most 15 bytes).
    pub fn comm(&self, pid: u32) -> Option<String> {
        let c = std::fs::read_to_string(self.path(pid, "comm")).ok()?;
        let c = c.trim_end_matches('\n');
        (!c.is_empty()).then(|| c.to_owned())
    }

    pub fn cgroup(&self, pid: u32) -> Option<String> {
        std::fs::read_to_string(self.path(pid, "cgroup")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otel_wins_over_jaeger_and_blank_values_do_not_count() {
        let env = b"PATH=/bin\0JAEGER_SERVICE_NAME=jaeger-name\0OTEL_SERVICE_NAME=otel-name\0";
        assert_eq!(service_from_environ(env).as_deref(), Some("otel-name"));
        assert_eq!(service_from_environ(b"JAEGER_SERVICE_NAME=j\0OTEL_SERVICE_NAME=\0").as_deref(), Some("j"));
        assert_eq!(service_from_environ(b"OTEL_SERVICE_NAME=  \0JAEGER_SERVICE_NAME=j").as_deref(), Some("j"));
        assert_eq!(service_from_environ(b"XOTEL_SERVICE_NAME=no\0OTEL_SERVICE_NAMES=no\0"), None);
        assert_eq!(service_from_environ(b""), None);
        // The first occurrence wins, as getenv(3) returns it.
        assert_eq!(environ_value(b"A=1\0A=2\0", "A").as_deref(), Some("1"));
        // Values may hold '=' and non-UTF-8 bytes.
        assert_eq!(environ_value(b"A=x=y\0", "A").as_deref(), Some("x=y"));
        assert_eq!(environ_value(b"A=caf\xe9\0", "A").as_deref(), Some("caf\u{fffd}"));
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(start_time_from_stat(stat), Some(987654));
        assert_eq!(start_time_from_stat("1 (x) S 0"), None);
        assert_eq!(start_time_from_stat(""), None);
    }

    #[test]
    fn exe_names_drop_the_deleted_mark() {
        assert_eq!(exe_name(Path::new("/usr/bin/redis-server")).as_deref(), Some("redis-server"));
        assert_eq!(exe_name(Path::new("/app/server (deleted)")).as_deref(), Some("server"));
        assert_eq!(exe_name(Path::new("/")), None);
    }

    #[test]
    fn reads_this_process() {
        let fs = ProcFs::new("/proc");
        let me = std::process::id();
        assert!(fs.start_time(me).is_some());
        assert!(fs.executable_name(me).is_some());
        assert!(fs.cgroup(me).is_some());
        assert_eq!(fs.start_time(u32::MAX), None);
    }
}
