//! Protocol detection and parsers (HTTP/1.x, HTTP/2 and gRPC, Redis RESP2/3, MySQL): pure and
//! incremental.
//!
//! The connection table hands every captured read/write of a TCP connection to one [`Session`],
//! chosen by [`detect`] from the first bytes. The session buffers partial messages (bounded),
//! skips bodies by length (also across capture gaps), pairs requests with responses in FIFO
//! order and yields one [`Exchange`] per request. Nothing here does I/O, reads a clock or
//! touches globals, and no input makes it panic.

pub mod context;
pub mod detect;
pub mod http;
pub mod http2;
pub mod mysql;
mod mysql_resp;
pub mod redact;
pub mod redis;
pub mod session;
mod stream;

#[cfg(test)]
pub(crate) mod tests;

use crate::model::{Attributes, TraceId};

pub use detect::{Detect, detect};
pub use session::{ParseDrop, Session, SessionCounters, SessionStats, Started};

/// An application protocol the daemon parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    /// HTTP/2 (h2c), gRPC included.
    Http2,
    Redis,
    Mysql,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [Protocol::Http, Protocol::Http2, Protocol::Redis, Protocol::Mysql];

    /// Lower-case name, as used in metrics and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Redis => "redis",
            Protocol::Mysql => "mysql",
        }
    }
}

/// Which end of the connection the traced process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

/// Bytes leaving (`Egress`) or entering (`Ingress`) the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Egress,
    Ingress,
}

impl Role {
    /// The direction requests travel for this end: a client sends them, a server receives them.
    pub fn request_direction(self) -> Direction {
        match self {
            Role::Client => Direction::Egress,
            Role::Server => Direction::Ingress,
        }
    }
}

/// Result of a pure parser over a byte slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// A whole message: `consumed` bytes of the input make up `msg`.
    Complete { consumed: usize, msg: T },
    /// A valid prefix: more bytes are needed.
    Partial,
    /// These bytes are not (or no longer) this protocol.
    NotThisProtocol,
}

/// Whether statements, query strings and command arguments are reduced to their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redaction {
    pub enabled: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction { enabled: true }
    }
}

/// Where an adopted trace context was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextSource {
    /// W3C `traceparent` header.
    Traceparent,
    /// Jaeger `uber-trace-id` header.
    UberTraceId,
    /// A sqlcommenter-style `/*traceparent='…'*/` comment in a SQL statement.
    SqlComment,
}

/// Where a message's first byte was: the call that carried it (named by the entry time it was
/// fed with) and the byte's offset in that call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub call: u64,
    pub offset: u64,
}

/// A trace context carried by a request, to be adopted as the span's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The caller's span id: the parent of the span made from this exchange.
    pub span_id: u64,
    pub sampled: bool,
    pub source: ContextSource,
}

/// One request and its response (or the reason there is none).
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    pub protocol: Protocol,
    /// 0-based index of this request on the connection; the client's n-th request is the
    /// server's n-th.
    pub seq: u64,
    /// CLOCK_MONOTONIC ns: entry of the call that carried the request's first byte.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns: exit of the call that carried the response's last byte (for requests
    /// that get no response, of the request's last byte; when the connection closed first, the
    /// close time).
    pub end_ns: u64,
    /// Human-scannable: `GET /path`, `redis GET`, `mysql SELECT`.
    pub operation: String,
    /// What the request and its response said.
    pub attrs: Attributes,
    /// The response was never seen: its stream lost framing before it.
    pub truncated: bool,
    /// Why the exchange failed, when it did.
    pub error: Option<String>,
    /// Trace context found in the request.
    pub context: Option<TraceContext>,
}

impl Exchange {
    /// The protocol's tags as the Jaeger renderer writes them.
    pub fn tags(&self) -> Vec<crate::model::Tag> {
        let mut tags = Vec::new();
        crate::render::jaeger::attribute_tags(&self.attrs, self.truncated, &mut tags);
        tags
    }
}

/// What a request turned into while it waits for its response.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Request {
    pub operation: String,
    pub attrs: Attributes,
    pub context: Option<TraceContext>,
    pub meta: RequestMeta,
}

/// Per-protocol facts about a pending request that its response's parsing depends on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RequestMeta {
    Http(http::RequestMeta),
    Redis(redis::RequestMeta),
    Mysql(mysql::RequestMeta),
}

/// What a complete response adds to its request.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Response {
    pub facts: ResponseFacts,
    pub error: Option<String>,
    /// Replaces the request's operation (a prepared statement resolved late).
    pub operation: Option<String>,
    pub context: Option<TraceContext>,
    /// The response was never seen (its request is abandoned after a loss of framing).
    pub truncated: bool,
}

/// What a response adds to its request's attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum ResponseFacts {
    #[default]
    None,
    Http {
        status: u16,
        content_length: Option<i64>,
    },
    Mysql {
        rows: Option<i64>,
        error_code: Option<i64>,
        /// A prepared statement named by an execute whose preparation was learnt late:
        /// (operation, statement).
        resolved: Option<(String, String)>,
    },
}

impl ResponseFacts {
    /// Adds the response's facts to the request's.
    pub(crate) fn apply(self, attrs: &mut Attributes) {
        match (self, attrs) {
            (ResponseFacts::Http { status, content_length }, Attributes::Http(h)) => {
                h.status_code = Some(status);
                h.response_content_length = content_length;
            }
            (ResponseFacts::Mysql { rows, error_code, resolved }, Attributes::Mysql(m)) => {
                if let Some((operation, statement)) = resolved {
                    m.operation = Some(operation);
                    m.statement = Some(statement);
                }
                m.rows = rows;
                m.error_code = error_code;
            }
            _ => {}
        }
    }
}

/// Something a protocol machine recognised in a stream.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// A request that waits for a response.
    Request(Request),
    /// A request that gets no response: its exchange is complete at once.
    OneWay(Request),
    /// The response to the oldest pending request.
    Response(Response),
    /// The rest of the connection cannot be parsed (TLS started, protocol switched).
    Stop,
    /// The connection switched to HTTP/2 (`101` with `Upgrade: h2c`): the oldest pending
    /// request is answered on stream 1 of the HTTP/2 session that follows.
    UpgradeH2c,
}

/// Progress of a protocol machine over the buffered bytes of one direction.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "returned by value once per message; boxing would allocate per message")]
pub(crate) enum Progress {
    /// `consumed` bytes were used (`begins`: they start a new message); `now` fires at once;
    /// the next `skip` bytes (seen or not) belong to the same message and are passed over;
    /// `then` fires once they are through.
    Advance { consumed: usize, begins: bool, now: Option<Event>, skip: u64, then: Option<Event> },
    /// The buffered bytes are a valid prefix.
    NeedMore,
    /// The bytes are not this protocol here: resynchronise.
    Invalid,
}

/// What a machine makes of a gap (bytes the capture did not keep) that cuts a message.
#[derive(Debug, Default)]
pub(crate) struct GapOutcome {
    pub event: Option<Event>,
    /// Some(n): the cut message ends `n` bytes after the buffered ones (framing survives), and
    /// `event` fires then. None: framing is lost; `event` fires now and the stream resyncs.
    pub resume_skip: Option<u64>,
}

/// The two streams of a connection, named by what they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// Settings every machine sees.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub role: Role,
    pub redaction: Redaction,
}

/// Longest string kept in a tag (statements, targets), in bytes.
pub(crate) const MAX_TAG_LEN: usize = 2048;

/// Lossy UTF-8 of at most `max` bytes, cut on a character boundary.
pub(crate) fn bounded_str(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    s.into_owned()
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
