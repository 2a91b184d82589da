//! Addresses as text, the way `Display` writes them, without the formatting machinery: every
//! span the daemon builds carries two or three of them, so this is on the per-span path.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `ip` as `Display` writes it.
pub fn ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            push_v4(&mut s, v4);
            s
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// `addr` as `Display` writes it (`1.2.3.4:80`, `[::1]:80`).
pub fn socket_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => {
            let mut s = String::with_capacity(21);
            push_v4(&mut s, *a.ip());
            s.push(':');
            push_decimal(&mut s, u32::from(a.port()));
            s
        }
        SocketAddr::V6(a) => a.to_string(),
    }
}

fn push_v4(s: &mut String, ip: Ipv4Addr) {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        n += digits(u32::from(octet), &mut buf[n..]);
    }
    s.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
}

fn push_decimal(s: &mut String, n: u32) {
    let mut buf = [0u8; 10];
    let len = digits(n, &mut buf);
    s.push_str(std::str::from_utf8(&buf[..len]).unwrap_or_default());
}

/// Writes `n` in decimal at the start of `out` (which has room for it); returns its length.
fn digits(mut n: u32, out: &mut [u8]) -> usize {
    let mut rev = [0u8; 10];
    let mut len = 0;
    loop {
        rev[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (o, d) in out.iter_mut().zip(rev[..len].iter().rev()) {
        *o = *d;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_display_writes() {
        let ips = [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.0.10.100",
            "::1",
            "fe80::1:2",
            "::ffff:1.2.3.4",
        ];
        for text in ips {
            let a: IpAddr = text.parse().unwrap();
            assert_eq!(ip(a), a.to_string());
            for port in [0, 7, 80, 6379, 65535] {
                let sa = SocketAddr::new(a, port);
                assert_eq!(socket_addr(sa), sa.to_string());
            }
        }
    }
}
