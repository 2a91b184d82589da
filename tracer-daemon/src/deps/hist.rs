//! Latency histograms of the dependency graph: fixed Prometheus-style buckets in seconds, shared
//! by every daemon so that graphs from several hosts add bucket by bucket.

use serde::{Deserialize, Serialize};

/// Upper bounds of the latency buckets (seconds); `+Inf` is implied after the last one. Fixed:
/// a fleet merge adds histograms bucket by bucket and rejects graphs with other bounds.
pub const BUCKETS_SECONDS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets including `+Inf`.
pub const BUCKET_COUNT: usize = BUCKETS_SECONDS.len() + 1;

/// Call latencies over `BUCKETS_SECONDS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// Observations per bucket, not cumulative; the last entry is the `+Inf` bucket.
    pub counts: Vec<u64>,
    /// Sum of the observations (microseconds: integers add exactly, in any order).
    pub sum_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { counts: vec![0; BUCKET_COUNT], sum_us: 0 }
    }
}

impl Latency {
    /// Records one call of `duration_us` microseconds (negative durations count as 0).
    pub fn observe_us(&mut self, duration_us: i64) {
        let us = duration_us.max(0) as u64;
        let secs = us as f64 / 1e6;
        let idx = BUCKETS_SECONDS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS_SECONDS.len());
        self.fix_len();
        self.counts[idx] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Sum of the observations (seconds).
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another histogram over the same buckets.
    pub fn add(&mut self, other: &Latency) {
        self.fix_len();
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += *b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Cumulative counts per bound, as Prometheus `_bucket{le}` series (the last is `+Inf`).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect()
    }

    /// The `q` quantile (0..=1) in seconds, interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without observations. A quantile in the
    /// `+Inf` bucket is reported as the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            let upto = below + c;
            if (upto as f64) >= rank && *c > 0 {
                let Some(upper) = BUCKETS_SECONDS.get(i) else {
                    return BUCKETS_SECONDS.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { BUCKETS_SECONDS[i - 1] };
                let within = (rank - below as f64) / *c as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            below = upto;
        }
        BUCKETS_SECONDS.last().copied()
    }

    /// Whether the histogram has the bucket layout of `BUCKETS_SECONDS`.
    pub fn well_formed(&self) -> bool {
        self.counts.len() == BUCKET_COUNT
    }

    fn fix_len(&mut self) {
        self.counts.resize(BUCKET_COUNT, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_with_inclusive_upper_bounds() {
        let mut h = Latency::default();
        h.observe_us(100); // exactly 0.0001 s
        h.observe_us(2_000); // 0.002 s → le 0.0025
        h.observe_us(20_000_000); // 20 s → +Inf
        let c = h.cumulative();
        assert_eq!(c[0], 1);
        assert_eq!(c[4], 2, "le=0.0025");
        assert_eq!(c[BUCKET_COUNT - 2], 2, "le=10");
        assert_eq!(c[BUCKET_COUNT - 1], 3, "+Inf");
        assert_eq!(h.sum_us, 20_002_100);
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let mut h = Latency::default();
        for _ in 0..100 {
            h.observe_us(3_000); // (0.0025, 0.005]
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 0.00375).abs() < 1e-9, "{p50}");
        assert_eq!(Latency::default().quantile(0.5), None);
        let mut slow = Latency::default();
        slow.observe_us(60_000_000);
        assert_eq!(slow.quantile(0.99), Some(10.0));
    }

    #[test]
    fn histograms_add_bucket_by_bucket() {
        let mut a = Latency::default();
        a.observe_us(1_000);
        let mut b = Latency::default();
        b.observe_us(1_000);
        b.observe_us(7_000_000);
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.cumulative()[3], 2);
        assert!(a.well_formed());
    }
}
