//! Service naming from the process itself: `OTEL_SERVICE_NAME`, then `JAEGER_SERVICE_NAME` from
//! its environment, then its command name. Cached per pid; the process start time is checked
//! again at most once per `RECHECK`, so a reused pid is named afresh without a file read per span,
//! while a process that has exited keeps its name.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::model::{Process, Tag};

/// The service-name variables, strongest first.
const NAME_VARS: [&str; 2] = ["OTEL_SERVICE_NAME", "JAEGER_SERVICE_NAME"];
/// Processes remembered at once; the cache is cleared beyond this.
const MAX_CACHED: usize = 16_384;
/// How long a cached entry is trusted before the pid's start time is checked again.
const RECHECK: Duration = Duration::from_secs(1);

/// The first service-name variable set in a `/proc/PID/environ` blob.
pub fn service_from_environ(environ: &[u8]) -> Option<String> {
    NAME_VARS.iter().find_map(|var| {
        environ.split(|&b| b == 0).find_map(|entry| {
            let value = entry.strip_prefix(var.as_bytes())?.strip_prefix(b"=")?;
            (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned())
        })
    })
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime), counted after the parenthesised command name.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

fn describe(pid: u32) -> Process {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_owned()).unwrap_or_default();
    let service = std::fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .and_then(|e| service_from_environ(&e))
        .unwrap_or_else(|| if comm.is_empty() { format!("pid-{pid}") } else { comm.clone() });
    Process {
        service_name: service,
        tags: vec![Tag::long("process.pid", pid as i64), Tag::str("process.executable.name", comm)],
    }
}

/// A caching resolver pid → `Process`.
pub fn resolver() -> impl Fn(u32) -> Arc<Process> + Send + 'static {
    struct Entry {
        started: Option<u64>,
        checked: Instant,
        process: Arc<Process>,
    }
    let cache: Mutex<HashMap<u32, Entry>> = Mutex::new(HashMap::new());
    move |pid| {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = cache.get_mut(&pid) {
            if e.checked.elapsed() < RECHECK {
                return e.process.clone();
            }
            let started = start_time(pid);
            // A process that has exited keeps its name: spans of its last calls may finish
            // after it is gone. A reused pid has a start time of its own.
            if started.is_none() || started == e.started {
                e.checked = Instant::now();
                return e.process.clone();
            }
        }
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let process = Arc::new(describe(pid));
        cache.insert(pid, Entry { started: start_time(pid), checked: Instant::now(), process: process.clone() });
        process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otel_name_wins_over_jaeger_name_and_empty_values_are_ignored() {
        let env = b"PATH=/bin\0JAEGER_SERVICE_NAME=jaeger-name\0OTEL_SERVICE_NAME=otel-name\0";
        assert_eq!(service_from_environ(env).as_deref(), Some("otel-name"));
        assert_eq!(service_from_environ(b"JAEGER_SERVICE_NAME=j\0OTEL_SERVICE_NAME=\0").as_deref(), Some("j"));
        assert_eq!(service_from_environ(b"XOTEL_SERVICE_NAME=no\0"), None);
    }

    #[test]
    fn this_process_is_named_by_its_command() {
        let p = resolver()(std::process::id());
        assert!(!p.service_name.is_empty());
        assert!(p.tags.iter().any(|t| t.key == "process.pid"));
    }
}
