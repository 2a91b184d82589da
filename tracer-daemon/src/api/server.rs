//! The connection loop of the HTTP/1.1 server: bounded request heads, `Content-Length` bodies,
//! keep-alive, idle timeouts, and shutdown through a watch channel.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Request, Response, Router, parse_query, percent_decode};

/// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted, in bytes; larger gets 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// A connection idle this long between requests (or stalled mid-request) is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` and answers them through `router` until `shutdown` turns
/// `true` (or its sender is dropped). Connections in flight finish their current request.
pub async fn serve(listener: TcpListener, router: Arc<Router>, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    serve_limited(listener, router, shutdown, tokio::sync::Semaphore::MAX_PERMITS).await
}

/// `serve`, with at most `max_connections` open at once: further connections wait in the
/// listen backlog until one closes.
pub async fn serve_limited(
    listener: TcpListener,
    router: Arc<Router>,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
) -> io::Result<()> {
    if *shutdown.borrow() {
        return Ok(());
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)));
    loop {
        let permit = tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (router, shutdown) = (router.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        connection(stream, router, shutdown).await;
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
    /// The peer closed cleanly between requests, or stayed idle too long.
    Closed,
    /// The request was unusable: answer with this and close.
    Reject(Response),
}

async fn connection(mut stream: TcpStream, router: Arc<Router>, shutdown: watch::Receiver<bool>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let (req, keep_alive) = match read_request(&mut stream, &mut buf).await {
            Read::Request(r, k) => (r, k),
            Read::Closed => return,
            Read::Reject(resp) => {
                let _ = write_response(&mut stream, &resp, None, false).await;
                return;
            }
        };
        let (resp, allow) = router.handle(&req);
        let keep_alive = keep_alive && !*shutdown.borrow();
        if write_response(&mut stream, &resp, allow.as_deref(), keep_alive).await.is_err() || !keep_alive {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle")),
    }
}

/// Reads one request from `stream`; `buf` carries bytes already read past the previous request.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Read {
    loop {
        if !buf.is_empty() {
            match parse_head(buf) {
                Ok(Some(head)) => return finish_request(stream, buf, head).await,
                Ok(None) => {}
                Err(resp) => return Read::Reject(resp),
            }
            if buf.len() > MAX_HEADER_BYTES {
                return Read::Reject(Response::text(431, "request header too large\n"));
            }
        }
        match read_more(stream, buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Read::Closed,
            Ok(0) => return Read::Reject(Response::bad_request("truncated request")),
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

fn parse_head(buf: &[u8]) -> Result<Option<Head>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Response::text(431, "too many headers\n"));
        }
        Err(e) => return Err(Response::bad_request(&e.to_string())),
    };
    if head_len > MAX_HEADER_BYTES {
        return Err(Response::text(431, "request header too large\n"));
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
                content_length = value.parse().map_err(|_| Response::bad_request("invalid content-length"))?;
            }
            "transfer-encoding" => {
                return Err(Response::text(411, "a content-length body is required\n"));
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
    if content_length > MAX_BODY_BYTES {
        return Err(Response::text(413, "request body too large\n"));
    }
    Ok(Some(Head { req, head_len, content_length, keep_alive, expect_continue }))
}

async fn finish_request(stream: &mut TcpStream, buf: &mut Vec<u8>, head: Head) -> Read {
    let Head { mut req, head_len, content_length, keep_alive, expect_continue } = head;
    let total = head_len + content_length;
    if expect_continue && buf.len() < total && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
        return Read::Closed;
    }
    while buf.len() < total {
        match read_more(stream, buf).await {
            Ok(0) => return Read::Reject(Response::bad_request("truncated body")),
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
}
