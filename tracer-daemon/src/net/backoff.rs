//! Retrying over the network: which HTTP statuses are worth another try, and exponential
//! backoff with jitter, shared by the export senders and the pod metadata sync.

use std::time::Duration;

/// Retry timing for retryable failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How long a caller keeps retrying one piece of work (the caller checks it).
    pub max_elapsed: Duration,
}

/// Whether an HTTP status is worth retrying: 5xx only. 4xx means the collector will not take
/// this batch, whatever happens; 2xx is success.
pub fn status_is_retryable(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Successive delays: `initial * 2^attempt`, capped at `max`, then "equal jitter": a uniform
/// pick in the upper half of that value, so concurrent senders spread out but never retry at once.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff { policy, attempt: 0 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = delay(&self.policy, self.attempt, fastrand::f64());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over at the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay for `attempt` (0-based) with `rand01` in `[0, 1)`.
pub fn delay(policy: &RetryPolicy, attempt: u32, rand01: f64) -> Duration {
    let base = policy.initial.saturating_mul(1u32 << attempt.min(20)).min(policy.max);
    base.mul_f64(0.5 + 0.5 * rand01.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_5xx_statuses_retry() {
        for s in [500, 502, 503, 504, 599] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [200, 202, 301, 400, 401, 403, 404, 408, 413, 429, 499, 600] {
            assert!(!status_is_retryable(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            max_elapsed: Duration::from_secs(10),
        };
        assert_eq!(delay(&p, 0, 1.0), Duration::from_millis(100));
        assert_eq!(delay(&p, 0, 0.0), Duration::from_millis(50));
        assert_eq!(delay(&p, 2, 1.0), Duration::from_millis(400));
        assert_eq!(delay(&p, 4, 1.0), Duration::from_millis(1000));
        assert_eq!(delay(&p, 60, 0.0), Duration::from_millis(500));
        let mut b = Backoff::new(p);
        for i in 0..10 {
            let d = b.next_delay();
            let cap = p.initial.saturating_mul(1 << i).min(p.max);
            assert!(d >= cap / 2 && d <= cap, "{i}: {d:?}");
        }
        assert_eq!(b.attempts(), 10);
        b.reset();
        assert!(b.next_delay() <= p.initial);
    }
}
