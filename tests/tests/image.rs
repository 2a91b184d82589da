//! The container image: deploy/image/build.sh assembles the `FROM scratch` runtime image around
//! the daemon under test (no registry needed) and runs `tracer-daemon --help` from it, which
//! proves the image holds every library the binary loads.

use std::process::Command;

use tracer_tests::daemon::daemon_bin;

#[test]
fn the_runtime_image_builds_and_runs_the_daemon() {
    tracer_tests::require_root();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let image = format!("localhost/tracer-daemon:e2e-{}", std::process::id());
    let out = Command::new("sh")
        .arg(root.join("deploy/image/build.sh"))
        .args(["--check", &image])
        .env("TRACER_BIN", daemon_bin())
        .env("BUILDER", "podman")
        .output()
        .expect("running deploy/image/build.sh (podman is installed by `cargo xtask setup`)");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    assert!(out.status.success(), "build.sh failed:\n{log}");
    assert!(log.contains("tracer-daemon --help works"), "{log}");
    // A scratch image with the daemon and its few libraries: well under 30 MB.
    let size: u64 = log
        .lines()
        .find_map(|l| l.split_once(" is ")?.1.strip_suffix(" bytes")?.parse().ok())
        .unwrap_or_else(|| panic!("no image size in:\n{log}"));
    assert!(size < 30_000_000, "image is {size} bytes");
}
