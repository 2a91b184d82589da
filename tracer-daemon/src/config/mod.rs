//! Configuration: one YAML file (`--config`, unknown keys rejected) with defaults in code, and
//! command-line flags that override it. Every field says its meaning and unit.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod agent;
pub mod deps;
pub mod export;
pub mod filter;
pub mod kubernetes;
pub mod store;

pub use filter::Filters;

use self::deps::GraphConfig;
use self::export::ExportConfig;
use self::kubernetes::{KubernetesConfig, PodSource};
use self::store::StoreConfig;

/// Default address of `/metrics` and `/healthz` (the jaeger-agent admin port, on loopback).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:14271";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address of the admin HTTP endpoint (`/metrics`, `/healthz`); empty turns it off.
    pub metrics_addr: String,
    /// Connections open at once on the admin endpoint (count); one more is closed and counted.
    pub admin_max_connections: usize,
    /// Largest request body the admin endpoint accepts (bytes); larger gets 413.
    pub admin_max_body_bytes: usize,
    /// Time allowed to receive one whole request on the admin endpoint (milliseconds); a
    /// client still sending then gets 408 and is closed.
    pub admin_request_timeout_ms: u64,
    pub capture: CaptureConfig,
    pub filter: Filters,
    /// Trace only sockets of this network namespace: an `ip netns` name or a namespace file
    /// path. Unset: every namespace of the host.
    pub netns: Option<String>,
    /// Redact captured payloads (SQL literals, Redis values, header values). On by default.
    pub redact: bool,
    /// Carry each client request's trace context to the server host in a TCP option (kind 253,
    /// ExID 0x7AC1) on its first packet. On by default; `false` sends nothing extra.
    pub propagate: bool,
    /// Attach uprobes to the Redis and MySQL client libraries (hiredis, libmysqlclient,
    /// libmariadb) found in running processes. On by default.
    pub uprobes: bool,
    /// Span stitching.
    pub stitch: StitchSettings,
    /// Export to Jaeger collectors, console / JSON output, and the agent listeners.
    pub export: ExportConfig,
    /// The service dependency graph served on the admin endpoint (limits, pairing window).
    pub deps: GraphConfig,
    /// Process metadata: `/proc` root and the Kubernetes pod source.
    pub kubernetes: KubernetesConfig,
    /// Recent traces kept in memory for the query API (budget, hand-off queue).
    pub store: StoreConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StitchSettings {
    /// How long finished spans wait for late parent links before export (milliseconds).
    pub hold_ms: u64,
    /// How long one side of a same-host call waits for the other side (milliseconds).
    pub join_window_ms: u64,
    /// How long an alias or late parent found by a join is kept for the spans of its trace
    /// (milliseconds).
    pub link_window_ms: u64,
    /// Most entries of each link table (aliases, late parents); the oldest go first (count).
    pub max_links: usize,
    /// Most requests waiting for their other side, per direction; the oldest go first (count).
    pub max_joins: usize,
}

impl Default for StitchSettings {
    fn default() -> Self {
        StitchSettings {
            hold_ms: 300,
            join_window_ms: 30_000,
            link_window_ms: 60_000,
            max_links: 131_072,
            max_joins: 65_536,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            metrics_addr: DEFAULT_METRICS_ADDR.into(),
            admin_max_connections: 64,
            admin_max_body_bytes: 64 * 1024,
            admin_request_timeout_ms: 10_000,
            capture: CaptureConfig::default(),
            filter: Filters::default(),
            netns: None,
            redact: true,
            propagate: true,
            uprobes: true,
            stitch: StitchSettings::default(),
            export: ExportConfig::default(),
            deps: GraphConfig::default(),
            kubernetes: KubernetesConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

/// How syscalls are hooked. Raw tracepoints run one program for every syscall and filter by
/// number; classic tracepoints run only for the traced calls but cost more per hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyscallHook {
    Raw,
    Tracepoint,
}

/// Benchmark floors (`cargo xtask bench`): in place of the tracer's kernel programs, programs
/// that show what any tracer must pay at least. Nothing is traced while one is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeFloor {
    /// Programs that return at once, on the hooks the tracer uses.
    Null,
    /// One ring record per data call on a TCP socket (times, socket, return value, first 255
    /// bytes), which the daemon counts and discards.
    Minimal,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Payload bytes captured per data syscall (bytes; at most 8191).
    pub capture_bytes: u32,
    /// Kernel ring buffer size (bytes, rounded up to a power of two).
    pub ring_buffer_bytes: u32,
    /// How syscalls are hooked: `raw` (raw tracepoints) or `tracepoint` (classic ones).
    pub syscall_hook: SyscallHook,
    /// Connections tracked at once; the least recently used is evicted beyond this (count).
    pub max_connections: usize,
    /// Decoded events queued between the ring-buffer reader and span assembly (count).
    pub event_queue: usize,
    /// Bytes of decoded events (payloads and records) queued between the reader and span
    /// assembly; an event beyond it is dropped and counted
    /// (`tracer_events_dropped_total{reason="pipeline_bytes"}`) (bytes).
    pub event_queue_bytes: usize,
    /// Have the kernel account each program's run time while the daemon runs, shown as
    /// `tracer_bpf_program_*` metrics. Costs two clock reads per program run; off by default.
    pub bpf_stats: bool,
    /// Load a benchmark floor instead of the tracer's programs (`null` or `minimal`); unset
    /// traces as usual. For `cargo xtask bench`: nothing is traced while a floor is loaded.
    pub probe_floor: Option<ProbeFloor>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            capture_bytes: tracer_common::DEFAULT_CAPTURE,
            ring_buffer_bytes: 16 * 1024 * 1024,
            syscall_hook: SyscallHook::Raw,
            max_connections: 65_536,
            event_queue: 65_536,
            event_queue_bytes: 64 * 1024 * 1024,
            bpf_stats: false,
            probe_floor: None,
        }
    }
}

/// Command-line flags; each overrides the YAML value when given.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CliOverrides {
    /// Admin endpoint address for /metrics and /healthz (default 127.0.0.1:14271; empty = off).
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Connections open at once on the admin endpoint (default 64); one more is closed and
    /// counted (`tracer_listener_dropped_total{listener="admin",reason="connection_limit"}`).
    #[arg(long)]
    pub admin_max_connections: Option<usize>,
    /// Largest request body on the admin endpoint, bytes (default 65536); larger gets 413.
    #[arg(long)]
    pub admin_max_body_bytes: Option<usize>,
    /// Time allowed to receive one whole admin request, milliseconds (default 10000).
    #[arg(long)]
    pub admin_request_timeout_ms: Option<u64>,
    /// Payload bytes captured per data syscall (default 4096, at most 8191).
    #[arg(long)]
    pub capture_bytes: Option<u32>,
    /// Kernel ring buffer size in bytes (default 16 MiB).
    #[arg(long)]
    pub ring_buffer_bytes: Option<u32>,
    /// Syscall hook: raw (raw tracepoints, default) or tracepoint (classic syscall tracepoints).
    #[arg(long, value_enum)]
    pub syscall_hook: Option<SyscallHook>,
    /// Connections tracked at once (LRU beyond this; default 65536).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Account each kernel program's run time (`tracer_bpf_program_*` metrics; small cost per run).
    #[arg(long)]
    pub bpf_stats: bool,
    /// Benchmark floor: load `null` (programs that do nothing, on the tracer's hooks) or
    /// `minimal` (one ring record per socket data call) instead of the tracer's programs.
    /// Nothing is traced; `cargo xtask bench` reads the tracer's cost against these.
    #[arg(long, value_enum)]
    pub probe_floor: Option<ProbeFloor>,
    #[command(flatten)]
    pub filter: Filters,
    /// Trace only this network namespace (an `ip netns` name or a namespace file path).
    #[arg(long)]
    pub netns: Option<String>,
    /// Keep SQL literals, Redis values and header values in spans (redaction is on by default).
    #[arg(long)]
    pub no_redact: bool,
    /// Do not carry trace context in a TCP option (propagation is on by default).
    #[arg(long)]
    pub no_propagate: bool,
    /// This node's name for pod lookup and the `k8s.node.name` tag (default: $NODE_NAME, else
    /// the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Read pod metadata from this kubelet (`GET URL/pods`, polled); sets `kubernetes.source`
    /// to `kubelet`.
    #[arg(long, conflicts_with = "api_url")]
    pub kubelet_url: Option<String>,
    /// Read pod metadata from this API server (list + watch of this node's pods); sets
    /// `kubernetes.source` to `api_server`.
    #[arg(long)]
    pub api_url: Option<String>,
    /// Turn pod lookup off even inside Kubernetes.
    #[arg(long)]
    pub no_kubernetes: bool,
    /// Where the host's processes are read (`/proc`, or a mount of the host's `/proc`).
    #[arg(long)]
    pub proc_root: Option<PathBuf>,
    /// Do not attach uprobes to the Redis and MySQL client libraries (socket probes only).
    #[arg(long)]
    pub no_uprobes: bool,
    /// Memory budget of the trace store behind the query API, in bytes (default 64 MiB; 0 = off).
    #[arg(long)]
    pub store_bytes: Option<usize>,
    /// Dependency-graph edges not seen for this long are removed (milliseconds; default one
    /// hour; 0 = never).
    #[arg(long)]
    pub deps_edge_idle_ms: Option<u64>,
    /// Bytes of decoded events queued between the ring-buffer reader and span assembly
    /// (default 64 MiB); beyond it events are dropped and counted.
    #[arg(long)]
    pub event_queue_bytes: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {source}")]
    Parse { path: PathBuf, source: serde_yaml::Error },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        serde_yaml::from_str(text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Config::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                Self::from_yaml(&text, p)
            }
        }
    }

    /// Export settings: the file's, with each flag given on the command line (`explicit` holds
    /// their argument ids) taking precedence.
    pub fn apply_export(mut self, cli: &ExportConfig, explicit: &dyn Fn(&str) -> bool) -> Config {
        macro_rules! take {
            ($($field:ident),* $(,)?) => {
                $(if explicit(stringify!($field)) { self.export.$field = cli.$field.clone(); })*
            };
        }
        take!(
            collector,
            agent_udp,
            output,
            collector_token,
            collector_headers,
            collector_ca_file,
            collector_timeout_ms,
            batch_max_spans,
            batch_max_bytes,
            batch_max_age_ms,
            queue_size,
            pending_batches,
            retry_initial_ms,
            retry_max_ms,
            retry_max_elapsed_ms,
            flush_deadline_ms,
            udp_max_packet_bytes,
            console_quiet_ms,
            host_tags,
            agent_compact_addr,
            agent_binary_addr,
            sampling_addr,
            sampling_strategies_file,
            sample_own_spans,
            otlp_grpc,
            otlp_http,
            zipkin,
            zipkin_gzip,
            zipkin_addr,
            otlp_gzip,
            otlp_grpc_addr,
            otlp_http_addr,
            otlp_max_body_bytes,
            otlp_max_connections,
            otlp_request_timeout_ms,
        );
        self
    }

    /// Applies command-line overrides and checks the result.
    pub fn apply(mut self, o: &CliOverrides) -> Result<Config, ConfigError> {
        if let Some(v) = &o.metrics_addr {
            self.metrics_addr = v.clone();
        }
        if let Some(v) = o.admin_max_connections {
            self.admin_max_connections = v;
        }
        if let Some(v) = o.admin_max_body_bytes {
            self.admin_max_body_bytes = v;
        }
        if let Some(v) = o.admin_request_timeout_ms {
            self.admin_request_timeout_ms = v;
        }
        if let Some(v) = o.capture_bytes {
            self.capture.capture_bytes = v;
        }
        if let Some(v) = o.ring_buffer_bytes {
            self.capture.ring_buffer_bytes = v;
        }
        if let Some(v) = o.syscall_hook {
            self.capture.syscall_hook = v;
        }
        if let Some(v) = o.max_connections {
            self.capture.max_connections = v;
        }
        if let Some(f) = o.probe_floor {
            self.capture.probe_floor = Some(f);
        }
        if o.bpf_stats {
            self.capture.bpf_stats = true;
        }
        self.filter.extend(&o.filter);
        if o.netns.is_some() {
            self.netns = o.netns.clone();
        }
        if o.no_redact {
            self.redact = false;
        }
        if o.no_propagate {
            self.propagate = false;
        }
        let k = &mut self.kubernetes;
        if o.node_name.is_some() {
            k.node_name = o.node_name.clone();
        }
        if let Some(url) = &o.kubelet_url {
            k.source = PodSource::Kubelet;
            k.kubelet_url = Some(url.clone());
        }
        if let Some(url) = &o.api_url {
            k.source = PodSource::ApiServer;
            k.api_url = Some(url.clone());
        }
        if o.no_kubernetes {
            k.enabled = Some(false);
        }
        if let Some(p) = &o.proc_root {
            k.proc_root = p.clone();
        }
        if o.no_uprobes {
            self.uprobes = false;
        }
        if let Some(v) = o.store_bytes {
            self.store.max_bytes = v;
        }
        if let Some(v) = o.deps_edge_idle_ms {
            self.deps.edge_idle_ms = v;
        }
        if let Some(v) = o.event_queue_bytes {
            self.capture.event_queue_bytes = v;
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let max = tracer_common::MAX_CAPTURE as u32 - 1;
        if self.capture.capture_bytes > max {
            return Err(ConfigError::Invalid(format!(
                "capture_bytes {} is above the maximum {max}",
                self.capture.capture_bytes
            )));
        }
        if self.capture.max_connections == 0 || self.capture.event_queue == 0 || self.capture.event_queue_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_connections, event_queue and event_queue_bytes must be at least 1".into(),
            ));
        }
        let d = &self.deps;
        if d.max_edges == 0 || d.max_nodes < 2 || d.max_pending == 0 {
            return Err(ConfigError::Invalid(
                "deps: max_edges and max_pending must be at least 1, max_nodes at least 2".into(),
            ));
        }
        if self.admin_max_connections == 0 || self.admin_request_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "admin_max_connections and admin_request_timeout_ms must be at least 1".into(),
            ));
        }
        if self.store.max_bytes > 0 && self.store.queue == 0 {
            return Err(ConfigError::Invalid("store: queue must be at least 1".into()));
        }
        if let Some(c) = self.filter.include_comms.iter().chain(&self.filter.exclude_comms).find(|c| c.len() > 15) {
            return Err(ConfigError::Invalid(format!("command name `{c}` is longer than the kernel's 15 bytes")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tracer.example.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::from_yaml(&text, &path).unwrap();
        assert_eq!(c.capture.capture_bytes, 4096);
        assert!(c.redact);
        assert!(c.uprobes);
        assert_eq!(c.deps, GraphConfig::default());
        assert!(c.propagate);
        assert_eq!(c.kubernetes, KubernetesConfig::default());
        assert_eq!(c.store, StoreConfig::default());
    }

    #[test]
    fn the_store_budget_comes_from_file_or_flag_and_zero_turns_it_off() {
        assert_eq!(Config::default().store.max_bytes, store::DEFAULT_STORE_BYTES);
        let c = Config::from_yaml("store:\n  max_bytes: 1000\n", Path::new("x.yaml")).unwrap();
        assert_eq!(c.store.max_bytes, 1000);
        let off = c.apply(&CliOverrides { store_bytes: Some(0), ..Default::default() }).unwrap();
        assert_eq!(off.store.max_bytes, 0);
        let bad = Config::from_yaml("store:\n  queue: 0\n", Path::new("x.yaml")).unwrap();
        assert!(bad.apply(&CliOverrides::default()).unwrap_err().to_string().contains("queue"));
    }

    #[test]
    fn propagation_is_on_by_default_and_turned_off_by_file_or_flag() {
        assert!(Config::default().propagate);
        let off = Config::from_yaml("propagate: false\n", Path::new("x.yaml")).unwrap();
        assert!(!off.propagate);
        let o = CliOverrides { no_propagate: true, ..Default::default() };
        assert!(!Config::default().apply(&o).unwrap().propagate);
    }

    #[test]
    fn the_deploy_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        for rel in ["kubernetes/base/config.yaml", "kubernetes/overlays/kubelet-source/config.yaml"] {
            let path = root.join(rel);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let c = Config::from_yaml(&text, &path).unwrap();
            c.apply(&CliOverrides::default()).unwrap();
        }
    }

    #[test]
    fn kubernetes_flags_pick_the_source() {
        let o = CliOverrides {
            kubelet_url: Some("http://127.0.0.1:1".into()),
            node_name: Some("n".into()),
            ..Default::default()
        };
        let c = Config::default().apply(&o).unwrap();
        assert_eq!(c.kubernetes.source, PodSource::Kubelet);
        assert_eq!(c.kubernetes.kubelet_url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(c.kubernetes.node_name.as_deref(), Some("n"));
        let c = Config::default().apply(&CliOverrides { no_kubernetes: true, ..Default::default() }).unwrap();
        assert_eq!(c.kubernetes.enabled, Some(false));
        let c = Config::from_yaml("kubernetes:\n  source: kubelet\n  proc_root: /host/proc\n", Path::new("x")).unwrap();
        assert_eq!(c.kubernetes.proc_root, Path::new("/host/proc"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::from_yaml("capture:\n  captur_bytes: 1\n", Path::new("x.yaml")).unwrap_err().to_string();
        assert!(err.contains("captur_bytes"), "{err}");
    }

    #[test]
    fn flags_override_the_file_and_bad_values_are_named() {
        let c = Config::from_yaml("capture:\n  capture_bytes: 100\n", Path::new("x.yaml")).unwrap();
        let filter = Filters { exclude_pids: vec![7], ..Default::default() };
        let o = CliOverrides { capture_bytes: Some(200), filter, no_redact: true, ..Default::default() };
        let c = c.apply(&o).unwrap();
        assert_eq!(c.capture.capture_bytes, 200);
        assert_eq!(c.filter.exclude_pids, vec![7]);
        assert!(!c.redact);
        let file =
            Config::from_yaml("export:\n  collector: [\"http://a:14268\"]\n  queue_size: 7\n", Path::new("x.yaml"))
                .unwrap();
        let cli = ExportConfig { queue_size: 9, batch_max_spans: 3, ..Default::default() };
        let merged = file.apply_export(&cli, &|id| id == "batch_max_spans");
        assert_eq!(merged.export.collector, vec!["http://a:14268".to_string()]);
        assert_eq!((merged.export.queue_size, merged.export.batch_max_spans), (7, 3));
        let no_edges = Config::from_yaml("deps:\n  max_edges: 0\n", Path::new("x.yaml")).unwrap();
        assert!(no_edges.apply(&CliOverrides::default()).unwrap_err().to_string().contains("max_edges"));
        let deps = Config::from_yaml("deps:\n  pair_window_ms: 100\n", Path::new("x.yaml")).unwrap();
        assert_eq!((deps.deps.pair_window_ms, deps.deps.max_edges), (100, 10_000));
        let bad = CliOverrides { capture_bytes: Some(1 << 20), ..Default::default() };
        assert!(Config::default().apply(&bad).unwrap_err().to_string().contains("capture_bytes"));
    }
}
