//! Protocol facts of a traced call, one struct per protocol, filled by the parsers (and by the
//! client-library probes) and turned into tags or attributes only by the renderers.

/// What the request and its response said, by protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Attributes {
    Http(Http),
    Http2(Http2),
    Redis(Redis),
    Mysql(Mysql),
}

impl Attributes {
    /// The database system a call of this protocol talks to (`None`: not a database).
    pub fn db_system(&self) -> Option<&'static str> {
        match self {
            Attributes::Http(_) | Attributes::Http2(_) => None,
            Attributes::Redis(_) => Some("redis"),
            Attributes::Mysql(_) => Some("mysql"),
        }
    }

    /// The protocol's lower-case name (`http`, `grpc`, `redis`, `mysql`): HTTP/2 is `http`
    /// unless it carries gRPC.
    pub fn protocol(&self) -> &'static str {
        match self {
            Attributes::Http(_) => "http",
            Attributes::Http2(h) if h.grpc.is_some() => "grpc",
            Attributes::Http2(_) => "http",
            Attributes::Redis(_) => "redis",
            Attributes::Mysql(_) => "mysql",
        }
    }

    /// The host the request named (HTTP `Host`).
    pub fn http_host(&self) -> Option<&str> {
        match self {
            Attributes::Http(h) => h.host.as_deref(),
            Attributes::Http2(h) if h.grpc.is_none() => h.authority.as_deref(),
            _ => None,
        }
    }
}

/// An HTTP/1.x exchange.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Http {
    pub method: String,
    /// Request target, query values redacted unless redaction is off.
    pub target: String,
    /// The `Host` header.
    pub host: Option<String>,
    /// `1.0` or `1.1`.
    pub flavor: &'static str,
    /// Bytes, when the request gave a `Content-Length` (and was not chunked).
    pub request_content_length: Option<i64>,
    pub status_code: Option<u16>,
    /// Bytes, when the response gave a `Content-Length`.
    pub response_content_length: Option<i64>,
}

/// One HTTP/2 stream: a request and its response. Headers the decoder could not resolve (the
/// connection was joined after its start) are `None`, never guessed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Http2 {
    /// The client-initiated stream id (the same at both ends of the connection).
    pub stream_id: u32,
    pub method: Option<String>,
    /// `:path`, query values redacted unless redaction is off.
    pub path: Option<String>,
    pub authority: Option<String>,
    pub status_code: Option<u16>,
    /// Some header of the stream could not be decoded (HPACK state unknown).
    pub headers_incomplete: bool,
    /// The stream is a gRPC call (`content-type: application/grpc…` or a `grpc-status`).
    pub grpc: Option<Grpc>,
}

/// A gRPC call's facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grpc {
    /// `package.Service` from the path.
    pub service: Option<String>,
    /// `Method` from the path.
    pub method: Option<String>,
    /// The `grpc-status` trailer (0 = OK).
    pub status_code: Option<i64>,
    /// The `grpc-message` trailer, percent-decoded, when the status is not OK.
    pub message: Option<String>,
    /// Length-prefixed messages the client sent (None: some DATA bytes were not captured).
    pub request_messages: Option<u32>,
    /// Length-prefixed messages the server sent.
    pub response_messages: Option<u32>,
}

/// gRPC status code names (`grpc/codes`), by value.
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A Redis command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redis {
    /// Command name, upper case (with its subcommand).
    pub operation: Option<String>,
    /// The command with its arguments shaped by redaction.
    pub statement: Option<String>,
}

/// A MySQL command (or a client library's connect).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mysql {
    /// The default database of the session.
    pub database: Option<String>,
    pub user: Option<String>,
    /// `SELECT`, `PREPARE`, `connect`, … .
    pub operation: Option<String>,
    /// SQL, shaped by redaction.
    pub statement: Option<String>,
    /// Rows of a result set.
    pub rows: Option<i64>,
    /// The server's error number.
    pub error_code: Option<i64>,
    /// The host a client library was asked to connect to.
    pub peer_name: Option<String>,
    /// The port a client library was asked to connect to.
    pub connect_port: Option<i64>,
}

/// What a client library's probes add to a call.
#[derive(Clone, Debug, PartialEq)]
pub struct LibraryCall {
    /// The library function (`redisCommand`, `mysql_real_query`, …).
    pub function: &'static str,
    /// The library's name (`libhiredis`, `libmariadb`, …).
    pub library: &'static str,
    /// The database system the library speaks (`redis`, `mysql`).
    pub system: &'static str,
    /// hiredis reply type name.
    pub reply_type: Option<&'static str>,
    /// libmysqlclient's return code.
    pub return_code: Option<i64>,
    /// libmysqlclient's error number.
    pub error_code: Option<i64>,
}
