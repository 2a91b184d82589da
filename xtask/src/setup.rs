//! Installs what the project needs on a fresh machine, skipping what is present. Every step
//! says what it does; a failure names what is missing.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{is_root, root, run_cmd};

/// Debian packages: LLVM 22 for bpf-linker, the servers and client libraries the tests and
/// benchmarks use, the network tools for namespaces, and a headless browser for the graph page.
const BUILD_PACKAGES: &[&str] = &["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "zlib1g-dev", "pkg-config"];
const TEST_PACKAGES: &[&str] = &[
    "redis-server",
    "redis-tools",
    "mariadb-server",
    "mariadb-client",
    "nginx-light",
    "libhiredis-dev",
    "libmariadb-dev",
    // The uprobe tests compile C clients (gcc), make TLS certificates (openssl) and build
    // Python's mysqlclient from source (python3-dev, pkg-config, libmariadb-dev).
    "gcc",
    "openssl",
    "python3-dev",
    "iproute2",
    "curl",
    "chromium",
    // Node.js (with npm) for the services of tests/tests/stitching.rs (packages: tests/node).
    "nodejs",
    // The gRPC tests build a grpc-go client and server in GOPATH mode (tests/go); the Go
    // stitching test builds a net/http service with the MySQL and Redis drivers.
    "golang-go",
    "golang-google-grpc-dev",
    "golang-golang-x-net-dev",
    "golang-github-go-sql-driver-mysql-dev",
    "golang-github-gomodule-redigo-dev",
    // Builds the FROM-scratch runtime image in tests/tests/image.rs (deploy/image/build.sh).
    "podman",
];
const BENCH_PACKAGES: &[&str] = &["sysbench", "wrk"];

/// The bpf-linker release that builds against Debian's LLVM 22 with the stable toolchain.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn for_run() -> Result<()> {
    apt(BUILD_PACKAGES)?;
    rust_src()?;
    bpf_linker()
}

pub fn all() -> Result<()> {
    let mut pkgs = BUILD_PACKAGES.to_vec();
    pkgs.extend(TEST_PACKAGES);
    pkgs.extend(BENCH_PACKAGES);
    apt(&pkgs)?;
    rust_src()?;
    bpf_linker()?;
    python()?;
    node()?;
    cargo_fuzz()?;
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: Debian packages present");
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages {}: run `sudo cargo xtask setup`", missing.join(" "));
    }
    eprintln!("setup: installing Debian packages: {}", missing.join(" "));
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("installing {}", missing.join(" ")))?;
    // Installing a server package must not leave a system instance holding the tests' ports.
    for svc in ["redis-server", "mariadb", "nginx"] {
        let _ = Command::new("service").args([svc, "stop"]).output();
    }
    Ok(())
}

fn rust_src() -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup: the nightly toolchain is needed to build the kernel programs")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: nightly rust-src present");
        return Ok(());
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    run_cmd(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn bpf_linker() -> Result<()> {
    let present = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if present {
        eprintln!("setup: bpf-linker {BPF_LINKER_VERSION} present");
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about two minutes)");
    run_cmd(
        Command::new("cargo")
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked"])
            .args(["--no-default-features", "--features", "llvm-22"]),
    )
    .context("installing bpf-linker (needs llvm-22-dev and libpolly-22-dev)")
}

/// Every `tests/python/requirements*.txt` (pinned versions; pip skips what is satisfied).
fn python() -> Result<()> {
    let dir = root().join("tests/python");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("requirements")))
        .collect();
    files.sort();
    for req in files {
        eprintln!("setup: Python packages from {}", req.display());
        run_cmd(
            Command::new("python3")
                .env("PIP_ROOT_USER_ACTION", "ignore")
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"])
                .arg(&req),
        )
        .with_context(|| format!("installing the Python packages of {}", req.display()))?;
    }
    Ok(())
}

/// Every `tests/*/package.json` with a lock file: `npm ci` installs the pinned packages there
/// (`npm` comes with the `nodejs` package).
fn node() -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root().join("tests")) else { return Ok(()) };
    let mut dirs: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join("package.json").exists() && d.join("package-lock.json").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        eprintln!("setup: npm packages of {}", dir.display());
        run_cmd(Command::new("npm").current_dir(&dir).args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]))
            .with_context(|| {
                format!("installing the npm packages of {} (needs npm, which comes with nodejs)", dir.display())
            })?;
    }
    Ok(())
}

fn cargo_fuzz() -> Result<()> {
    if !root().join("fuzz/Cargo.toml").exists() {
        return Ok(());
    }
    let ok = Command::new("cargo").args(["fuzz", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if ok {
        eprintln!("setup: cargo-fuzz present");
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz");
    run_cmd(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}
