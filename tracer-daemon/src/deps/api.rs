//! HTTP routes of the dependency graph on the daemon's admin endpoint:
//!
//! | route | answer |
//! |---|---|
//! | `GET /dependencies`, `GET /api/dependencies` | Jaeger's dependencies JSON (`parent`, `child`, `callCount`) |
//! | `GET /graph.json` | the whole graph (`Snapshot`): what the page draws and `fleet` merges |
//! | `GET /graph` | DOT |
//! | `GET /` | the page drawing the graph |
//!
//! Each takes Jaeger's `endTs` and `lookback` (milliseconds): only edges with calls in
//! `[endTs - lookback, endTs]` are listed. Counts stay totals since the edge appeared, because
//! the live graph keeps no history per interval; a window covering the daemon's lifetime (as
//! Jaeger UI's default of one week usually does) gives exact counts.

use super::{
    SharedGraph, dot, now_us, page,
    snapshot::{Snapshot, window_from_query},
};
use crate::api::{Request, Response, Router};

/// The graph, restricted to the request's window.
fn windowed(graph: &SharedGraph, req: &Request) -> Result<Snapshot, Response> {
    let snap = graph.snapshot();
    match window_from_query(req.query_param("endTs"), req.query_param("lookback"), now_us()) {
        Ok(None) => Ok(snap),
        Ok(Some(w)) => Ok(snap.within(w)),
        Err(why) => Err(Response::bad_request(&why)),
    }
}

fn answer(graph: &SharedGraph, req: &Request, render: impl Fn(&Snapshot) -> Response) -> Response {
    match windowed(graph, req) {
        Ok(snap) => render(&snap),
        Err(resp) => resp,
    }
}

/// Adds the graph's routes to `router`.
pub fn routes(router: Router, graph: SharedGraph) -> Router {
    let (g1, g2, g3, g4, g5) = (graph.clone(), graph.clone(), graph.clone(), graph.clone(), graph);
    router
        .route("GET", "/dependencies", move |req| {
            answer(&g1, req, |s| Response::json_value(200, &s.jaeger_dependencies()))
        })
        .route("GET", "/api/dependencies", move |req| {
            answer(&g2, req, |s| Response::json_value(200, &s.jaeger_dependencies()))
        })
        .route("GET", "/graph.json", move |req| answer(&g3, req, |s| Response::json_value(200, s)))
        .route("GET", "/graph", move |req| {
            answer(&g4, req, |s| Response {
                status: 200,
                content_type: "text/vnd.graphviz; charset=utf-8".to_owned(),
                body: dot::render(s).into_bytes(),
            })
        })
        .route("GET", "/", move |req| {
            answer(&g5, req, |s| Response {
                status: 200,
                content_type: "text/html; charset=utf-8".to_owned(),
                body: page::render(s).into_bytes(),
            })
        })
}
