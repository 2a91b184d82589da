//! The connection loop of the HTTP/1.1 server: bounded request heads and `Content-Length`
//! bodies, keep-alive, a connection limit, a deadline for each whole request (a client
//! trickling bytes is cut off when it passes, however often it sends), idle timeouts, and
//! shutdown through a watch channel. Every connection or request refused is counted with its
//! reason in `tracer_listener_dropped_total{listener,reason}`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Request, Response, Router, parse_query, percent_decode};
use crate::metrics::{Counter, Registry};

/// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// Bytes of a refused request's body read and discarded after the answer, so that the client
/// sees the answer rather than a reset.
const DISCARD_BYTES: usize = 256 * 1024;
/// Longest wait for a refused client to finish sending or to read the answer.
const LINGER: Duration = Duration::from_secs(1);

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more is answered 503 and closed (`connection_limit`).
    pub max_connections: usize,
    /// Largest request body, bytes; a larger `Content-Length` gets 413 (`body_too_large`).
    pub max_body_bytes: usize,
    /// Time allowed to receive one whole request, head and body, counted from the accept for
    /// a connection's first request and from the first byte for later ones; past it the
    /// client gets 408 and is closed (`request_timeout`). Writing the answer has the same
    /// allowance.
    pub request_timeout: Duration,
    /// A keep-alive connection idle this long between requests is closed (not counted).
    pub idle_timeout: Duration,
}

impl Limits {
    /// The admin endpoint's and the sampling endpoint's defaults: small GET requests.
    pub const ADMIN: Limits = Limits {
        max_connections: 64,
        max_body_bytes: 64 * 1024,
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::ADMIN
    }
}

/// Why a connection or a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The listener had `max_connections` open.
    ConnectionLimit,
    /// The whole request did not arrive (or its answer was not read) within the deadline.
    RequestTimeout,
    /// `Content-Length` above the listener's body limit (413).
    BodyTooLarge,
    /// Request head above `MAX_HEADER_BYTES` or too many headers (431).
    HeaderTooLarge,
    /// Not HTTP/1.1, a bad `Content-Length`, a chunked body, or cut off mid-request (400, 411).
    Malformed,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::ConnectionLimit,
        DropReason::RequestTimeout,
        DropReason::BodyTooLarge,
        DropReason::HeaderTooLarge,
        DropReason::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::ConnectionLimit => "connection_limit",
            DropReason::RequestTimeout => "request_timeout",
            DropReason::BodyTooLarge => "body_too_large",
            DropReason::HeaderTooLarge => "header_too_large",
            DropReason::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        DropReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The drop counters of one listener: `tracer_listener_dropped_total{listener,reason}`.
#[derive(Clone, Debug)]
pub struct DropCounters {
    by_reason: [Counter; DropReason::ALL.len()],
    /// Counters of the listener's own protocol that a refusal also counts (e.g. OTLP's
    /// `outcome="too_large"` for a 413 at the door).
    also: Vec<(DropReason, Counter)>,
}

impl DropCounters {
    /// Registers the series of `listener` (e.g. `admin`, `sampling`, `otlp_http`), one per reason.
    pub fn register(reg: &Registry, listener: &str) -> Self {
        let by_reason = DropReason::ALL.map(|r| {
            reg.counter(
                "tracer_listener_dropped_total",
                "Connections and requests a listener refused, by listener and reason.",
                &[("listener", listener), ("reason", r.as_str())],
            )
        });
        DropCounters { by_reason, also: Vec::new() }
    }

    /// Counters in no registry.
    pub fn detached() -> Self {
        DropCounters { by_reason: DropReason::ALL.map(|_| Counter::detached()), also: Vec::new() }
    }

    /// Also increments `counter` on each drop for `reason`.
    pub fn also(mut self, reason: DropReason, counter: Counter) -> Self {
        self.also.push((reason, counter));
        self
    }

    pub fn count(&self, reason: DropReason) {
        self.by_reason[reason.index()].inc();
        for (r, c) in &self.also {
            if *r == reason {
                c.inc();
            }
        }
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.by_reason[reason.index()].get()
    }
}

/// Accepts connections on `listener` and answers them through `router` until `shutdown` turns
/// `true` (or its sender is dropped), with the admin endpoint's limits and uncounted drops.
pub async fn serve(listener: TcpListener, router: Arc<Router>, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    serve_with(listener, router, shutdown, Limits::default(), DropCounters::detached()).await
}

/// `serve` with `limits`, counting what is refused in `drops`. Connections in flight finish
/// their current request at shutdown.
pub async fn serve_with(
    listener: TcpListener,
    router: Arc<Router>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
    drops: DropCounters,
) -> io::Result<()> {
    if *shutdown.borrow() {
        return Ok(());
    }
    let slots =
        Arc::new(tokio::sync::Semaphore::new(limits.max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)));
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        drops.count(DropReason::ConnectionLimit);
                        // Best effort, without waiting: the client learns why before the close.
                        let _ = stream.try_write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (router, shutdown, drops) = (router.clone(), shutdown.clone(), drops.clone());
                    tokio::spawn(async move {
                        connection(stream, router, shutdown, limits, drops).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// What reading one request produced.
enum Read {
    Request(Request, bool),
    /// The peer closed cleanly between requests, or went away.
    Closed,
    /// The request was unusable: answer with this, count the reason and close.
    Reject(Response, DropReason),
}

async fn connection(
    mut stream: TcpStream,
    router: Arc<Router>,
    shutdown: watch::Receiver<bool>,
    limits: Limits,
    drops: DropCounters,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut started = Instant::now();
    let mut first = true;
    loop {
        if !first {
            // Between requests: wait (idle timeout) for the next one's first byte; its
            // deadline starts then.
            if buf.is_empty() {
                match tokio::time::timeout(limits.idle_timeout, read_more(&mut stream, &mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
            started = Instant::now();
        }
        first = false;
        let deadline = started + limits.request_timeout;
        let read = tokio::time::timeout_at(deadline, read_request(&mut stream, &mut buf, limits.max_body_bytes));
        let (req, keep_alive) = match read.await {
            Ok(Read::Request(r, k)) => (r, k),
            Ok(Read::Closed) => return,
            Ok(Read::Reject(resp, reason)) => {
                drops.count(reason);
                refuse(&mut stream, &resp).await;
                return;
            }
            Err(_) => {
                drops.count(DropReason::RequestTimeout);
                let resp = Response::text(408, "request not received within the deadline\n");
                let _ = tokio::time::timeout(LINGER, write_response(&mut stream, &resp, None, false)).await;
                return;
            }
        };
        let (resp, allow) = router.handle(&req);
        let keep_alive = keep_alive && !*shutdown.borrow();
        let write = write_response(&mut stream, &resp, allow.as_deref(), keep_alive);
        match tokio::time::timeout(limits.request_timeout, write).await {
            Ok(Ok(())) if keep_alive => {}
            Ok(_) => return,
            Err(_) => {
                drops.count(DropReason::RequestTimeout);
                return;
            }
        }
    }
}

/// Answers a refused request and closes: the write side first, then a bounded read of what
/// the client still sends, so the answer is not lost to a reset.
async fn refuse(stream: &mut TcpStream, resp: &Response) {
    let linger = async {
        write_response(stream, resp, None, false).await?;
        stream.shutdown().await?;
        let mut chunk = [0u8; 8192];
        let mut discarded = 0;
        while discarded < DISCARD_BYTES {
            match stream.read(&mut chunk).await? {
                0 => break,
                n => discarded += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(LINGER, linger).await;
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Reads one request from `stream`; `buf` carries bytes already read past the previous request.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, max_body: usize) -> Read {
    loop {
        if !buf.is_empty() {
            match parse_head(buf, max_body) {
                Ok(Some(head)) => return finish_request(stream, buf, head).await,
                Ok(None) => {}
                Err((resp, reason)) => return Read::Reject(resp, reason),
            }
            if buf.len() > MAX_HEADER_BYTES {
                return Read::Reject(Response::text(431, "request header too large\n"), DropReason::HeaderTooLarge);
            }
        }
        match read_more(stream, buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Read::Closed,
            Ok(0) => return Read::Reject(Response::bad_request("truncated request"), DropReason::Malformed),
            Ok(_) => {}
            Err(_) => return Read::Closed,
        }
    }
}

/// A parsed request head.
struct Head {
    req: Request,
    head_len: usize,
    content_length: usize,
    keep_alive: bool,
    expect_continue: bool,
}

/// The head at the start of `buf`: `None` until it is complete, or the answer and the drop
/// reason of a refused request.
fn parse_head(buf: &[u8], max_body: usize) -> Result<Option<Head>, (Response, DropReason)> {
    let malformed = |resp: Response| (resp, DropReason::Malformed);
    let too_large = |what: &str| (Response::text(431, format!("{what}\n")), DropReason::HeaderTooLarge);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(too_large("too many headers")),
        Err(e) => return Err(malformed(Response::bad_request(&e.to_string()))),
    };
    if head_len > MAX_HEADER_BYTES {
        return Err(too_large("request header too large"));
    }
    let method = parsed.method.unwrap_or_default().to_ascii_uppercase();
    let target = parsed.path.unwrap_or("/");
    let version = parsed.version.unwrap_or(1);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method,
        path: percent_decode(path, false),
        query: parse_query(query),
        headers: Vec::with_capacity(parsed.headers.len()),
        body: Vec::new(),
    };
    let mut content_length = 0usize;
    let mut keep_alive = version >= 1;
    let mut expect_continue = false;
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_owned();
        match name.as_str() {
            "content-length" => {
                content_length =
                    value.parse().map_err(|_| malformed(Response::bad_request("invalid content-length")))?;
            }
            "transfer-encoding" => {
                return Err(malformed(Response::text(411, "a content-length body is required\n")));
            }
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
        req.headers.push((name, value));
    }
    if content_length > max_body {
        let why = format!("request body too large: {content_length} bytes, at most {max_body} accepted\n");
        return Err((Response::text(413, why), DropReason::BodyTooLarge));
    }
    Ok(Some(Head { req, head_len, content_length, keep_alive, expect_continue }))
}

/// What [`parse_request_head`] made of the bytes received so far.
#[doc(hidden)]
#[derive(Debug)]
pub enum HeadOutcome {
    /// The head is not complete yet.
    Partial,
    /// A usable head of `head_len` bytes; its body is the next `content_length` bytes.
    Head { req: Request, head_len: usize, content_length: usize, keep_alive: bool, expect_continue: bool },
    /// The request is refused with `status`, counted as `reason`.
    Reject { status: u16, reason: DropReason },
}

/// The connection loop's parsing of a request head, without the socket: the entry point of
/// the `admin_http` fuzz target.
#[doc(hidden)]
pub fn parse_request_head(buf: &[u8], max_body: usize) -> HeadOutcome {
    match parse_head(buf, max_body) {
        Ok(None) => HeadOutcome::Partial,
        Ok(Some(Head { req, head_len, content_length, keep_alive, expect_continue })) => {
            HeadOutcome::Head { req, head_len, content_length, keep_alive, expect_continue }
        }
        Err((resp, reason)) => HeadOutcome::Reject { status: resp.status, reason },
    }
}

async fn finish_request(stream: &mut TcpStream, buf: &mut Vec<u8>, head: Head) -> Read {
    let Head { mut req, head_len, content_length, keep_alive, expect_continue } = head;
    let total = head_len + content_length;
    if expect_continue && buf.len() < total && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
        return Read::Closed;
    }
    while buf.len() < total {
        match read_more(stream, buf).await {
            Ok(0) => return Read::Reject(Response::bad_request("truncated body"), DropReason::Malformed),
            Ok(_) => {}
            Err(_) => return Read::Closed,
        }
    }
    req.body = buf[head_len..total].to_vec();
    buf.drain(..total);
    Read::Request(req, keep_alive)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    allow: Option<&str>,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    if let Some(allow) = allow {
        out.extend_from_slice(format!("Allow: {allow}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&resp.body);
    stream.write_all(&out).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(
        router: Router,
    ) -> (std::net::SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::new(router), rx));
        (addr, tx, task)
    }

    async fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    fn router() -> Router {
        Router::new()
            .route("GET", "/hello", |r| Response::text(200, format!("hi {}", r.query_param("name").unwrap_or("?"))))
            .route("POST", "/echo", |r| Response {
                status: 200,
                content_type: "application/octet-stream".into(),
                body: r.body.clone(),
            })
    }

    #[tokio::test]
    async fn routes_and_errors() {
        let (addr, stop, task) = start(router()).await;
        let r = exchange(addr, b"GET /hello?name=a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nhi a b"), "{r}");
        let r = exchange(addr, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let r = exchange(addr, b"DELETE /hello HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405 ") && r.contains("Allow: GET\r\n"), "{r}");
        let r = exchange(addr, b"\x00\x01garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        let mut big = b"GET /hello HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES + 10));
        let r = exchange(addr, &big).await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn keep_alive_and_pipelined_bodies() {
        let (addr, _stop, _task) = start(router()).await;
        let raw = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye";
        let r = exchange(addr, raw).await;
        assert_eq!(r.matches("HTTP/1.1 200 OK").count(), 2, "{r}");
        assert!(r.contains("keep-alive\r\n\r\nhello"), "{r}");
        assert!(r.ends_with("close\r\n\r\nbye"), "{r}");
    }

    async fn start_limited(limits: Limits) -> (std::net::SocketAddr, DropCounters, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let drops = DropCounters::detached();
        tokio::spawn(serve_with(listener, Arc::new(router()), rx, limits, drops.clone()));
        (addr, drops, tx)
    }

    /// Like `exchange`, for a server that may close (or reset) the connection first: what was
    /// read until then.
    async fn try_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(raw).await;
        let mut out = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A client sending one byte every 50 ms never leaves a read idle for long, yet the whole
    /// request has 400 ms: it is answered 408 and closed when that passes, and counted.
    #[tokio::test]
    async fn a_trickling_client_is_cut_off_at_the_request_deadline() {
        let limits = Limits { request_timeout: Duration::from_millis(400), ..Limits::ADMIN };
        let (addr, drops, _stop) = start_limited(limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let began = Instant::now();
        let request = b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n".iter().chain(&[b'x'; 100]).copied();
        let mut sent = 0;
        let mut answer = Vec::new();
        for byte in request {
            if s.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            let mut chunk = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(50), s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
            assert!(began.elapsed() < Duration::from_secs(5), "still connected after 5 s");
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        answer.extend_from_slice(&rest);
        let elapsed = began.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
        assert!(sent < 60, "cut off after {sent} bytes; the request has 145");
        assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(drops.get(DropReason::RequestTimeout), 1);
        // A client that is quick enough is unaffected.
        let r = exchange(addr, b"GET /hello?name=q HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert_eq!(drops.get(DropReason::RequestTimeout), 1);
    }

    /// A connection that sends nothing has the same deadline as one that trickles.
    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_deadline() {
        let limits = Limits { request_timeout: Duration::from_millis(200), ..Limits::ADMIN };
        let (addr, drops, _stop) = start_limited(limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.unwrap().unwrap();
        assert!(out.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&out));
        assert_eq!(drops.get(DropReason::RequestTimeout), 1);
    }

    /// With two connections open, a third is answered 503 and closed, and counted; once one of
    /// the two closes a new connection is served.
    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_and_counted() {
        let limits = Limits { max_connections: 2, ..Limits::ADMIN };
        let (addr, drops, _stop) = start_limited(limits).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /hello HTTP/1.1\r\n\r\n").await.unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, b"HTTP/1.1 200", "kept alive and holding a slot");
            held.push(s);
        }
        for _ in 0..3 {
            let r = try_exchange(addr, b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n").await;
            assert!(r.is_empty() || r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        }
        assert_eq!(drops.get(DropReason::ConnectionLimit), 3);
        drop(held.pop());
        // The server notices the close asynchronously: retry until a connection is served.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let served = try_exchange(addr, b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n").await;
            if served.starts_with("HTTP/1.1 200 ") {
                break;
            }
            assert!(Instant::now() < deadline, "no slot freed: {served}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A body above the listener's limit is refused with 413 before it is read, saying the
    /// limit; the client that sends it anyway still reads the answer.
    #[tokio::test]
    async fn a_body_above_the_limit_gets_413() {
        let limits = Limits { max_body_bytes: 1024, ..Limits::ADMIN };
        let (addr, drops, _stop) = start_limited(limits).await;
        let mut raw = b"POST /echo HTTP/1.1\r\nContent-Length: 4096\r\n\r\n".to_vec();
        raw.extend_from_slice(&[b'x'; 4096]);
        let r = exchange(addr, &raw).await;
        assert!(r.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{r}");
        assert!(r.ends_with("request body too large: 4096 bytes, at most 1024 accepted\n"), "{r}");
        assert_eq!(drops.get(DropReason::BodyTooLarge), 1);
        let mut ok = b"POST /echo HTTP/1.1\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n".to_vec();
        ok.extend_from_slice(&[b'y'; 1024]);
        assert!(exchange(addr, &ok).await.starts_with("HTTP/1.1 200 "));
        let mut big = b"GET /hello HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES + 10));
        assert!(exchange(addr, &big).await.starts_with("HTTP/1.1 431 "));
        assert!(exchange(addr, b"\x00garbage\r\n\r\n").await.starts_with("HTTP/1.1 400 "));
        assert_eq!((drops.get(DropReason::HeaderTooLarge), drops.get(DropReason::Malformed)), (1, 1));
    }
}
