//! The page of `GET /`: one self-contained HTML document (inline CSS, JS and SVG, no external
//! assets) that draws the graph in layers from callers to callees, nodes sized by traffic,
//! edges coloured by error rate, counts and p50 / p99 latencies in `<title>` tooltips. The
//! graph at the time of the request is embedded, so the first drawing needs no further
//! request; the page then refreshes from `graph.json` every 5 s. Each node is an SVG `<g
//! class="node" data-service="NAME" data-kind="service|peer|client">`, each arrow a `<g
//! class="edge" data-parent=… data-child=…>`.

use super::snapshot::Snapshot;

const TEMPLATE: &str = include_str!("page.html");
const SLOT: &str = "__GRAPH_JSON__";

/// JSON that is safe inside a `<script>` element: `<`, `>` and `&` (which only occur inside
/// JSON strings) are written as `\u` escapes, so no `</script>` can end the element.
pub fn script_json(snap: &Snapshot) -> String {
    let json = serde_json::to_string(snap).unwrap_or_else(|_| "{}".to_owned());
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The page with `snap` embedded.
pub fn render(snap: &Snapshot) -> String {
    TEMPLATE.replacen(SLOT, &script_json(snap), 1)
}
