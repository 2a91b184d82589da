//! Redis RESP2 and RESP3: commands (arrays of bulk strings and inline commands) and replies of
//! every type, parsed as a stream so large values are skipped by length; pushes and attributes
//! are told apart from replies, subscribe confirmations are paired with their commands.

use super::{
    Ctx, Event, GapOutcome, MAX_TAG_LEN, Progress, Request, RequestMeta as Meta, Response, Side, bounded_str, truncate,
};
use crate::model::{Attributes, attrs};

/// Bytes kept of each command argument.
const ARG_MAX: usize = 128;
/// Arguments kept when redaction is off (with redaction on, the first three).
const ARGS_KEPT: usize = 32;
/// Bytes kept of an error reply.
const ERROR_MAX: usize = 512;
/// Deepest aggregate nesting accepted.
const MAX_DEPTH: usize = 64;
/// Largest bulk string / aggregate length accepted (Redis itself allows 512 MiB bulks).
const MAX_LEN: i64 = 1 << 40;

/// Commands whose first argument is a subcommand (`CLIENT SETNAME`, `CONFIG GET`).
const TWO_WORD: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE", "OBJECT",
    "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// Commands whose arguments are never kept (credentials, free text).
const NO_KEY: &[&str] = &["AUTH", "ECHO", "PING"];

/// Subscription families, whose confirmations answer (un)subscribe commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubKind {
    Channel,
    Pattern,
    Shard,
}

/// Facts about a pending command that decide which replies answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    /// Set for (un)subscribe commands: the family and whether it subscribes.
    pub sub: Option<(SubKind, bool)>,
    /// Confirmations expected (0: one per current subscription of the family).
    pub replies: u32,
}

fn sub_of(word: &[u8]) -> Option<(SubKind, bool)> {
    let w = word.to_ascii_lowercase();
    Some(match w.as_slice() {
        b"subscribe" => (SubKind::Channel, true),
        b"unsubscribe" => (SubKind::Channel, false),
        b"psubscribe" => (SubKind::Pattern, true),
        b"punsubscribe" => (SubKind::Pattern, false),
        b"ssubscribe" => (SubKind::Shard, true),
        b"sunsubscribe" => (SubKind::Shard, false),
        _ => return None,
    })
}

/// A line without its CR LF and the index after it; Err(true) when incomplete.
fn line(buf: &[u8]) -> Result<(&[u8], usize), bool> {
    match buf.iter().position(|&c| c == b'\n') {
        Some(lf) if lf > 0 && buf[lf - 1] == b'\r' => Ok((&buf[..lf - 1], lf + 1)),
        Some(_) => Err(false),
        None => Err(buf.len() < 64 * 1024),
    }
}

fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', d)) => (true, d),
        Some((b'+', d)) => (false, d),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'));
    Some(if neg { -v } else { v })
}

/// A bulk string whose content comes next.
#[derive(Clone, Copy, Debug)]
struct Bulk {
    len: u64,
    /// Bytes of the content to keep.
    keep: usize,
}

/// The command being read.
#[derive(Debug, Default)]
struct Command {
    in_array: bool,
    remaining: u64,
    total: u64,
    args: Vec<Vec<u8>>,
    bulk: Option<Bulk>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopKind {
    Reply,
    Push,
    Attribute,
}

#[derive(Debug)]
struct Frame {
    remaining: u64,
    seen: u64,
    attribute: bool,
}

/// The reply (or push) being read.
#[derive(Debug)]
struct Reply {
    stack: Vec<Frame>,
    kind: TopKind,
    error: Option<String>,
    /// The first element of a top-level aggregate, when a string.
    first: Option<Vec<u8>>,
    /// The third element of a top-level aggregate, when an integer (subscription count).
    count: Option<i64>,
    bulk: Option<(Bulk, Slot)>,
    started: bool,
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            stack: Vec::new(),
            kind: TopKind::Reply,
            error: None,
            first: None,
            count: None,
            bulk: None,
            started: false,
        }
    }
}

/// What a bulk string's content is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Skip,
    First,
    Error,
}

enum Done {
    No,
    Value,
    Attribute,
}

impl Reply {
    /// One element finished at the current depth.
    fn element_done(&mut self) -> Done {
        loop {
            let Some(f) = self.stack.last_mut() else {
                return Done::Value;
            };
            f.remaining = f.remaining.saturating_sub(1);
            f.seen += 1;
            if f.remaining > 0 {
                return Done::No;
            }
            let attribute = f.attribute;
            self.stack.pop();
            if attribute {
                return if self.stack.is_empty() { Done::Attribute } else { Done::No };
            }
        }
    }

    /// Index of the next element in the top-level aggregate, when at depth 1.
    fn top_index(&self) -> Option<u64> {
        match self.stack.as_slice() {
            [f] if !f.attribute => Some(f.seen),
            _ => None,
        }
    }
}

/// The Redis state of a connection.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    cmd: Command,
    reply: Reply,
    /// Confirmations already seen for the oldest pending command.
    confirmed: u32,
    /// Confirmations the oldest pending command waits for, once known.
    expected: Option<u32>,
    /// Current subscriptions per family (from confirmations); RESP2 subscribe mode when any.
    subs: [u32; 3],
}

fn advance(consumed: usize, begins: bool, now: Option<Event>, skip: u64, then: Option<Event>) -> Progress {
    Progress::Advance { consumed, begins, now, skip, then }
}

/// Builds the span facts of a command from its kept arguments and total argument count.
fn command_event(args: &[Vec<u8>], total: u64, ctx: &Ctx) -> Option<Event> {
    let name = String::from_utf8_lossy(args.first()?).to_ascii_uppercase();
    let two = TWO_WORD.contains(&name.as_str()) && args.len() > 1;
    let op =
        if two { format!("{name} {}", String::from_utf8_lossy(&args[1]).to_ascii_uppercase()) } else { name.clone() };
    let op = truncate(op, 64);
    let words = if two { 2 } else { 1 };
    let mut stmt = op.clone();
    let never = NO_KEY.contains(&name.as_str());
    let keep_all = !ctx.redaction.enabled && !never && name != "HELLO";
    for i in words..usize::try_from(total).unwrap_or(usize::MAX) {
        if stmt.len() >= MAX_TAG_LEN {
            break;
        }
        stmt.push(' ');
        match args.get(i) {
            Some(a) if !never && (i == words || keep_all) => stmt.push_str(&bounded_str(a, ARG_MAX)),
            _ => stmt.push('?'),
        }
    }
    let sub = args.first().and_then(|a| sub_of(a));
    let given = u32::try_from(total.saturating_sub(1)).unwrap_or(u32::MAX);
    let replies = match sub {
        Some((_, true)) => given.max(1),
        _ => given,
    };
    Some(Event::Request(Request {
        operation: format!("redis {op}"),
        attrs: Attributes::Redis(attrs::Redis { operation: Some(op), statement: Some(truncate(stmt, MAX_TAG_LEN)) }),
        context: None,
        meta: Meta::Redis(RequestMeta { sub, replies }),
    }))
}

impl Machine {
    pub(crate) fn decode(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> Progress {
        match side {
            Side::Request => self.decode_command(buf, ctx),
            Side::Response => self.decode_reply(buf, head),
        }
    }

    fn wants_arg(&self, ctx: &Ctx) -> usize {
        let i = self.cmd.args.len();
        if i < 3 || (!ctx.redaction.enabled && i < ARGS_KEPT) { ARG_MAX } else { 0 }
    }

    fn decode_command(&mut self, buf: &[u8], ctx: &Ctx) -> Progress {
        if let Some(bulk) = self.cmd.bulk {
            let keep = bulk.keep.min(usize::try_from(bulk.len).unwrap_or(usize::MAX));
            if buf.len() < keep {
                return Progress::NeedMore;
            }
            self.cmd.bulk = None;
            if keep > 0 || bulk.keep > 0 {
                self.cmd.args.push(buf[..keep].to_vec());
            }
            return self.command_arg_done(keep, bulk.len - keep as u64 + 2, ctx);
        }
        let (l, next) = match line(buf) {
            Ok(x) => x,
            Err(true) => return Progress::NeedMore,
            Err(false) => return Progress::Invalid,
        };
        if self.cmd.in_array {
            let Some(len) = l.strip_prefix(b"$").and_then(parse_i64).filter(|n| (-1..=MAX_LEN).contains(n)) else {
                return Progress::Invalid;
            };
            if len < 0 {
                self.cmd.args.push(Vec::new());
                return self.command_arg_done(next, 0, ctx);
            }
            self.cmd.bulk = Some(Bulk { len: len as u64, keep: self.wants_arg(ctx) });
            return advance(next, false, None, 0, None);
        }
        if let Some(count) = l.strip_prefix(b"*") {
            let Some(n) = parse_i64(count).filter(|n| (-1..=MAX_LEN).contains(n)) else {
                return Progress::Invalid;
            };
            if n <= 0 {
                return advance(next, true, None, 0, None);
            }
            self.cmd = Command { in_array: true, remaining: n as u64, total: n as u64, ..Command::default() };
            return advance(next, true, None, 0, None);
        }
        // Inline command: space-separated words on one line.
        if l.iter().any(|&c| c < b' ' && c != b'\t') {
            return Progress::Invalid;
        }
        let words: Vec<&[u8]> = l.split(|&c| c == b' ' || c == b'\t').filter(|w| !w.is_empty()).collect();
        let args: Vec<Vec<u8>> = words.iter().take(ARGS_KEPT).map(|w| w[..w.len().min(ARG_MAX)].to_vec()).collect();
        let ev = command_event(&args, words.len() as u64, ctx);
        advance(next, true, ev, 0, None)
    }

    fn command_arg_done(&mut self, consumed: usize, skip: u64, ctx: &Ctx) -> Progress {
        self.cmd.remaining = self.cmd.remaining.saturating_sub(1);
        if self.cmd.remaining > 0 {
            return advance(consumed, false, None, skip, None);
        }
        let cmd = std::mem::take(&mut self.cmd);
        let ev = command_event(&cmd.args, cmd.total, ctx);
        advance(consumed, false, None, skip, ev)
    }

    fn decode_reply(&mut self, buf: &[u8], head: Option<&Request>) -> Progress {
        let begins = !self.reply.started;
        if let Some((bulk, slot)) = self.reply.bulk {
            let keep = bulk.keep.min(usize::try_from(bulk.len).unwrap_or(usize::MAX));
            if buf.len() < keep {
                return Progress::NeedMore;
            }
            self.reply.bulk = None;
            let content = &buf[..keep];
            match slot {
                Slot::First => self.reply.first = Some(content.to_vec()),
                Slot::Error => self.reply.error = Some(bounded_str(content, ERROR_MAX)),
                Slot::Skip => {}
            }
            return self.reply_element_done(keep, bulk.len - keep as u64 + 2, head, false);
        }
        let (l, next) = match line(buf) {
            Ok(x) => x,
            Err(true) => return Progress::NeedMore,
            Err(false) => return Progress::Invalid,
        };
        let Some((&kind, rest)) = l.split_first() else {
            return Progress::Invalid;
        };
        let top = self.reply.stack.is_empty();
        if top && !self.reply.started {
            self.reply.started = true;
            self.reply.kind = TopKind::Reply;
        }
        let index = self.reply.top_index();
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                let valid = match kind {
                    b':' | b'(' => parse_i64(rest).is_some() || (kind == b'(' && !rest.is_empty()),
                    b'_' => rest.is_empty(),
                    b'#' => rest == b"t" || rest == b"f",
                    b',' => !rest.is_empty(),
                    _ => true,
                };
                if !valid {
                    return Progress::Invalid;
                }
                if kind == b'-' && top {
                    self.reply.error = Some(bounded_str(rest, ERROR_MAX));
                }
                if kind == b'+' && index == Some(0) {
                    self.reply.first = Some(rest[..rest.len().min(32)].to_vec());
                }
                if kind == b':' && index == Some(2) {
                    self.reply.count = parse_i64(rest);
                }
                self.reply_element_done(next, 0, head, begins)
            }
            b'$' | b'=' | b'!' => {
                let Some(len) = parse_i64(rest).filter(|n| (-1..=MAX_LEN).contains(n)) else {
                    return Progress::Invalid;
                };
                if len < 0 {
                    return self.reply_element_done(next, 0, head, begins);
                }
                let slot = if kind == b'!' && top {
                    Slot::Error
                } else if index == Some(0) {
                    Slot::First
                } else {
                    Slot::Skip
                };
                let keep = match slot {
                    Slot::Error => ERROR_MAX,
                    Slot::First => 32,
                    Slot::Skip => 0,
                };
                self.reply.bulk = Some((Bulk { len: len as u64, keep }, slot));
                advance(next, begins, None, 0, None)
            }
            b'*' | b'~' | b'%' | b'>' | b'|' => {
                let Some(n) = parse_i64(rest).filter(|n| (-1..=MAX_LEN).contains(n)) else {
                    return Progress::Invalid;
                };
                let n = if matches!(kind, b'%' | b'|') { n.saturating_mul(2) } else { n };
                if top {
                    self.reply.kind = match kind {
                        b'>' => TopKind::Push,
                        b'|' => TopKind::Attribute,
                        _ => TopKind::Reply,
                    };
                }
                if n <= 0 {
                    return self.reply_element_done(next, 0, head, begins);
                }
                if self.reply.stack.len() >= MAX_DEPTH {
                    return Progress::Invalid;
                }
                self.reply.stack.push(Frame { remaining: n as u64, seen: 0, attribute: kind == b'|' });
                advance(next, begins, None, 0, None)
            }
            _ => Progress::Invalid,
        }
    }

    fn reply_element_done(&mut self, consumed: usize, skip: u64, head: Option<&Request>, begins: bool) -> Progress {
        match self.reply.element_done() {
            Done::No => advance(consumed, begins, None, skip, None),
            Done::Attribute => {
                // The reply the attribute describes comes next.
                self.reply.stack.clear();
                self.reply.kind = TopKind::Reply;
                advance(consumed, begins, None, skip, None)
            }
            Done::Value => {
                let reply = std::mem::take(&mut self.reply);
                let ev = self.finish_reply(reply, head);
                advance(consumed, begins, None, skip, ev)
            }
        }
    }

    /// Decides whether a complete top-level value answers the oldest pending command.
    fn finish_reply(&mut self, reply: Reply, head: Option<&Request>) -> Option<Event> {
        let first = reply.first.as_deref().map(<[u8]>::to_ascii_lowercase);
        let confirmation = first.as_deref().and_then(sub_of);
        let aggregate = reply.first.is_some() || reply.count.is_some();
        let is_message = matches!(first.as_deref(), Some(b"message" | b"pmessage" | b"smessage"));
        if let Some((kind, subscribing)) = confirmation.filter(|_| aggregate) {
            let slot = &mut self.subs[kind as usize];
            let before = *slot;
            *slot = if subscribing { slot.saturating_add(1) } else { slot.saturating_sub(1) };
            if reply.count == Some(0) {
                self.subs = [0; 3];
            }
            let meta = match head.map(|r| &r.meta) {
                Some(Meta::Redis(m)) => m,
                _ => return None,
            };
            if meta.sub != Some((kind, subscribing)) {
                return None;
            }
            let expected = *self.expected.get_or_insert(if meta.replies == 0 { before.max(1) } else { meta.replies });
            self.confirmed += 1;
            if self.confirmed < expected {
                return None;
            }
            self.confirmed = 0;
            self.expected = None;
            return Some(Event::Response(Response::default()));
        }
        if reply.kind == TopKind::Push || (is_message && self.subs.iter().any(|&s| s > 0)) {
            return None;
        }
        self.confirmed = 0;
        self.expected = None;
        Some(Event::Response(Response { error: reply.error, ..Response::default() }))
    }

    /// A gap cut a message: a bulk string's content is skipped by length; a cut line loses the
    /// framing, keeping what the message said so far.
    pub(crate) fn on_gap(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> GapOutcome {
        match side {
            Side::Request => {
                if let Some(bulk) = self.cmd.bulk.take() {
                    let keep = buf.len().min(bulk.keep);
                    if bulk.keep > 0 {
                        self.cmd.args.push(buf[..keep].to_vec());
                    }
                    let rest = (bulk.len + 2).saturating_sub(buf.len() as u64);
                    if let Progress::Advance { then, .. } = self.command_arg_done(0, rest, ctx) {
                        return GapOutcome { event: then, resume_skip: Some(rest) };
                    }
                }
                let cmd = std::mem::take(&mut self.cmd);
                GapOutcome { event: command_event(&cmd.args, cmd.total, ctx), resume_skip: None }
            }
            Side::Response => {
                if let Some((bulk, slot)) = self.reply.bulk.take() {
                    let keep = buf.len().min(bulk.keep);
                    if slot == Slot::Error {
                        self.reply.error = Some(bounded_str(&buf[..keep], ERROR_MAX));
                    }
                    let rest = (bulk.len + 2).saturating_sub(buf.len() as u64);
                    if let Progress::Advance { then, .. } = self.reply_element_done(0, rest, head, false) {
                        return GapOutcome { event: then, resume_skip: Some(rest) };
                    }
                }
                let reply = std::mem::take(&mut self.reply);
                let event = if reply.started { self.finish_reply(reply, head) } else { None };
                GapOutcome { event, resume_skip: None }
            }
        }
    }

    /// Whether a call that starts with `data` starts a message (after lost framing).
    pub(crate) fn resync(&mut self, side: Side, data: &[u8]) -> bool {
        match side {
            Side::Request => {
                self.cmd = Command::default();
                data.first() == Some(&b'*') || data.first().is_some_and(u8::is_ascii_alphabetic)
            }
            Side::Response => {
                self.reply = Reply::default();
                data.first().is_some_and(|c| b"+-:$*%~>_,#(=!|".contains(c))
            }
        }
    }
}
