//! Loads captures, feeds them to sessions in several segmentations, and renders exchanges as
//! one exact line each for comparison with expected tables.

use std::fmt::Write as _;

use crate::model::TagValue;
use crate::protocol::{Direction, Exchange, Protocol, Redaction, Role, Session};

/// One captured chunk: who sent it and the bytes.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub from_client: bool,
    pub data: Vec<u8>,
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex escape");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 2;
            }
            other => panic!("bad escape {other:?}"),
        }
        i += 2;
    }
    out
}

/// Reads `testdata/<proto>/<name>.cap`.
pub fn load(proto: &str, name: &str) -> Vec<Chunk> {
    let path = format!("{}/testdata/{proto}/{name}.cap", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| match l.split_at(2) {
            ("> ", rest) => Chunk { from_client: true, data: unescape(rest) },
            ("< ", rest) => Chunk { from_client: false, data: unescape(rest) },
            _ => panic!("{path}: bad line {l:?}"),
        })
        .collect()
}

/// A feed: chunk index (for its timestamps), bytes captured, bytes the call moved.
pub struct Feed<'a> {
    pub chunk: usize,
    pub from_client: bool,
    pub data: &'a [u8],
    pub total: usize,
}

/// Chunk `i` is a call that entered at (i+1) µs and left 500 ns later.
pub fn enter_ns(chunk: usize) -> u64 {
    (chunk as u64 + 1) * 1000
}

pub fn dir(from_client: bool, role: Role) -> Direction {
    match (from_client, role) {
        (true, Role::Client) | (false, Role::Server) => Direction::Egress,
        _ => Direction::Ingress,
    }
}

/// Runs feeds through a new session, then closes it.
pub fn run<'a>(
    protocol: Protocol,
    role: Role,
    redaction: Redaction,
    feeds: impl IntoIterator<Item = Feed<'a>>,
) -> Vec<Exchange> {
    let mut s = Session::new(protocol, role, redaction);
    let mut out = Vec::new();
    let mut last = 0;
    for f in feeds {
        let t = enter_ns(f.chunk);
        s.feed(dir(f.from_client, role), f.data, f.total, t, t + 500, &mut out);
        last = t + 500;
    }
    s.close(last + 1000, false, &mut out);
    out
}

pub fn whole(chunks: &[Chunk]) -> impl Iterator<Item = Feed<'_>> {
    chunks.iter().enumerate().map(|(i, c)| Feed {
        chunk: i,
        from_client: c.from_client,
        data: &c.data,
        total: c.data.len(),
    })
}

/// Every chunk cut to its first `cap` bytes, the rest being a gap.
pub fn truncated(chunks: &[Chunk], cap: usize) -> impl Iterator<Item = Feed<'_>> {
    chunks.iter().enumerate().map(move |(i, c)| Feed {
        chunk: i,
        from_client: c.from_client,
        data: &c.data[..c.data.len().min(cap)],
        total: c.data.len(),
    })
}

pub fn bytewise(chunks: &[Chunk]) -> impl Iterator<Item = Feed<'_>> {
    chunks.iter().enumerate().flat_map(|(i, c)| {
        c.data.chunks(1).map(move |b| Feed { chunk: i, from_client: c.from_client, data: b, total: 1 })
    })
}

/// The chunk holding global byte offset `at` is fed as two calls split there.
pub fn split_at(chunks: &[Chunk], at: usize) -> Vec<Feed<'_>> {
    let mut feeds = Vec::new();
    let mut offset = 0;
    for (i, c) in chunks.iter().enumerate() {
        let len = c.data.len();
        if at > offset && at < offset + len {
            let (a, b) = c.data.split_at(at - offset);
            feeds.push(Feed { chunk: i, from_client: c.from_client, data: a, total: a.len() });
            feeds.push(Feed { chunk: i, from_client: c.from_client, data: b, total: b.len() });
        } else {
            feeds.push(Feed { chunk: i, from_client: c.from_client, data: &c.data, total: len });
        }
        offset += len;
    }
    feeds
}

/// Split points to try: all of them for small captures; for large ones every point near a
/// chunk's edges and a stride through the middle.
pub fn split_points(chunks: &[Chunk]) -> Vec<usize> {
    let total: usize = chunks.iter().map(|c| c.data.len()).sum();
    if total <= 20_000 {
        return (1..total).collect();
    }
    let mut points = Vec::new();
    let mut offset = 0;
    for c in chunks {
        let len = c.data.len();
        for k in 1..len {
            if k < 600 || len - k < 64 || k.is_multiple_of(997) {
                points.push(offset + k);
            }
        }
        offset += len;
    }
    points
}

/// Consecutive chunks of one direction merged into one call (several messages per feed).
pub fn coalesced(chunks: &[Chunk]) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    for c in chunks {
        match out.last_mut() {
            Some(last) if last.from_client == c.from_client => last.data.extend_from_slice(&c.data),
            _ => out.push(c.clone()),
        }
    }
    out
}

/// All client chunks first, then all server chunks (the client pipelines everything).
pub fn pipelined(chunks: &[Chunk]) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = chunks.iter().filter(|c| c.from_client).cloned().collect();
    out.extend(chunks.iter().filter(|c| !c.from_client).cloned());
    out
}

/// One line per exchange: `seq operation | tags | err=… | ctx=…`, then `@first-last` chunk
/// indices of its start and end when `timing`.
pub fn render(ex: &Exchange, timing: bool) -> String {
    let mut s = format!("{} {} |", ex.seq, ex.operation);
    for t in &ex.tags() {
        match &t.value {
            TagValue::Str(v) => write!(s, " {}={v:?}", t.key),
            TagValue::Long(v) => write!(s, " {}={v}", t.key),
            other => write!(s, " {}={other:?}", t.key),
        }
        .expect("write to string");
    }
    write!(s, " | err={}", ex.error.as_deref().unwrap_or("-")).expect("write to string");
    if let Some(c) = &ex.context {
        write!(s, " | ctx={}:{:016x}:{}:{:?}", c.trace_id.to_hex(), c.span_id, u8::from(c.sampled), c.source)
            .expect("write");
    }
    if timing {
        let chunk = |ns: u64| ns / 1000 - 1;
        write!(s, " @{}-{}", chunk(ex.start_ns), chunk(ex.end_ns)).expect("write to string");
        if !ex.start_ns.is_multiple_of(1000)
            || (ex.end_ns % 1000 != 500 && !ex.error.as_deref().unwrap_or("").starts_with("connection"))
        {
            s.push_str(" (odd timestamps)");
        }
    }
    s
}

pub fn render_all(exs: &[Exchange], timing: bool) -> Vec<String> {
    exs.iter().map(|e| render(e, timing)).collect()
}

/// Drops the `@a-b` timing suffix.
pub fn untimed(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.rsplit_once(" @").map_or(*l, |(a, _)| a).to_string()).collect()
}

/// What a capture must produce.
pub struct Case {
    pub proto: &'static str,
    pub name: &'static str,
    /// Expected for Role::Client, with timing.
    pub client: &'static [&'static str],
    /// The capture stays parseable when each call keeps only its first 1 KiB.
    pub gap_safe: bool,
    /// Requests may be pipelined ahead of all responses.
    pub pipelinable: bool,
}

fn protocol_of(proto: &str) -> Protocol {
    match proto {
        "http" => Protocol::Http,
        "http2" => Protocol::Http2,
        "redis" => Protocol::Redis,
        _ => Protocol::Mysql,
    }
}

/// The same exchanges as the server sees them (HTTP 4xx is not a server error).
pub fn as_server(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.find(" | err=HTTP 4") {
            Some(at) => format!("{}-{}", &l[..at + 7], &l[at + 7 + "HTTP 4xx".len()..]),
            None => l.to_string(),
        })
        .collect()
}

fn check(case: &Case, what: &str, got: Vec<String>, want: &[String]) {
    if got != want {
        panic!(
            "{}/{} ({what}):\n got:\n  {}\n want:\n  {}",
            case.proto,
            case.name,
            got.join("\n  "),
            want.join("\n  ")
        );
    }
}

/// Every segmentation of a capture gives the expected exchanges, in both roles.
pub fn check_case(case: &Case) {
    let chunks = load(case.proto, case.name);
    let p = protocol_of(case.proto);
    let red = Redaction::default();
    for role in [Role::Client, Role::Server] {
        let want: Vec<String> = match role {
            Role::Client => case.client.iter().map(|s| s.to_string()).collect(),
            Role::Server => as_server(case.client),
        };
        let want_untimed: Vec<String> = untimed(&want.iter().map(String::as_str).collect::<Vec<_>>());
        check(case, &format!("{role:?} whole"), render_all(&run(p, role, red, whole(&chunks)), true), &want);
        check(case, &format!("{role:?} bytewise"), render_all(&run(p, role, red, bytewise(&chunks)), true), &want);
        for at in split_points(&chunks) {
            check(
                case,
                &format!("{role:?} split at {at}"),
                render_all(&run(p, role, red, split_at(&chunks, at)), true),
                &want,
            );
        }
        let merged = coalesced(&chunks);
        check(
            case,
            &format!("{role:?} coalesced"),
            render_all(&run(p, role, red, whole(&merged)), false),
            &want_untimed,
        );
        if case.gap_safe {
            check(
                case,
                &format!("{role:?} truncated"),
                render_all(&run(p, role, red, truncated(&chunks, 1024)), true),
                &want,
            );
        }
        if case.pipelinable {
            let piped = pipelined(&chunks);
            check(
                case,
                &format!("{role:?} pipelined"),
                render_all(&run(p, role, red, whole(&piped)), false),
                &want_untimed,
            );
        }
    }
}

/// Renumbers `seq` of rendered lines from `first`.
pub fn renumber(lines: &[String], first: u64) -> Vec<String> {
    lines.iter().enumerate().map(|(i, l)| format!("{}{}", first + i as u64, &l[l.find(' ').unwrap_or(0)..])).collect()
}

/// Prints what a capture produces, to check by hand when a capture is added or re-recorded.
#[expect(dead_code, reason = "a helper for adding captures, not called by the tests")]
pub fn dump(proto: &str, name: &str) {
    let chunks = load(proto, name);
    eprintln!("== {proto}/{name}");
    for l in render_all(&run(protocol_of(proto), Role::Client, Redaction::default(), whole(&chunks)), true) {
        eprintln!("            {l:?},");
    }
}
