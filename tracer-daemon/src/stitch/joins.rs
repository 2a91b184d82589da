//! The same-host join tables: a client's request waits for its server side (or the server's
//! for its client), keyed by connection and request number, bounded by count and expired by
//! time.

use crate::model::hash::FastMap;

use super::ConnKey;
use crate::{metrics::Counter, model::TraceId};

/// One connection's join entries by request number; `closed_at` once either end closed.
#[derive(Debug)]
pub(super) struct Group<E> {
    pub(super) entries: FastMap<u64, E>,
    pub(super) closed_at: Option<u64>,
}

impl<E> Default for Group<E> {
    fn default() -> Self {
        Group { entries: FastMap::default(), closed_at: None }
    }
}

/// A join entry's time (CLOCK_MONOTONIC ns), for expiry and eviction.
pub(super) trait Stamped {
    fn ts_ns(&self) -> u64;
}

impl Stamped for ClientEntry {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

impl Stamped for WaitingServer {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// Join entries by connection, with their total count kept for the bound.
pub(super) struct Joins<E> {
    groups: FastMap<ConnKey, Group<E>>,
    pub(super) len: usize,
}

impl<E: Stamped> Joins<E> {
    pub(super) fn new() -> Self {
        Joins { groups: FastMap::default(), len: 0 }
    }

    pub(super) fn take(&mut self, key: &ConnKey, seq: u64) -> Option<E> {
        let e = self.groups.get_mut(key).and_then(|g| g.entries.remove(&seq));
        if e.is_some() {
            self.len -= 1;
        }
        e
    }

    /// Adds a request's entry; entries of an earlier connection with the same key (closed) go
    /// first, counted in `closed`. Beyond `max` entries the oldest eighth goes, counted in
    /// `limit`.
    pub(super) fn add(&mut self, key: ConnKey, seq: u64, e: E, max: usize, closed: &Counter, limit: &Counter) {
        if self.len >= max {
            self.evict_oldest(max.div_ceil(8).max(1), limit);
        }
        let g = self.groups.entry(key).or_default();
        if g.closed_at.is_some() {
            closed.add(g.entries.len() as u64);
            self.len -= g.entries.len();
            *g = Group::default();
        }
        if g.entries.insert(seq, e).is_none() {
            self.len += 1;
        }
    }

    /// Drops the `n` oldest entries (amortised: one pass per `n` additions).
    pub(super) fn evict_oldest(&mut self, n: usize, limit: &Counter) {
        let mut stamps: Vec<u64> = self.groups.values().flat_map(|g| g.entries.values().map(|e| e.ts_ns())).collect();
        if stamps.is_empty() {
            return;
        }
        let i = n.min(stamps.len()) - 1;
        let (_, cutoff, _) = stamps.select_nth_unstable(i);
        let cutoff = *cutoff;
        let mut left = n;
        for g in self.groups.values_mut() {
            g.entries.retain(|_, e| {
                if left > 0 && e.ts_ns() <= cutoff {
                    left -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let removed = n - left;
        self.len -= removed;
        limit.add(removed as u64);
        self.groups.retain(|_, g| !g.entries.is_empty() || g.closed_at.is_some());
    }

    pub(super) fn close(&mut self, key: &ConnKey, now_ns: u64) {
        if let Some(g) = self.groups.get_mut(key) {
            g.closed_at.get_or_insert(now_ns);
        }
    }

    /// Forgets groups closed more than `hold_ns` ago (counted in `closed`) and entries older
    /// than `window_ns` (counted in `expired`).
    pub(super) fn expire(&mut self, now_ns: u64, window_ns: u64, hold_ns: u64, closed: &Counter, expired: &Counter) {
        let mut removed = 0;
        self.groups.retain(|_, g| {
            if g.closed_at.is_some_and(|at| at.saturating_add(hold_ns) <= now_ns) {
                closed.add(g.entries.len() as u64);
                removed += g.entries.len();
                return false;
            }
            let before = g.entries.len();
            g.entries.retain(|_, e| e.ts_ns().saturating_add(window_ns) > now_ns);
            expired.add((before - g.entries.len()) as u64);
            removed += before - g.entries.len();
            !g.entries.is_empty() || g.closed_at.is_some()
        });
        self.len -= removed;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// An estimate of the heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        let group = std::mem::size_of::<(ConnKey, Group<E>)>() + 1;
        let entry = std::mem::size_of::<(u64, E)>() + 1;
        self.groups.capacity() * group + self.groups.values().map(|g| g.entries.capacity() * entry).sum::<usize>()
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct ClientEntry {
    pub(super) trace_id: TraceId,
    pub(super) span_id: u64,
    pub(super) ts_ns: u64,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct WaitingServer {
    pub(super) provisional: TraceId,
    pub(super) span_id: u64,
    pub(super) ts_ns: u64,
}
