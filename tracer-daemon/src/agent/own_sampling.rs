//! The sampling strategies served to Jaeger clients, applied to the daemon's own spans
//! (`--sample-own-spans`): the service graph and its RED metrics have counted every span
//! before the decision; the trace store and the export destinations get only the kept ones.
//!
//! - **Probabilistic** (a service's, or one of its operations'): a span is kept when its trace
//!   id, read as a number in [0, 1), is below the probability. The decision needs no state and
//!   is the same on every host and for every span of a trace, so a trace is kept whole wherever
//!   its services share a probability; where they differ, the spans of services with the higher
//!   probability are kept for more traces (a trace kept by a service is kept by every service of
//!   a higher probability).
//! - **Rate limiting**: per service, at most N traces a second; the first span of a trace seen
//!   here decides for the trace's later spans here (decisions remembered for
//!   `DECISIONS` traces, oldest forgotten first).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::config::agent::{StrategiesConfig, StrategyKind, StrategySpec};
use crate::metrics::{Counter, Registry};
use crate::model::hash::FastMap;
use crate::model::{Span, TraceId};

use super::sampling::DEFAULT_PROBABILITY;

/// Trace decisions remembered for rate-limited services.
const DECISIONS: usize = 65_536;

/// Whether the trace id falls below `p` (ids read as uniform in [0, 1)).
fn below(trace: TraceId, p: f64) -> bool {
    if p >= 1.0 {
        return true;
    }
    // 53 bits: every value is exact in an f64.
    ((trace.low >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// Up to `per_sec` decisions a second, with a burst of one second's worth (at least one).
struct TokenBucket {
    per_sec: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    fn new(per_sec: f64) -> Self {
        TokenBucket { per_sec, tokens: per_sec.max(1.0), at: None }
    }

    fn take(&mut self, now: Instant) -> bool {
        let cap = self.per_sec.max(1.0);
        if let Some(at) = self.at {
            self.tokens = (self.tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_sec).min(cap);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 && self.per_sec > 0.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

enum Rule {
    Probabilistic { p: f64, operations: HashMap<String, f64> },
    RateLimiting(TokenBucket),
}

impl Rule {
    fn from_spec(s: &StrategySpec) -> Rule {
        match s.kind {
            StrategyKind::Probabilistic => Rule::Probabilistic {
                p: s.param,
                operations: s.operation_strategies.iter().map(|o| (o.operation.clone(), o.param)).collect(),
            },
            StrategyKind::Ratelimiting => Rule::RateLimiting(TokenBucket::new(s.param)),
        }
    }
}

/// Rate-limited traces already decided here, oldest first out.
#[derive(Default)]
struct Decisions {
    kept: FastMap<TraceId, bool>,
    order: VecDeque<TraceId>,
}

impl Decisions {
    fn get(&self, t: TraceId) -> Option<bool> {
        self.kept.get(&t).copied()
    }

    fn insert(&mut self, t: TraceId, keep: bool) {
        if self.kept.len() >= DECISIONS
            && let Some(old) = self.order.pop_front()
        {
            self.kept.remove(&old);
        }
        self.kept.insert(t, keep);
        self.order.push_back(t);
    }
}

/// Decides which of the daemon's own spans are kept; counts both outcomes.
pub struct OwnSampler {
    default: Rule,
    services: HashMap<String, Rule>,
    decided: Decisions,
    kept: Counter,
    sampled_out: Counter,
}

impl OwnSampler {
    /// The strategies document's rules (validated by `sampling::Strategies` when served),
    /// with Jaeger's default strategy (probabilistic 0.001) for services it does not list.
    pub fn new(cfg: &StrategiesConfig, registry: &Registry) -> OwnSampler {
        let default = cfg
            .default_strategy
            .as_ref()
            .map_or(Rule::Probabilistic { p: DEFAULT_PROBABILITY, operations: HashMap::new() }, Rule::from_spec);
        let services =
            cfg.service_strategies.iter().filter_map(|s| Some((s.service.clone()?, Rule::from_spec(s)))).collect();
        let counter = |decision| {
            registry.counter(
                "tracer_own_spans_sampled_total",
                "The daemon's own spans by sampling decision (--sample-own-spans); sampled_out spans \
                 were counted in the service graph but neither stored nor exported",
                &[("decision", decision)],
            )
        };
        OwnSampler {
            default,
            services,
            decided: Decisions::default(),
            kept: counter("kept"),
            sampled_out: counter("sampled_out"),
        }
    }

    /// Whether `span` is kept, decided by the strategy of its service.
    pub fn keep(&mut self, span: &Span, now: Instant) -> bool {
        let rule = self.services.get_mut(span.process.service_name.as_str()).unwrap_or(&mut self.default);
        let keep = match rule {
            Rule::Probabilistic { p, operations } => {
                below(span.trace_id, *operations.get(&span.operation).unwrap_or(p))
            }
            Rule::RateLimiting(bucket) => match self.decided.get(span.trace_id) {
                Some(k) => k,
                None => {
                    let k = bucket.take(now);
                    self.decided.insert(span.trace_id, k);
                    k
                }
            },
        };
        if keep { &self.kept } else { &self.sampled_out }.inc();
        keep
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::{Body, Process};

    const DOC: &str = r#"
default_strategy: {type: probabilistic, param: 0.25}
service_strategies:
  - service: checkout
    type: probabilistic
    param: 1.0
    operation_strategies:
      - {operation: "GET /health", type: probabilistic, param: 0.0}
  - {service: payments, type: ratelimiting, param: 2}
"#;

    fn span(service: &str, operation: &str, trace: u64) -> Span {
        Span {
            trace_id: TraceId { high: 7, low: trace },
            span_id: trace | 1,
            parent_span_id: 0,
            operation: operation.into(),
            flags: 1,
            start_us: 0,
            duration_us: 1,
            process: Arc::new(Process { service_name: service.into(), tags: Vec::new() }),
            body: Body::App(Box::default()),
        }
    }

    fn sampler() -> OwnSampler {
        OwnSampler::new(&serde_yaml::from_str(DOC).unwrap(), &Registry::default())
    }

    /// Trace ids spread evenly over the whole range.
    fn traces(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(move |i| i.wrapping_mul(u64::MAX / n))
    }

    #[test]
    fn probabilities_keep_their_share_by_trace_id_alike_for_every_span_of_a_trace() {
        let mut s = sampler();
        let now = Instant::now();
        let kept = traces(10_000).filter(|&t| s.keep(&span("cart", "GET /cart", t), now)).count();
        assert!((2_400..=2_600).contains(&kept), "the default 0.25 kept {kept} of 10000");
        // The same traces, another service of the same probability and another daemon: the
        // same decisions.
        let mut other = sampler();
        for t in traces(1_000) {
            assert_eq!(s.keep(&span("cart", "GET /cart", t), now), other.keep(&span("search", "q", t), now));
        }
        assert!(traces(100).all(|t| s.keep(&span("checkout", "POST /pay", t), now)), "checkout keeps all");
        assert!(!traces(100).any(|t| s.keep(&span("checkout", "GET /health", t), now)), "its health checks none");
        assert_eq!(s.kept.get() + s.sampled_out.get(), 10_000 + 1_000 + 200, "every decision is counted");
    }

    #[test]
    fn rate_limiting_keeps_n_traces_a_second_and_whole_traces_here() {
        let mut s = sampler();
        let t0 = Instant::now();
        let decided: Vec<bool> = (1..=5).map(|t| s.keep(&span("payments", "charge", t), t0)).collect();
        assert_eq!(decided, [true, true, false, false, false], "two traces a second");
        // Later spans of a decided trace follow its decision, tokens or not.
        assert!(s.keep(&span("payments", "refund", 1), t0));
        assert!(!s.keep(&span("payments", "refund", 3), t0 + Duration::from_secs(5)));
        // A second later, new traces get tokens again.
        assert!(s.keep(&span("payments", "charge", 6), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn without_a_document_the_jaeger_default_applies() {
        let mut s = OwnSampler::new(&StrategiesConfig::default(), &Registry::default());
        let now = Instant::now();
        let kept = traces(100_000).filter(|&t| s.keep(&span("any", "op", t), now)).count();
        assert!((50..=150).contains(&kept), "0.001 kept {kept} of 100000");
    }

    #[test]
    fn remembered_decisions_stay_bounded() {
        let mut d = Decisions::default();
        for t in 0..(DECISIONS as u64 + 10) {
            d.insert(TraceId { high: 0, low: t }, true);
        }
        assert_eq!(d.kept.len(), DECISIONS);
        assert_eq!(d.get(TraceId { high: 0, low: 0 }), None, "the oldest went first");
    }
}
