//! Project tasks: `cargo xtask setup | build | run | lint | test | fuzz | bench`. Each installs what it needs
//! on a fresh machine (Debian packages, the nightly's rust-src, bpf-linker, test tools), says what
//! it installs, and skips what is present.

mod bench;
mod setup;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "tracer project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install everything the build, the run and the tests need (idempotent).
    Setup,
    /// Build the kernel programs (nightly) and the daemon with them embedded (release).
    Build,
    /// Set up, build and start the daemon as root; arguments after `--` go to the daemon.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check formatting (rustfmt) and lints (clippy on every member, the kernel crate for its
    /// BPF target); any warning fails.
    Lint,
    /// Set up, build, lint, run `cargo test`, the root end-to-end tests, then each fuzz target
    /// briefly.
    Test {
        /// Seconds each fuzz target runs.
        #[arg(long, default_value_t = 20)]
        fuzz_seconds: u32,
        /// Only run end-to-end tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Long fuzzing: every fuzz target (or one) for a while each, seeded from the recorded
    /// captures; reports executions and crash artifacts, fails when a target found a crash.
    Fuzz {
        /// Minutes each target runs (at least 1: libFuzzer reads 0 as no limit).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        minutes: u32,
        /// Only this target (as `cargo fuzz list` names it).
        #[arg(long)]
        target: Option<String>,
    },
    /// Benchmarks: traced against untraced in one run, reported as ratios.
    Bench(bench::BenchArgs),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::all(),
        Task::Build => build().map(|_| ()),
        Task::Lint => lint(),
        Task::Run { args } => run(args),
        Task::Test { fuzz_seconds, filter } => test(fuzz_seconds, filter),
        Task::Fuzz { minutes, target } => fuzz(&root(), minutes.saturating_mul(60), target.as_deref()),
        Task::Bench(args) => {
            setup::all()?;
            let daemon = build()?;
            bench::run(&daemon, args)
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs a command, failing with its command line when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

pub fn is_root() -> bool {
    // `id -u` keeps xtask free of unsafe code and libc.
    Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false)
}

/// Builds the kernel object and the daemon; returns the daemon binary's path.
fn build() -> Result<PathBuf> {
    let root = root();
    // CARGO_TARGET_DIR is honoured, as cargo itself does.
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    };
    eprintln!("xtask: building the kernel programs (nightly, bpf-linker)");
    run_cmd(
        Command::new("cargo")
            .current_dir(&root)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO_BUILD_RUSTC")
            .args([
                "+nightly",
                "build",
                "-p",
                "tracer-ebpf",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
            ])
            .arg("--target-dir")
            .arg(&target),
    )
    .context("building tracer-ebpf (run `cargo xtask setup` if the nightly rust-src or bpf-linker is missing)")?;
    let object = target.join("bpfel-unknown-none/release/tracer-ebpf");
    eprintln!("xtask: building tracer-daemon (release)");
    run_cmd(
        Command::new("cargo")
            .current_dir(&root)
            .env("TRACER_EBPF_OBJECT", &object)
            .args(["build", "--release", "-p", "tracer-daemon", "--bin", "tracer-daemon"])
            .arg("--target-dir")
            .arg(&target),
    )?;
    Ok(target.join("release/tracer-daemon"))
}

fn run(args: Vec<String>) -> Result<()> {
    if !is_root() {
        bail!("the daemon loads kernel programs and must run as root: `sudo -E cargo xtask run`");
    }
    setup::for_run()?;
    let daemon = build()?;
    eprintln!("xtask: starting {} {}", daemon.display(), args.join(" "));
    let status = Command::new(&daemon).args(&args).status().context("starting tracer-daemon")?;
    if !status.success() {
        bail!("tracer-daemon exited with {status}");
    }
    Ok(())
}

fn test(fuzz_seconds: u32, filter: Option<String>) -> Result<()> {
    if !is_root() {
        bail!("the end-to-end tests load kernel programs and must run as root: `sudo -E cargo xtask test`");
    }
    setup::all()?;
    let daemon = build()?;
    let root = root();
    lint()?;
    eprintln!("xtask: tier 1: cargo test (pure code)");
    run_cmd(Command::new("cargo").current_dir(&root).args([
        "test",
        "--workspace",
        "--exclude",
        "tracer-tests",
        "--exclude",
        "tracer-ebpf",
    ]))?;
    eprintln!("xtask: tier 2: end-to-end tests (root, real probes, real servers)");
    let mut e2e = Command::new("cargo");
    e2e.current_dir(&root).env("TRACER_DAEMON_BIN", &daemon).args([
        "test",
        "-p",
        "tracer-tests",
        "--",
        "--test-threads=1",
    ]);
    if let Some(f) = &filter {
        e2e.arg(f);
    }
    run_cmd(&mut e2e)?;
    if fuzz_seconds > 0 && filter.is_none() {
        fuzz(&root, fuzz_seconds, None)?;
    }
    Ok(())
}

/// rustfmt's check and clippy with warnings denied: the userspace members for the host, the
/// kernel crate for its BPF target with the nightly toolchain.
fn lint() -> Result<()> {
    let root = root();
    eprintln!("xtask: lint: rustfmt --check, clippy -D warnings");
    run_cmd(Command::new("cargo").current_dir(&root).args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs from rustfmt.toml: run `cargo fmt --all`")?;
    run_cmd(Command::new("cargo").current_dir(&root).args([
        "clippy",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
    .context("clippy found warnings in the userspace crates")?;
    let target = root.join("target/lint-ebpf");
    run_cmd(
        Command::new("cargo")
            .current_dir(&root)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO_BUILD_RUSTC")
            .args(["+nightly", "clippy", "-p", "tracer-ebpf", "--release", "--target", "bpfel-unknown-none"])
            .args(["-Z", "build-std=core", "--target-dir"])
            .arg(&target)
            .args(["--", "-D", "warnings"]),
    )
    .context("clippy found warnings in the kernel crate")
}

/// What one fuzz target's run did.
struct FuzzRun {
    target: String,
    /// Executions, from libFuzzer's closing `Done N runs` line.
    runs: Option<u64>,
    /// The input that crashed it, as libFuzzer wrote it.
    artifact: Option<String>,
    ok: bool,
}

/// Runs every fuzz target (or only `only`) for `seconds` each, seeded from the captured traffic,
/// then prints a table of executions and crash artifacts; fails when a target failed.
fn fuzz(root: &Path, seconds: u32, only: Option<&str>) -> Result<()> {
    let fuzz_dir = root.join("fuzz");
    if !fuzz_dir.join("Cargo.toml").exists() {
        return Ok(());
    }
    let list = Command::new("cargo")
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "fuzz", "list"])
        .output()
        .context("listing the fuzz targets (cargo-fuzz is installed by `cargo xtask setup`)")?;
    let mut targets: Vec<String> =
        String::from_utf8_lossy(&list.stdout).split_whitespace().map(str::to_owned).collect();
    if targets.is_empty() {
        bail!("cargo fuzz list found no targets: {}", String::from_utf8_lossy(&list.stderr));
    }
    if let Some(t) = only {
        if !targets.iter().any(|x| x == t) {
            bail!("no fuzz target {t}; the targets are {}", targets.join(", "));
        }
        targets.retain(|x| x == t);
    }
    eprintln!("xtask: fuzzing {} targets for {seconds} s each", targets.len());
    run_cmd(Command::new("python3").arg(fuzz_dir.join("seed_corpus.py")).current_dir(root))
        .context("writing the fuzz seed corpus from the recorded captures")?;
    let mut runs = Vec::new();
    for t in targets {
        runs.push(fuzz_one(root, &t, seconds)?);
    }
    eprintln!("\nxtask: fuzzing, {seconds} s per target");
    eprintln!("{:<14} {:>12}  result", "target", "executions");
    for r in &runs {
        let execs = r.runs.map_or_else(|| "?".to_owned(), |n| n.to_string());
        let result = match (&r.artifact, r.ok) {
            (Some(a), _) => format!("crash: {a}"),
            (None, true) => "ok".to_owned(),
            (None, false) => "failed (see its output above)".to_owned(),
        };
        eprintln!("{:<14} {execs:>12}  {result}", r.target);
    }
    let failed: Vec<&str> = runs.iter().filter(|r| !r.ok).map(|r| r.target.as_str()).collect();
    if !failed.is_empty() {
        bail!("fuzz targets {} found a failure (inputs in fuzz/artifacts/<target>)", failed.join(", "));
    }
    Ok(())
}

/// One target's run; libFuzzer's output is passed through and read for its counts.
fn fuzz_one(root: &Path, target: &str, seconds: u32) -> Result<FuzzRun> {
    let mut child = Command::new("cargo")
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting cargo fuzz run {target}"))?;
    let mut run = FuzzRun { target: target.to_owned(), runs: None, artifact: None, ok: false };
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(rest) = line.strip_prefix("Done ") {
                run.runs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
            if let Some((_, path)) = line.split_once("Test unit written to ") {
                run.artifact = Some(path.trim().to_owned());
            }
        }
    }
    run.ok = child.wait().with_context(|| format!("waiting for cargo fuzz run {target}"))?.success();
    Ok(run)
}
