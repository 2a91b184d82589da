//! HPACK header-block decoding (RFC 7541) that fails closed: each direction of a connection has
//! its own dynamic table, and a connection not seen from its start (or a header block the
//! capture lost) leaves entries the decoder cannot know. Those are never guessed: a header that
//! names one is reported as unresolved, while entries inserted since stay exact (an index counts
//! from the newest entry, so the k-th newest insertion seen is entry 61 + k whatever came
//! before).

use std::collections::VecDeque;

use super::huffman;

/// RFC 7541 Appendix A.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The initial table size (SETTINGS_HEADER_TABLE_SIZE's default), in RFC 7541 size units.
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Largest table this decoder keeps whatever size updates say (bytes, by RFC 7541's measure):
/// entries beyond it are forgotten, and references to them resolve to nothing.
const MAX_TABLE_SIZE: usize = 64 * 1024;
/// Longest name or value kept (bytes); longer ones are cut.
const MAX_STRING: usize = 8192;

/// A header the block named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Header {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    /// A header whose name (or whole entry) is in the part of the table never seen.
    Unresolved,
}

/// A header block that is malformed: the table's state after it is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadBlock;

/// A table entry's name and value, when known.
type Known<'a> = Option<(&'a [u8], &'a [u8])>;

#[derive(Clone, Debug)]
struct Entry {
    /// None: inserted with a name that could not be resolved.
    name: Option<Vec<u8>>,
    value: Vec<u8>,
    /// RFC 7541 size: name + value + 32 (of the real strings, before any cut).
    size: usize,
}

/// The decoding state of one direction.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Newest first.
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// Entries may exist beyond `entries` that were never seen.
    unknown_tail: bool,
}

impl Decoder {
    /// A decoder for a direction seen from its first byte.
    pub fn new() -> Self {
        Decoder { entries: VecDeque::new(), size: 0, max_size: DEFAULT_TABLE_SIZE, unknown_tail: false }
    }

    /// A decoder for a direction joined after its start: the table's contents are unknown.
    pub fn mid_stream() -> Self {
        Decoder { unknown_tail: true, ..Decoder::new() }
    }

    /// Whether every entry of the table is known.
    pub fn is_complete(&self) -> bool {
        !self.unknown_tail
    }

    /// Some header blocks were not seen (capture gap, lost framing): the insertions they made
    /// are unknown, so every entry's index is.
    pub fn lose(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.unknown_tail = true;
    }

    fn evict(&mut self) {
        let limit = self.max_size.min(MAX_TABLE_SIZE);
        while self.size > limit {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    fn insert(&mut self, name: Option<Vec<u8>>, value: Vec<u8>, size: usize) {
        self.entries.push_front(Entry { name, value, size });
        self.size += size;
        // An entry larger than the table empties it (RFC 7541 4.4): evict() does that too.
        self.evict();
    }

    /// Entry `index` (1-based, static then dynamic): Some((name, value)) when known.
    fn lookup(&self, index: usize) -> Result<Known<'_>, BadBlock> {
        if index == 0 {
            return Err(BadBlock);
        }
        if let Some((n, v)) = STATIC.get(index - 1) {
            return Ok(Some((n, v)));
        }
        match self.entries.get(index - 1 - STATIC.len()) {
            Some(e) => Ok(e.name.as_deref().map(|n| (n, e.value.as_slice()))),
            // Beyond what is known: unseen entries, or ones this decoder forgot (table larger
            // than it keeps). Never an error that could be a guess either way.
            None => Ok(None),
        }
    }

    /// Decodes one whole header block into `out`. On `Err` the table is lost (see `lose`);
    /// `out` keeps the fields decoded before the fault.
    pub fn decode(&mut self, block: &[u8], out: &mut Vec<Field>) -> Result<(), BadBlock> {
        let r = self.decode_inner(block, out);
        if r.is_err() {
            self.lose();
        }
        r
    }

    /// Decodes the captured prefix of a header block whose rest was not captured: the fields
    /// wholly within `prefix` are reported, then the table is lost (the rest may insert).
    pub fn decode_prefix(&mut self, prefix: &[u8], out: &mut Vec<Field>) {
        let mut at = 0;
        while at < prefix.len() {
            match self.field(&prefix[at..], out) {
                Ok(Some(n)) => at += n,
                Ok(None) | Err(BadBlock) => break,
            }
        }
        self.lose();
    }

    fn decode_inner(&mut self, block: &[u8], out: &mut Vec<Field>) -> Result<(), BadBlock> {
        let mut at = 0;
        while at < block.len() {
            match self.field(&block[at..], out)? {
                Some(n) => at += n,
                None => return Err(BadBlock),
            }
        }
        Ok(())
    }

    /// One representation at the start of `b`: Some(bytes used), None when `b` ends inside it.
    fn field(&mut self, b: &[u8], out: &mut Vec<Field>) -> Result<Option<usize>, BadBlock> {
        let first = b[0];
        if first & 0x80 != 0 {
            // Indexed header field.
            let Some((index, n)) = integer(b, 7)? else { return Ok(None) };
            out.push(match self.lookup(index)? {
                Some((name, value)) => Field::Header { name: name.to_vec(), value: value.to_vec() },
                None => Field::Unresolved,
            });
            return Ok(Some(n));
        }
        if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            let Some((size, n)) = integer(b, 5)? else { return Ok(None) };
            self.max_size = size;
            self.evict();
            return Ok(Some(n));
        }
        // Literals: with incremental indexing (01), without (0000), never indexed (0001).
        let (prefix, indexing) = if first & 0xc0 == 0x40 { (6, true) } else { (4, false) };
        let Some((index, mut n)) = integer(b, prefix)? else { return Ok(None) };
        let name: Option<(Vec<u8>, usize)> = if index == 0 {
            let Some((name, len, used)) = string(&b[n..])? else { return Ok(None) };
            n += used;
            Some((name, len))
        } else {
            self.lookup(index)?.map(|(name, _)| (name.to_vec(), name.len()))
        };
        let Some((value, value_len, used)) = string(&b[n..])? else { return Ok(None) };
        n += used;
        let size = name.as_ref().map_or(0, |(_, len)| *len) + value_len + 32;
        match name {
            Some((name, _)) => {
                if indexing {
                    self.insert(Some(name.clone()), value.clone(), size);
                }
                out.push(Field::Header { name, value });
            }
            None => {
                if indexing {
                    // The entry exists at the peer; its name is unknown here.
                    self.insert(None, value, size);
                }
                out.push(Field::Unresolved);
            }
        }
        Ok(Some(n))
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// An N-bit-prefix integer (RFC 7541 5.1): Some((value, bytes used)), None when `b` ends first.
fn integer(b: &[u8], prefix: u32) -> Result<Option<(usize, usize)>, BadBlock> {
    let mask = (1u32 << prefix) - 1;
    let Some(&first) = b.first() else { return Ok(None) };
    let mut v = usize::from(first) & mask as usize;
    if v < mask as usize {
        return Ok(Some((v, 1)));
    }
    let mut shift = 0;
    for (i, &byte) in b.iter().enumerate().skip(1) {
        if shift > 28 {
            return Err(BadBlock);
        }
        v += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    Ok(None)
}

/// A string literal: Some((bytes, length of the real string, bytes used)); the bytes kept are
/// cut to `MAX_STRING`.
fn string(b: &[u8]) -> Result<Option<(Vec<u8>, usize, usize)>, BadBlock> {
    let Some(&first) = b.first() else { return Ok(None) };
    let Some((len, n)) = integer(b, 7)? else { return Ok(None) };
    let Some(raw) = b.get(n..n + len) else { return Ok(None) };
    if first & 0x80 == 0 {
        let kept = raw[..raw.len().min(MAX_STRING)].to_vec();
        return Ok(Some((kept, len, n + len)));
    }
    let mut out = Vec::with_capacity(len.min(MAX_STRING));
    huffman::decode(raw, &mut out, MAX_STRING).map_err(|_| BadBlock)?;
    // The table's size counts the decoded string (RFC 7541 4.1): decode it all to measure.
    let real = if out.len() < MAX_STRING { out.len() } else { huffman_len(raw) };
    Ok(Some((out, real, n + len)))
}

fn huffman_len(raw: &[u8]) -> usize {
    let mut sink = Vec::new();
    // Decoding again to count is rare (strings past MAX_STRING) and bounded by the block.
    let _ = huffman::decode(raw, &mut sink, usize::MAX);
    sink.len()
}

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;
