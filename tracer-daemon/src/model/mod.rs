//! The types that cross stages. [`Span`] is the typed span every stage hands on: built by span
//! assembly from kernel events ([`Traced`], protocol facts as [`Attributes`]), or adopted from
//! an application's own tracing client ([`AppSpan`]). Tags exist only for what apps send and for
//! what a renderer writes: [`JaegerSpan`] mirrors `jaeger.thrift` and is what the Thrift
//! exporters, the console and the agent's decoder speak.

pub mod conn;
pub mod hash;

use std::sync::Arc;

pub mod attrs;
mod span;

pub use attrs::Attributes;
pub use span::{AppSpan, Body, Link, Span, Status, Traced};

/// A 128-bit trace id; `high` is 0 for 64-bit ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId {
    pub high: u64,
    pub low: u64,
}

impl TraceId {
    /// Lowercase hex, 32 digits (16 when `high` is 0, as Jaeger prints 64-bit ids).
    pub fn to_hex(self) -> String {
        if self.high == 0 { format!("{:016x}", self.low) } else { format!("{:016x}{:016x}", self.high, self.low) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Client,
    Server,
    Internal,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The value of the `span.kind` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Internal => "internal",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    Str(String),
    Double(f64),
    Bool(bool),
    Long(i64),
    Binary(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    /// The daemon's own keys are constants (no copy per span); apps' keys are their own.
    pub key: TagKey,
    pub value: TagValue,
}

/// A tag key: a constant of the renderers, or a string that came with an app's span.
pub type TagKey = std::borrow::Cow<'static, str>;

impl Tag {
    pub fn str(key: impl Into<TagKey>, value: impl Into<String>) -> Self {
        Tag { key: key.into(), value: TagValue::Str(value.into()) }
    }
    pub fn long(key: impl Into<TagKey>, value: i64) -> Self {
        Tag { key: key.into(), value: TagValue::Long(value) }
    }
    pub fn bool(key: impl Into<TagKey>, value: bool) -> Self {
        Tag { key: key.into(), value: TagValue::Bool(value) }
    }
}

/// A timestamped set of fields on a span (Jaeger `Log`).
#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    /// Unix epoch microseconds.
    pub timestamp_us: i64,
    pub fields: Vec<Tag>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    ChildOf,
    FollowsFrom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRef {
    pub kind: RefKind,
    pub trace_id: TraceId,
    pub span_id: u64,
}

/// The emitting process (Jaeger `Process`): service name and process-level tags.
#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<Tag>,
}

/// A span as Jaeger's Thrift model has it: tags, logs and references.
#[derive(Clone, Debug, PartialEq)]
pub struct JaegerSpan {
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
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    pub references: Vec<SpanRef>,
    pub process: Arc<Process>,
}

impl JaegerSpan {
    /// The `span.kind` tag, when present.
    pub fn kind(&self) -> Option<&str> {
        self.tag_str("span.kind")
    }

    /// A string tag's value.
    pub fn tag_str(&self, key: &str) -> Option<&str> {
        self.tags.iter().find_map(|t| match (&t.value, t.key == key) {
            (TagValue::Str(s), true) => Some(s.as_str()),
            _ => None,
        })
    }
}
