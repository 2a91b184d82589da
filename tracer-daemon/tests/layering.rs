//! Dependencies between the daemon's top-level modules point one way. The test reads every
//! `src/**/*.rs`, collects the `crate::<module>` paths each top-level module uses (in `use`
//! lines, grouped `use crate::{a, b::c}` lists and inline paths), and fails when a module uses
//! one of a layer that is not below its own, or when the uses form a cycle.
//!
//! Layers, bottom first. A module may use modules of lower layers only:
//!
//! | layer | modules                         | owns                                              |
//! |-------|---------------------------------|---------------------------------------------------|
//! | 0     | model, metrics, logging,        | types that cross stages, counters, log limiting, |
//! |       | supervise                       | supervised stages and their health               |
//! | 1     | jaeger, net, render             | Thrift types; HTTP, TLS, backoff, host; renderers |
//! | 2     | config                          | every setting (validates URLs with `net`)         |
//! | 3     | reader, api                     | kernel records, the admin HTTP server             |
//! | 4     | conn, probes, process, uprobes  | connection table, loading, process metadata      |
//! | 5     | protocol                        | protocol parsers                                  |
//! | 6     | stitch                          | parent links                                      |
//! | 7     | assemble                        | spans from exchanges and library calls            |
//! | 8     | export, deps, store             | sinks: export, service graph, trace store         |
//! | 9     | agent                           | Jaeger agent role (forwards into export)          |
//! | 10    | pipeline                        | joins the stages                                  |
//! | 11    | daemon                          | wiring and the command line                       |
//!
//! The leaves (`model`, `metrics`, `logging`, `supervise`, `jaeger`, `net`, `render`, `config`) use no stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u32)] = &[
    ("model", 0),
    ("metrics", 0),
    ("logging", 0),
    ("supervise", 0),
    ("jaeger", 1),
    ("net", 1),
    ("render", 1),
    ("config", 2),
    ("reader", 3),
    ("api", 3),
    ("conn", 4),
    ("probes", 4),
    ("process", 4),
    ("uprobes", 4),
    ("protocol", 5),
    ("stitch", 6),
    ("assemble", 7),
    ("export", 8),
    ("deps", 8),
    ("store", 8),
    ("agent", 9),
    ("pipeline", 10),
    ("daemon", 11),
];

/// Uses tolerated against the layering, as `(from, to, why)`. None today; one added while a
/// module is mid-move must say why, and `known_exceptions_are_still_needed` fails once the use
/// is gone.
const KNOWN_EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `//` comments (a `//` right after `:` is a URL in a string and is kept).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut cut = line.len();
        let b = line.as_bytes();
        for i in 0..b.len().saturating_sub(1) {
            if b[i] == b'/' && b[i + 1] == b'/' && (i == 0 || b[i - 1] != b':') {
                cut = i;
                break;
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn ident(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment after every `crate::` in `text`, expanding `crate::{a, b::c}`.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `tracer_daemon_crate::` or the like
        }
        let tail = rest.trim_start();
        if let Some(group) = tail.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if depth == 1 && item_start && !c.is_whitespace() => {
                        item_start = false;
                        found.insert(ident(&group[i..]).to_owned());
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(tail).to_owned());
        }
    }
    found
}

/// `module -> used module -> files` for the top-level modules of `src`.
fn module_uses() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(&file).unwrap());
        let entry = uses.entry(top.clone()).or_default();
        for used in crate_uses(&text) {
            if used != top && used != "self" && used != "super" && !used.is_empty() {
                entry.entry(used).or_default().insert(rel.clone());
            }
        }
    }
    uses
}

fn layer(module: &str) -> u32 {
    match LAYERS.iter().find(|(m, _)| *m == module) {
        Some((_, l)) => *l,
        None => panic!("top-level module `{module}` has no layer in LAYERS; add it (tests/layering.rs)"),
    }
}

fn is_exception(from: &str, to: &str) -> bool {
    KNOWN_EXCEPTIONS.iter().any(|(f, t, _)| *f == from && *t == to)
}

#[test]
fn the_scanner_reads_grouped_and_inline_paths() {
    let text = "use crate::{\n    model::{Span, Tag},\n    reader::decode::Tuple,\n    api,\n};\n\
                fn f() { crate::metrics::Registry::new(); }\n";
    let got: Vec<String> = crate_uses(text).into_iter().collect();
    assert_eq!(got, ["api", "metrics", "model", "reader"]);
    assert!(crate_uses(&strip_comments("// use crate::agent;\nlet u = \"http://x\";")).is_empty());
}

#[test]
fn every_module_uses_only_lower_layers() {
    let mut wrong = Vec::new();
    for (from, used) in module_uses() {
        for (to, files) in used {
            if layer(&to) >= layer(&from) && !is_exception(&from, &to) {
                wrong.push(format!("{from} (layer {}) -> {to} (layer {}) in {files:?}", layer(&from), layer(&to)));
            }
        }
    }
    assert!(wrong.is_empty(), "uses against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn top_level_modules_have_no_cycles() {
    let uses = module_uses();
    let edges: BTreeMap<&str, Vec<&str>> = uses
        .iter()
        .map(|(from, used)| {
            let to = used.keys().map(String::as_str).filter(|to| !is_exception(from, to)).collect();
            (from.as_str(), to)
        })
        .collect();
    // Depth-first search; a grey node reached again closes a cycle.
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(n, 1);
        path.push(n);
        for &m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => visit(m, edges, state, path, cycles),
                1 => {
                    let start = path.iter().position(|p| *p == m).unwrap();
                    cycles.push(format!("{} -> {m}", path[start..].join(" -> ")));
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n, 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for &n in edges.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles between top-level modules:\n{}", cycles.join("\n"));
}

#[test]
fn known_exceptions_are_still_needed() {
    let uses = module_uses();
    for (from, to, why) in KNOWN_EXCEPTIONS {
        assert!(
            uses.get(*from).is_some_and(|u| u.contains_key(*to)),
            "{from} -> {to} is no longer used; remove it from KNOWN_EXCEPTIONS ({why})"
        );
    }
}
