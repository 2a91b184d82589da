//! HPACK's Huffman code (RFC 7541, Appendix B): decoding only. The code is canonical, so a
//! string decodes with per-length first codes and counts, one bit at a time.

use std::sync::OnceLock;

/// (code, length in bits) of symbols 0..=255 and EOS (256), from RFC 7541 Appendix B.
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8,13), (0x7fffd8,23), (0xfffffe2,28), (0xfffffe3,28), (0xfffffe4,28), (0xfffffe5,28), (0xfffffe6,28),
    (0xfffffe7,28), (0xfffffe8,28), (0xffffea,24), (0x3ffffffc,30), (0xfffffe9,28), (0xfffffea,28),
    (0x3ffffffd,30), (0xfffffeb,28), (0xfffffec,28), (0xfffffed,28), (0xfffffee,28), (0xfffffef,28),
    (0xffffff0,28), (0xffffff1,28), (0xffffff2,28), (0x3ffffffe,30), (0xffffff3,28), (0xffffff4,28),
    (0xffffff5,28), (0xffffff6,28), (0xffffff7,28), (0xffffff8,28), (0xffffff9,28), (0xffffffa,28),
    (0xffffffb,28), (0x14,6), (0x3f8,10), (0x3f9,10), (0xffa,12), (0x1ff9,13), (0x15,6), (0xf8,8), (0x7fa,11),
    (0x3fa,10), (0x3fb,10), (0xf9,8), (0x7fb,11), (0xfa,8), (0x16,6), (0x17,6), (0x18,6), (0x0,5), (0x1,5),
    (0x2,5), (0x19,6), (0x1a,6), (0x1b,6), (0x1c,6), (0x1d,6), (0x1e,6), (0x1f,6), (0x5c,7), (0xfb,8),
    (0x7ffc,15), (0x20,6), (0xffb,12), (0x3fc,10), (0x1ffa,13), (0x21,6), (0x5d,7), (0x5e,7), (0x5f,7), (0x60,7),
    (0x61,7), (0x62,7), (0x63,7), (0x64,7), (0x65,7), (0x66,7), (0x67,7), (0x68,7), (0x69,7), (0x6a,7), (0x6b,7),
    (0x6c,7), (0x6d,7), (0x6e,7), (0x6f,7), (0x70,7), (0x71,7), (0x72,7), (0xfc,8), (0x73,7), (0xfd,8),
    (0x1ffb,13), (0x7fff0,19), (0x1ffc,13), (0x3ffc,14), (0x22,6), (0x7ffd,15), (0x3,5), (0x23,6), (0x4,5),
    (0x24,6), (0x5,5), (0x25,6), (0x26,6), (0x27,6), (0x6,5), (0x74,7), (0x75,7), (0x28,6), (0x29,6), (0x2a,6),
    (0x7,5), (0x2b,6), (0x76,7), (0x2c,6), (0x8,5), (0x9,5), (0x2d,6), (0x77,7), (0x78,7), (0x79,7), (0x7a,7),
    (0x7b,7), (0x7ffe,15), (0x7fc,11), (0x3ffd,14), (0x1ffd,13), (0xffffffc,28), (0xfffe6,20), (0x3fffd2,22),
    (0xfffe7,20), (0xfffe8,20), (0x3fffd3,22), (0x3fffd4,22), (0x3fffd5,22), (0x7fffd9,23), (0x3fffd6,22),
    (0x7fffda,23), (0x7fffdb,23), (0x7fffdc,23), (0x7fffdd,23), (0x7fffde,23), (0xffffeb,24), (0x7fffdf,23),
    (0xffffec,24), (0xffffed,24), (0x3fffd7,22), (0x7fffe0,23), (0xffffee,24), (0x7fffe1,23), (0x7fffe2,23),
    (0x7fffe3,23), (0x7fffe4,23), (0x1fffdc,21), (0x3fffd8,22), (0x7fffe5,23), (0x3fffd9,22), (0x7fffe6,23),
    (0x7fffe7,23), (0xffffef,24), (0x3fffda,22), (0x1fffdd,21), (0xfffe9,20), (0x3fffdb,22), (0x3fffdc,22),
    (0x7fffe8,23), (0x7fffe9,23), (0x1fffde,21), (0x7fffea,23), (0x3fffdd,22), (0x3fffde,22), (0xfffff0,24),
    (0x1fffdf,21), (0x3fffdf,22), (0x7fffeb,23), (0x7fffec,23), (0x1fffe0,21), (0x1fffe1,21), (0x3fffe0,22),
    (0x1fffe2,21), (0x7fffed,23), (0x3fffe1,22), (0x7fffee,23), (0x7fffef,23), (0xfffea,20), (0x3fffe2,22),
    (0x3fffe3,22), (0x3fffe4,22), (0x7ffff0,23), (0x3fffe5,22), (0x3fffe6,22), (0x7ffff1,23), (0x3ffffe0,26),
    (0x3ffffe1,26), (0xfffeb,20), (0x7fff1,19), (0x3fffe7,22), (0x7ffff2,23), (0x3fffe8,22), (0x1ffffec,25),
    (0x3ffffe2,26), (0x3ffffe3,26), (0x3ffffe4,26), (0x7ffffde,27), (0x7ffffdf,27), (0x3ffffe5,26),
    (0xfffff1,24), (0x1ffffed,25), (0x7fff2,19), (0x1fffe3,21), (0x3ffffe6,26), (0x7ffffe0,27), (0x7ffffe1,27),
    (0x3ffffe7,26), (0x7ffffe2,27), (0xfffff2,24), (0x1fffe4,21), (0x1fffe5,21), (0x3ffffe8,26), (0x3ffffe9,26),
    (0xffffffd,28), (0x7ffffe3,27), (0x7ffffe4,27), (0x7ffffe5,27), (0xfffec,20), (0xfffff3,24), (0xfffed,20),
    (0x1fffe6,21), (0x3fffe9,22), (0x1fffe7,21), (0x1fffe8,21), (0x7ffff3,23), (0x3fffea,22), (0x3fffeb,22),
    (0x1ffffee,25), (0x1ffffef,25), (0xfffff4,24), (0xfffff5,24), (0x3ffffea,26), (0x7ffff4,23), (0x3ffffeb,26),
    (0x7ffffe6,27), (0x3ffffec,26), (0x3ffffed,26), (0x7ffffe7,27), (0x7ffffe8,27), (0x7ffffe9,27),
    (0x7ffffea,27), (0x7ffffeb,27), (0xffffffe,28), (0x7ffffec,27), (0x7ffffed,27), (0x7ffffee,27),
    (0x7ffffef,27), (0x7fffff0,27), (0x3ffffee,26), (0x3fffffff,30),
];

/// Longest code (bits).
const MAX_LEN: usize = 30;

struct Canon {
    /// Per length: the first code of that length, how many codes have it, and where its
    /// symbols begin in `symbols`.
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u32; MAX_LEN + 1],
    /// Symbols ordered by (length, code).
    symbols: [u16; 257],
}

fn canon() -> &'static Canon {
    static CANON: OnceLock<Canon> = OnceLock::new();
    CANON.get_or_init(|| {
        let mut order: Vec<u16> = (0..257).collect();
        order.sort_by_key(|&s| (CODES[s as usize].1, CODES[s as usize].0));
        let mut c =
            Canon { first: [0; MAX_LEN + 1], count: [0; MAX_LEN + 1], offset: [0; MAX_LEN + 1], symbols: [0; 257] };
        for (i, &s) in order.iter().enumerate() {
            let (code, len) = CODES[s as usize];
            let len = len as usize;
            if c.count[len] == 0 {
                c.first[len] = code;
                c.offset[len] = i as u32;
            }
            c.count[len] += 1;
            c.symbols[i] = s;
        }
        c
    })
}

/// Why a Huffman string does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadHuffman;

/// Decodes `data`, appending to `out` (at most `max` bytes; the rest is decoded and dropped).
pub fn decode(data: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), BadHuffman> {
    let c = canon();
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for &byte in data {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > MAX_LEN {
                return Err(BadHuffman);
            }
            let idx = code.wrapping_sub(c.first[len]);
            if c.count[len] > 0 && code >= c.first[len] && idx < c.count[len] {
                let sym = c.symbols[(c.offset[len] + idx) as usize];
                if sym == 256 {
                    return Err(BadHuffman);
                }
                if out.len() < max {
                    out.push(sym as u8);
                }
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if len >= 8 || code != (1u32 << len) - 1 {
        return Err(BadHuffman);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn dec(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        decode(&hex(s), &mut out, usize::MAX).expect("decodes");
        out
    }

    #[test]
    fn rfc7541_appendix_c4_strings() {
        assert_eq!(dec("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), b"www.example.com");
        assert_eq!(dec("a8eb 1064 9cbf"), b"no-cache");
        assert_eq!(dec("25a8 49e9 5ba9 7d7f"), b"custom-key");
        assert_eq!(dec("25a8 49e9 5bb8 e8b4 bf"), b"custom-value");
        assert_eq!(dec("6402"), b"302");
        assert_eq!(dec("aec3 771a 4b"), b"private");
        assert_eq!(dec("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"), b"Mon, 21 Oct 2013 20:13:21 GMT");
        assert_eq!(dec("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"), b"https://www.example.com");
        assert_eq!(
            dec(
                "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"
            ),
            b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
        );
    }

    #[test]
    fn every_symbol_round_trips() {
        for (sym, &(code, len)) in CODES.iter().enumerate().take(256) {
            // The code followed by ones up to the next byte boundary.
            let bits = u64::from(len);
            let padded = bits.div_ceil(8) * 8;
            let v = (u64::from(code) << (padded - bits)) | ((1u64 << (padded - bits)) - 1);
            let bytes: Vec<u8> = (0..padded / 8).rev().map(|i| (v >> (i * 8)) as u8).collect();
            let mut out = Vec::new();
            decode(&bytes, &mut out, 10).expect("decodes");
            assert_eq!(out, [sym as u8]);
        }
    }

    #[test]
    fn bad_padding_and_eos_fail() {
        let mut out = Vec::new();
        // '0' is 00000 (5 bits): then 3 bits of padding must be ones.
        assert_eq!(decode(&[0x00], &mut out, 10), Err(BadHuffman));
        assert_eq!(decode(&[0x07], &mut out.clone(), 10), Ok(()));
        // A whole byte of ones as padding is too long.
        assert_eq!(decode(&[0x07, 0xff], &mut Vec::new(), 10), Err(BadHuffman));
        // EOS (30 ones) is an error.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new(), 10), Err(BadHuffman));
    }
}
