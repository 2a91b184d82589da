//! HTTP/1.0 and 1.1: request and status lines, the headers that frame a message or carry trace
//! context, and bodies by Content-Length, chunked encoding or connection close.

use super::context::{parse_traceparent, parse_uber_trace_id};
use super::redact::redact_query;
use super::stream::UNTIL_CLOSE;
use super::{
    Ctx, Event, GapOutcome, MAX_TAG_LEN, Parse, Progress, Request, RequestMeta as Meta, Response, ResponseFacts, Role,
    Side, TraceContext, bounded_str, truncate,
};
use crate::model::{Attributes, attrs};

/// Facts about a pending request that decide how its response is framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    pub head: bool,
    pub connect: bool,
}

/// Framing and context headers of one message (values of other headers are never kept).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// A Transfer-Encoding other than chunked: the body ends with the connection.
    pub other_encoding: bool,
    pub host: Option<String>,
    pub close: bool,
    pub expect_continue: bool,
    /// `Upgrade` names HTTP/2 over cleartext (`h2c`).
    pub upgrade_h2c: bool,
    pub context: Option<TraceContext>,
}

/// A parsed request head (request line and headers).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestHead<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Headers,
}

/// A parsed response head (status line and headers).
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseHead {
    pub minor: u8,
    pub status: u16,
    pub headers: Headers,
}

fn is_tchar(c: u8) -> bool {
    TCHAR[c as usize]
}

/// RFC 9110 `tchar`, by byte.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        c += 1;
    }
    t
};

/// The next line of `buf` from `at`: (line without CR LF, index after the LF).
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let lf = memchr::memchr(b'\n', rest)?;
    let l = &rest[..lf];
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    Some((l, at + lf + 1))
}

fn version_minor(v: &[u8]) -> Option<u8> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => Some(d - b'0'),
        _ => None,
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|c| *c != b' ' && *c != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|c| *c != b' ' && *c != b'\t').map_or(start, |e| e + 1);
    &s[start..end]
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| acc.checked_mul(10)?.checked_add(u64::from(c - b'0')))
}

/// Parses header lines from `at` up to the empty line. Ok(end) or Err(Partial/NotThis).
fn parse_headers(buf: &[u8], mut at: usize, h: &mut Headers) -> Result<usize, bool> {
    loop {
        let Some((l, next)) = line(buf, at) else {
            return Err(true);
        };
        at = next;
        if l.is_empty() {
            return Ok(at);
        }
        if l[0] == b' ' || l[0] == b'\t' {
            continue; // obsolete line folding: a continuation of a value we do not keep
        }
        let Some(colon) = memchr::memchr(b':', l) else {
            return Err(false);
        };
        let name = &l[..colon];
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(false);
        }
        let value = trim(&l[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            let first = value.split(|&c| c == b',').next().map(trim).unwrap_or_default();
            match parse_u64(first) {
                Some(n) if h.content_length.is_none_or(|old| old == n) => h.content_length = Some(n),
                _ => return Err(false),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|&c| c == b',').next().map(trim).unwrap_or_default();
            if last.eq_ignore_ascii_case(b"chunked") {
                h.chunked = true;
                h.other_encoding = false;
            } else if !last.eq_ignore_ascii_case(b"identity") {
                h.chunked = false;
                h.other_encoding = true;
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            h.host = Some(bounded_str(value, 256));
        } else if name.eq_ignore_ascii_case(b"connection") {
            h.close |= value.split(|&c| c == b',').any(|t| trim(t).eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            h.upgrade_h2c |= value.split(|&c| c == b',').any(|t| trim(t).eq_ignore_ascii_case(b"h2c"));
        } else if name.eq_ignore_ascii_case(b"expect") {
            h.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"traceparent") {
            if let Some(ctx) = parse_traceparent(value) {
                h.context = Some(ctx);
            }
        } else if name.eq_ignore_ascii_case(b"uber-trace-id")
            && h.context.is_none()
            && let Some(ctx) = parse_uber_trace_id(value)
        {
            h.context = Some(ctx);
        }
    }
}

/// Leading empty lines before a request line are tolerated (RFC 9112 2.2).
fn skip_blank_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    while at < buf.len() && at < 16 && (buf[at] == b'\r' || buf[at] == b'\n') {
        at += 1;
    }
    at
}

/// Parses a request line and headers.
pub fn parse_request_head(buf: &[u8]) -> Parse<RequestHead<'_>> {
    let start = skip_blank_lines(buf);
    let Some((l, at)) = line(buf, start) else {
        return if request_prefix_ok(&buf[start..]) { Parse::Partial } else { Parse::NotThisProtocol };
    };
    let mut parts = l.splitn(3, |&c| c == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Parse::NotThisProtocol;
    };
    let method_ok = !method.is_empty() && method.len() <= 32 && method.iter().all(|&c| is_tchar(c));
    let target_ok = !target.is_empty() && target.iter().all(|&c| c > b' ' && c != 0x7f);
    let Some(minor) = version_minor(version).filter(|_| method_ok && target_ok) else {
        return Parse::NotThisProtocol;
    };
    let mut headers = Headers::default();
    match parse_headers(buf, at, &mut headers) {
        Ok(end) => Parse::Complete { consumed: end, msg: RequestHead { method, target, minor, headers } },
        Err(true) => Parse::Partial,
        Err(false) => Parse::NotThisProtocol,
    }
}

/// Whether `b` (no complete line yet) can still become a request line.
fn request_prefix_ok(b: &[u8]) -> bool {
    let method_len = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
    if method_len > 32 || !b[..method_len].iter().all(|&c| is_tchar(c)) {
        return false;
    }
    b.len() < 8 * 1024 + method_len && b[method_len..].iter().all(|&c| c >= b' ' && c != 0x7f || c == b'\r')
}

/// Parses a status line and headers.
pub fn parse_response_head(buf: &[u8]) -> Parse<ResponseHead> {
    let Some((l, at)) = line(buf, 0) else {
        let n = buf.len().min(8);
        return if buf[..n] == b"HTTP/1.x"[..n] || (n == 8 && buf.starts_with(b"HTTP/1.") && buf[7].is_ascii_digit()) {
            if buf.len() < 1024 { Parse::Partial } else { Parse::NotThisProtocol }
        } else if n == 8 || buf[..n.min(7)] != b"HTTP/1."[..n.min(7)] {
            Parse::NotThisProtocol
        } else {
            Parse::Partial
        };
    };
    let (Some(minor), Some(b' ')) = (l.get(..8).and_then(version_minor), l.get(8)) else {
        return Parse::NotThisProtocol;
    };
    let code = l.get(9..12).unwrap_or_default();
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) || l.get(12).is_some_and(|&c| c != b' ') {
        return Parse::NotThisProtocol;
    }
    let status = code.iter().fold(0u16, |acc, &c| acc * 10 + u16::from(c - b'0'));
    let mut headers = Headers::default();
    match parse_headers(buf, at, &mut headers) {
        Ok(end) => Parse::Complete { consumed: end, msg: ResponseHead { minor, status, headers } },
        Err(true) => Parse::Partial,
        Err(false) => Parse::NotThisProtocol,
    }
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunks {
    /// Expecting a chunk-size line (the data and CRLF of the previous chunk were skipped).
    Size,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// One step through a chunked body: Ok((consumed, skip, done)).
fn chunk_step(state: &mut Chunks, buf: &[u8]) -> Result<(usize, u64, bool), bool> {
    let Some((l, next)) = line(buf, 0) else {
        return Err(buf.len() < 4096);
    };
    match state {
        Chunks::Size => {
            let size = l.split(|&c| c == b';').next().map(trim).unwrap_or_default();
            if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
                return Err(false);
            }
            let n = size.iter().fold(0u64, |acc, &c| (acc << 4) | u64::from((c as char).to_digit(16).unwrap_or(0)));
            if n == 0 {
                *state = Chunks::Trailers;
                Ok((next, 0, false))
            } else {
                Ok((next, n + 2, false))
            }
        }
        Chunks::Trailers => Ok((next, 0, l.is_empty())),
    }
}

/// The HTTP state of a connection.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    /// Inside a chunked request body.
    req_chunks: Option<Chunks>,
    /// Inside a chunked response body, with the response that completes at its end.
    resp_chunks: Option<(Chunks, Response)>,
}

fn request_event(head: &RequestHead<'_>, ctx: &Ctx) -> Request {
    let method = bounded_str(head.method, 32);
    let target = bounded_str(head.target, MAX_TAG_LEN);
    let path = target.split('?').next().unwrap_or_default();
    let operation = truncate(format!("{method} {path}"), 256);
    let target = if ctx.redaction.enabled { redact_query(&target) } else { target };
    let attrs = attrs::Http {
        method: method.clone(),
        target: truncate(target, MAX_TAG_LEN),
        host: head.headers.host.clone(),
        flavor: if head.minor == 0 { "1.0" } else { "1.1" },
        request_content_length: head
            .headers
            .content_length
            .filter(|_| !head.headers.chunked)
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        ..attrs::Http::default()
    };
    Request {
        operation,
        attrs: Attributes::Http(attrs),
        context: head.headers.context,
        meta: Meta::Http(RequestMeta { head: method == "HEAD", connect: method == "CONNECT" }),
    }
}

fn response_event(status: u16, content_length: Option<u64>, role: Role) -> Response {
    let facts =
        ResponseFacts::Http { status, content_length: content_length.map(|n| i64::try_from(n).unwrap_or(i64::MAX)) };
    let error = (status >= 500 || (status >= 400 && role == Role::Client)).then(|| format!("HTTP {status}"));
    Response { facts, error, ..Response::default() }
}

fn advance(consumed: usize, begins: bool, now: Option<Event>, skip: u64, then: Option<Event>) -> Progress {
    Progress::Advance { consumed, begins, now, skip, then }
}

impl Machine {
    pub(crate) fn decode(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> Progress {
        match side {
            Side::Request => self.decode_request(buf, ctx),
            Side::Response => self.decode_response(buf, head, ctx),
        }
    }

    fn decode_request(&mut self, buf: &[u8], ctx: &Ctx) -> Progress {
        if let Some(state) = &mut self.req_chunks {
            return match chunk_step(state, buf) {
                Ok((consumed, skip, done)) => {
                    if done {
                        self.req_chunks = None;
                    }
                    advance(consumed, false, None, skip, None)
                }
                Err(true) => Progress::NeedMore,
                Err(false) => Progress::Invalid,
            };
        }
        match parse_request_head(buf) {
            Parse::Complete { consumed, msg } => {
                let ev = Event::Request(request_event(&msg, ctx));
                if msg.headers.chunked {
                    self.req_chunks = Some(Chunks::Size);
                    advance(consumed, true, Some(ev), 0, None)
                } else {
                    advance(consumed, true, Some(ev), msg.headers.content_length.unwrap_or(0), None)
                }
            }
            Parse::Partial => Progress::NeedMore,
            Parse::NotThisProtocol => Progress::Invalid,
        }
    }

    fn decode_response(&mut self, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> Progress {
        if let Some((state, _)) = &mut self.resp_chunks {
            return match chunk_step(state, buf) {
                Ok((consumed, skip, true)) => {
                    let done = self.resp_chunks.take().map(|(_, r)| Event::Response(r));
                    advance(consumed, false, done, skip, None)
                }
                Ok((consumed, skip, false)) => advance(consumed, false, None, skip, None),
                Err(true) => Progress::NeedMore,
                Err(false) => Progress::Invalid,
            };
        }
        let meta = match head.map(|r| &r.meta) {
            Some(Meta::Http(m)) => m.clone(),
            _ => RequestMeta { head: false, connect: false },
        };
        match parse_response_head(buf) {
            Parse::Complete { consumed, msg } => {
                let status = msg.status;
                if (100..200).contains(&status) && status != 101 {
                    // Interim (100 Continue, 103 Early Hints): the final response follows.
                    return advance(consumed, true, None, 0, None);
                }
                let h = &msg.headers;
                let no_body = meta.head || status == 204 || status == 304;
                let length = if no_body || h.chunked { None } else { h.content_length };
                if status == 101 && h.upgrade_h2c {
                    // HTTP/2 follows at once; the request is its stream 1 and gets its
                    // response there.
                    return advance(consumed, true, None, 0, Some(Event::UpgradeH2c));
                }
                let resp = Event::Response(response_event(status, if meta.head { None } else { length }, ctx.role));
                if status == 101 || (meta.connect && (200..300).contains(&status)) {
                    // The connection now carries another protocol (or a tunnel).
                    return advance(consumed, true, Some(resp), 0, Some(Event::Stop));
                }
                if no_body {
                    advance(consumed, true, Some(resp), 0, None)
                } else if h.chunked {
                    if let Event::Response(r) = resp {
                        self.resp_chunks = Some((Chunks::Size, r));
                    }
                    advance(consumed, true, None, 0, None)
                } else if let Some(n) = length {
                    advance(consumed, true, None, n, Some(resp))
                } else {
                    advance(consumed, true, None, UNTIL_CLOSE, Some(resp))
                }
            }
            Parse::Partial => Progress::NeedMore,
            Parse::NotThisProtocol => Progress::Invalid,
        }
    }

    /// A gap cut a head or a chunked body: what the captured part says is kept, then the
    /// stream resynchronises.
    pub(crate) fn on_gap(&mut self, side: Side, buf: &[u8], _head: Option<&Request>, ctx: &Ctx) -> GapOutcome {
        let event = match side {
            Side::Request => {
                let was_chunked = self.req_chunks.take().is_some();
                let start = skip_blank_lines(buf);
                match (was_chunked, line(buf, start)) {
                    (false, Some((l, next))) => {
                        let mut with_end = l.to_vec();
                        with_end.extend_from_slice(b"\r\n\r\n");
                        let _ = next;
                        match parse_request_head(&with_end) {
                            Parse::Complete { msg, .. } => Some(Event::Request(request_event(&msg, ctx))),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            Side::Response => {
                if let Some((_, r)) = self.resp_chunks.take() {
                    Some(Event::Response(r))
                } else if let Some((l, _)) = line(buf, 0) {
                    let mut with_end = l.to_vec();
                    with_end.extend_from_slice(b"\r\n\r\n");
                    match parse_response_head(&with_end) {
                        Parse::Complete { msg, .. } if !(100..200).contains(&msg.status) => {
                            Some(Event::Response(response_event(msg.status, None, ctx.role)))
                        }
                        _ => None,
                    }
                } else {
                    None
                }
            }
        };
        GapOutcome { event, resume_skip: None }
    }

    /// Whether a call that starts with `data` starts a message (after lost framing).
    pub(crate) fn resync(&mut self, side: Side, data: &[u8]) -> bool {
        match side {
            Side::Request => {
                self.req_chunks = None;
                !matches!(parse_request_head(data), Parse::NotThisProtocol)
            }
            Side::Response => {
                self.resp_chunks = None;
                data.starts_with(b"HTTP/1.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_characters_are_rfc_9110s() {
        let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        for c in 0..=255u8 {
            assert_eq!(is_tchar(c), tchar(c), "byte {c}");
        }
    }

    #[test]
    fn request_head() {
        let raw = b"\r\nPOST /upload?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 12\r\nExpect: 100-continue\r\nX-Other: secret\r\n\r\nbody";
        let Parse::Complete { consumed, msg } = parse_request_head(raw) else { panic!("not complete") };
        assert_eq!(consumed, raw.len() - 4);
        assert_eq!(msg.method, b"POST");
        assert_eq!(msg.target, b"/upload?x=1");
        assert_eq!(msg.minor, 1);
        assert_eq!(msg.headers.content_length, Some(12));
        assert_eq!(msg.headers.host.as_deref(), Some("a.example"));
        assert!(msg.headers.expect_continue);
        assert!(!msg.headers.chunked);
    }

    #[test]
    fn request_head_prefixes_and_garbage() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..raw.len() {
            assert_eq!(parse_request_head(&raw[..n]), Parse::Partial, "prefix {n}");
        }
        for bad in [
            &b"GET  HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"G(T / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert_eq!(parse_request_head(bad), Parse::NotThisProtocol, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn response_head() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n";
        let Parse::Complete { consumed, msg } = parse_response_head(raw) else { panic!("not complete") };
        assert_eq!(consumed, raw.len());
        assert_eq!((msg.minor, msg.status), (1, 200));
        assert!(msg.headers.chunked && msg.headers.close);
        assert_eq!(parse_response_head(b"HTTP/1.1 20"), Parse::Partial);
        assert_eq!(
            parse_response_head(b"HTTP/1.0 204\r\n\r\n"),
            Parse::Complete { consumed: 16, msg: ResponseHead { minor: 0, status: 204, headers: Headers::default() } }
        );
        assert_eq!(parse_response_head(b"HTTP/2 200\r\n\r\n"), Parse::NotThisProtocol);
        assert_eq!(parse_response_head(b"+OK\r\n"), Parse::NotThisProtocol);
        assert_eq!(parse_response_head(b"HTTP/1.1 2x0 OK\r\n\r\n"), Parse::NotThisProtocol);
    }

    #[test]
    fn chunk_sizes() {
        let mut st = Chunks::Size;
        assert_eq!(chunk_step(&mut st, b"1a;name=v\r\n"), Ok((11, 0x1a + 2, false)));
        assert_eq!(chunk_step(&mut st, b"0\r\n"), Ok((3, 0, false)));
        assert_eq!(st, Chunks::Trailers);
        assert_eq!(chunk_step(&mut st, b"X-Sum: 1\r\n"), Ok((10, 0, false)));
        assert_eq!(chunk_step(&mut st, b"\r\n"), Ok((2, 0, true)));
        let mut st = Chunks::Size;
        assert_eq!(chunk_step(&mut st, b"zz\r\n"), Err(false));
        assert_eq!(chunk_step(&mut st, b"ffffffffffffffff\r\n"), Err(false));
        assert_eq!(chunk_step(&mut st, b"10"), Err(true));
    }
}
