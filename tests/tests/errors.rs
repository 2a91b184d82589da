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
