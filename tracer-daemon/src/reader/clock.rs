//! Converts kernel CLOCK_MONOTONIC nanoseconds to wall-clock time, with one offset taken at start.

/// Wall-clock time = monotonic + `offset_ns`.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl WallClock {
    pub fn new() -> Self {
        let mono = now_ns(libc::CLOCK_MONOTONIC);
        let real = now_ns(libc::CLOCK_REALTIME);
        WallClock { offset_ns: real - mono }
    }

    /// A fixed offset, for tests.
    pub fn with_offset(offset_ns: i128) -> Self {
        WallClock { offset_ns }
    }

    /// Unix epoch microseconds of a CLOCK_MONOTONIC ns timestamp.
    pub fn unix_us(&self, mono_ns: u64) -> i64 {
        ((mono_ns as i128 + self.offset_ns) / 1000) as i64
    }

    /// CLOCK_MONOTONIC ns now.
    pub fn monotonic_now_ns() -> u64 {
        now_ns(libc::CLOCK_MONOTONIC) as u64
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn converts_monotonic_to_unix_micros() {
        let c = super::WallClock::with_offset(1_700_000_000_000_000_000);
        assert_eq!(c.unix_us(5_000), 1_700_000_000_000_005);
        let live = super::WallClock::new();
        let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let got = live.unix_us(super::WallClock::monotonic_now_ns());
        assert!((got - now_us).abs() < 1_000_000, "{got} vs {now_us}");
    }
}
