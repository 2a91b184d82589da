//! The graph in Graphviz DOT (`GET /graph`, `tracer-daemon fleet --format dot`): traced
//! services as boxes, untraced peers and callers as dashed ellipses, one arrow per edge and
//! protocol labelled with calls and errors, coloured by error rate.

use std::fmt::Write as _;

use super::snapshot::{Edge, NodeKind, Snapshot};

/// A DOT double-quoted string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Colour of an edge by error rate: grey without errors, then amber, then red from 5 %.
pub fn error_colour(rate: f64) -> &'static str {
    if rate <= 0.0 {
        "#5f6b7a"
    } else if rate < 0.01 {
        "#c9a400"
    } else if rate < 0.05 {
        "#e07b00"
    } else {
        "#d32f2f"
    }
}

fn ms(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{:.2} ms", s * 1000.0),
        None => "-".to_owned(),
    }
}

fn edge_label(e: &Edge) -> String {
    let mut label = format!("{} × {}", e.protocol, e.call_count);
    if e.error_count > 0 {
        let _ = write!(label, "\n{} errors", e.error_count);
    }
    label
}

/// The graph as one `digraph`, nodes and edges in name order.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::from(
        "digraph dependencies {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for n in &snap.nodes {
        let style = match n.kind {
            NodeKind::Service => "shape=box, style=\"rounded,filled\", fillcolor=\"#e3edf9\"",
            NodeKind::Peer => "shape=ellipse, style=dashed",
            NodeKind::Client => "shape=ellipse, style=dotted",
        };
        let tooltip = format!(
            "{} ({}): {} calls in, {} out, {} failed in",
            n.name,
            n.kind.as_str(),
            n.calls_in,
            n.calls_out,
            n.errors_in
        );
        let _ = writeln!(out, "  {} [{style}, tooltip={}];", quote(&n.name), quote(&tooltip));
    }
    for e in &snap.edges {
        let tooltip = format!(
            "{} -> {} ({}): {} calls, {} errors, p50 {}, p99 {}",
            e.parent,
            e.child,
            e.protocol,
            e.call_count,
            e.error_count,
            ms(e.p50_seconds),
            ms(e.p99_seconds)
        );
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, color={}, fontcolor={}, tooltip={}];",
            quote(&e.parent),
            quote(&e.child),
            quote(&edge_label(e)),
            quote(error_colour(e.error_rate())),
            quote(error_colour(e.error_rate())),
            quote(&tooltip)
        );
    }
    out.push_str("}\n");
    out
}
