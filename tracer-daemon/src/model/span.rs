//! The typed span: ids, timing and the emitting process, with either the facts span assembly
//! established (kernel evidence, protocol attributes) or an application's own tags.

use std::{net::SocketAddr, sync::Arc};

use super::{Attributes, Log, Process, SpanKind, SpanRef, Tag, TraceId, attrs::LibraryCall};

/// Which evidence linked a span to its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    Traceparent,
    UberTraceId,
    SqlComment,
    TcpOption,
    SameHostTuple,
    Thread,
}

impl Link {
    pub const ALL: [Link; 6] =
        [Link::Traceparent, Link::UberTraceId, Link::SqlComment, Link::TcpOption, Link::SameHostTuple, Link::Thread];

    /// The name renderers use (`tracer.link` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Traceparent => "traceparent",
            Link::UberTraceId => "uber-trace-id",
            Link::SqlComment => "sql-comment",
            Link::TcpOption => "tcp-option",
            Link::SameHostTuple => "same-host-tuple",
            Link::Thread => "thread",
        }
    }

    /// The parent came from a context the request itself carried (an instrumented caller's).
    pub fn is_adopted(self) -> bool {
        matches!(self, Link::Traceparent | Link::UberTraceId | Link::SqlComment)
    }
}

/// Whether the call failed.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Status {
    #[default]
    Ok,
    Error {
        message: String,
        /// Unix epoch µs of the error log, when the failure is logged on the span.
        log_at_us: Option<i64>,
    },
}

impl Status {
    pub fn is_error(&self) -> bool {
        matches!(self, Status::Error { .. })
    }
}

/// What span assembly knows of a span it built from kernel events.
#[derive(Clone, Debug, PartialEq)]
pub struct Traced {
    pub kind: SpanKind,
    /// Thread group id of the traced process.
    pub pid: u32,
    /// Thread that carried the request (0: unknown).
    pub tid: u32,
    /// The connection's local endpoint, when a connection is known.
    pub local: Option<SocketAddr>,
    /// The connection's other end, when a connection is known.
    pub peer: Option<SocketAddr>,
    /// The evidence that gave the parent (`None`: no parent was proven).
    pub link: Option<Link>,
    /// Several inbound requests were in flight on the thread: no thread link was made.
    pub ambiguous: bool,
    pub status: Status,
    pub attrs: Attributes,
    /// Details from the client library that made the call (uprobes).
    pub library: Option<LibraryCall>,
    /// The response was not seen (its stream lost framing).
    pub truncated: bool,
    /// Calls of the span's connection were lost before it ended (the kernel's loss mark, or a
    /// TCP sequence gap in the request direction): when (Unix µs) the span's log says so.
    pub data_lost_at_us: Option<i64>,
    /// A call of the span was captured short because the ring buffer was half full.
    pub capture_degraded: bool,
}

/// An application's own span as its tracing client sent it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppSpan {
    pub kind: Option<SpanKind>,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    pub references: Vec<SpanRef>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Traced(Box<Traced>),
    App(Box<AppSpan>),
}

/// A finished span as it crosses stages.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: u64,
    /// 0 when the span is a root.
    pub parent_span_id: u64,
    pub operation: String,
    /// Jaeger flags (1 = sampled).
    pub flags: i32,
    /// Unix epoch microseconds.
    pub start_us: i64,
    pub duration_us: i64,
    pub process: Arc<Process>,
    pub body: Body,
}

impl Span {
    /// Client, server or another kind, when known.
    pub fn kind(&self) -> Option<SpanKind> {
        match &self.body {
            Body::Traced(t) => Some(t.kind),
            Body::App(a) => a.kind,
        }
    }

    pub fn traced(&self) -> Option<&Traced> {
        match &self.body {
            Body::Traced(t) => Some(t),
            Body::App(_) => None,
        }
    }

    pub fn traced_mut(&mut self) -> Option<&mut Traced> {
        match &mut self.body {
            Body::Traced(t) => Some(t),
            Body::App(_) => None,
        }
    }
}

impl SpanKind {
    /// A `span.kind` value as clients write it (any case).
    pub fn parse(s: &str) -> Option<SpanKind> {
        [SpanKind::Client, SpanKind::Server, SpanKind::Internal, SpanKind::Producer, SpanKind::Consumer]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

impl Span {
    /// An application's span, as its Jaeger client sent it: the one way apps' spans enter.
    pub fn from_app(s: super::JaegerSpan) -> Span {
        let kind = s.kind().and_then(SpanKind::parse);
        let super::JaegerSpan {
            trace_id,
            span_id,
            parent_span_id,
            operation,
            flags,
            start_us,
            duration_us,
            tags,
            logs,
            references,
            process,
        } = s;
        Span {
            trace_id,
            span_id,
            parent_span_id,
            operation,
            flags,
            start_us,
            duration_us,
            process,
            body: Body::App(Box::new(AppSpan { kind, tags, logs, references })),
        }
    }
}
