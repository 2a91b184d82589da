//! Settings of process metadata and of the Kubernetes pod source (YAML key `kubernetes`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The service account files every pod gets (unless `automountServiceAccountToken: false`).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where pod metadata comes from.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PodSource {
    /// The API server, `GET /api/v1/pods?fieldSelector=spec.nodeName=NODE`, kept current by a
    /// watch (`watch=true`) and re-listed every `resync_interval_s`. Needs RBAC `get`, `list`,
    /// `watch` on `pods`.
    #[default]
    ApiServer,
    /// The node's kubelet, `GET /pods` on its read API (port 10250), re-listed every
    /// `kubelet_poll_interval_s` and soon after an unknown container shows up. Needs RBAC `get`
    /// on `nodes/proxy`. Spares the API server the watch on large clusters.
    Kubelet,
}

/// Process metadata and Kubernetes pod lookup. Every field has a default; the section is
/// optional. Outside Kubernetes (no `KUBERNETES_SERVICE_HOST` in the daemon's environment and
/// no URL configured) pod lookup is off and processes are named from `/proc` alone.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Pod lookup on or off. Unset: on when `KUBERNETES_SERVICE_HOST` is set or `api_url` /
    /// `kubelet_url` is given.
    pub enabled: Option<bool>,
    /// Where pod metadata comes from: `api_server` (watch) or `kubelet` (polling).
    pub source: PodSource,
    /// API server base URL, e.g. `https://10.96.0.1:443`. Default: built from
    /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.
    pub api_url: Option<String>,
    /// Kubelet base URL, e.g. `https://10.0.0.5:10250`. Default: `https://NODE:10250` where
    /// NODE is `NODE_IP` from the daemon's environment, else the node name.
    pub kubelet_url: Option<String>,
    /// This node's name, as in `spec.nodeName`. Default: `NODE_NAME` from the daemon's
    /// environment (set it with the downward API), else the host name.
    pub node_name: Option<String>,
    /// File holding the bearer token sent as `Authorization: Bearer …`. Read again on every
    /// connection (projected tokens rotate). A missing file sends no token.
    pub token_file: PathBuf,
    /// PEM file of CA certificates trusted for `https://` URLs, in addition to the web PKI
    /// roots. Default: the service account's `ca.crt` when that file exists.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (kubelets often serve self-signed certificates).
    /// Off by default; prefer `ca_file`.
    pub insecure_skip_tls_verify: bool,
    /// Full re-list of the node's pods at least this often, as a fallback for missed watch
    /// events (seconds).
    pub resync_interval_s: u64,
    /// How long one watch request stays open before it is renewed (seconds).
    pub watch_timeout_s: u64,
    /// Kubelet source: re-list period (seconds).
    pub kubelet_poll_interval_s: u64,
    /// Time limit to connect and receive a response head, and of a list body (milliseconds).
    pub request_timeout_ms: u64,
    /// Where the host's processes are read: `/proc`, or a bind mount of the host's `/proc`
    /// (e.g. `/host/proc`) when the daemon runs in its own PID namespace.
    pub proc_root: PathBuf,
    /// Processes whose metadata is cached at once (count); exited ones are dropped first.
    pub max_cached_processes: usize,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: None,
            source: PodSource::ApiServer,
            api_url: None,
            kubelet_url: None,
            node_name: None,
            token_file: Path::new(SERVICE_ACCOUNT_DIR).join("token"),
            ca_file: None,
            insecure_skip_tls_verify: false,
            resync_interval_s: 300,
            watch_timeout_s: 290,
            kubelet_poll_interval_s: 15,
            request_timeout_ms: 10_000,
            proc_root: PathBuf::from("/proc"),
            max_cached_processes: 16_384,
        }
    }
}

/// Reads one variable of the daemon's environment; injectable for tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The daemon's own environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The pod source settled from the config and the daemon's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSettings {
    pub source: PodSource,
    /// Base URL (scheme, host, port) of the API server or kubelet.
    pub url: String,
    pub node_name: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    pub resync: Duration,
    pub watch_timeout: Duration,
    pub kubelet_poll: Duration,
    pub request_timeout: Duration,
}

impl KubernetesConfig {
    /// The node name: the setting, `NODE_NAME`, else `hostname`.
    pub fn node_name_or(&self, env: EnvLookup<'_>, hostname: &str) -> String {
        self.node_name.clone().or_else(|| env("NODE_NAME")).unwrap_or_else(|| hostname.to_owned())
    }

    /// The pod source to use, or `None` when pod lookup is off (explicitly, or automatically
    /// outside Kubernetes).
    pub fn source_settings(&self, env: EnvLookup<'_>, hostname: &str) -> Option<SourceSettings> {
        let in_cluster = env("KUBERNETES_SERVICE_HOST").is_some();
        let explicit_url = self.api_url.is_some() || self.kubelet_url.is_some();
        if !self.enabled.unwrap_or(in_cluster || explicit_url) {
            return None;
        }
        let node_name = self.node_name_or(env, hostname);
        let url = match self.source {
            PodSource::ApiServer => self.api_url.clone().or_else(|| {
                let host = env("KUBERNETES_SERVICE_HOST")?;
                let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
                // An IPv6 service address needs brackets in a URL.
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                Some(format!("https://{host}:{port}"))
            })?,
            PodSource::Kubelet => self.kubelet_url.clone().unwrap_or_else(|| {
                let node = env("NODE_IP").unwrap_or_else(|| node_name.clone());
                let node = if node.contains(':') { format!("[{node}]") } else { node };
                format!("https://{node}:10250")
            }),
        };
        let default_ca = Path::new(SERVICE_ACCOUNT_DIR).join("ca.crt");
        let ca_file = self.ca_file.clone().or_else(|| default_ca.exists().then_some(default_ca));
        Some(SourceSettings {
            source: self.source,
            url,
            node_name,
            token_file: self.token_file.clone(),
            ca_file,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            resync: Duration::from_secs(self.resync_interval_s.max(1)),
            watch_timeout: Duration::from_secs(self.watch_timeout_s.max(1)),
            kubelet_poll: Duration::from_secs(self.kubelet_poll_interval_s.max(1)),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn off_outside_kubernetes_and_on_inside() {
        let cfg = KubernetesConfig::default();
        assert_eq!(cfg.source_settings(&env_of(&[]), "h"), None);
        let env = env_of(&[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "6443"),
            ("NODE_NAME", "n1"),
        ]);
        let s = cfg.source_settings(&env, "h").unwrap();
        assert_eq!(s.url, "https://10.96.0.1:6443");
        assert_eq!(s.node_name, "n1");
        assert_eq!(s.source, PodSource::ApiServer);
        let v6 = env_of(&[("KUBERNETES_SERVICE_HOST", "fd00::1")]);
        assert_eq!(cfg.source_settings(&v6, "h").unwrap().url, "https://[fd00::1]:443");
        let off = KubernetesConfig { enabled: Some(false), ..Default::default() };
        assert_eq!(off.source_settings(&env, "h"), None);
    }

    #[test]
    fn an_explicit_url_turns_it_on_and_the_kubelet_default_uses_the_node() {
        let cfg = KubernetesConfig {
            source: PodSource::Kubelet,
            kubelet_url: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        let s = cfg.source_settings(&env_of(&[]), "host-a").unwrap();
        assert_eq!((s.url.as_str(), s.node_name.as_str()), ("http://127.0.0.1:1", "host-a"));
        let cfg = KubernetesConfig { source: PodSource::Kubelet, enabled: Some(true), ..Default::default() };
        let s = cfg.source_settings(&env_of(&[("NODE_NAME", "n2")]), "h").unwrap();
        assert_eq!(s.url, "https://n2:10250");
        let s = cfg.source_settings(&env_of(&[("NODE_NAME", "n2"), ("NODE_IP", "10.1.2.3")]), "h").unwrap();
        assert_eq!(s.url, "https://10.1.2.3:10250");
        // The API source without any URL cannot run even when forced on.
        let forced = KubernetesConfig { enabled: Some(true), ..Default::default() };
        assert_eq!(forced.source_settings(&env_of(&[]), "h"), None);
    }

    #[test]
    fn yaml_keys_are_checked_and_defaulted() {
        let cfg: KubernetesConfig = serde_yaml::from_str("source: kubelet\nresync_interval_s: 60\n").unwrap();
        assert_eq!((cfg.source, cfg.resync_interval_s, cfg.watch_timeout_s), (PodSource::Kubelet, 60, 290));
        let err = serde_yaml::from_str::<KubernetesConfig>("resync: 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `resync`"), "{err}");
        assert_eq!(serde_yaml::from_str::<KubernetesConfig>("{}").unwrap(), KubernetesConfig::default());
    }
}
