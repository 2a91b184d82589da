//! Harness for the root end-to-end tests: starts the real daemon (`TRACER_DAEMON_BIN`, set by
//! `cargo xtask test`), collects what it prints, waits on predicates with deadlines, and stops
//! every process it started by pid.

pub mod collector;
pub mod daemon;
pub mod netns;
pub mod servers;

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kernel thread id of the calling thread.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Panics unless running as root (the end-to-end tests load kernel programs).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("end-to-end tests load kernel programs: run them as root through `cargo xtask test`");
    }
}

/// Sends SIGTERM to a process this test started, then waits for it.
pub fn stop_child(child: &mut std::process::Child) {
    // SAFETY: signalling a child we spawned and have not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `curl -s` of `url` (20 s at most): the HTTP status, 0 when curl got none.
pub fn curl_status(url: &str) -> u16 {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", url])
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}
