//! Bad environments and bad input give a clear error and a non-zero exit.

use std::process::Command;

use tracer_tests::{daemon::daemon_bin, require_root};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("starting tracer-daemon");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn not_root_is_refused_with_what_to_do() {
    require_root();
    // setpriv drops to the unprivileged `nobody` user with no capabilities.
    let (ok, err) = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(daemon_bin())
        .args(["--metrics-addr", ""]));
    assert!(!ok, "the daemon must fail without privileges");
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn missing_network_namespace_is_named() {
    require_root();
    let (ok, err) = run(Command::new(daemon_bin()).args(["--netns", "tracer-no-such-ns", "--metrics-addr", ""]));
    assert!(!ok);
    assert!(err.contains("/run/netns/tracer-no-such-ns"), "{err}");
}

#[test]
fn bad_config_key_and_bad_value_are_named() {
    let dir = std::env::temp_dir().join(format!("tracer-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "capture:\n  capture_byte: 10\n").unwrap();
    let (ok, err) = run(Command::new(daemon_bin()).arg("--config").arg(&path));
    assert!(!ok);
    assert!(err.contains("capture_byte"), "{err}");
    let (ok, err) = run(Command::new(daemon_bin()).args(["--capture-bytes", "100000"]));
    assert!(!ok);
    assert!(err.contains("capture_bytes 100000 is above the maximum"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stage that panics (on purpose, through the test-only fault injection variable) is logged
/// with its cause and ends the daemon with a non-zero status, for a task on the runtime
/// (processing) and for a thread of its own (the procfs worker).
#[test]
fn a_dying_stage_ends_the_daemon_with_its_cause_and_a_failure_status() {
    require_root();
    for stage in ["processing", "procfs worker"] {
        let mut child = Command::new(daemon_bin())
            .env(tracer_daemon::supervise::FAULT_ENV, stage)
            .args(["--metrics-addr", "127.0.0.1:0", "--output", "json", "--no-uprobes"])
            .args(["--agent-compact-addr", "", "--agent-binary-addr", "", "--sampling-addr", ""])
            .args(["--otlp-grpc-addr", "", "--otlp-http-addr", "", "--zipkin-addr", ""])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting tracer-daemon");
        let mut pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
            err
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                tracer_tests::stop_child(&mut child);
                panic!("{stage}: the daemon did not exit within 60 s after the fault");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let err = reader.join().unwrap();
        assert!(!status.success(), "{stage}: exit status {status}\n{err}");
        let cause = format!("stage {stage} died: panicked: fault injected by {}", tracer_daemon::supervise::FAULT_ENV);
        assert!(err.contains(&cause), "{stage}: no {cause:?} in\n{err}");
    }
}

/// A healthy daemon's `/healthz` lists each of its stages as running, as does
/// `tracer_stage_up`.
#[test]
fn healthz_lists_every_stage_running() {
    let daemon = tracer_tests::daemon::Daemon::start(&[
        "--output",
        "json",
        "--no-uprobes",
        "--agent-compact-addr",
        "127.0.0.1:0",
        "--agent-binary-addr",
        "127.0.0.1:0",
        "--sampling-addr",
        "127.0.0.1:0",
    ]);
    let body = tracer_tests::daemon::http_get(&daemon.metrics_addr, "/healthz");
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("ok"), "{body}");
    let stages: Vec<&str> = lines.collect();
    for stage in ["reader", "processing", "admin server", "store feed", "procfs worker", "agent compact receiver"] {
        assert!(stages.contains(&format!("stage {stage}: running").as_str()), "{stage} in {stages:?}");
    }
    assert_eq!(daemon.metric("tracer_stage_up{stage=\"processing\"}"), 1.0);
    assert!(
        daemon.metrics().contains("tracer_listener_dropped_total{listener=\"admin\",reason=\"request_timeout\"} 0")
    );
}
