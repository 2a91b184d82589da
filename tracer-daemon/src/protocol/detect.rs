//! Protocol detection from the first bytes a connection carries in either direction (never from
//! port numbers): HTTP/1.x request and status lines, Redis commands and replies, the MySQL
//! server greeting (and, for connections seen mid-way, MySQL command packets), the HTTP/2
//! client preface, a server's first SETTINGS, and (mid-way) a run of valid HTTP/2 frame headers.

use super::http2::frame::{self, Run};
use super::{Direction, Protocol, Role};

/// What the first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detect {
    Found(Protocol),
    /// A valid prefix of some protocol: wait for more bytes.
    NeedMore,
    Unknown,
}

/// Bytes a verdict may wait for before giving up.
const MAX_LOOK: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    Maybe,
    No,
}

use Verdict::{Maybe, No, Yes};

/// Guesses the protocol from the first bytes seen in direction `dir` by the end `role`.
pub fn detect(data: &[u8], dir: Direction, role: Role) -> Detect {
    if data.is_empty() {
        return Detect::NeedMore;
    }
    let from_client = dir == role.request_direction();
    let candidates: [(Protocol, Verdict); 4] = if from_client {
        [
            (Protocol::Http2, http2(data, true)),
            (Protocol::Http, http_request(data)),
            (Protocol::Redis, redis_command(data)),
            (Protocol::Mysql, mysql_command(data)),
        ]
    } else {
        [
            (Protocol::Http2, http2(data, false)),
            (Protocol::Http, http_status(data)),
            (Protocol::Redis, redis_reply(data)),
            (Protocol::Mysql, mysql_greeting(data)),
        ]
    };
    if let Some((p, _)) = candidates.iter().find(|(_, v)| *v == Yes) {
        return Detect::Found(*p);
    }
    if data.len() < MAX_LOOK && candidates.iter().any(|(_, v)| *v == Maybe) {
        return Detect::NeedMore;
    }
    Detect::Unknown
}

/// Compares a fixed prefix: Yes when `data` starts with it, Maybe when `data` is its prefix.
fn literal(data: &[u8], lit: &[u8]) -> Verdict {
    let n = data.len().min(lit.len());
    if data[..n] != lit[..n] {
        No
    } else if n == lit.len() {
        Yes
    } else {
        Maybe
    }
}

/// Frame headers needed before a run of them (a connection joined mid-way) names HTTP/2.
const H2_RUN: usize = 2;

/// The client preface; a server's SETTINGS as its first frame; or, for a connection joined
/// mid-way, a run of plausible frame headers.
fn http2(data: &[u8], from_client: bool) -> Verdict {
    if from_client {
        match literal(data, frame::PREFACE) {
            No => {}
            v => return v,
        }
    }
    match frame::run(data, usize::MAX) {
        Run::No => No,
        Run::Plausible { frames: 1.., settings_first: true } if !from_client => Yes,
        Run::Plausible { frames, .. } if frames >= H2_RUN => Yes,
        Run::Plausible { .. } => Maybe,
    }
}

/// `METHOD SP target SP HTTP/1.d CRLF`.
fn http_request(data: &[u8]) -> Verdict {
    let method_len = data.iter().position(|&c| c == b' ').unwrap_or(data.len());
    if method_len > 16 || !data[..method_len].iter().all(u8::is_ascii_uppercase) {
        return No;
    }
    if method_len == data.len() {
        return Maybe;
    }
    if method_len < 3 {
        return No;
    }
    let rest = &data[method_len + 1..];
    let target_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    if !rest[..target_len].iter().all(|&c| c > b' ' && c != 0x7f) {
        return No;
    }
    if target_len == rest.len() {
        return if rest.len() < MAX_LOOK { Maybe } else { No };
    }
    if target_len == 0 {
        return No;
    }
    let version = &rest[target_len + 1..];
    match literal(version, b"HTTP/1.") {
        Yes => match version.get(7) {
            None => Maybe,
            Some(d) if d.is_ascii_digit() => match version.get(8) {
                None => Maybe,
                Some(b'\r' | b'\n') => Yes,
                Some(_) => No,
            },
            Some(_) => No,
        },
        v => v,
    }
}

/// `HTTP/1.d SP ddd`.
fn http_status(data: &[u8]) -> Verdict {
    match literal(data, b"HTTP/1.") {
        Yes => {}
        v => return v,
    }
    let tail = &data[7..];
    let shape = [
        |c: u8| c.is_ascii_digit(),
        |c: u8| c == b' ',
        |c: u8| c.is_ascii_digit(),
        |c: u8| c.is_ascii_digit(),
        |c: u8| c.is_ascii_digit(),
    ];
    for (i, ok) in shape.iter().enumerate() {
        match tail.get(i) {
            None => return Maybe,
            Some(&c) if ok(c) => {}
            Some(_) => return No,
        }
    }
    Yes
}

/// A CR LF terminated line at the start of `data`: Some(line) or None (incomplete), Err when
/// it cannot be one.
fn resp_line(data: &[u8]) -> Result<Option<&[u8]>, ()> {
    match data.iter().position(|&c| c == b'\n') {
        Some(lf) if lf > 0 && data[lf - 1] == b'\r' => Ok(Some(&data[..lf - 1])),
        Some(_) => Err(()),
        None if data.len() < 1024 => Ok(None),
        None => Err(()),
    }
}

fn int(s: &[u8], min: i64, max: i64) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(s).ok().and_then(|t| t.parse::<i64>().ok()).is_some_and(|v| (min..=max).contains(&v))
}

/// Prefix check of a partial line: every byte so far fits `ok`.
fn partial(line: &[u8], ok: impl Fn(u8) -> bool) -> Verdict {
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    if body.iter().all(|&c| ok(c)) { Maybe } else { No }
}

/// Commands that a client may send inline (telnet style) as its first line.
const INLINE: &[&[u8]] = &[
    b"PING", b"AUTH", b"HELLO", b"SELECT", b"GET", b"SET", b"INFO", b"QUIT", b"ECHO", b"DEL", b"EXISTS", b"KEYS",
    b"CLIENT", b"COMMAND",
];

/// `*N CRLF $M CRLF command…` or an inline command.
fn redis_command(data: &[u8]) -> Verdict {
    if data[0] != b'*' {
        let word_len = data.iter().position(|&c| c == b' ' || c == b'\r').unwrap_or(data.len());
        let word = &data[..word_len];
        let known = INLINE.iter().any(|w| w.eq_ignore_ascii_case(word));
        let could = INLINE.iter().any(|w| w.len() >= word.len() && w[..word.len()].eq_ignore_ascii_case(word));
        return match resp_line(data) {
            Ok(Some(l))
                if known && l.iter().all(|&c| (b' '..0x7f).contains(&c)) && !l.windows(6).any(|w| w == b" HTTP/") =>
            {
                Yes
            }
            Ok(None) if could => Maybe,
            _ => No,
        };
    }
    let first = match resp_line(data) {
        Ok(Some(l)) => l,
        Ok(None) => return partial(&data[1..], |c| c.is_ascii_digit()),
        Err(()) => return No,
    };
    if !int(&first[1..], 1, 1 << 20) {
        return No;
    }
    let rest = &data[first.len() + 2..];
    if rest.is_empty() {
        return Maybe;
    }
    if rest[0] != b'$' {
        return No;
    }
    match resp_line(rest) {
        Ok(Some(l)) if int(&l[1..], 1, 64) => Yes,
        Ok(None) => partial(&rest[1..], |c| c.is_ascii_digit()),
        _ => No,
    }
}

/// Any RESP2/RESP3 reply type with a well-formed first line.
fn redis_reply(data: &[u8]) -> Verdict {
    let kind = data[0];
    if !b"+-:$*%~>_,#(=!|".contains(&kind) {
        return No;
    }
    let printable = |c: u8| (b' '..0x7f).contains(&c) || c == b'\t';
    let numeric = |c: u8| c.is_ascii_digit() || c == b'-';
    let line = match resp_line(data) {
        Ok(Some(l)) => &l[1..],
        Ok(None) => {
            let body = &data[1..];
            return match kind {
                b'+' | b'-' => partial(body, printable),
                b'_' => partial(body, |_| false),
                b'#' => partial(body, |c| c == b't' || c == b'f'),
                b',' => partial(body, |c| numeric(c) || b".eE+infa".contains(&c)),
                _ => partial(body, numeric),
            };
        }
        Err(()) => return No,
    };
    let ok = match kind {
        b'+' => line.iter().all(|&c| printable(c)),
        b'-' => line.first().is_some_and(u8::is_ascii_uppercase) && line.iter().all(|&c| printable(c)),
        b':' | b'(' => int(line, i64::MIN + 1, i64::MAX),
        b'$' | b'*' => int(line, -1, 1 << 32),
        b'%' | b'~' | b'>' | b'|' | b'=' | b'!' => int(line, 0, 1 << 32),
        b'_' => line.is_empty(),
        b'#' => line == b"t" || line == b"f",
        b',' => !line.is_empty() && line.iter().all(|&c| numeric(c) || b".eE+infa".contains(&c)),
        _ => false,
    };
    if ok { Yes } else { No }
}

/// Handshake v10: `len(3) seq=0 0x0a version NUL …`.
fn mysql_greeting(data: &[u8]) -> Verdict {
    if data.len() < 5 {
        return if data.len() > 3 && data[3] != 0 { No } else { Maybe };
    }
    let len = u32::from(data[0]) | (u32::from(data[1]) << 8) | (u32::from(data[2]) << 16);
    if data[3] != 0 || data[4] != 0x0a || !(30..=1024).contains(&len) {
        return No;
    }
    let version = &data[5..];
    match version.iter().position(|&c| c == 0) {
        Some(n) if n > 0 && version[..n].iter().all(|&c| (b' '..0x7f).contains(&c)) => Yes,
        Some(_) => No,
        None if version.iter().all(|&c| (b' '..0x7f).contains(&c)) && version.len() < 64 => Maybe,
        None => No,
    }
}

/// A client packet on a connection seen mid-way: a command (seq 0) or a handshake response.
fn mysql_command(data: &[u8]) -> Verdict {
    if data.len() < 5 {
        return if data.len() > 3 && data[3] > 1 { No } else { Maybe };
    }
    let len = u32::from(data[0]) | (u32::from(data[1]) << 8) | (u32::from(data[2]) << 16);
    let payload = &data[4..];
    let whole_or_prefix = len as usize >= payload.len() && len > 0;
    if !whole_or_prefix {
        return No;
    }
    if data[3] == 1 {
        // Handshake response 4.1: caps, max packet, charset, 23 zero bytes.
        if len < 32 || payload.len() < 32 {
            return if payload.len() < 32 && payload.get(9..).is_none_or(|f| f.iter().all(|&c| c == 0)) {
                Maybe
            } else {
                No
            };
        }
        let caps = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        return if caps & 0x200 != 0 && payload[13..32].iter().all(|&c| c == 0) { Yes } else { No };
    }
    if data[3] != 0 {
        return No;
    }
    let sql_like =
        |p: &[u8]| p.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'/' || *c == b'(' || *c == b' ');
    let ok = match payload[0] {
        0x03 | 0x16 => {
            sql_like(&payload[1..])
                && len < (1 << 24) - 1
                && payload[1..].iter().take(32).all(|&c| c >= b' ' || c == b'\n' || c == b'\t' || c == b'\r')
        }
        0x01 | 0x0e | 0x09 | 0x1f => len == 1,
        0x19 | 0x1a => len == 5,
        0x17 => len >= 10,
        0x02 => len > 1 && payload[1..].iter().all(|&c| c.is_ascii_graphic()),
        _ => false,
    };
    if ok { Yes } else { No }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Egress, Ingress};
    use Role::{Client, Server};

    fn both(data: &[u8], from_client: bool) -> (Detect, Detect) {
        if from_client {
            (detect(data, Egress, Client), detect(data, Ingress, Server))
        } else {
            (detect(data, Ingress, Client), detect(data, Egress, Server))
        }
    }

    fn found(data: &[u8], from_client: bool, p: Protocol) {
        assert_eq!(
            both(data, from_client),
            (Detect::Found(p), Detect::Found(p)),
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }

    #[test]
    fn http() {
        found(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", true, Protocol::Http);
        found(b"OPTIONS * HTTP/1.0\r\n", true, Protocol::Http);
        found(b"HTTP/1.1 200 OK\r\n", false, Protocol::Http);
        found(b"HTTP/1.0 404", false, Protocol::Http);
        assert_eq!(detect(b"GET /index.ht", Egress, Client), Detect::NeedMore);
        assert_eq!(detect(b"HTTP/1", Ingress, Client), Detect::NeedMore);
        assert_eq!(detect(b"GET / HTTP/2.0\r\n", Egress, Client), Detect::Unknown);
    }

    #[test]
    fn http2() {
        found(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true, Protocol::Http2);
        assert_eq!(detect(b"PRI * HTTP/2", Egress, Client), Detect::NeedMore);
        // A server's SETTINGS (one setting) as its first frame.
        found(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00\x40\x00", false, Protocol::Http2);
        assert_eq!(detect(b"\x00\x00\x06\x04\x00\x00\x00", Ingress, Client), Detect::NeedMore);
        // Mid-way: HEADERS then DATA on stream 1.
        let mid = b"\x00\x00\x02\x01\x04\x00\x00\x00\x01\x83\x86\x00\x00\x01\x00\x01\x00\x00\x00\x01x";
        found(mid, true, Protocol::Http2);
        found(mid, false, Protocol::Http2);
        assert_eq!(detect(&mid[..11], Egress, Client), Detect::NeedMore);
        // A frame header no sender writes (HEADERS on stream 0).
        assert_ne!(
            detect(b"\x00\x00\x02\x01\x04\x00\x00\x00\x00\x83\x86", Egress, Client),
            Detect::Found(Protocol::Http2)
        );
    }

    #[test]
    fn redis() {
        found(b"*2\r\n$3\r\nGET\r\n$6\r\nuser:1\r\n", true, Protocol::Redis);
        found(b"*1\r\n$4\r\nPING\r\n", true, Protocol::Redis);
        found(b"PING\r\n", true, Protocol::Redis);
        found(b"GET key\r\n", true, Protocol::Redis);
        for reply in [
            &b"+OK\r\n"[..],
            b"-ERR unknown command\r\n",
            b":12\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*2\r\n",
            b"%7\r\n",
            b"~2\r\n",
            b">3\r\n",
            b"_\r\n",
            b",1.5\r\n",
            b",inf\r\n",
            b"#t\r\n",
            b"(123\r\n",
            b"=15\r\n",
            b"!21\r\n",
            b"|1\r\n",
        ] {
            found(reply, false, Protocol::Redis);
        }
        assert_eq!(detect(b"*2\r\n$3", Egress, Client), Detect::NeedMore);
        assert_eq!(detect(b"+OK", Ingress, Client), Detect::NeedMore);
        assert_eq!(detect(b"*2\r\n+3\r\n", Egress, Client), Detect::Unknown);
        assert_eq!(detect(b"#x\r\n", Ingress, Client), Detect::Unknown);
        assert_eq!(detect(b"-err lower\r\n", Ingress, Client), Detect::Unknown);
    }

    #[test]
    fn mysql() {
        let greeting = b"d\x00\x00\x00\n5.5.5-10.11.19-MariaDB-0+deb12u1\x00\r\x00\x00\x00";
        found(greeting, false, Protocol::Mysql);
        assert_eq!(detect(&greeting[..4], Ingress, Client), Detect::NeedMore);
        assert_eq!(detect(&greeting[..12], Ingress, Client), Detect::NeedMore);
        found(b"\x22\x00\x00\x00\x03SELECT id FROM users WHERE id = 1", true, Protocol::Mysql);
        found(b"\x01\x00\x00\x00\x0e", true, Protocol::Mysql);
        assert_eq!(detect(b"\x05\x00\x00\x00\x03SELECT 1", Egress, Client), Detect::Unknown);
        assert_eq!(detect(b"\x01\x00\x00\x00\x0e", Ingress, Client), Detect::Unknown);
    }

    #[test]
    fn garbage_is_unknown() {
        assert_eq!(detect(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", Egress, Client), Detect::Unknown);
        assert_eq!(detect(b"SSH-2.0-OpenSSH_9.2\r\n", Ingress, Client), Detect::Unknown);
        assert_eq!(detect(&[b'A'; 5000], Egress, Client), Detect::Unknown);
        assert_eq!(detect(b"", Egress, Client), Detect::NeedMore);
    }
}
