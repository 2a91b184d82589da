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
    /// No entry is older and no group closed earlier than these (a lower bound, kept by every
    /// addition and close, made exact by each pass of `expire`): until one of them is due,
    /// `expire` has nothing to do and skips its pass over every group.
    oldest_entry: u64,
    first_closed: u64,
}

impl<E: Stamped> Joins<E> {
    pub(super) fn new() -> Self {
        Joins { groups: FastMap::default(), len: 0, oldest_entry: u64::MAX, first_closed: u64::MAX }
    }

    /// Takes a request's entry. A group left empty and open goes too, so that no group stays
    /// without a reason until the next pass of `expire`.
    pub(super) fn take(&mut self, key: &ConnKey, seq: u64) -> Option<E> {
        let g = self.groups.get_mut(key)?;
        let e = g.entries.remove(&seq)?;
        self.len -= 1;
        if g.entries.is_empty() && g.closed_at.is_none() {
            self.groups.remove(key);
        }
        Some(e)
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
        self.oldest_entry = self.oldest_entry.min(e.ts_ns());
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
            let at = *g.closed_at.get_or_insert(now_ns);
            self.first_closed = self.first_closed.min(at);
        }
    }

    /// Forgets groups closed more than `hold_ns` ago (counted in `closed`) and entries older
    /// than `window_ns` (counted in `expired`).
    pub(super) fn expire(&mut self, now_ns: u64, window_ns: u64, hold_ns: u64, closed: &Counter, expired: &Counter) {
        let due = self.oldest_entry.saturating_add(window_ns) <= now_ns
            || self.first_closed.saturating_add(hold_ns) <= now_ns;
        if !due {
            return;
        }
        let mut removed = 0;
        let (mut oldest, mut first_closed) = (u64::MAX, u64::MAX);
        self.groups.retain(|_, g| {
            if g.closed_at.is_some_and(|at| at.saturating_add(hold_ns) <= now_ns) {
                closed.add(g.entries.len() as u64);
                removed += g.entries.len();
                return false;
            }
            let before = g.entries.len();
            g.entries.retain(|_, e| {
                let keep = e.ts_ns().saturating_add(window_ns) > now_ns;
                if keep {
                    oldest = oldest.min(e.ts_ns());
                }
                keep
            });
            expired.add((before - g.entries.len()) as u64);
            removed += before - g.entries.len();
            if let Some(at) = g.closed_at {
                first_closed = first_closed.min(at);
            }
            !g.entries.is_empty() || g.closed_at.is_some()
        });
        self.len -= removed;
        (self.oldest_entry, self.first_closed) = (oldest, first_closed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conn::Tuple;

    fn key(port: u16) -> ConnKey {
        let t = Tuple { local: format!("127.0.0.1:{port}").parse().unwrap(), remote: "127.0.0.1:80".parse().unwrap() };
        ConnKey::new(1, t)
    }

    fn entry(ts_ns: u64) -> WaitingServer {
        WaitingServer { provisional: TraceId::default(), span_id: 1, ts_ns }
    }

    #[test]
    fn expiry_passes_only_when_something_is_due_and_misses_nothing() {
        let (closed, expired, limit) = (Counter::detached(), Counter::detached(), Counter::detached());
        let (window, hold) = (100, 50);
        let mut j = Joins::new();
        j.add(key(1), 1, entry(1_000), 64, &closed, &limit);
        j.add(key(2), 1, entry(1_050), 64, &closed, &limit);
        j.expire(1_099, window, hold, &closed, &expired);
        assert_eq!((j.len, expired.get()), (2, 0), "nothing is due yet");
        j.expire(1_100, window, hold, &closed, &expired);
        assert_eq!((j.len, expired.get()), (1, 1), "the first entry's window ended");
        // An entry stamped earlier than what is left still counts for the next pass.
        j.add(key(3), 1, entry(1_020), 64, &closed, &limit);
        j.expire(1_120, window, hold, &closed, &expired);
        assert_eq!((j.len, expired.get()), (1, 2));
        // A closed group goes once its hold ends, with what it held.
        j.close(&key(2), 1_130);
        j.expire(1_149, window, hold, &closed, &expired);
        assert_eq!((j.len, closed.get()), (1, 0));
        j.expire(1_180, window, hold, &closed, &expired);
        assert_eq!((j.len, closed.get()), (0, 1));
        assert!(j.is_empty());
    }

    #[test]
    fn taking_the_last_entry_of_an_open_connection_forgets_the_connection() {
        let (closed, limit) = (Counter::detached(), Counter::detached());
        let mut j = Joins::new();
        j.add(key(1), 7, entry(5), 64, &closed, &limit);
        assert!(j.take(&key(1), 8).is_none());
        assert!(j.take(&key(1), 7).is_some());
        assert!(j.is_empty() && j.len == 0);
    }
}
