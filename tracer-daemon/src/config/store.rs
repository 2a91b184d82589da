//! Settings of the trace store (`store`): the memory budget of recent traces kept for the query
//! API on the admin endpoint.

use serde::Deserialize;

/// Default budget: 64 MiB, an eighth of the DaemonSet's 512 MiB memory limit.
pub const DEFAULT_STORE_BYTES: usize = 64 * 1024 * 1024;

/// In the YAML file: under the key `store`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Estimated bytes of the traces kept in memory; beyond it the oldest traces are evicted
    /// and counted (`tracer_store_dropped_total{reason="evicted"}`). 0 turns the store and its
    /// query routes off (bytes).
    pub max_bytes: usize,
    /// Finished spans queued between the processing loop and the store; beyond it spans are
    /// dropped and counted (`reason="queue_full"`) (count).
    pub queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { max_bytes: DEFAULT_STORE_BYTES, queue: 8192 }
    }
}
