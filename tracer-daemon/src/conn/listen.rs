//! Listening TCP ports per network namespace, read from `/proc/PID/net/tcp{,6}`: the kernel's
//! socket state, used to give connections that predate the daemon their role.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use crate::metrics::Counter;

/// Refreshes a namespace's list at most this often.
const REFRESH: Duration = Duration::from_millis(500);

/// Most namespaces whose lists are kept; beyond this the least recently read goes first.
pub const MAX_NAMESPACES: usize = 256;

/// Listening ports by network namespace, each list read again once it is older than
/// `REFRESH`. Bounded: lists past their refresh time go when a namespace is read, and beyond
/// `MAX_NAMESPACES` the oldest is evicted and counted.
#[derive(Default)]
pub struct ListenTable {
    /// netns inode → (listening ports, read at).
    by_netns: HashMap<u64, (HashSet<u16>, Instant)>,
    /// Fresh lists evicted because the table was full.
    evicted: Counter,
}

impl ListenTable {
    /// A table that counts its evictions into `evicted`.
    pub fn counting(evicted: Counter) -> Self {
        ListenTable { by_netns: HashMap::new(), evicted }
    }

    pub fn is_listening(&mut self, pid: u32, port: u16) -> bool {
        use std::os::unix::fs::MetadataExt;
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino()).unwrap_or(0);
        self.lookup(netns, port, Instant::now(), |_| {
            let mut ports = HashSet::new();
            for file in ["tcp", "tcp6"] {
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) {
                    ports.extend(parse_listening(&text));
                }
            }
            ports
        })
    }

    /// Whether `port` listens in `netns`, reading the namespace's list with `read` when the
    /// kept one is missing or older than `REFRESH` at `now`.
    fn lookup(&mut self, netns: u64, port: u16, now: Instant, read: impl FnOnce(u64) -> HashSet<u16>) -> bool {
        let fresh = |at: Instant| now.saturating_duration_since(at) < REFRESH;
        if !self.by_netns.get(&netns).is_some_and(|(_, at)| fresh(*at)) {
            let ports = read(netns);
            self.by_netns.retain(|_, (_, at)| fresh(*at));
            while self.by_netns.len() >= MAX_NAMESPACES {
                let Some(oldest) = self.by_netns.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) else {
                    break;
                };
                self.by_netns.remove(&oldest);
                self.evicted.inc();
            }
            self.by_netns.insert(netns, (ports, now));
        }
        self.by_netns.get(&netns).is_some_and(|(p, _)| p.contains(&port))
    }

    /// Namespaces whose lists are kept (metrics).
    pub fn len(&self) -> usize {
        self.by_netns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_netns.is_empty()
    }

    /// An estimate of the table's heap bytes (metrics): entries and their port sets.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u64, (HashSet<u16>, Instant))>();
        self.by_netns.values().map(|(p, _)| entry + p.capacity() * 4).sum()
    }
}

/// Local ports of sockets in state LISTEN (0A) in a `/proc/net/tcp` table.
pub fn parse_listening(text: &str) -> impl Iterator<Item = u16> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let mut f = line.split_whitespace();
        let local = f.nth(1)?;
        let state = f.nth(1)?;
        if state != "0A" {
            return None;
        }
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_keeps_a_bounded_number_of_namespaces_and_counts_the_rest() {
        let evicted = crate::metrics::Counter::detached();
        let mut t = super::ListenTable::counting(evicted.clone());
        let start = std::time::Instant::now();
        let n = super::MAX_NAMESPACES as u64 + 10;
        for netns in 0..n {
            let ports = |_: u64| std::collections::HashSet::from([80u16]);
            assert!(t.lookup(netns, 80, start, ports));
        }
        assert_eq!(t.by_netns.len(), super::MAX_NAMESPACES);
        assert_eq!(evicted.get(), 10);
        // The oldest went first: the newest is still there and answers without a read.
        assert!(t.lookup(n - 1, 80, start, |_| panic!("read again")));
        // Entries past their refresh time are worth nothing: they go before any fresh one.
        let later = start + super::REFRESH * 2;
        assert!(!t.lookup(n, 81, later, |_| std::collections::HashSet::new()));
        assert_eq!(t.by_netns.len(), 1, "stale namespaces left");
    }

    #[test]
    fn parses_listening_ports_only() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        let ports: Vec<u16> = super::parse_listening(text).collect();
        assert_eq!(ports, vec![8080]);
    }
}
