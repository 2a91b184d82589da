//! The daemon's small HTTP/1.1 server: requests routed by method and path to plain functions,
//! for `/metrics`, health, the agent's `/sampling` and `/dependencies`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tracer_daemon::api::{self, Response, Router};
//! # async fn run() -> std::io::Result<()> {
//! let router = Router::new()
//!     .route("GET", "/healthz", |_req| Response::text(200, "ok\n"))
//!     .route("GET", "/echo", |req| Response::text(200, format!("{:?}\n", req.query_param("q"))));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! api::serve(listener, Arc::new(router), stop_rx).await
//! # }
//! ```

pub mod health;
mod server;

pub use server::{DropCounters, DropReason, Limits, MAX_HEADER_BYTES, serve, serve_with};

/// Entry points of the fuzz targets (`fuzz/`), not an interface of the daemon.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::server::{HeadOutcome, parse_request_head};
}

use std::sync::Arc;

use crate::metrics::Registry;

/// One parsed request. Header names are lowercase; the query is percent-decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub method: String,
    /// The path without the query string, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response; the server adds `Content-Length` and `Connection`.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response { status, content_type: "text/plain; charset=utf-8".to_owned(), body: body.into().into_bytes() }
    }

    /// An `application/json` response with an already serialised body.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response { status, content_type: "application/json".to_owned(), body: body.into().into_bytes() }
    }

    /// A JSON response serialised from a value (500 if it cannot be serialised).
    pub fn json_value<T: serde::Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(s) => Response::json(status, s),
            Err(e) => Response::text(500, format!("cannot serialise response: {e}\n")),
        }
    }

    pub fn not_found() -> Self {
        Response::text(404, "not found\n")
    }

    pub fn method_not_allowed() -> Self {
        Response::text(405, "method not allowed\n")
    }

    pub fn bad_request(why: &str) -> Self {
        Response::text(400, format!("bad request: {why}\n"))
    }
}

/// A request handler: a plain function of the request.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync + 'static;

/// Routes by exact path, then method.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, String, Arc<Handler>)>,
    /// Routes matching every path under a prefix (e.g. `/api/traces/`), tried after exact ones.
    prefixes: Vec<(String, String, Arc<Handler>)>,
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a handler for `method` (e.g. `"GET"`) on the exact `path` (e.g. `"/metrics"`).
    pub fn route(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((method.to_ascii_uppercase(), path.to_owned(), Arc::new(handler)));
        self
    }

    /// Adds a handler for `method` on every path that starts with `prefix` and is longer than
    /// it (the handler reads the rest from `req.path`).
    pub fn route_prefix(
        mut self,
        method: &str,
        prefix: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.prefixes.push((method.to_ascii_uppercase(), prefix.to_owned(), Arc::new(handler)));
        self
    }

    /// Adds `GET /metrics` rendering the registry.
    pub fn metrics(self, registry: Arc<Registry>) -> Self {
        self.route("GET", "/metrics", move |_| Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8".to_owned(),
            body: registry.render().into_bytes(),
        })
    }

    /// The response for a request, plus the allowed methods when the path exists but the method
    /// does not (405).
    pub fn handle(&self, req: &Request) -> (Response, Option<String>) {
        let mut allowed: Vec<&str> = Vec::new();
        for (method, path, handler) in &self.routes {
            if *path != req.path {
                continue;
            }
            if *method == req.method {
                return (handler(req), None);
            }
            allowed.push(method);
        }
        if allowed.is_empty() {
            for (method, prefix, handler) in &self.prefixes {
                if req.path.len() <= prefix.len() || !req.path.starts_with(prefix.as_str()) {
                    continue;
                }
                if *method == req.method {
                    return (handler(req), None);
                }
                allowed.push(method);
            }
        }
        if allowed.is_empty() {
            (Response::not_found(), None)
        } else {
            (Response::method_not_allowed(), Some(allowed.join(", ")))
        }
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); invalid escapes stay as
/// written, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `a=1&b=x%20y` into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded() {
        let q = parse_query("service=my%20svc&x=a+b&flag&bad=%zz&end=%4");
        assert_eq!(
            q,
            vec![
                ("service".into(), "my svc".into()),
                ("x".into(), "a b".into()),
                ("flag".into(), "".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into()),
            ]
        );
        assert_eq!(percent_decode("%E2%9C%93", false), "✓");
    }

    #[test]
    fn router_distinguishes_404_and_405() {
        let r = Router::new().route("GET", "/a", |_| Response::text(200, "a"));
        let mut req = Request { method: "GET".into(), path: "/a".into(), ..Default::default() };
        assert_eq!(r.handle(&req).0.status, 200);
        req.method = "POST".into();
        let (resp, allow) = r.handle(&req);
        assert_eq!((resp.status, allow.as_deref()), (405, Some("GET")));
        req.path = "/b".into();
        assert_eq!(r.handle(&req).0.status, 404);
    }

    #[test]
    fn prefix_routes_take_what_exact_routes_do_not() {
        let r =
            Router::new()
                .route("GET", "/t/x", |_| Response::text(200, "exact"))
                .route_prefix("GET", "/t/", |req| Response::text(200, req.path.clone()));
        let mut req = Request { method: "GET".into(), path: "/t/x".into(), ..Default::default() };
        assert_eq!(r.handle(&req).0.body, b"exact");
        req.path = "/t/abc".into();
        assert_eq!(r.handle(&req).0.body, b"/t/abc");
        req.path = "/t/".into();
        assert_eq!(r.handle(&req).0.status, 404, "the prefix alone is not under it");
        req.path = "/t/abc".into();
        req.method = "POST".into();
        assert_eq!(r.handle(&req).0.status, 405);
    }
}
