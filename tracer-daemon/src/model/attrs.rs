//! Protocol facts of a traced call, one struct per protocol, filled by the parsers (and by the
//! client-library probes) and turned into tags or attributes only by the renderers.

/// What the request and its response said, by protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Attributes {
    Http(Http),
    Redis(Redis),
    Mysql(Mysql),
}

impl Attributes {
    /// The database system a call of this protocol talks to (`None`: not a database).
    pub fn db_system(&self) -> Option<&'static str> {
        match self {
            Attributes::Http(_) => None,
            Attributes::Redis(_) => Some("redis"),
            Attributes::Mysql(_) => Some("mysql"),
        }
    }

    /// The protocol's lower-case name (`http`, `redis`, `mysql`).
    pub fn protocol(&self) -> &'static str {
        match self {
            Attributes::Http(_) => "http",
            Attributes::Redis(_) => "redis",
            Attributes::Mysql(_) => "mysql",
        }
    }

    /// The host the request named (HTTP `Host`).
    pub fn http_host(&self) -> Option<&str> {
        match self {
            Attributes::Http(h) => h.host.as_deref(),
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
