//! Fuzzes the HTTP/2 (gRPC) session and detection with arbitrary calls (see common.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_daemon::protocol::Protocol;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::run(Protocol::Http2, data));
