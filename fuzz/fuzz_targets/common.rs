//! The shared body of the protocol fuzz targets: arbitrary bytes become a sequence of captured
//! calls in both directions (with arbitrary split points and capture gaps) fed to a Session,
//! and every call's bytes also go through `detect`.
//!
//! Input layout: one config byte (bit 0: server role, bit 1: redaction off, bit 2: close as a
//! reset), then calls of `[flags, len_lo, len_hi, len bytes]`; flags bit 0: ingress, bit 1:
//! the call moved `(flags >> 2) * 61` more bytes than captured. `fuzz/seed_corpus.py` writes
//! the recorded captures in this layout.

use tracer_daemon::protocol::{Direction, Protocol, Redaction, Role, Session, detect};

pub fn run(protocol: Protocol, data: &[u8]) {
    let Some((&config, mut rest)) = data.split_first() else {
        return;
    };
    let role = if config & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let redaction = Redaction {
        enabled: config & 2 == 0,
    };
    let mut session = Session::new(protocol, role, redaction);
    let mut out = Vec::new();
    let mut ts = 1_000u64;
    while rest.len() >= 3 {
        let flags = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let (call, tail) = rest[3..].split_at(len);
        rest = tail;
        let dir = if flags & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let gap = if flags & 2 == 0 {
            0
        } else {
            usize::from(flags >> 2) * 61
        };
        let _ = detect(call, dir, role);
        session.feed(dir, call, call.len() + gap, ts, ts + 10, &mut out);
        ts += 100;
    }
    session.close(ts, config & 4 != 0, &mut out);
    let mut last_seq = None;
    for ex in &out {
        assert!(ex.end_ns >= ex.start_ns, "end before start: {ex:?}");
        assert!(ex.operation.len() <= 512, "operation unbounded");
        assert!(ex.tags().len() <= 16, "too many tags");
        if ex.protocol != protocol {
            panic!("wrong protocol");
        }
        if let Some(prev) = last_seq
            && ex.seq == prev
        {
            panic!("seq {prev} used twice");
        }
        last_seq = Some(ex.seq);
    }
    assert!(session.pending() <= tracer_daemon::protocol::session::MAX_PENDING);
}
