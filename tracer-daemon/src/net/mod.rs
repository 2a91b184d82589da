//! Infrastructure for talking to other machines, used by export, the Kubernetes metadata
//! sync and the fleet client: URLs, connections and a GET client over HTTP/1.1 (`http`), the
//! TLS settings (`tls`), retry backoff (`backoff`) and this host's identity (`host`).

pub mod backoff;
pub mod host;
pub mod http;
pub mod tls;
