//! A map whose entries age out: each is kept for a window after it was last written and the
//! map holds at most a given count, the oldest leaving first. The stitcher's aliases, late
//! parents and disowned spans live in these, so steady traffic cannot grow them.

use std::collections::VecDeque;

use crate::model::hash::FastMap;
use std::hash::Hash;

use crate::metrics::Counter;

pub(crate) struct AgingMap<K, V> {
    /// key → (value, CLOCK_MONOTONIC ns when written).
    map: FastMap<K, (V, u64)>,
    /// Keys in order of writing; an entry whose time differs from the map's is stale (the key
    /// was written again) and is skipped.
    order: VecDeque<(u64, K)>,
    window_ns: u64,
    max: usize,
}

impl<K: Copy + Eq + Hash, V> AgingMap<K, V> {
    pub fn new(window_ns: u64, max: usize) -> Self {
        AgingMap { map: FastMap::default(), order: VecDeque::new(), window_ns, max: max.max(1) }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|(v, _)| v)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// Writes `k` at `now_ns`; when the map is full the oldest entry goes, counted in `limit`.
    pub fn insert(&mut self, k: K, v: V, now_ns: u64, limit: &Counter) {
        if !self.map.contains_key(&k) {
            while self.map.len() >= self.max {
                let Some((at, old)) = self.order.pop_front() else { break };
                if self.map.get(&old).is_some_and(|(_, t)| *t == at) {
                    self.map.remove(&old);
                    limit.inc();
                }
            }
        }
        self.map.insert(k, (v, now_ns));
        self.order.push_back((now_ns, k));
        // Rewritten keys leave stale order entries behind: drop them once they outnumber the
        // live ones.
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order.retain(|(at, k)| map.get(k).is_some_and(|(_, t)| t == at));
        }
    }

    /// Drops entries written a window or more before `now_ns`, counted in `expired`.
    pub fn expire(&mut self, now_ns: u64, expired: &Counter) {
        while let Some(&(at, k)) = self.order.front() {
            if at.saturating_add(self.window_ns) > now_ns {
                break;
            }
            self.order.pop_front();
            if self.map.get(&k).is_some_and(|(_, t)| *t == at) {
                self.map.remove(&k);
                expired.inc();
            }
        }
    }

    /// An estimate of the heap bytes held (capacity of the table and the order queue).
    pub fn heap_bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(K, (V, u64))>() + 1)
            + self.order.capacity() * std::mem::size_of::<(u64, K)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_age_out_and_the_oldest_go_first_when_full() {
        let (limit, expired) = (Counter::detached(), Counter::detached());
        let mut m = AgingMap::new(100, 3);
        for k in 0..5u64 {
            m.insert(k, k, k, &limit);
        }
        assert_eq!((m.len(), limit.get()), (3, 2));
        assert!(m.get(&1).is_none() && m.get(&4).is_some());
        // Writing a key again renews it.
        m.insert(2, 20, 50, &limit);
        m.expire(104, &expired);
        assert_eq!(expired.get(), 2, "3 and 4 aged out");
        assert_eq!(m.get(&2), Some(&20));
        m.expire(150, &expired);
        assert_eq!((m.len(), expired.get()), (0, 3));
    }
}
