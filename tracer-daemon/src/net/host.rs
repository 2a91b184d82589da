//! The host this daemon runs on: its name and primary address, as the Jaeger process tags export
//! adds (`hostname`, `ip`, the client version, configured `key=value` tags) and as the node of
//! every traced process.

use std::sync::Arc;

use crate::model::{Process, Tag};

/// The value of the `jaeger.version` process tag on spans this daemon produces.
pub const CLIENT_VERSION: &str = concat!("tracer-", env!("CARGO_PKG_VERSION"));

/// Process tag keys, as the Jaeger clients name them.
pub mod keys {
    pub const HOSTNAME: &str = "hostname";
    pub const IP: &str = "ip";
    pub const CLIENT_VERSION: &str = "jaeger.version";
    /// Tags the agent role adds to batches it forwards from apps' Jaeger clients.
    pub const AGENT_HOSTNAME: &str = "agent.hostname";
    pub const AGENT_IP: &str = "agent.ip";
    pub const AGENT_VERSION: &str = "agent.version";
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    /// The host's primary address, as text (IPv4 when there is one).
    pub ip: String,
    /// Extra `key=value` tags added to every process.
    pub tags: Vec<(String, String)>,
}

impl HostInfo {
    pub fn new(hostname: impl Into<String>, ip: impl Into<String>) -> Self {
        HostInfo { hostname: hostname.into(), ip: ip.into(), tags: Vec::new() }
    }

    /// The machine's hostname and first non-loopback address (`localhost` and `127.0.0.1` when
    /// it has none), without tags.
    pub fn detect() -> HostInfo {
        HostInfo::new(hostname(), primary_ip())
    }

    /// With these `key=value` tags added to every process.
    pub fn with_tags(mut self, tags: Vec<(String, String)>) -> Self {
        self.tags = tags;
        self
    }

    /// `process` with `hostname`, `ip`, `jaeger.version` and the host tags added where missing.
    pub fn complete(&self, process: &Arc<Process>) -> Arc<Process> {
        let has = |k: &str| process.tags.iter().any(|t| t.key == k);
        let mut add: Vec<Tag> = Vec::new();
        if !has(keys::HOSTNAME) {
            add.push(Tag::str(keys::HOSTNAME, &self.hostname));
        }
        if !has(keys::IP) {
            add.push(Tag::str(keys::IP, &self.ip));
        }
        if !has(keys::CLIENT_VERSION) {
            add.push(Tag::str(keys::CLIENT_VERSION, CLIENT_VERSION));
        }
        for (k, v) in &self.tags {
            if !has(k) {
                add.push(Tag::str(k.clone(), v));
            }
        }
        if add.is_empty() {
            return process.clone();
        }
        let mut p = Process::clone(process);
        p.tags.extend(add);
        Arc::new(p)
    }

    /// The tags the agent role sets on processes it forwards: which host relayed them.
    pub fn agent_tags(&self) -> Vec<Tag> {
        vec![
            Tag::str(keys::AGENT_HOSTNAME, &self.hostname),
            Tag::str(keys::AGENT_IP, &self.ip),
            Tag::str(keys::AGENT_VERSION, CLIENT_VERSION),
        ]
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and the last byte is kept 0 below.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The first non-loopback IPv4 address of an interface that is up, else the first
/// non-loopback IPv6, else `127.0.0.1`.
fn primary_ip() -> String {
    let mut v4: Option<std::net::Ipv4Addr> = None;
    let mut v6: Option<std::net::Ipv6Addr> = None;
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free with freeifaddrs; each node and its address are
    // read only while the list is alive, and the address is cast by its family.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return "127.0.0.1".to_owned();
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            let up = ifa.ifa_flags & (libc::IFF_UP as u32) != 0;
            let loopback = ifa.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0;
            if ifa.ifa_addr.is_null() || !up || loopback {
                continue;
            }
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET if v4.is_none() => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    v4 = Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                }
                libc::AF_INET6 if v6.is_none() => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let a = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    if !a.is_unicast_link_local() {
                        v6 = Some(a);
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(ifap);
    }
    v4.map(|a| a.to_string()).or(v6.map(|a| a.to_string())).unwrap_or_else(|| "127.0.0.1".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_adds_only_missing_tags() {
        let mut host = HostInfo::new("h1", "10.0.0.1");
        host.tags.push(("zone".into(), "a".into()));
        let p = Arc::new(Process { service_name: "svc".into(), tags: vec![Tag::str("ip", "1.2.3.4")] });
        let done = host.complete(&p);
        let keys: Vec<(&str, String)> = done.tags.iter().map(|t| (&*t.key, format!("{:?}", t.value))).collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(done.tags[0], Tag::str("ip", "1.2.3.4"));
        assert!(done.tags.contains(&Tag::str("hostname", "h1")));
        assert!(done.tags.contains(&Tag::str("jaeger.version", CLIENT_VERSION)));
        assert!(done.tags.contains(&Tag::str("zone", "a")));
        let again = host.complete(&done);
        assert!(Arc::ptr_eq(&again, &done));
    }

    #[test]
    fn detect_finds_something() {
        let h = HostInfo::detect();
        assert!(!h.hostname.is_empty());
        assert!(h.ip.parse::<std::net::IpAddr>().is_ok(), "{}", h.ip);
    }
}
