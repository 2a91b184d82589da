//! One direction of a connection as the session sees it: buffered unparsed bytes (bounded), the
//! timing of the calls that carried them, and the count of bytes still to pass over.

use std::collections::VecDeque;

use super::{At, Event};

/// Most bytes buffered per direction while a message is incomplete.
pub(crate) const MAX_BUF: usize = 64 * 1024;

/// Capacity an empty buffer may keep (bytes); past it, an emptied buffer gives back the rest,
/// so that one large message does not hold its high-water mark for the connection's life.
pub(crate) const KEEP_CAPACITY: usize = 4 * 1024;

/// Segment slots an empty stream may keep (count), for the same reason.
const KEEP_SEGS: usize = 16;

/// A skip that only the end of the connection ends (HTTP/1.0 body delimited by close).
pub(crate) const UNTIL_CLOSE: u64 = u64::MAX;

/// The call that carried some buffered bytes (CLOCK_MONOTONIC ns), and where in that call the
/// first of them was.
#[derive(Debug, Clone, Copy)]
struct Seg {
    len: usize,
    enter: u64,
    exit: u64,
    off: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stream {
    buf: Vec<u8>,
    /// Index of the first unconsumed byte of `buf`.
    head: usize,
    /// Timing of the unconsumed bytes, oldest first; lengths add up to `len()`.
    segs: VecDeque<Seg>,
    /// Bytes (captured or not) to pass over before parsing resumes.
    pub skip: u64,
    /// Fires when `skip` reaches 0.
    pub after_skip: Option<Event>,
    /// Entry time of the call that carried the first byte of the message being parsed.
    pub msg_start: u64,
    /// Where the message being parsed begins, when its first byte was buffered.
    pub msg_at: Option<At>,
    /// Framing was lost: bytes are dropped until a call starts with a plausible message.
    pub lost: bool,
    /// Exit time of the last call seen on this direction.
    pub last_exit: u64,
}

impl Stream {
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.head..).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.head >= self.buf.len()
    }

    pub fn room(&self) -> usize {
        MAX_BUF.saturating_sub(self.buf.len().saturating_sub(self.head))
    }

    /// Buffers as much of `data` as fits; returns how many bytes were taken. `off` is where
    /// `data` begins in the call that carried it.
    pub fn append(&mut self, data: &[u8], enter: u64, exit: u64, off: u64) -> usize {
        let n = data.len().min(self.room());
        if n == 0 {
            return 0;
        }
        if self.head > 0 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(&data[..n]);
        self.segs.push_back(Seg { len: n, enter, exit, off });
        n
    }

    /// Entry time of the call that carried the first buffered byte.
    pub fn front_enter(&self) -> Option<u64> {
        self.segs.front().map(|s| s.enter)
    }

    /// Where the first buffered byte was: its call and its offset in that call.
    pub fn front_at(&self) -> Option<At> {
        self.segs.front().map(|s| At { call: s.enter, offset: s.off })
    }

    /// Drops `n` bytes from the front; returns the exit time of the call that carried the last.
    pub fn consume(&mut self, n: usize) -> Option<u64> {
        let n = n.min(self.buf.len().saturating_sub(self.head));
        self.head += n;
        let mut left = n;
        let mut exit = None;
        while left > 0 {
            let Some(seg) = self.segs.front_mut() else {
                break;
            };
            exit = Some(seg.exit);
            if seg.len > left {
                seg.len -= left;
                seg.off += left as u64;
                left = 0;
            } else {
                left -= seg.len;
                self.segs.pop_front();
            }
        }
        if self.head >= self.buf.len() {
            self.buf.clear();
            self.head = 0;
            if self.segs.is_empty() {
                self.release();
            }
        }
        exit
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.segs.clear();
        self.release();
    }

    /// Gives back the capacity of an emptied buffer beyond what an idle stream keeps.
    fn release(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        if self.segs.capacity() > KEEP_SEGS {
            self.segs.shrink_to(KEEP_SEGS);
        }
    }

    /// Heap bytes held (capacity, not length), for memory estimates.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.segs.capacity() * std::mem::size_of::<Seg>()
    }

    /// Forgets the framing: nothing buffered, nothing to skip.
    pub fn lose(&mut self) {
        self.clear();
        self.skip = 0;
        self.after_skip = None;
        self.lost = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_reports_the_call_of_the_last_byte() {
        let mut s = Stream::default();
        assert_eq!(s.append(b"abc", 1, 2, 0), 3);
        assert_eq!(s.append(b"de", 3, 4, 5), 2);
        assert_eq!(s.front_enter(), Some(1));
        assert_eq!(s.front_at(), Some(At { call: 1, offset: 0 }));
        assert_eq!(s.consume(3), Some(2));
        assert_eq!(s.front_enter(), Some(3));
        assert_eq!(s.front_at(), Some(At { call: 3, offset: 5 }));
        assert_eq!(s.data(), b"de");
        assert_eq!(s.consume(1), Some(4));
        assert_eq!(s.front_at(), Some(At { call: 3, offset: 6 }));
        assert_eq!(s.data(), b"e");
        assert_eq!(s.consume(5), Some(4));
        assert!(s.is_empty());
        assert_eq!(s.front_enter(), None);
    }

    #[test]
    fn an_emptied_buffer_gives_back_its_high_water_capacity() {
        let mut s = Stream::default();
        for i in 0..1000u64 {
            s.append(&[b'x'; 60], i, i, 0);
        }
        assert!(s.buf.capacity() >= 60_000);
        s.consume(30_000);
        assert!(s.buf.capacity() >= 60_000, "a buffer still in use keeps its room");
        s.consume(30_000);
        assert!(s.is_empty());
        assert!(s.buf.capacity() <= KEEP_CAPACITY, "capacity {}", s.buf.capacity());
        assert!(s.segs.capacity() <= KEEP_SEGS, "segments {}", s.segs.capacity());
        s.append(&[b'y'; 60_000], 0, 0, 0);
        s.clear();
        assert!(s.buf.capacity() <= KEEP_CAPACITY, "clear shrinks too: {}", s.buf.capacity());
        assert!(s.heap_bytes() <= KEEP_CAPACITY + KEEP_SEGS * std::mem::size_of::<Seg>());
    }

    #[test]
    fn append_is_bounded() {
        let mut s = Stream::default();
        let big = vec![b'x'; MAX_BUF + 10];
        assert_eq!(s.append(&big, 0, 0, 0), MAX_BUF);
        assert_eq!(s.room(), 0);
        assert_eq!(s.append(b"y", 0, 0, 0), 0);
        s.consume(10);
        assert_eq!(s.room(), 10);
    }
}
