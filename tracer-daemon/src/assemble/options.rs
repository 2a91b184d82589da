//! Peers' trace-context options (TCP option) waiting for the server request whose first byte
//! their packet began with. Bounded per connection and in connections; every option leaves
//! counted, matched or unmatched.

use std::collections::VecDeque;

use crate::model::hash::FastMap;

use crate::{metrics::Counter, stitch::KernelIds};

/// Most peer options waiting per connection for their request.
const MAX_OPTIONS_PER_CONN: usize = 64;
/// Most connections with peer options waiting.
const MAX_OPTION_CONNS: usize = 16 * 1024;

pub(super) struct PeerOptions {
    /// Per kernel socket id: (sequence number of the packet's first byte, parent ids), in
    /// arrival order.
    by_conn: FastMap<u64, VecDeque<(u32, KernelIds)>>,
    matched: Counter,
    unmatched: Counter,
}

impl PeerOptions {
    pub fn new(matched: Counter, unmatched: Counter) -> Self {
        PeerOptions { by_conn: FastMap::default(), matched, unmatched }
    }

    /// An option arrived on the packet of connection `conn` that begins at `seq`.
    pub fn add(&mut self, conn: u64, seq: u32, ids: KernelIds) {
        if !self.by_conn.contains_key(&conn) && self.by_conn.len() >= MAX_OPTION_CONNS {
            // Connections nobody reads (filtered processes) must not grow the table.
            let victim = self.by_conn.keys().next().copied();
            if let Some(q) = victim.and_then(|v| self.by_conn.remove(&v)) {
                self.unmatched.add(q.len() as u64);
            }
        }
        let queue = self.by_conn.entry(conn).or_default();
        if queue.len() >= MAX_OPTIONS_PER_CONN {
            queue.pop_front();
            self.unmatched.inc();
        }
        queue.push_back((seq, ids));
    }

    /// The option for the byte at `seq` of connection `conn`; options for earlier bytes
    /// (mid-request writes, requests that were not parsed) are dropped.
    pub fn take(&mut self, conn: u64, seq: u32) -> Option<KernelIds> {
        let queue = self.by_conn.get_mut(&conn)?;
        while let Some(&(at, ids)) = queue.front() {
            if tracer_common::seq_before(seq, at) {
                break;
            }
            queue.pop_front();
            if at == seq {
                self.matched.inc();
                return Some(ids);
            }
            self.unmatched.inc();
        }
        None
    }

    /// The kernel socket `conn` is gone: its unmatched options with it.
    pub fn forget(&mut self, conn: u64) {
        if let Some(q) = self.by_conn.remove(&conn) {
            self.unmatched.add(q.len() as u64);
        }
    }
}
