//! Settings of the Jaeger agent role: the sampling strategies document (the Jaeger agent's
//! `--sampling.strategies-file` format), served to clients by `agent::sampling`. The listener
//! addresses are fields of `ExportConfig` (`config::export`), under the YAML key `export`.

use serde::Deserialize;

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// `param` is the probability of sampling a trace, 0..=1.
    Probabilistic,
    /// `param` is the most traces per second, an integer 0..=32767.
    Ratelimiting,
}

/// A per-operation strategy (probabilistic only, as in Jaeger).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperationStrategy {
    pub operation: String,
    #[serde(rename = "type")]
    pub kind: StrategyKind,
    pub param: f64,
}

/// A strategy: the default one, or one service's.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// Set for service strategies, absent for the default.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(rename = "type")]
    pub kind: StrategyKind,
    pub param: f64,
    #[serde(default)]
    pub operation_strategies: Vec<OperationStrategy>,
}

/// The strategies document (the Jaeger agent's `--sampling.strategies-file` format).
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StrategiesConfig {
    /// Used for services not listed. Default: probabilistic 0.001.
    #[serde(default)]
    pub default_strategy: Option<StrategySpec>,
    #[serde(default)]
    pub service_strategies: Vec<StrategySpec>,
}
