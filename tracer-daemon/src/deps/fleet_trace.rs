//! Traces from the fleet. `tracer-daemon fleet trace ID --daemon HOST:PORT ...` asks every
//! daemon's trace store for the trace (`GET /api/traces/{ID}`, Jaeger's JSON model) and merges
//! the pieces each host holds into one trace, answered in the same envelope as one daemon's
//! `/api/traces/{ID}` (so what reads that reads this). `tracer-daemon fleet search …` sends a
//! search to every daemon, then asks every daemon for the pieces of each trace any of them
//! found (`/api/traces?traceID=…`), and answers the merged traces, newest first.
//!
//! Merging: spans are kept once per span id (the first daemon to hold it, in address order),
//! sorted by start time and span id; processes equal in service name and tags become one entry of the
//! trace's `processes` map, renumbered `p1`, `p2`, … in order of first use. A daemon that does
//! not hold the trace (404) adds nothing; one that cannot be read is reported on stderr (and
//! fails the command with `--strict`).

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use serde_json::{Map, Value, json};

use super::fleet::{FleetError, ask_each};
use crate::net::http::{HttpClient, HttpError, encode_query_value};

/// Largest answer read from one daemon (bytes): a trace of the query API's largest.
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// Longest trace id accepted (hex digits of a 128-bit id).
const MAX_ID_LEN: usize = 32;

/// The daemons `fleet trace` and `fleet search` ask, and how.
#[derive(clap::Args, Clone, Debug)]
pub struct Daemons {
    /// A daemon's admin endpoint as HOST:PORT; repeat for several. A name with several
    /// addresses (a headless Service over the DaemonSet) stands for each of them.
    #[arg(long = "daemon", visible_alias = "from", value_name = "HOST:PORT", required = true)]
    pub daemons: Vec<String>,
    /// Time allowed per daemon to connect and answer (milliseconds).
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Fail when any daemon cannot be read (otherwise what those that answer hold is merged
    /// and the others reported on stderr).
    #[arg(long)]
    pub strict: bool,
}

/// `tracer-daemon fleet trace` options.
#[derive(clap::Args, Clone, Debug)]
pub struct FleetTraceArgs {
    /// The trace id, in hex (16 or 32 digits, as the query API and the pages show it).
    pub id: String,
    #[command(flatten)]
    pub from: Daemons,
}

/// Whether `id` is a trace id the query API takes.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One daemon's answer to `GET path` (`None`: 404, it holds nothing that matches).
pub async fn fetch_json(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Option<Value>, FleetError> {
    let bad = |why: String| FleetError::Answer { addr, why };
    let client = HttpClient::for_addr(addr, host, timeout);
    let body = match client.get_body(path, MAX_ANSWER).await {
        Ok(body) => body,
        Err(HttpError::Status { status: 404, .. }) => return Ok(None),
        Err(HttpError::Io { source, .. }) => return Err(FleetError::Io { addr, source }),
        Err(HttpError::Timeout { .. }) => return Err(FleetError::Timeout { addr }),
        Err(HttpError::Status { status, body, .. }) => {
            // The query API says why in its envelope (a malformed search is a 400).
            let why: String = body.chars().take(300).collect();
            return Err(bad(format!("HTTP status {status}: {why}")));
        }
        Err(other) => return Err(bad(other.to_string())),
    };
    let answer: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("{path}: {e}")))?;
    match answer.get("data") {
        Some(Value::Array(_)) => Ok(Some(answer)),
        _ => Err(bad(format!("{path}: no `data` list in the answer"))),
    }
}

/// The traces (`data`) of an answer.
fn traces(answer: &Value) -> impl Iterator<Item = &Value> {
    answer.get("data").and_then(Value::as_array).into_iter().flatten().filter(|t| t["spans"].is_array())
}

/// Every daemon's answer to `GET path`, in address order, with how many daemons answered (a
/// 404 is an answer) and what could not be read.
async fn fan_out(from: &Daemons, path: &str) -> (Vec<Value>, usize, Vec<FleetError>) {
    let timeout = Duration::from_millis(from.timeout_ms);
    let (answers, errors) = ask_each(&from.daemons, |addr, host| {
        let path = path.to_owned();
        async move { fetch_json(addr, &host, &path, timeout).await }
    })
    .await;
    let read = answers.len();
    (answers.into_iter().filter_map(|(_, a)| a).collect(), read, errors)
}

/// Logs what could not be read; fails with `strict`, or when no daemon answered.
fn check_reads(errors: &[FleetError], read: usize, strict: bool) -> anyhow::Result<()> {
    for e in errors {
        tracing::warn!(error = %e, "daemon not read");
    }
    if strict && !errors.is_empty() {
        anyhow::bail!("{} daemon(s) could not be read; first: {}", errors.len(), errors[0]);
    }
    if read == 0 {
        let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
        anyhow::bail!("no daemon could be read ({first})");
    }
    Ok(())
}

/// Prints traces in the envelope of the query API.
fn print_envelope(traces: Vec<Value>) {
    let n = traces.len();
    let envelope = json!({"data": traces, "total": n, "limit": 0, "offset": 0, "errors": null});
    println!("{}", serde_json::to_string_pretty(&envelope).unwrap_or_default());
}

/// Merges the pieces of one trace (Jaeger JSON traces) into one.
pub fn merge(id: &str, pieces: &[Value]) -> Value {
    let mut processes: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut spans: Vec<Value> = Vec::new();
    for piece in pieces {
        let empty = Map::new();
        let own = piece.get("processes").and_then(Value::as_object).unwrap_or(&empty);
        for span in piece.get("spans").and_then(Value::as_array).into_iter().flatten() {
            let Some(span_id) = span.get("spanID").and_then(Value::as_str) else { continue };
            if !seen.insert(span_id.to_owned()) {
                continue;
            }
            let mut span = span.clone();
            let process = span.get("processID").and_then(Value::as_str).and_then(|p| own.get(p));
            if let Some(process) = process {
                let n = match processes.iter().position(|p| p == process) {
                    Some(n) => n,
                    None => {
                        processes.push(process.clone());
                        processes.len() - 1
                    }
                };
                span["processID"] = Value::from(format!("p{}", n + 1));
            }
            spans.push(span);
        }
    }
    // As one daemon orders them: by start, then span id (fixed-width hex sorts as the number).
    spans.sort_by(|a, b| {
        let key = |s: &Value| {
            (s.get("startTime").and_then(Value::as_i64).unwrap_or(i64::MAX), s["spanID"].as_str().map(str::to_owned))
        };
        key(a).cmp(&key(b))
    });
    let processes: Map<String, Value> =
        processes.into_iter().enumerate().map(|(n, p)| (format!("p{}", n + 1), p)).collect();
    let trace_id = pieces.iter().find_map(|p| p.get("traceID").and_then(Value::as_str)).unwrap_or(id);
    json!({"traceID": trace_id, "spans": spans, "processes": processes, "warnings": null})
}

/// `tracer-daemon fleet trace`: fetch the trace's pieces, merge, print the envelope on stdout.
pub async fn trace_main(args: FleetTraceArgs) -> anyhow::Result<()> {
    let id = args.id.trim().to_ascii_lowercase();
    if !valid_id(&id) {
        anyhow::bail!("malformed trace id {:?}: 1 to {MAX_ID_LEN} hex digits", args.id);
    }
    let (answers, read, errors) = fan_out(&args.from, &format!("/api/traces/{id}")).await;
    check_reads(&errors, read, args.from.strict)?;
    let pieces: Vec<Value> = answers.iter().flat_map(traces).cloned().collect();
    if pieces.is_empty() {
        anyhow::bail!("trace {id} is held by none of the {read} daemon(s) read");
    }
    print_envelope(vec![merge(&id, &pieces)]);
    Ok(())
}

/// `tracer-daemon fleet search` options: a search as Jaeger's query API takes it.
#[derive(clap::Args, Clone, Debug)]
pub struct FleetSearchArgs {
    /// Spans of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Spans of this operation.
    #[arg(long)]
    pub operation: Option<String>,
    /// A tag condition `key:value` (repeatable; `error:true` finds failed traces).
    #[arg(long = "tag", value_name = "KEY:VALUE")]
    pub tags: Vec<String>,
    /// How far back (a Go duration: `1h`, `15m`).
    #[arg(long)]
    pub lookback: Option<String>,
    /// Spans at least this long (a Go duration: `250ms`).
    #[arg(long)]
    pub min_duration: Option<String>,
    /// Spans at most this long (a Go duration).
    #[arg(long)]
    pub max_duration: Option<String>,
    /// Traces answered at most, newest first (each daemon is asked for as many).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub from: Daemons,
}

/// The query API's largest `limit`.
const MAX_LIMIT: usize = 1000;

/// Trace ids asked for in one `/api/traces?traceID=…` request (its head stays a few KiB).
const IDS_PER_REQUEST: usize = 64;

impl FleetSearchArgs {
    /// The search as the query API's parameters.
    fn query(&self) -> String {
        let limit = self.limit.clamp(1, MAX_LIMIT);
        let mut q = vec![format!("limit={limit}")];
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.push(format!("{k}={}", encode_query_value(v)));
            }
        };
        add("service", &self.service);
        add("operation", &self.operation);
        add("lookback", &self.lookback);
        add("minDuration", &self.min_duration);
        add("maxDuration", &self.max_duration);
        for t in &self.tags {
            q.push(format!("tag={}", encode_query_value(t)));
        }
        q.join("&")
    }
}

/// `tracer-daemon fleet search`: the search on every daemon, then every daemon's pieces of each
/// trace found, merged per trace, newest first.
pub async fn search_main(args: FleetSearchArgs) -> anyhow::Result<()> {
    let (answers, read, errors) = fan_out(&args.from, &format!("/api/traces?{}", args.query())).await;
    check_reads(&errors, read, args.from.strict)?;
    let ids: BTreeSet<String> =
        answers.iter().flat_map(traces).filter_map(|t| t["traceID"].as_str()).map(str::to_owned).collect();
    let ids: Vec<String> = ids.into_iter().filter(|id| valid_id(id)).collect();
    // Every daemon's pieces of every trace found (a trace matched on one host has pieces on others).
    let mut pieces: Vec<Value> = Vec::new();
    for chunk in ids.chunks(IDS_PER_REQUEST) {
        let q: Vec<String> = chunk.iter().map(|id| format!("traceID={id}")).collect();
        let (answers, read, errors) = fan_out(&args.from, &format!("/api/traces?{}", q.join("&"))).await;
        check_reads(&errors, read, args.from.strict)?;
        pieces.extend(answers.iter().flat_map(traces).cloned());
    }
    let mut merged: Vec<Value> = ids
        .iter()
        .map(|id| {
            let own: Vec<Value> =
                pieces.iter().filter(|p| p["traceID"].as_str() == Some(id.as_str())).cloned().collect();
            merge(id, &own)
        })
        .filter(|t| t["spans"].as_array().is_some_and(|s| !s.is_empty()))
        .collect();
    let start = |t: &Value| t["spans"][0]["startTime"].as_i64().unwrap_or(i64::MIN);
    merged.sort_by(|a, b| start(b).cmp(&start(a)).then_with(|| b["traceID"].as_str().cmp(&a["traceID"].as_str())));
    merged.truncate(args.limit.max(1));
    print_envelope(merged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(spans: &[(&str, &str, i64)], processes: Value) -> Value {
        let spans: Vec<Value> =
            spans.iter().map(|(id, p, t)| json!({"spanID": id, "processID": p, "startTime": t})).collect();
        json!({"traceID": "00000000000000ab", "spans": spans, "processes": processes})
    }

    #[test]
    fn pieces_merge_into_one_trace_with_shared_renumbered_processes() {
        let front = json!({"serviceName": "front", "tags": [{"key": "tracer.host", "type": "string", "value": "a"}]});
        let curl = json!({"serviceName": "curl", "tags": []});
        let middle = json!({"serviceName": "middle", "tags": []});
        let a = piece(&[("1", "p1", 10), ("2", "p2", 11)], json!({"p1": curl, "p2": front}));
        // The second daemon numbers its own processes, holds one span the first holds too, and
        // names the same front process.
        let b = piece(&[("3", "p1", 12), ("2", "p2", 11), ("4", "p2", 9)], json!({"p1": middle, "p2": front}));
        let m = merge("ab", &[a, b]);
        let ids: Vec<&str> = m["spans"].as_array().unwrap().iter().map(|s| s["spanID"].as_str().unwrap()).collect();
        assert_eq!(ids, ["4", "1", "2", "3"], "each span once, by start time");
        let procs = m["processes"].as_object().unwrap();
        assert_eq!(procs.len(), 3, "equal processes are one entry");
        let service = |span: usize| {
            let p = m["spans"][span]["processID"].as_str().unwrap();
            procs[p]["serviceName"].as_str().unwrap().to_owned()
        };
        assert_eq!([service(0), service(1), service(2), service(3)], ["front", "curl", "front", "middle"]);
        assert_eq!(m["traceID"], "00000000000000ab");
    }

    #[test]
    fn a_search_becomes_the_query_apis_parameters() {
        let args = FleetSearchArgs {
            service: Some("web shop".into()),
            operation: None,
            tags: vec!["error:true".into(), "http.route:/a&b".into()],
            lookback: Some("1h".into()),
            min_duration: Some("250ms".into()),
            max_duration: Some(String::new()),
            limit: 5_000,
            from: Daemons { daemons: vec!["a:1".into()], timeout_ms: 1, strict: false },
        };
        assert_eq!(
            args.query(),
            "limit=1000&service=web%20shop&lookback=1h&minDuration=250ms&tag=error%3Atrue&tag=http.route%3A%2Fa%26b"
        );
    }

    #[test]
    fn trace_ids_are_checked_before_anything_is_asked() {
        assert!(valid_id("00000000000000ab"));
        assert!(valid_id(&"f".repeat(32)));
        for bad in ["", "xyz", &"f".repeat(33), "ab/../graph.json"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
