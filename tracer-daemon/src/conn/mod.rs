//! The connection table: one entry per live TCP connection of a traced process, keyed by the
//! kernel's stable identity, with its tuple, role and owner. Bounded with LRU eviction; entries
//! leave on close, on the final TCP state, on process exit or by eviction, and are handed back
//! to the caller so per-connection state (open requests) can be finished, never leaked.

pub mod listen;

use std::collections::VecDeque;

use crate::model::hash::{FastMap, FastSet};

use serde::Serialize;

use crate::{
    metrics::{Counter, Gauge},
    model::conn::{ConnKind, Tuple},
    reader::decode::{ConnRecord, DataRecord},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Server,
}

/// Which kernel evidence gave a connection its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSource {
    /// The process called `connect`.
    Connect,
    /// The process got the socket from `accept`.
    Accept,
    /// Seen first mid-stream: the local port is (or is not) a listening socket of the process's
    /// network namespace (`/proc/PID/net/tcp`).
    ListenTable,
}

#[derive(Debug)]
pub struct Conn<T> {
    pub id: u64,
    pub pid: u32,
    pub tuple: Tuple,
    pub role: Role,
    pub role_source: RoleSource,
    /// CLOCK_MONOTONIC ns of the first event.
    pub opened_ns: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Per-connection state of later stages (protocol session, open requests).
    pub state: T,
    touched: u64,
}

/// Why an entry left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Closed,
    ProcessExit,
    Evicted,
}

/// Stale entries the recency log may hold beyond twice the table before it is compacted.
const LOG_SLACK: usize = 64;

pub struct ConnTable<T> {
    conns: FastMap<u64, Conn<T>>,
    by_pid: FastMap<u32, FastSet<u64>>,
    /// Recency log, oldest first: (the clock at a touch, connection). An entry whose clock is
    /// no longer its connection's `touched` is stale and skipped; the log is compacted once it
    /// holds twice the table (plus `LOG_SLACK`), so it stays bounded and a touch costs O(1).
    lru: VecDeque<(u64, u64)>,
    clock: u64,
    capacity: usize,
    /// Connections evicted from the full table.
    evicted: Counter,
    /// Connections in the table.
    tracked: Gauge,
}

impl<T: Default> ConnTable<T> {
    pub fn new(capacity: usize) -> Self {
        Self::counting(capacity, Counter::detached(), Gauge::detached())
    }

    /// A table that counts evictions into `evicted` and its size into `tracked`.
    pub fn counting(capacity: usize, evicted: Counter, tracked: Gauge) -> Self {
        ConnTable {
            conns: FastMap::default(),
            by_pid: FastMap::default(),
            lru: VecDeque::new(),
            clock: 0,
            capacity: capacity.max(1),
            evicted,
            tracked,
        }
    }

    /// Connections evicted since the table was made.
    pub fn evicted_total(&self) -> u64 {
        self.evicted.get()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// An estimate of the table's heap bytes: its entries, indexes, and what `state` says
    /// each entry's state holds.
    pub fn heap_bytes(&self, state: impl Fn(&T) -> usize) -> usize {
        let entry = std::mem::size_of::<(u64, Conn<T>)>() + 1;
        let by_pid = self.by_pid.capacity() * (std::mem::size_of::<(u32, FastSet<u64>)>() + 1)
            + self.by_pid.values().map(|s| s.capacity() * 9).sum::<usize>();
        let lru = self.lru.capacity() * 16;
        self.conns.capacity() * entry + by_pid + lru + self.conns.values().map(|c| state(&c.state)).sum::<usize>()
    }

    pub fn get(&self, id: u64) -> Option<&Conn<T>> {
        self.conns.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Conn<T>> {
        self.conns.get_mut(&id)
    }

    fn touch(&mut self, id: u64) {
        self.clock += 1;
        if let Some(c) = self.conns.get_mut(&id) {
            c.touched = self.clock;
            self.lru.push_back((self.clock, id));
        }
        if self.lru.len() > 2 * self.conns.len() + LOG_SLACK {
            let conns = &self.conns;
            self.lru.retain(|(at, id)| conns.get(id).is_some_and(|c| c.touched == *at));
        }
    }

    /// The least recently touched connection, taken off the recency log.
    fn pop_oldest(&mut self) -> Option<u64> {
        while let Some((at, id)) = self.lru.pop_front() {
            if self.conns.get(&id).is_some_and(|c| c.touched == at) {
                return Some(id);
            }
        }
        None
    }

    fn insert(&mut self, conn: Conn<T>, evicted: &mut Vec<(Conn<T>, Removal)>) {
        while self.conns.len() >= self.capacity {
            let Some(oldest) = self.pop_oldest() else { break };
            if let Some(c) = self.detach(oldest) {
                self.evicted.inc();
                evicted.push((c, Removal::Evicted));
            }
        }
        let id = conn.id;
        self.by_pid.entry(conn.pid).or_default().insert(id);
        self.conns.insert(id, conn);
        self.tracked.set(self.conns.len() as i64);
        self.touch(id);
    }

    fn detach(&mut self, id: u64) -> Option<Conn<T>> {
        let c = self.conns.remove(&id)?;
        self.tracked.set(self.conns.len() as i64);
        if let Some(set) = self.by_pid.get_mut(&c.pid) {
            set.remove(&id);
            if set.is_empty() {
                self.by_pid.remove(&c.pid);
            }
        }
        Some(c)
    }

    fn new_conn(id: u64, pid: u32, tuple: Tuple, role: Role, source: RoleSource, ts: u64) -> Conn<T> {
        Conn {
            id,
            pid,
            tuple,
            role,
            role_source: source,
            opened_ns: ts,
            bytes_in: 0,
            bytes_out: 0,
            state: T::default(),
            touched: 0,
        }
    }

    /// Applies a connect / accept / close. Returns entries that left the table (the closed one,
    /// a stale one whose identity was reused, or evictions).
    pub fn on_conn(&mut self, rec: &ConnRecord) -> Vec<(Conn<T>, Removal)> {
        let mut out = Vec::new();
        match rec.kind {
            ConnKind::Connect | ConnKind::Accept => {
                // A kernel socket address reused by a new connection: the old entry is over.
                if let Some(old) = self.detach(rec.conn_id) {
                    out.push((old, Removal::Closed));
                }
                let (role, source) = match rec.kind {
                    ConnKind::Connect => (Role::Client, RoleSource::Connect),
                    _ => (Role::Server, RoleSource::Accept),
                };
                let conn = Self::new_conn(rec.conn_id, rec.pid, rec.tuple, role, source, rec.ts_enter_ns);
                self.insert(conn, &mut out);
            }
            ConnKind::Close => {
                if let Some(c) = self.detach(rec.conn_id) {
                    out.push((c, Removal::Closed));
                }
            }
        }
        out
    }

    /// The entry a data record belongs to, created when the connection predates the daemon
    /// (its role then comes from the listen table via `is_listening`).
    pub fn on_data(
        &mut self,
        rec: &DataRecord,
        is_listening: impl FnOnce(u32, u16) -> bool,
        evicted: &mut Vec<(Conn<T>, Removal)>,
    ) -> &mut Conn<T> {
        if !self.conns.contains_key(&rec.conn_id) {
            let role = if is_listening(rec.pid, rec.tuple.local.port()) { Role::Server } else { Role::Client };
            let conn = Self::new_conn(rec.conn_id, rec.pid, rec.tuple, role, RoleSource::ListenTable, rec.ts_enter_ns);
            self.insert(conn, evicted);
        } else {
            self.touch(rec.conn_id);
        }
        let c = self.conns.get_mut(&rec.conn_id).expect("inserted or present above");
        if rec.ret > 0 {
            match rec.direction {
                crate::model::conn::Direction::Ingress => c.bytes_in += rec.ret as u64,
                crate::model::conn::Direction::Egress => c.bytes_out += rec.ret as u64,
            }
        }
        if c.pid != rec.pid {
            // The socket changed hands (fd passing, a forked worker): it is the new owner's.
            let old = std::mem::replace(&mut c.pid, rec.pid);
            if let Some(set) = self.by_pid.get_mut(&old) {
                set.remove(&rec.conn_id);
                if set.is_empty() {
                    self.by_pid.remove(&old);
                }
            }
            self.by_pid.entry(rec.pid).or_default().insert(rec.conn_id);
        }
        self.conns.get_mut(&rec.conn_id).expect("present above")
    }

    /// The kernel reported the socket's final state.
    pub fn on_final_state(&mut self, conn_id: u64) -> Option<Conn<T>> {
        self.detach(conn_id)
    }

    /// Every connection of an exited process.
    pub fn on_exit(&mut self, pid: u32) -> Vec<Conn<T>> {
        let ids: Vec<u64> = self.by_pid.get(&pid).map(|s| s.iter().copied().collect()).unwrap_or_default();
        ids.into_iter().filter_map(|id| self.detach(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conn::Direction;
    use crate::reader::decode::Syscall;

    fn tuple(lport: u16) -> Tuple {
        Tuple { local: format!("127.0.0.1:{lport}").parse().unwrap(), remote: "127.0.0.1:80".parse().unwrap() }
    }

    fn conn(kind: ConnKind, id: u64, pid: u32) -> ConnRecord {
        ConnRecord {
            kind,
            pid,
            tid: pid,
            ts_enter_ns: 1,
            ts_exit_ns: 2,
            conn_id: id,
            fd: 3,
            ret: 0,
            syscall: Syscall::Connect,
            tuple: tuple(1000 + id as u16),
            comm: "t".into(),
        }
    }

    fn data(id: u64, pid: u32, lport: u16) -> DataRecord {
        DataRecord {
            pid,
            tid: pid,
            ts_enter_ns: 1,
            ts_exit_ns: 2,
            conn_id: id,
            fd: 3,
            syscall: Syscall::Read,
            direction: Direction::Ingress,
            ret: 5,
            truncated: false,
            seq: None,
            netns: 0,
            goid: None,
            context: None,
            tuple: tuple(lport),
            lost_before: Default::default(),
            degraded: false,
            payload: b"hello".to_vec(),
        }
    }

    #[test]
    fn connect_accept_close_track_roles_and_leave() {
        let mut t: ConnTable<()> = ConnTable::new(8);
        t.on_conn(&conn(ConnKind::Connect, 1, 10));
        t.on_conn(&conn(ConnKind::Accept, 2, 11));
        assert_eq!(t.get(1).unwrap().role, Role::Client);
        assert_eq!(t.get(2).unwrap().role, Role::Server);
        let gone = t.on_conn(&conn(ConnKind::Close, 1, 10));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, Removal::Closed);
        assert!(t.get(1).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn unknown_connection_gets_its_role_from_the_listen_table() {
        let mut t: ConnTable<()> = ConnTable::new(8);
        let mut ev = Vec::new();
        let c = t.on_data(&data(7, 10, 8080), |_, port| port == 8080, &mut ev);
        assert_eq!((c.role, c.role_source), (Role::Server, RoleSource::ListenTable));
        assert_eq!(c.bytes_in, 5);
        let c = t.on_data(&data(8, 10, 40000), |_, port| port == 8080, &mut ev);
        assert_eq!(c.role, Role::Client);
    }

    #[test]
    fn lru_evicts_the_least_recently_used_and_counts() {
        let mut t: ConnTable<()> = ConnTable::new(2);
        t.on_conn(&conn(ConnKind::Connect, 1, 10));
        t.on_conn(&conn(ConnKind::Connect, 2, 10));
        let mut ev = Vec::new();
        t.on_data(&data(1, 10, 1001), |_, _| false, &mut ev); // 1 is now the most recent
        let out = t.on_conn(&conn(ConnKind::Connect, 3, 10));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.id, out[0].1), (2, Removal::Evicted));
        assert_eq!(t.evicted_total(), 1);
        assert!(t.get(1).is_some() && t.get(3).is_some());
    }

    #[test]
    fn the_recency_log_stays_bounded_and_still_evicts_the_least_recent() {
        let mut t: ConnTable<()> = ConnTable::new(4);
        for id in 1..=4 {
            t.on_conn(&conn(ConnKind::Connect, id, 10));
        }
        let mut ev = Vec::new();
        // Many touches of all but connection 3, then one more connection.
        for round in 0..10_000u64 {
            let id = [1, 2, 4][(round % 3) as usize];
            t.on_data(&data(id, 10, 1000 + id as u16), |_, _| false, &mut ev);
            assert!(t.lru.len() <= 2 * t.len() + LOG_SLACK + 1, "the log grew to {}", t.lru.len());
        }
        let out = t.on_conn(&conn(ConnKind::Connect, 5, 10));
        assert_eq!(out.iter().map(|(c, why)| (c.id, *why)).collect::<Vec<_>>(), vec![(3, Removal::Evicted)]);
        // A closed connection's entries are skipped, not evicted twice.
        t.on_conn(&conn(ConnKind::Close, 1, 10));
        let out = t.on_conn(&conn(ConnKind::Connect, 6, 10));
        assert!(out.is_empty(), "a free slot needs no eviction: {:?}", out.len());
        let out = t.on_conn(&conn(ConnKind::Connect, 7, 10));
        assert_eq!(out.len(), 1);
        assert_ne!(out[0].0.id, 1, "the closed connection came back from the log");
    }

    #[test]
    fn a_connection_that_changes_owner_leaves_no_stale_id_behind() {
        let mut t: ConnTable<()> = ConnTable::new(8);
        t.on_conn(&conn(ConnKind::Accept, 1, 10));
        let mut ev = Vec::new();
        // The socket was handed to another process (fd passing, a forked worker).
        t.on_data(&data(1, 11, 1001), |_, _| false, &mut ev);
        assert_eq!(t.on_exit(11).len(), 1, "the new owner's exit ends the connection");
        assert!(t.by_pid.is_empty(), "no id stays behind: {:?}", t.by_pid);
        t.on_conn(&conn(ConnKind::Accept, 2, 10));
        t.on_data(&data(2, 12, 1002), |_, _| false, &mut ev);
        t.on_conn(&conn(ConnKind::Close, 2, 12));
        assert!(t.by_pid.is_empty(), "no id stays behind after close: {:?}", t.by_pid);
    }

    #[test]
    fn process_exit_removes_all_its_connections() {
        let mut t: ConnTable<()> = ConnTable::new(8);
        t.on_conn(&conn(ConnKind::Connect, 1, 10));
        t.on_conn(&conn(ConnKind::Connect, 2, 10));
        t.on_conn(&conn(ConnKind::Connect, 3, 11));
        let mut gone: Vec<u64> = t.on_exit(10).into_iter().map(|c| c.id).collect();
        gone.sort();
        assert_eq!(gone, vec![1, 2]);
        assert_eq!(t.len(), 1);
    }
}
