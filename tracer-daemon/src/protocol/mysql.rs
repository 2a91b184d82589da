//! MySQL / MariaDB client-server protocol: packet framing (with 16 MiB continuations), the
//! handshake (greeting, handshake response, auth switch, TLS request), and commands; the
//! responses are read by `mysql_resp`.

use crate::model::hash::FastMap;

use super::context::find_sql_traceparent;
use super::mysql_resp::{MAX_PAYLOAD, Outcome, ResponseReader};
use super::redact::{redact_message, redact_sql, sql_operation};
use super::{
    Ctx, Event, GapOutcome, MAX_TAG_LEN, Progress, Request, RequestMeta as Meta, Response, ResponseFacts, Side,
    TraceContext, bounded_str, truncate,
};
use crate::model::{Attributes, attrs};

pub(crate) const COM_QUIT: u8 = 0x01;
pub(crate) const COM_INIT_DB: u8 = 0x02;
pub(crate) const COM_QUERY: u8 = 0x03;
pub(crate) const COM_FIELD_LIST: u8 = 0x04;
pub(crate) const COM_STATISTICS: u8 = 0x09;
pub(crate) const COM_PROCESS_INFO: u8 = 0x0a;
pub(crate) const COM_CHANGE_USER: u8 = 0x11;
pub(crate) const COM_BINLOG_DUMP: u8 = 0x12;
pub(crate) const COM_STMT_PREPARE: u8 = 0x16;
pub(crate) const COM_STMT_EXECUTE: u8 = 0x17;
pub(crate) const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub(crate) const COM_STMT_CLOSE: u8 = 0x19;
pub(crate) const COM_STMT_FETCH: u8 = 0x1c;

const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;
/// Result sets end with an OK packet (0xFE header) instead of EOF packets.
pub const CLIENT_DEPRECATE_EOF: u32 = 0x100_0000;

/// Bytes of a request payload looked at (the SQL of a query is cut there).
const REQUEST_PEEK: u32 = 8 * 1024;
/// Bytes of a response payload looked at.
const RESPONSE_PEEK: u32 = 1024;
/// Prepared statements remembered per connection.
const MAX_STATEMENTS: usize = 1024;

/// Name of a command byte, as used in `db.operation` for commands without SQL.
fn command_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x01 => "QUIT",
        0x02 => "INIT_DB",
        0x03 => "QUERY",
        0x04 => "FIELD_LIST",
        0x05 => "CREATE_DB",
        0x06 => "DROP_DB",
        0x07 => "REFRESH",
        0x08 => "SHUTDOWN",
        0x09 => "STATISTICS",
        0x0a => "PROCESS_INFO",
        0x0c => "PROCESS_KILL",
        0x0d => "DEBUG",
        0x0e => "PING",
        0x11 => "CHANGE_USER",
        0x12 => "BINLOG_DUMP",
        0x16 => "PREPARE",
        0x17 => "EXECUTE",
        0x18 => "STMT_SEND_LONG_DATA",
        0x19 => "STMT_CLOSE",
        0x1a => "STMT_RESET",
        0x1b => "SET_OPTION",
        0x1c => "STMT_FETCH",
        0x1f => "RESET_CONNECTION",
        0xfa => "STMT_BULK_EXECUTE",
        _ => return None,
    })
}

/// A command as its response's parsing needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub code: u8,
    /// The response may be a result set (query, execute, fetch, process info).
    pub result_set: bool,
}

/// Facts about a pending command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    pub command: Command,
    /// COM_STMT_PREPARE: the SQL, kept to name later executions.
    pub sql: Option<String>,
    /// COM_STMT_EXECUTE of a statement not known when the request was seen.
    pub unresolved_statement: Option<u32>,
    /// COM_INIT_DB: the database switched to.
    pub database: Option<String>,
}

/// A prepared statement, as its executions are named.
#[derive(Clone, Debug)]
struct Prepared {
    operation: String,
    statement: String,
    context: Option<TraceContext>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet.
    #[default]
    Start,
    /// The server greeted; the client's handshake response comes next.
    Login,
    /// Authentication exchanges until the server's OK or ERR.
    Auth,
    Command,
    /// The handshake failed: the server closes the connection.
    Failed,
}

/// The MySQL state of a connection.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    phase: Phase,
    server_caps: Option<u32>,
    caps: u32,
    user: Option<String>,
    database: Option<String>,
    statements: FastMap<u32, Prepared>,
    response: ResponseReader,
    /// Per side: the next packet continues a 16 MiB one.
    continued: [bool; 2],
}

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) | (u32::from(b[1]) << 8) | (u32::from(b[2]) << 16)
}

fn cstr(b: &[u8]) -> (&[u8], usize) {
    match b.iter().position(|&c| c == 0) {
        Some(n) => (&b[..n], n + 1),
        None => (b, b.len()),
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Request => 0,
        Side::Response => 1,
    }
}

impl Machine {
    pub(crate) fn decode(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> Progress {
        if buf.len() < 4 {
            return Progress::NeedMore;
        }
        let len = u24(buf);
        let peek = match side {
            Side::Request => REQUEST_PEEK,
            Side::Response => RESPONSE_PEEK,
        };
        let want = len.min(peek) as usize;
        if buf.len() < 4 + want {
            return Progress::NeedMore;
        }
        let (begins, then) = self.packet(side, buf[3], &buf[4..4 + want], len, head, ctx);
        Progress::Advance { consumed: 4 + want, begins, now: None, skip: u64::from(len) - want as u64, then }
    }

    /// One packet (payload maybe cut to a prefix): (starts a message, event at its end).
    fn packet(
        &mut self,
        side: Side,
        seq: u8,
        payload: &[u8],
        len: u32,
        head: Option<&Request>,
        ctx: &Ctx,
    ) -> (bool, Option<Event>) {
        let i = side_index(side);
        if std::mem::replace(&mut self.continued[i], len == MAX_PAYLOAD) {
            return (false, None);
        }
        match (side, self.phase) {
            (_, Phase::Failed) => (false, None),
            (Side::Response, Phase::Start) => {
                if seq == 0 && payload.first() == Some(&0x0a) {
                    self.greeting(payload);
                    self.phase = Phase::Login;
                }
                (false, None)
            }
            (Side::Request, Phase::Start | Phase::Login) if seq != 0 || self.phase == Phase::Login => {
                (false, self.handshake_response(payload))
            }
            (Side::Response, Phase::Login | Phase::Auth) => {
                match payload.first() {
                    Some(0x00) => self.phase = Phase::Command,
                    Some(0xff) => self.phase = Phase::Failed,
                    _ => {}
                }
                (false, None)
            }
            (Side::Request, Phase::Auth) => (false, None),
            (Side::Request, _) => {
                if seq != 0 {
                    // Data that continues an exchange (LOCAL INFILE contents, auth data).
                    return (false, None);
                }
                self.phase = Phase::Command;
                (true, self.command(payload, ctx))
            }
            (Side::Response, Phase::Command) => {
                let mut event = self.response(payload, len, head);
                if ctx.redaction.enabled
                    && let Some(Event::Response(resp)) = &mut event
                    && let Some(message) = &mut resp.error
                {
                    // Error messages echo the statement's values.
                    *message = redact_message(message);
                }
                (seq == 1, event)
            }
        }
    }

    fn greeting(&mut self, p: &[u8]) {
        let (_, n) = cstr(&p[1..]);
        let at = 1 + n + 4 + 8 + 1;
        let lo = p.get(at..at + 2).map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
        let hi = p.get(at + 5..at + 7).map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
        self.server_caps = Some(lo | (hi << 16));
    }

    fn handshake_response(&mut self, p: &[u8]) -> Option<Event> {
        let caps = p.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if caps & CLIENT_PROTOCOL_41 == 0 {
            // Pre-4.1 response: u16 caps, u24 max packet, user.
            self.caps = caps & 0xffff;
            self.user = p.get(5..).map(|b| bounded_str(cstr(b).0, 128));
            self.phase = Phase::Auth;
            return None;
        }
        self.caps = caps & self.server_caps.unwrap_or(u32::MAX);
        if caps & CLIENT_SSL != 0 && p.len() <= 32 {
            // TLS follows: nothing more on this connection can be read.
            return Some(Event::Stop);
        }
        self.phase = Phase::Auth;
        let rest = p.get(32..)?;
        let (user, n) = cstr(rest);
        self.user = Some(bounded_str(user, 128));
        let rest = &rest[n..];
        let skip = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            let (v, w) = super::mysql_resp::lenenc(rest)?;
            usize::try_from(v).ok()?.checked_add(w)?
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            usize::from(*rest.first()?) + 1
        } else {
            cstr(rest).1
        };
        if caps & CLIENT_CONNECT_WITH_DB != 0 {
            let (db, _) = cstr(rest.get(skip..)?);
            if !db.is_empty() {
                self.database = Some(bounded_str(db, 128));
            }
        }
        None
    }

    fn base_attrs(&self) -> attrs::Mysql {
        attrs::Mysql { database: self.database.clone(), user: self.user.clone(), ..attrs::Mysql::default() }
    }

    fn command(&mut self, p: &[u8], ctx: &Ctx) -> Option<Event> {
        let code = *p.first()?;
        let name = command_name(code)?;
        let mut meta = RequestMeta {
            command: Command {
                code,
                result_set: matches!(code, COM_QUERY | COM_STMT_EXECUTE | COM_STMT_FETCH | COM_PROCESS_INFO),
            },
            sql: None,
            unresolved_statement: None,
            database: None,
        };
        let mut attrs = self.base_attrs();
        let mut operation = name.to_string();
        let mut statement = None;
        let mut context = None;
        let stmt_id = p.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match code {
            COM_QUERY | COM_STMT_PREPARE => {
                let raw = &p[1..];
                let sql = bounded_str(raw, REQUEST_PEEK as usize);
                if code == COM_QUERY {
                    operation = sql_operation(raw).unwrap_or_else(|| name.to_string());
                }
                context = find_sql_traceparent(raw);
                statement =
                    Some(if ctx.redaction.enabled { redact_sql(&sql) } else { truncate(sql.clone(), MAX_TAG_LEN) });
                if code == COM_STMT_PREPARE {
                    meta.sql = Some(sql);
                }
            }
            COM_STMT_EXECUTE => match stmt_id.and_then(|id| self.statements.get(&id).map(|s| (id, s))) {
                Some((_, s)) => {
                    operation = s.operation.clone();
                    statement = Some(s.statement.clone());
                    context = s.context;
                }
                None => meta.unresolved_statement = stmt_id,
            },
            COM_STMT_CLOSE => {
                if let Some(id) = stmt_id {
                    self.statements.remove(&id);
                }
            }
            COM_INIT_DB => {
                let db = bounded_str(&p[1..], 128);
                attrs.database = Some(db.clone());
                meta.database = Some(db);
            }
            _ => {}
        }
        let req = Request {
            operation: format!("mysql {operation}"),
            attrs: Attributes::Mysql(attrs::Mysql { operation: Some(operation), statement, ..attrs }),
            context,
            meta: Meta::Mysql(meta),
        };
        Some(match code {
            COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => Event::OneWay(req),
            COM_BINLOG_DUMP => Event::Stop,
            _ => Event::Request(req),
        })
    }

    fn response(&mut self, p: &[u8], len: u32, head: Option<&Request>) -> Option<Event> {
        let meta = match head.map(|r| &r.meta) {
            Some(Meta::Mysql(m)) => Some(m),
            _ => None,
        };
        let cmd = meta.map_or(Command { code: COM_QUERY, result_set: true }, |m| m.command);
        let deprecate_eof = self.caps & CLIENT_DEPRECATE_EOF != 0;
        match self.response.packet(cmd, p, len, deprecate_eof) {
            Outcome::More | Outcome::Infile => None,
            Outcome::Prepared { id, done } => {
                if let Some(sql) = meta.and_then(|m| m.sql.as_deref()) {
                    self.remember(id, sql);
                }
                done.then(|| Event::Response(Response::default()))
            }
            Outcome::Done(mut resp) => {
                if cmd.code == COM_CHANGE_USER {
                    self.database = None;
                }
                if let Some(m) = meta {
                    if resp.error.is_none()
                        && let Some(db) = &m.database
                    {
                        self.database = Some(db.clone());
                    }
                    if let Some(s) = m.unresolved_statement.and_then(|id| self.statements.get(&id)) {
                        resp.operation = Some(format!("mysql {}", s.operation));
                        let known = Some((s.operation.clone(), s.statement.clone()));
                        match &mut resp.facts {
                            ResponseFacts::Mysql { resolved, .. } => *resolved = known,
                            facts => *facts = ResponseFacts::Mysql { rows: None, error_code: None, resolved: known },
                        }
                        resp.context = s.context;
                    }
                }
                Some(Event::Response(resp))
            }
        }
    }

    fn remember(&mut self, id: u32, sql: &str) {
        if self.statements.len() >= MAX_STATEMENTS && !self.statements.contains_key(&id) {
            return;
        }
        let prepared = Prepared {
            operation: sql_operation(sql.as_bytes()).unwrap_or_else(|| "EXECUTE".to_string()),
            statement: redact_sql(sql),
            context: find_sql_traceparent(sql.as_bytes()),
        };
        self.statements.insert(id, prepared);
    }

    /// A gap cut a packet: once its header is known, the captured part is used and the rest
    /// skipped by length; a cut header loses the framing.
    pub(crate) fn on_gap(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> GapOutcome {
        if buf.len() < 4 {
            if side == Side::Response {
                self.response.reset();
            }
            return GapOutcome::default();
        }
        let len = u24(buf);
        let (_, event) = self.packet(side, buf[3], &buf[4..], len, head, ctx);
        let rest = (u64::from(len) + 4).saturating_sub(buf.len() as u64);
        GapOutcome { event, resume_skip: Some(rest) }
    }

    /// Whether a call that starts with `data` starts a packet that begins a message.
    pub(crate) fn resync(&mut self, side: Side, data: &[u8]) -> bool {
        self.continued[side_index(side)] = false;
        if data.len() < 5 || u24(data) == 0 {
            return false;
        }
        match side {
            Side::Request => data[3] == 0 && command_name(data[4]).is_some(),
            Side::Response => {
                self.response.reset();
                data[3] == 1
            }
        }
    }
}
