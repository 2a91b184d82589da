//! Connection facts that cross stages: a connection's endpoints, the direction of a transfer and
//! the kind of a connection event. Decoded by `reader`, used by `conn`, `assemble` and `stitch`.

use std::net::SocketAddr;

use serde::Serialize;

/// A connection's endpoints as seen from the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Tuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Tuple {
    /// The same connection seen from the other end.
    pub fn reversed(self) -> Self {
        Tuple { local: self.remote, remote: self.local }
    }
}

/// Which way bytes moved, seen from the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Egress,
    Ingress,
}

/// A connection event: the process connected, accepted, or closed the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnKind {
    Connect,
    Accept,
    Close,
}
