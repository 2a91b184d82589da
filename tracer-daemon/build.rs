//! Embeds the kernel object built by `cargo xtask build` (nightly, bpf-linker) when it exists, so
//! plain `cargo build` / `cargo test` work on stable without it. A daemon built without the object
//! says so and how to build it when started.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let object = match env::var_os("TRACER_EBPF_OBJECT") {
        Some(path) => PathBuf::from(path),
        None => manifest.join("../target/bpfel-unknown-none/release/tracer-ebpf"),
    };
    println!("cargo:rerun-if-env-changed=TRACER_EBPF_OBJECT");
    println!("cargo:rerun-if-changed={}", object.display());
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("tracer-ebpf.o");
    let bytes = fs::read(&object).unwrap_or_default();
    fs::write(&out, bytes).expect("writing the embedded kernel object");
}
