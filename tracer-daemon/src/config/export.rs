//! Settings of the export pipeline and the agent role: one type for the command line (clap) and
//! the YAML file (serde, under the key `export`), defaults in code, and validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::agent::StrategiesConfig;
pub use crate::net::backoff::RetryPolicy;

/// Where finished spans go.
#[derive(clap::ValueEnum, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Jaeger Thrift batches to `collector` (HTTP) or `agent_udp` (UDP).
    Jaeger,
    /// Each finished trace as an indented tree on stdout.
    Console,
    /// One JSON object per span per line on stdout.
    Json,
}

/// Export and agent settings. Every field has a default; the YAML form uses the field names
/// (`batch_max_spans: 500`), the command line the kebab-case flags (`--batch-max-spans 500`).
#[derive(clap::Args, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Jaeger collector URL, `http://` or `https://`, e.g. `http://jaeger:14268`; the path
    /// `/api/traces` is used when the URL has none. Repeatable: batches are spread across
    /// collectors and fail over when one is down. Default: none.
    #[arg(long = "collector", value_name = "URL")]
    pub collector: Vec<String>,

    /// Send Jaeger `emitBatch` (compact protocol) over UDP to this `HOST:PORT`, e.g. a Jaeger
    /// agent's `127.0.0.1:6831`. Default: none.
    #[arg(long, value_name = "HOST:PORT")]
    pub agent_udp: Option<String>,

    /// OTLP/gRPC destination, e.g. `http://otel-collector:4317` (`https://` for TLS). Repeatable:
    /// each URL is a destination of its own, with its own queue, beside any Jaeger one.
    /// Collector headers, token and CA file apply. Default: none.
    #[arg(long = "otlp-grpc", value_name = "URL")]
    pub otlp_grpc: Vec<String>,

    /// OTLP/HTTP destination (protobuf), e.g. `http://otel-collector:4318`; the path
    /// `/v1/traces` is used when the URL has none. Repeatable, like `otlp_grpc`. Default: none.
    #[arg(long = "otlp-http", value_name = "URL")]
    pub otlp_http: Vec<String>,

    /// Zipkin v2 destination (JSON), e.g. `http://zipkin:9411`; the path `/api/v2/spans` is
    /// used when the URL has none. Repeatable, like `otlp_grpc`. Default: none.
    #[arg(long = "zipkin", value_name = "URL")]
    pub zipkin: Vec<String>,

    /// Compress Zipkin requests with gzip (Zipkin servers and collectors accept it).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub zipkin_gzip: bool,

    /// Listen for apps' Zipkin v2 spans (`POST /api/v2/spans`, JSON, gzip or not), with the
    /// OTLP receivers' body, connection and time limits. Empty turns it off.
    #[arg(long, default_value = defaults::ZIPKIN_ADDR, value_name = "ADDR")]
    pub zipkin_addr: String,

    /// Compress OTLP requests (HTTP and gRPC) with gzip.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub otlp_gzip: bool,

    /// Listen for apps' OTLP/gRPC exports (`TraceService/Export`). Empty turns it off.
    #[arg(long, default_value = defaults::OTLP_GRPC_ADDR, value_name = "ADDR")]
    pub otlp_grpc_addr: String,

    /// Listen for apps' OTLP/HTTP exports (`POST /v1/traces`, protobuf or JSON, gzip). Empty
    /// turns it off.
    #[arg(long, default_value = defaults::OTLP_HTTP_ADDR, value_name = "ADDR")]
    pub otlp_http_addr: String,

    /// Largest OTLP request accepted by the receivers, bytes, after decompression; larger gets
    /// 413 (HTTP) or an error status (gRPC).
    #[arg(long, default_value_t = defaults::OTLP_MAX_BODY_BYTES, value_name = "BYTES")]
    pub otlp_max_body_bytes: usize,

    /// Most connections open at once per OTLP receiver; one more is closed at once and counted
    /// (`tracer_listener_dropped_total{reason="connection_limit"}`).
    #[arg(long, default_value_t = defaults::OTLP_MAX_CONNECTIONS, value_name = "CONNECTIONS")]
    pub otlp_max_connections: usize,

    /// Time allowed to receive one whole OTLP request, milliseconds: OTLP/HTTP head and body
    /// (a client still sending then gets 408 and is closed, `reason="request_timeout"`), or
    /// one OTLP/gRPC call.
    #[arg(long, default_value_t = defaults::OTLP_REQUEST_TIMEOUT_MS, value_name = "MS")]
    pub otlp_request_timeout_ms: u64,

    /// Output mode. Default: `jaeger` when a collector or `agent_udp` is set, else `console`
    /// (none when only OTLP destinations are set).
    #[arg(long, value_enum, value_name = "MODE")]
    pub output: Option<OutputMode>,

    /// Bearer token sent to collectors as `Authorization: Bearer <token>`. Default: none.
    #[arg(long, env = "TRACER_COLLECTOR_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub collector_token: Option<String>,

    /// Extra header on every collector request, as `Name: value` (e.g. an API key header).
    /// Repeatable. Default: none.
    #[arg(long = "collector-header", value_name = "NAME: VALUE")]
    pub collector_headers: Vec<String>,

    /// PEM file of CA certificates trusted for `https://` collectors in addition to the
    /// built-in web PKI roots. Default: none.
    #[arg(long, value_name = "PATH")]
    pub collector_ca_file: Option<PathBuf>,

    /// Time limit of one collector request (connect, send, response), milliseconds.
    #[arg(long, default_value_t = defaults::COLLECTOR_TIMEOUT_MS, value_name = "MS")]
    pub collector_timeout_ms: u64,

    /// Most spans in one batch.
    #[arg(long, default_value_t = defaults::BATCH_MAX_SPANS, value_name = "SPANS")]
    pub batch_max_spans: usize,

    /// Most encoded span bytes in one batch (Thrift size of the spans, without the envelope).
    #[arg(long, default_value_t = defaults::BATCH_MAX_BYTES, value_name = "BYTES")]
    pub batch_max_bytes: usize,

    /// Longest time a span waits in an open batch before the batch is sent, milliseconds.
    #[arg(long, default_value_t = defaults::BATCH_MAX_AGE_MS, value_name = "MS")]
    pub batch_max_age_ms: u64,

    /// Capacity of the span queue in front of the batcher, in spans. A span offered to a full
    /// queue is dropped and counted (`reason="queue_full"`).
    #[arg(long, default_value_t = defaults::QUEUE_SIZE, value_name = "SPANS")]
    pub queue_size: usize,

    /// Capacity of the queue of finished batches waiting for delivery, in batches. When it is
    /// full the batcher waits and the span queue absorbs the backlog.
    #[arg(long, default_value_t = defaults::PENDING_BATCHES, value_name = "BATCHES")]
    pub pending_batches: usize,

    /// First retry delay after a retryable failure (refused, timeout, 5xx), milliseconds; it
    /// doubles per attempt, with full jitter.
    #[arg(long, default_value_t = defaults::RETRY_INITIAL_MS, value_name = "MS")]
    pub retry_initial_ms: u64,

    /// Longest retry delay, milliseconds.
    #[arg(long, default_value_t = defaults::RETRY_MAX_MS, value_name = "MS")]
    pub retry_max_ms: u64,

    /// A batch still failing this long after its first attempt is dropped and counted
    /// (`reason="send_failed"`), milliseconds.
    #[arg(long, default_value_t = defaults::RETRY_MAX_ELAPSED_MS, value_name = "MS")]
    pub retry_max_elapsed_ms: u64,

    /// Time allowed at shutdown (SIGTERM / SIGINT) to send what is queued, milliseconds.
    #[arg(long, default_value_t = defaults::FLUSH_DEADLINE_MS, value_name = "MS")]
    pub flush_deadline_ms: u64,

    /// Largest UDP packet sent with `agent_udp`, bytes. Batches are split to fit; a single span
    /// too large for a packet is dropped and counted (`reason="too_large"`).
    #[arg(long, default_value_t = defaults::UDP_MAX_PACKET_BYTES, value_name = "BYTES")]
    pub udp_max_packet_bytes: usize,

    /// Console output: a trace is printed once no span of it arrived for this long,
    /// milliseconds (and at shutdown).
    #[arg(long, default_value_t = defaults::CONSOLE_QUIET_MS, value_name = "MS")]
    pub console_quiet_ms: u64,

    /// Tag added to every exported process, as `key=value`. Repeatable. Default: none.
    #[arg(long = "host-tag", value_name = "KEY=VALUE")]
    pub host_tags: Vec<String>,

    /// Listen for Jaeger clients' `emitBatch` in the compact protocol (UDP). Loopback by default
    /// (a DaemonSet gives the node address, e.g. `$(NODE_IP):6831`); empty turns the listener
    /// off.
    #[arg(long, default_value = defaults::AGENT_COMPACT_ADDR, value_name = "ADDR")]
    pub agent_compact_addr: String,

    /// Listen for Jaeger clients' `emitBatch` in the binary protocol (UDP). Loopback by default;
    /// empty turns the listener off.
    #[arg(long, default_value = defaults::AGENT_BINARY_ADDR, value_name = "ADDR")]
    pub agent_binary_addr: String,

    /// Serve `GET /sampling?service=NAME` for Jaeger clients (HTTP). Loopback by default; empty
    /// turns it off.
    #[arg(long, default_value = defaults::SAMPLING_ADDR, value_name = "ADDR")]
    pub sampling_addr: String,

    /// Sampling strategies file in the Jaeger agent's format (JSON or YAML); takes precedence
    /// over `sampling`. Default: none (every service gets the default strategy).
    #[arg(long, value_name = "PATH")]
    pub sampling_strategies_file: Option<PathBuf>,

    /// Sampling strategies inline (YAML only), same shape as the strategies file.
    #[arg(skip)]
    pub sampling: Option<StrategiesConfig>,

    /// Apply the sampling strategies (file, inline, else Jaeger's default of probabilistic
    /// 0.001) to the daemon's own spans too: the service graph still counts every span; the
    /// trace store and the destinations get the kept ones. Off by default: every span is kept.
    #[arg(long)]
    pub sample_own_spans: bool,
}

/// The default values, in the units of the fields.
pub mod defaults {
    pub const COLLECTOR_TIMEOUT_MS: u64 = 5_000;
    pub const BATCH_MAX_SPANS: usize = 500;
    pub const BATCH_MAX_BYTES: usize = 1024 * 1024;
    pub const BATCH_MAX_AGE_MS: u64 = 1_000;
    pub const QUEUE_SIZE: usize = 10_000;
    pub const PENDING_BATCHES: usize = 8;
    pub const RETRY_INITIAL_MS: u64 = 200;
    pub const RETRY_MAX_MS: u64 = 5_000;
    pub const RETRY_MAX_ELAPSED_MS: u64 = 30_000;
    pub const FLUSH_DEADLINE_MS: u64 = 5_000;
    /// The Jaeger clients' UDP packet limit.
    pub const UDP_MAX_PACKET_BYTES: usize = 65_000;
    pub const CONSOLE_QUIET_MS: u64 = 2_000;
    pub const AGENT_COMPACT_ADDR: &str = "127.0.0.1:6831";
    pub const AGENT_BINARY_ADDR: &str = "127.0.0.1:6832";
    pub const SAMPLING_ADDR: &str = "127.0.0.1:5778";
    pub const OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
    pub const OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";
    pub const ZIPKIN_ADDR: &str = "127.0.0.1:9411";
    pub const OTLP_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
    pub const OTLP_MAX_CONNECTIONS: usize = 64;
    /// Enough for the largest body over a slow link; far less than a trickling client wants.
    pub const OTLP_REQUEST_TIMEOUT_MS: u64 = 30_000;
}

impl Default for ExportConfig {
    fn default() -> Self {
        use defaults::*;
        ExportConfig {
            collector: Vec::new(),
            agent_udp: None,
            otlp_grpc: Vec::new(),
            otlp_http: Vec::new(),
            zipkin: Vec::new(),
            zipkin_gzip: false,
            zipkin_addr: ZIPKIN_ADDR.to_owned(),
            otlp_gzip: true,
            otlp_grpc_addr: OTLP_GRPC_ADDR.to_owned(),
            otlp_http_addr: OTLP_HTTP_ADDR.to_owned(),
            otlp_max_body_bytes: OTLP_MAX_BODY_BYTES,
            otlp_max_connections: OTLP_MAX_CONNECTIONS,
            otlp_request_timeout_ms: OTLP_REQUEST_TIMEOUT_MS,
            output: None,
            collector_token: None,
            collector_headers: Vec::new(),
            collector_ca_file: None,
            collector_timeout_ms: COLLECTOR_TIMEOUT_MS,
            batch_max_spans: BATCH_MAX_SPANS,
            batch_max_bytes: BATCH_MAX_BYTES,
            batch_max_age_ms: BATCH_MAX_AGE_MS,
            queue_size: QUEUE_SIZE,
            pending_batches: PENDING_BATCHES,
            retry_initial_ms: RETRY_INITIAL_MS,
            retry_max_ms: RETRY_MAX_MS,
            retry_max_elapsed_ms: RETRY_MAX_ELAPSED_MS,
            flush_deadline_ms: FLUSH_DEADLINE_MS,
            udp_max_packet_bytes: UDP_MAX_PACKET_BYTES,
            console_quiet_ms: CONSOLE_QUIET_MS,
            host_tags: Vec::new(),
            agent_compact_addr: AGENT_COMPACT_ADDR.to_owned(),
            agent_binary_addr: AGENT_BINARY_ADDR.to_owned(),
            sampling_addr: SAMPLING_ADDR.to_owned(),
            sampling_strategies_file: None,
            sampling: None,
            sample_own_spans: false,
        }
    }
}

/// Invalid export settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid collector URL {url:?}: {why}")]
    CollectorUrl { url: String, why: String },
    #[error("invalid agent_udp address {0:?}: expected HOST:PORT")]
    AgentUdp(String),
    #[error("output jaeger needs --collector or --agent-udp")]
    NoDestination,
    #[error("set either --collector or --agent-udp, not both")]
    TwoDestinations,
    #[error("invalid collector header {0:?}: expected `Name: value`")]
    Header(String),
    #[error("invalid host tag {0:?}: expected key=value")]
    HostTag(String),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("udp_max_packet_bytes {0} is outside 512..=65507")]
    PacketSize(usize),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid sampling strategies: {0}")]
    Sampling(String),
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Where the pipeline sends, after defaults are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Http(Vec<String>),
    Udp(String),
    Console,
    Json,
    /// OTLP/gRPC to this URL.
    OtlpGrpc(String),
    /// OTLP/HTTP (protobuf) to this URL.
    OtlpHttp(String),
    /// Zipkin v2 JSON to this URL.
    Zipkin(String),
}

/// Batch limits: spans, encoded bytes and age, whichever is reached first closes a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_spans: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

impl ExportConfig {
    /// The output mode in force: the explicit one, else jaeger with a destination, else console.
    pub fn output_mode(&self) -> OutputMode {
        self.output.unwrap_or(if self.collector.is_empty() && self.agent_udp.is_none() {
            OutputMode::Console
        } else {
            OutputMode::Jaeger
        })
    }

    /// Checks every setting and tells where spans go.
    pub fn destination(&self) -> Result<Destination, ConfigError> {
        for (name, v) in [
            ("batch_max_spans", self.batch_max_spans),
            ("batch_max_bytes", self.batch_max_bytes),
            ("queue_size", self.queue_size),
            ("pending_batches", self.pending_batches),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.collector_timeout_ms == 0 {
            return Err(ConfigError::Zero("collector_timeout_ms"));
        }
        if !(512..=65_507).contains(&self.udp_max_packet_bytes) {
            return Err(ConfigError::PacketSize(self.udp_max_packet_bytes));
        }
        for h in &self.collector_headers {
            parse_header(h)?;
        }
        for t in &self.host_tags {
            parse_host_tag(t)?;
        }
        match self.output_mode() {
            OutputMode::Console => Ok(Destination::Console),
            OutputMode::Json => Ok(Destination::Json),
            OutputMode::Jaeger => match (&self.collector[..], &self.agent_udp) {
                ([], None) => Err(ConfigError::NoDestination),
                ([_, ..], Some(_)) => Err(ConfigError::TwoDestinations),
                ([], Some(addr)) => {
                    let ok = addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                    if ok { Ok(Destination::Udp(addr.clone())) } else { Err(ConfigError::AgentUdp(addr.clone())) }
                }
                (urls, None) => {
                    for u in urls {
                        crate::net::http::Url::parse(u)
                            .map_err(|e| ConfigError::CollectorUrl { url: e.url, why: e.why })?;
                    }
                    Ok(Destination::Http(urls.to_vec()))
                }
            },
        }
    }

    /// Every destination spans go to: the Jaeger (or console / JSON) one unless only OTLP or
    /// Zipkin destinations are set, then each OTLP and Zipkin URL.
    pub fn destinations(&self) -> Result<Vec<Destination>, ConfigError> {
        let otlp = !self.otlp_grpc.is_empty() || !self.otlp_http.is_empty() || !self.zipkin.is_empty();
        let jaeger = !self.collector.is_empty() || self.agent_udp.is_some();
        let mut out = Vec::new();
        if !otlp || jaeger || self.output.is_some_and(|o| o != OutputMode::Jaeger) {
            out.push(self.destination()?);
        } else {
            // Validates the shared settings.
            let only_otlp = ExportConfig { output: Some(OutputMode::Console), ..self.clone() };
            only_otlp.destination()?;
        }
        for (urls, grpc) in [(&self.otlp_grpc, true), (&self.otlp_http, false)] {
            for u in urls {
                crate::net::http::Url::parse(u).map_err(|e| ConfigError::CollectorUrl { url: e.url, why: e.why })?;
                out.push(if grpc { Destination::OtlpGrpc(u.clone()) } else { Destination::OtlpHttp(u.clone()) });
            }
        }
        for u in &self.zipkin {
            crate::net::http::Url::parse(u).map_err(|e| ConfigError::CollectorUrl { url: e.url, why: e.why })?;
            out.push(Destination::Zipkin(u.clone()));
        }
        if self.otlp_max_body_bytes == 0 {
            return Err(ConfigError::Zero("otlp_max_body_bytes"));
        }
        if self.otlp_max_connections == 0 {
            return Err(ConfigError::Zero("otlp_max_connections"));
        }
        if self.otlp_request_timeout_ms == 0 {
            return Err(ConfigError::Zero("otlp_request_timeout_ms"));
        }
        Ok(out)
    }

    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_spans: self.batch_max_spans.max(1),
            max_bytes: self.batch_max_bytes.max(1),
            max_age: Duration::from_millis(self.batch_max_age_ms),
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(self.retry_initial_ms.max(1)),
            max: Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms).max(1)),
            max_elapsed: Duration::from_millis(self.retry_max_elapsed_ms),
        }
    }

    pub fn flush_deadline(&self) -> Duration {
        Duration::from_millis(self.flush_deadline_ms)
    }

    /// The configured `key=value` host tags.
    pub fn parsed_host_tags(&self) -> Result<Vec<(String, String)>, ConfigError> {
        self.host_tags.iter().map(|t| parse_host_tag(t)).collect()
    }

    /// The configured collector headers, with the bearer token first.
    pub fn parsed_headers(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        if let Some(token) = &self.collector_token {
            out.push(("Authorization".to_owned(), format!("Bearer {token}")));
        }
        for h in &self.collector_headers {
            out.push(parse_header(h)?);
        }
        Ok(out)
    }
}

fn parse_header(h: &str) -> Result<(String, String), ConfigError> {
    let (name, value) = h.split_once(':').ok_or_else(|| ConfigError::Header(h.to_owned()))?;
    let name = name.trim();
    let value = value.trim();
    let token_ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token_ok || value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(ConfigError::Header(h.to_owned()));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_host_tag(t: &str) -> Result<(String, String), ConfigError> {
    match t.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(ConfigError::HostTag(t.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        export: ExportConfig,
    }

    #[test]
    fn clap_and_serde_defaults_agree() {
        let cli = Cli::parse_from(["tracer"]);
        assert_eq!(cli.export, ExportConfig::default());
        let yaml: ExportConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(yaml, ExportConfig::default());
        assert_eq!(ExportConfig::default().destination().unwrap(), Destination::Console);
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::parse_from([
            "tracer",
            "--collector",
            "http://a:14268",
            "--collector",
            "https://b/api/traces",
            "--agent-compact-addr",
            "",
            "--batch-max-spans",
            "10",
            "--collector-header",
            "X-Key: v",
        ]);
        let c = cli.export;
        assert_eq!(c.collector.len(), 2);
        assert_eq!(c.agent_compact_addr, "");
        assert_eq!(c.batch_max_spans, 10);
        assert_eq!(c.destination().unwrap(), Destination::Http(c.collector.clone()));
        assert_eq!(c.parsed_headers().unwrap(), vec![("X-Key".to_owned(), "v".to_owned())]);
    }

    #[test]
    fn yaml_rejects_unknown_fields_and_reads_sampling() {
        assert!(serde_yaml::from_str::<ExportConfig>("colector: []").is_err());
        let c: ExportConfig = serde_yaml::from_str(
            "collector: [\"http://x:1\"]\nsampling:\n  default_strategy: {type: probabilistic, param: 0.5}\n",
        )
        .unwrap();
        assert!(c.sampling.is_some());
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let mut c = ExportConfig { output: Some(OutputMode::Jaeger), ..Default::default() };
        assert!(matches!(c.destination(), Err(ConfigError::NoDestination)));
        c.agent_udp = Some("nohost".into());
        assert!(matches!(c.destination(), Err(ConfigError::AgentUdp(_))));
        c.agent_udp = Some("127.0.0.1:6831".into());
        assert_eq!(c.destination().unwrap(), Destination::Udp("127.0.0.1:6831".into()));
        c.collector = vec!["ftp://x".into()];
        assert!(matches!(c.destination(), Err(ConfigError::TwoDestinations)));
        c.agent_udp = None;
        assert!(matches!(c.destination(), Err(ConfigError::CollectorUrl { .. })));
        let c = ExportConfig { collector_headers: vec!["Bad\r\nHeader: x".into()], ..Default::default() };
        assert!(matches!(c.destination(), Err(ConfigError::Header(_))));
        let c = ExportConfig { queue_size: 0, ..Default::default() };
        assert!(matches!(c.destination(), Err(ConfigError::Zero("queue_size"))));
    }
}
