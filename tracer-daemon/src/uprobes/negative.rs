//! Files looked at that hold no traced library, remembered after no process maps them any
//! more: short-lived executables (a `curl` run by cron, a shell) come back every few seconds
//! and are not read again. Keyed by device, inode, modification time and size, so a file
//! rewritten in place is looked at anew; bounded by count, the least recently seen going first.

use std::collections::{BTreeMap, HashMap};

use crate::metrics::Counter;

/// Most negative results kept (count).
pub const MAX_NEGATIVE: usize = 4096;

/// A file's identity and version, from `stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileVersion {
    pub dev: u64,
    pub inode: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    pub size: u64,
}

impl FileVersion {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileVersion {
            dev: meta.dev(),
            inode: meta.ino(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            size: meta.size(),
        }
    }
}

pub struct NegativeCache {
    /// Version → when last seen (a counter of lookups).
    seen: HashMap<FileVersion, u64>,
    /// The same entries by when last seen, oldest first.
    by_age: BTreeMap<u64, FileVersion>,
    clock: u64,
    max: usize,
    evicted: Counter,
}

impl NegativeCache {
    pub fn new(max: usize, evicted: Counter) -> Self {
        NegativeCache { seen: HashMap::new(), by_age: BTreeMap::new(), clock: 0, max: max.max(1), evicted }
    }

    fn touch(&mut self, v: FileVersion) {
        self.clock += 1;
        if let Some(old) = self.seen.insert(v, self.clock) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(self.clock, v);
    }

    /// Whether `v` is known to hold nothing (and keeps it fresh if so).
    pub fn holds_nothing(&mut self, v: FileVersion) -> bool {
        let known = self.seen.contains_key(&v);
        if known {
            self.touch(v);
        }
        known
    }

    /// Remembers that `v` holds nothing; the least recently seen goes when full (counted).
    pub fn insert(&mut self, v: FileVersion) {
        if !self.seen.contains_key(&v) {
            while self.seen.len() >= self.max {
                let Some((_, oldest)) = self.by_age.pop_first() else { break };
                self.seen.remove(&oldest);
                self.evicted.inc();
            }
        }
        self.touch(v);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// An estimate of the heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let v = std::mem::size_of::<FileVersion>();
        self.seen.capacity() * (v + 9) + self.by_age.len() * (v + 8 + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(inode: u64) -> FileVersion {
        FileVersion { dev: 1, inode, mtime_ns: 7, size: 100 }
    }

    #[test]
    fn remembers_up_to_its_bound_and_forgets_the_least_recently_seen() {
        let evicted = Counter::detached();
        let mut c = NegativeCache::new(3, evicted.clone());
        for i in 1..=3 {
            c.insert(v(i));
        }
        assert!(c.holds_nothing(v(1)), "1 is now the most recently seen");
        c.insert(v(4));
        assert_eq!((c.len(), evicted.get()), (3, 1));
        assert!(!c.holds_nothing(v(2)), "the least recently seen went");
        assert!(c.holds_nothing(v(1)) && c.holds_nothing(v(3)) && c.holds_nothing(v(4)));
    }

    #[test]
    fn a_file_rewritten_in_place_is_a_new_version() {
        let mut c = NegativeCache::new(8, Counter::detached());
        c.insert(v(1));
        assert!(!c.holds_nothing(FileVersion { size: 101, ..v(1) }));
        assert!(!c.holds_nothing(FileVersion { mtime_ns: 8, ..v(1) }));
        let meta = std::fs::metadata("/proc/self/exe").unwrap();
        let me = FileVersion::of(&meta);
        assert_eq!(me, FileVersion::of(&std::fs::metadata("/proc/self/exe").unwrap()));
        assert!(me.size > 0 && me.mtime_ns > 0);
    }
}
