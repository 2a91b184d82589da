//! The page of `GET /traces`: one self-contained HTML document (inline CSS and JS, no external
//! assets) over the query API: a search (service, operation, tags, min / max duration,
//! lookback, limit, errors only) with a duration scatter of the results, and a trace's
//! waterfall with a collapsible tree, errors marked, the span where the error began called
//! out, and a detail pane (tags, process, logs, the `tracer.link` evidence). Text from traffic
//! is set with `textContent` only, never parsed as HTML.

pub const PAGE: &str = include_str!("page.html");

pub fn response() -> crate::api::Response {
    crate::api::Response {
        status: 200,
        content_type: "text/html; charset=utf-8".to_owned(),
        body: PAGE.as_bytes().to_vec(),
    }
}
