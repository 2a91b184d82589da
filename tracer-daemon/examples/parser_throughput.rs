//! Parser throughput: feeds the recorded captures (`testdata/<proto>/*.cap`) through protocol
//! sessions repeatedly, one call per recorded chunk, and prints MB/s per protocol.
//!
//!     cargo run --release -p tracer-daemon --example parser_throughput [seconds-per-protocol]

use std::time::{Duration, Instant};

use tracer_daemon::protocol::{Direction, Protocol, Redaction, Role, Session};

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            _ => out.push(b'\\'),
        }
        i += 2;
    }
    out
}

/// Every capture of a protocol: (from_client, bytes) per recorded chunk.
fn captures(proto: &str) -> Vec<Vec<(bool, Vec<u8>)>> {
    let dir = format!("{}/testdata/{proto}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cap"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.lines()
                .filter_map(|l| match l.split_at_checked(2) {
                    Some(("> ", rest)) => Some((true, unescape(rest))),
                    Some(("< ", rest)) => Some((false, unescape(rest))),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2.0);
    for (name, protocol) in [("http", Protocol::Http), ("redis", Protocol::Redis), ("mysql", Protocol::Mysql)] {
        let convs = captures(name);
        let bytes_per_round: usize = convs.iter().flatten().map(|(_, d)| d.len()).sum();
        let mut out = Vec::new();
        let mut exchanges = 0usize;
        let mut rounds = 0usize;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs_f64(secs) {
            for conv in &convs {
                let mut s = Session::new(protocol, Role::Client, Redaction::default());
                for (i, (from_client, data)) in conv.iter().enumerate() {
                    let dir = if *from_client { Direction::Egress } else { Direction::Ingress };
                    s.feed(dir, data, data.len(), i as u64, i as u64 + 1, &mut out);
                }
                s.close(u64::MAX, false, &mut out);
                exchanges += out.len();
                out.clear();
            }
            rounds += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let mb = (bytes_per_round * rounds) as f64 / 1e6;
        println!(
            "{name:>5}: {:8.1} MB/s  {:10.0} exchanges/s  ({} captures, {} bytes per round, {rounds} rounds)",
            mb / elapsed,
            exchanges as f64 / elapsed,
            convs.len(),
            bytes_per_round
        );
    }
}
