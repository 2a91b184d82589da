//! Datagrams the kernel dropped before the agent's UDP listeners read them (receive buffer full):
//! the `drops` column of the socket's row in `/proc/self/net/udp` or `udp6`, found by the
//! socket's inode, exported on every scrape as `tracer_agent_udp_kernel_drops_total{protocol}`.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use crate::metrics::{Kind, Registry, Sample};

/// The inode of a socket (the `inode` column of `/proc/net/udp`).
pub fn socket_inode(socket: &impl AsRawFd) -> std::io::Result<u64> {
    Ok(std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))?.ino())
}

/// The `drops` of the row with `inode` in a `/proc/net/udp`-format table.
pub fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let row_inode: u64 = cols.get(9)?.parse().ok()?;
        if row_inode != inode {
            return None;
        }
        cols.get(12)?.parse().ok()
    })
}

/// The kernel's drop count of the UDP socket with `inode` in this network namespace.
pub fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/self/net/udp", "/proc/self/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|t| drops_in(&t, inode))
}

/// Exports the drop count of the listener `protocol` (socket `inode`) on every scrape.
pub fn register(reg: &Registry, protocol: &'static str, inode: u64) {
    reg.add_collector(move |out| {
        out.push(Sample::new(
            "tracer_agent_udp_kernel_drops_total",
            "Datagrams to the agent's UDP listeners the kernel dropped before they were read (receive buffer full), from /proc/net/udp.",
            Kind::Counter,
            &[("protocol", protocol)],
            kernel_drops(inode).unwrap_or(0) as f64,
        ));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  110: 0100007F:1AAF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 48213 2 0000000000000000 0
  111: 00000000:1AB0 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 48214 2 0000000000000000 17
";

    #[test]
    fn the_drops_column_of_the_sockets_row() {
        assert_eq!(drops_in(TABLE, 48214), Some(17));
        assert_eq!(drops_in(TABLE, 48213), Some(0));
        assert_eq!(drops_in(TABLE, 1), None);
        assert_eq!(drops_in("garbage\n1: x y\n", 1), None);
    }

    /// A real socket that is never read overflows its receive buffer and the kernel's count
    /// of the drops is found by its inode.
    #[test]
    fn a_full_receive_buffer_shows_in_the_kernel_count() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&rx).unwrap();
        assert_eq!(kernel_drops(inode), Some(0), "a new socket has dropped nothing");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let payload = [0u8; 8192];
        // Far more than the default receive buffer (about 200 KiB) holds.
        for _ in 0..2_000 {
            let _ = tx.send_to(&payload, rx.local_addr().unwrap());
        }
        let drops = kernel_drops(inode).unwrap();
        assert!(drops > 0, "the kernel counted no drop");
    }
}
