//! Typed spans from what assembly established: ids from the stitcher, timing on the wall
//! clock, the connection's endpoints and the protocol's attributes.

use super::Env;
use crate::{
    model::conn::Tuple,
    model::{Attributes, Body, Span, SpanKind, Status, Traced},
    stitch::Ids,
};

/// What a span says, before it has ids.
pub(super) struct Facts {
    pub kind: SpanKind,
    pub pid: u32,
    pub tid: u32,
    /// The connection as the traced process sees it, when one is known.
    pub tuple: Option<Tuple>,
    pub operation: String,
    pub attrs: Attributes,
    pub truncated: bool,
    /// Calls of the connection were lost before the span ended.
    pub data_lost: bool,
    /// A call of the span was captured short (the ring buffer was half full).
    pub capture_degraded: bool,
    /// CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Why the call failed, when it did.
    pub error: Option<String>,
}

pub(super) fn span(f: Facts, ids: &Ids, env: &Env) -> Span {
    let status = match f.error {
        Some(message) => Status::Error { message, log_at_us: Some(env.clock.unix_us(f.end_ns)) },
        None => Status::Ok,
    };
    let traced = Traced {
        kind: f.kind,
        pid: f.pid,
        tid: f.tid,
        local: f.tuple.map(|t| t.local),
        peer: f.tuple.map(|t| t.remote),
        link: ids.link,
        ambiguous: ids.ambiguous,
        status,
        attrs: f.attrs,
        library: None,
        truncated: f.truncated,
        data_lost_at_us: f.data_lost.then(|| env.clock.unix_us(f.start_ns)),
        capture_degraded: f.capture_degraded,
    };
    Span {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        parent_span_id: ids.parent_span_id,
        operation: f.operation,
        flags: 1,
        start_us: env.clock.unix_us(f.start_ns),
        duration_us: (f.end_ns.saturating_sub(f.start_ns) / 1000) as i64,
        // Attached when the span leaves assembly (`Assembler::drain`).
        process: env.unresolved.clone(),
        body: Body::Traced(Box::new(traced)),
    }
}
