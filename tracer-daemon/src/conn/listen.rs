//! Listening TCP ports per network namespace, read from `/proc/PID/net/tcp{,6}`: the kernel's
//! socket state, used to give connections that predate the daemon their role.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

/// Refreshes a namespace's list at most this often.
const REFRESH: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct ListenTable {
    /// netns inode → (listening ports, read at).
    by_netns: HashMap<u64, (HashSet<u16>, Instant)>,
}

impl ListenTable {
    pub fn is_listening(&mut self, pid: u32, port: u16) -> bool {
        use std::os::unix::fs::MetadataExt;
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino()).unwrap_or(0);
        let fresh = self.by_netns.get(&netns).is_some_and(|(_, at)| at.elapsed() < REFRESH);
        if !fresh {
            let mut ports = HashSet::new();
            for file in ["tcp", "tcp6"] {
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) {
                    ports.extend(parse_listening(&text));
                }
            }
            self.by_netns.insert(netns, (ports, Instant::now()));
        }
        self.by_netns.get(&netns).is_some_and(|(p, _)| p.contains(&port))
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
    fn parses_listening_ports_only() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        let ports: Vec<u16> = super::parse_listening(text).collect();
        assert_eq!(ports, vec![8080]);
    }
}
