//! Which processes and ports are traced: one set of include / exclude lists, read from the
//! YAML key `filter` and from the `--include-*` / `--exclude-*` flags, and written into the
//! kernel's filter maps by `probes`.

use serde::Deserialize;

/// Excludes win over includes; with any include entry for processes (pids or commands), only
/// matching processes are traced; likewise for ports.
#[derive(clap::Args, Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Trace only these processes (repeatable).
    #[arg(long = "include-pid", value_name = "PID")]
    pub include_pids: Vec<u32>,
    /// Never trace these processes (repeatable).
    #[arg(long = "exclude-pid", value_name = "PID")]
    pub exclude_pids: Vec<u32>,
    /// Trace only processes with this command name, as in /proc/PID/comm, at most 15 bytes
    /// (repeatable).
    #[arg(long = "include-comm", value_name = "COMM")]
    pub include_comms: Vec<String>,
    /// Never trace processes with this command name (repeatable).
    #[arg(long = "exclude-comm", value_name = "COMM")]
    pub exclude_comms: Vec<String>,
    /// Trace only connections with this TCP port at either end (repeatable).
    #[arg(long = "include-port", value_name = "PORT")]
    pub include_ports: Vec<u16>,
    /// Never trace connections with this TCP port at either end (repeatable).
    #[arg(long = "exclude-port", value_name = "PORT")]
    pub exclude_ports: Vec<u16>,
}

impl Filters {
    /// Adds the entries of `more` (command-line flags on top of the file).
    pub fn extend(&mut self, more: &Filters) {
        self.include_pids.extend(&more.include_pids);
        self.exclude_pids.extend(&more.exclude_pids);
        self.include_comms.extend(more.include_comms.iter().cloned());
        self.exclude_comms.extend(more.exclude_comms.iter().cloned());
        self.include_ports.extend(&more.include_ports);
        self.exclude_ports.extend(&more.exclude_ports);
    }
}
