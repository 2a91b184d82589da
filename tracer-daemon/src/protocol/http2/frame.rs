//! HTTP/2 frame headers (RFC 9113 4.1): the 9 bytes that are never compressed, their types and
//! flags, and what a plausible run of them looks like (detection and resynchronisation).

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// Largest frame a run may hold to look plausible: the default SETTINGS_MAX_FRAME_SIZE.
/// (Peers may raise it; a connection that does is still parsed once detected.)
pub const PLAUSIBLE_MAX_LEN: u32 = 16_384;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Payload length (bytes).
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    pub fn parse(b: &[u8; 9]) -> Head {
        Head {
            len: u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// Whether a conforming sender could have written this header: a known type, only its
    /// defined flags, the stream (zero or not) and length its type requires, the reserved bit
    /// clear, at most the default maximum size.
    pub fn plausible(b: &[u8; 9]) -> bool {
        let h = Head::parse(b);
        if b[5] & 0x80 != 0 || h.len > PLAUSIBLE_MAX_LEN {
            return false;
        }
        let on_stream = h.stream != 0;
        let (flags, stream_ok, len_ok) = match h.kind {
            DATA => (END_STREAM | PADDED, on_stream, true),
            HEADERS => (END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, on_stream, true),
            PRIORITY => (0, on_stream, h.len == 5),
            RST_STREAM => (0, on_stream, h.len == 4),
            SETTINGS => (ACK, !on_stream, if h.flags & ACK != 0 { h.len == 0 } else { h.len.is_multiple_of(6) }),
            PUSH_PROMISE => (END_HEADERS | PADDED, on_stream, h.len >= 4),
            PING => (ACK, !on_stream, h.len == 8),
            GOAWAY => (0, !on_stream, h.len >= 8),
            WINDOW_UPDATE => (0, true, h.len == 4),
            CONTINUATION => (END_HEADERS, on_stream, true),
            _ => return false,
        };
        h.flags & !flags == 0 && stream_ok && len_ok
    }
}

/// What a run of frame headers at the start of some bytes says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Every header is plausible and the run covers what was captured: `frames` headers seen.
    Plausible { frames: usize, settings_first: bool },
    /// Some header is not.
    No,
}

/// Walks frame headers over `data` (captured bytes of calls that moved `total` bytes in all).
pub fn run(data: &[u8], total: usize) -> Run {
    let mut at = 0usize;
    let mut frames = 0;
    let mut settings_first = false;
    while let Some(b) = data.get(at..at + 9) {
        let b: &[u8; 9] = b.try_into().unwrap_or(&[0xff; 9]);
        if !Head::plausible(b) {
            return Run::No;
        }
        let h = Head::parse(b);
        if frames == 0 {
            settings_first = h.kind == SETTINGS && h.flags & ACK == 0;
        }
        frames += 1;
        at += 9 + h.len as usize;
    }
    // A header cut by the end of the bytes: what there is of it must fit.
    if let Some(part) = data.get(at..).filter(|p| !p.is_empty() && at + 9 <= total) {
        let len_ok = part[0] == 0 && part.get(1).is_none_or(|&b| u32::from(b) << 8 <= PLAUSIBLE_MAX_LEN);
        let kind_ok = part.get(3).is_none_or(|&t| t <= CONTINUATION);
        let reserved_ok = part.get(5).is_none_or(|&b| b & 0x80 == 0);
        if !(len_ok && kind_ok && reserved_ok) {
            return Run::No;
        }
    }
    Run::Plausible { frames, settings_first }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_check() {
        let settings = [0, 0, 6, SETTINGS, 0, 0, 0, 0, 0];
        assert!(Head::plausible(&settings));
        assert_eq!(Head::parse(&settings), Head { len: 6, kind: SETTINGS, flags: 0, stream: 0 });
        assert!(!Head::plausible(&[0, 0, 6, SETTINGS, 0, 0, 0, 0, 1]));
        assert!(!Head::plausible(&[0, 0, 5, SETTINGS, 0, 0, 0, 0, 0]));
        assert!(Head::plausible(&[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0]));
        assert!(Head::plausible(&[0, 0, 40, HEADERS, END_HEADERS, 0, 0, 0, 1]));
        assert!(!Head::plausible(&[0, 0, 40, HEADERS, END_HEADERS, 0, 0, 0, 0]));
        assert!(!Head::plausible(&[0, 0, 40, HEADERS, 0x40, 0, 0, 0, 1]));
        assert!(!Head::plausible(&[0, 0, 40, 0x0a, 0, 0, 0, 0, 1]));
        assert!(!Head::plausible(&[0, 0x40, 1, DATA, 0, 0, 0, 0, 1]));
        assert!(!Head::plausible(&[0, 0, 4, WINDOW_UPDATE, 0, 0x80, 0, 0, 1]));
        assert!(!Head::plausible(b"*2\r\n$3\r\nG"));
        assert!(!Head::plausible(b"GET / HTT"));
    }

    #[test]
    fn runs() {
        let mut two = vec![0, 0, 4, WINDOW_UPDATE, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        two.extend_from_slice(&[0, 0, 8, PING, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(run(&two, two.len()), Run::Plausible { frames: 2, settings_first: false });
        assert_eq!(run(&two[..5], two.len()), Run::Plausible { frames: 0, settings_first: false });
        assert_eq!(
            run(b"\x00\x00\x0c\x04\x00\x00\x00\x00\x00", 21),
            Run::Plausible { frames: 1, settings_first: true }
        );
        two[13] = 0x77;
        assert_eq!(run(&two, two.len()), Run::No);
    }
}
