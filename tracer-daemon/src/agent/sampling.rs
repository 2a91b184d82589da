//! Sampling strategies for Jaeger clients: per-service probabilistic or rate-limiting
//! strategies (with per-operation probabilities) from the Jaeger agent's strategies format,
//! served as the JSON the clients poll at `GET /sampling?service=NAME`.
//!
//! ```yaml
//! default_strategy: {type: probabilistic, param: 0.001}
//! service_strategies:
//!   - {service: checkout, type: probabilistic, param: 0.5,
//!      operation_strategies: [{operation: "GET /health", type: probabilistic, param: 0.0}]}
//!   - {service: payments, type: ratelimiting, param: 10}
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{Response, Router};
use crate::config::agent::{StrategiesConfig, StrategyKind, StrategySpec};
use crate::config::export::ConfigError;
use crate::metrics::{Counter, Registry};

/// The Jaeger clients' own default: sample one trace in a thousand.
pub const DEFAULT_PROBABILITY: f64 = 0.001;

/// Ready-made responses, per service.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategies {
    default: Value,
    services: HashMap<String, Value>,
}

fn check(kind: StrategyKind, param: f64, what: &str) -> Result<(), ConfigError> {
    let ok = match kind {
        StrategyKind::Probabilistic => (0.0..=1.0).contains(&param),
        StrategyKind::Ratelimiting => param.fract() == 0.0 && (0.0..=32767.0).contains(&param),
    };
    if ok { Ok(()) } else { Err(ConfigError::Sampling(format!("{what}: param {param} is out of range for {kind:?}"))) }
}

fn response(spec: &StrategySpec, default_probability: f64) -> Result<Value, ConfigError> {
    let what = spec.service.as_deref().unwrap_or("default_strategy");
    check(spec.kind, spec.param, what)?;
    let mut v = match spec.kind {
        StrategyKind::Probabilistic => json!({
            "strategyType": "PROBABILISTIC",
            "probabilisticSampling": {"samplingRate": spec.param},
        }),
        StrategyKind::Ratelimiting => json!({
            "strategyType": "RATE_LIMITING",
            "rateLimitingSampling": {"maxTracesPerSecond": spec.param as i64},
        }),
    };
    if !spec.operation_strategies.is_empty() {
        let mut per_op = Vec::new();
        for op in &spec.operation_strategies {
            if op.kind != StrategyKind::Probabilistic {
                return Err(ConfigError::Sampling(format!(
                    "{what}: operation {:?}: only probabilistic operation strategies exist",
                    op.operation
                )));
            }
            check(op.kind, op.param, what)?;
            per_op.push(json!({"operation": op.operation, "probabilisticSampling": {"samplingRate": op.param}}));
        }
        let default_probability =
            if spec.kind == StrategyKind::Probabilistic { spec.param } else { default_probability };
        v["operationSampling"] = json!({
            "defaultSamplingProbability": default_probability,
            "defaultLowerBoundTracesPerSecond": 0.0,
            "perOperationStrategies": per_op,
        });
    }
    Ok(v)
}

impl Strategies {
    /// Validates a strategies document and prepares the responses.
    pub fn from_config(cfg: &StrategiesConfig) -> Result<Self, ConfigError> {
        let default_spec = cfg.default_strategy.clone().unwrap_or(StrategySpec {
            service: None,
            kind: StrategyKind::Probabilistic,
            param: DEFAULT_PROBABILITY,
            operation_strategies: Vec::new(),
        });
        let default_probability =
            if default_spec.kind == StrategyKind::Probabilistic { default_spec.param } else { DEFAULT_PROBABILITY };
        let default = response(&default_spec, DEFAULT_PROBABILITY)?;
        let mut services = HashMap::new();
        for s in &cfg.service_strategies {
            let Some(name) = &s.service else {
                return Err(ConfigError::Sampling("a service strategy needs `service`".into()));
            };
            services.insert(name.clone(), response(s, default_probability)?);
        }
        Ok(Strategies { default, services })
    }

    /// Reads the strategies: the file when given (JSON or YAML), else the inline ones, else
    /// the default.
    pub fn load(file: Option<&Path>, inline: Option<&StrategiesConfig>) -> Result<Self, ConfigError> {
        Strategies::from_config(&read_config(file, inline)?)
    }

    /// The JSON document a client of `service` gets.
    pub fn for_service(&self, service: &str) -> &Value {
        self.services.get(service).unwrap_or(&self.default)
    }
}

/// The strategies document: the file when given (JSON or YAML), else the inline one, else the
/// default (read, not yet validated: `Strategies::from_config` validates).
pub fn read_config(file: Option<&Path>, inline: Option<&StrategiesConfig>) -> Result<StrategiesConfig, ConfigError> {
    match (file, inline) {
        (Some(path), _) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.to_owned(), source: e })?;
            serde_yaml::from_str(&text).map_err(|e| ConfigError::Sampling(format!("{}: {e}", path.display())))
        }
        (None, Some(cfg)) => Ok(cfg.clone()),
        (None, None) => Ok(StrategiesConfig::default()),
    }
}

/// `GET /sampling?service=NAME` (and the legacy `GET /?service=NAME`), plus
/// `GET /baggageRestrictions` answering that no baggage is restricted.
pub fn router(strategies: Arc<Strategies>, metrics: &Registry) -> Router {
    let served: Counter = metrics.counter(
        "tracer_agent_sampling_requests_total",
        "Sampling strategy requests answered.",
        &[("result", "ok")],
    );
    let bad: Counter = metrics.counter(
        "tracer_agent_sampling_requests_total",
        "Sampling strategy requests answered.",
        &[("result", "bad_request")],
    );
    let handler = move |req: &crate::api::Request| {
        let services: Vec<&str> = req.query.iter().filter(|(k, _)| k == "service").map(|(_, v)| v.as_str()).collect();
        match services[..] {
            [service] if !service.is_empty() => {
                served.inc();
                Response::json_value(200, strategies.for_service(service))
            }
            _ => {
                bad.inc();
                Response::bad_request("'service' parameter must be provided once")
            }
        }
    };
    let handler = Arc::new(handler);
    let h2 = handler.clone();
    Router::new().route("GET", "/sampling", move |r| handler(r)).route("GET", "/", move |r| h2(r)).route(
        "GET",
        "/baggageRestrictions",
        |_| Response::json(200, "[]"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Request;

    fn get(router: &Router, target: &str) -> (u16, String) {
        let (path, q) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method: "GET".into(),
            path: path.into(),
            query: crate::api::parse_query(q),
            ..Default::default()
        };
        let resp = router.handle(&req).0;
        (resp.status, String::from_utf8(resp.body).unwrap())
    }

    const DOC: &str = r#"
default_strategy: {type: probabilistic, param: 0.25}
service_strategies:
  - service: checkout
    type: probabilistic
    param: 0.5
    operation_strategies:
      - {operation: "GET /health", type: probabilistic, param: 0.0}
  - {service: payments, type: ratelimiting, param: 10}
"#;

    #[test]
    fn serves_the_json_jaeger_clients_read() {
        let cfg: StrategiesConfig = serde_yaml::from_str(DOC).unwrap();
        let router = router(Arc::new(Strategies::from_config(&cfg).unwrap()), &Registry::default());
        let (status, body) = get(&router, "/sampling?service=payments");
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"rateLimitingSampling":{"maxTracesPerSecond":10},"strategyType":"RATE_LIMITING"}"#);
        let (_, body) = get(&router, "/sampling?service=other");
        assert_eq!(body, r#"{"probabilisticSampling":{"samplingRate":0.25},"strategyType":"PROBABILISTIC"}"#);
        let (_, body) = get(&router, "/?service=checkout");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["strategyType"], "PROBABILISTIC");
        assert_eq!(v["probabilisticSampling"]["samplingRate"], 0.5);
        assert_eq!(v["operationSampling"]["defaultSamplingProbability"], 0.5);
        assert_eq!(v["operationSampling"]["perOperationStrategies"][0]["operation"], "GET /health");
        assert_eq!(v["operationSampling"]["perOperationStrategies"][0]["probabilisticSampling"]["samplingRate"], 0.0);
        assert_eq!(get(&router, "/sampling").0, 400);
        assert_eq!(get(&router, "/sampling?service=a&service=b").0, 400);
        assert_eq!(get(&router, "/baggageRestrictions?service=a"), (200, "[]".into()));
    }

    #[test]
    fn default_is_the_jaeger_default_and_bad_params_fail() {
        let s = Strategies::load(None, None).unwrap();
        assert_eq!(s.for_service("x")["probabilisticSampling"]["samplingRate"], 0.001);
        for bad in [
            "default_strategy: {type: probabilistic, param: 1.5}",
            "default_strategy: {type: ratelimiting, param: 0.5}",
            "service_strategies: [{type: probabilistic, param: 0.5}]",
            "service_strategies: [{service: a, type: probabilistic, param: 0.5, operation_strategies: [{operation: x, type: ratelimiting, param: 1}]}]",
        ] {
            let cfg: StrategiesConfig = serde_yaml::from_str(bad).unwrap();
            assert!(Strategies::from_config(&cfg).is_err(), "{bad}");
        }
        assert!(serde_yaml::from_str::<StrategiesConfig>("default_strategy: {type: always, param: 1}").is_err());
    }

    #[test]
    fn reads_the_jaeger_json_file_format() {
        let dir = std::env::temp_dir().join(format!("tracer-sampling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("strategies.json");
        std::fs::write(&path, r#"{"service_strategies":[{"service":"foo","type":"probabilistic","param":0.8}],"default_strategy":{"type":"ratelimiting","param":5}}"#).unwrap();
        let s = Strategies::load(Some(&path), None).unwrap();
        assert_eq!(s.for_service("foo")["probabilisticSampling"]["samplingRate"], 0.8);
        assert_eq!(s.for_service("bar")["rateLimitingSampling"]["maxTracesPerSecond"], 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
