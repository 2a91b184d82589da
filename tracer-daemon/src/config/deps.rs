//! Settings of the service dependency graph (`deps`): limits and the pairing window.

use serde::Deserialize;

/// Limits of the graph. In the YAML file: under the key `deps`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Edges (caller, callee, protocol) kept; a new edge beyond this evicts the least recently
    /// seen one, counted (`tracer_deps_evicted_edges_total{reason="full"}`) (count).
    pub max_edges: usize,
    /// Nodes kept (the ends of the edges kept); a new edge whose nodes would exceed this
    /// evicts the least recently seen edges until they fit, counted as `reason="full"` (count).
    pub max_nodes: usize,
    /// An edge not seen for this long is removed with the nodes only it used, counted as
    /// `reason="idle"` (milliseconds; 0 keeps edges until the limits evict them).
    pub edge_idle_ms: u64,
    /// Calls waiting for their other side; beyond this the oldest is counted at once with the
    /// side it has (`tracer_deps_pairing_evicted_total`) (count).
    pub max_pending: usize,
    /// How long one side of a call waits for the other before the call is counted with one
    /// side (milliseconds). Covers the stitcher's hold and apps' batching delays.
    pub pair_window_ms: u64,
    /// Entries of each naming table: listener addresses of traced services, DNS names of
    /// addresses (count).
    pub max_names: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            max_edges: 10_000,
            max_nodes: 2_000,
            edge_idle_ms: 3_600_000,
            max_pending: 65_536,
            pair_window_ms: 5_000,
            max_names: 10_000,
        }
    }
}
