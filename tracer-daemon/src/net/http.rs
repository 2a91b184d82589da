//! The daemon's HTTP/1.1 client side: URLs (`http://` / `https://`), connecting (TCP, then TLS
//! with the settings of `net::tls`), and a GET client for the kubelet, the API server and other
//! daemons: a bearer token read from a file per request, one connection per request
//! (`Connection: close`), and bodies read whole (bounded) or line by line (watch streams), with
//! `Content-Length`, chunked or read-to-close framing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{self, TlsOptions};

/// Largest response head accepted, bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line accepted, bytes.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Body bytes quoted in a status error.
const ERROR_BODY_QUOTE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("TLS settings: {0}")]
    TlsSetup(String),
    #[error("{endpoint}: {source}")]
    Io { endpoint: String, source: std::io::Error },
    #[error("{endpoint}: no response within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    #[error("{endpoint}: {why}")]
    Protocol { endpoint: String, why: String },
    #[error("{endpoint}: HTTP {status}: {body}")]
    Status { endpoint: String, status: u16, body: String },
}

/// An invalid URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid URL {url:?}: {why}")]
pub struct UrlError {
    pub url: String,
    pub why: String,
}

/// An `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// Host name or address, without IPv6 brackets.
    pub host: String,
    /// The given port, else 80 or 443.
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// Path and query as written, empty when the URL has none.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let bad = |why: &str| UrlError { url: url.to_owned(), why: why.to_owned() };
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("a host is required (credentials in the URL are not supported)"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed IPv6 bracket"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("junk after the IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None if tls => 443,
            None => 80,
        };
        if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(bad("invalid host"));
        }
        if path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(bad("invalid path"));
        }
        Ok(Url { tls, host: host.to_owned(), port, authority: authority.to_owned(), path: path.to_owned() })
    }

    /// The URL of `path` on this URL's host, for logs and errors.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}://{}{path}", if self.tls { "https" } else { "http" }, self.authority)
    }
}

/// A byte stream to a server, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Refused, reset, unreachable, or broken during the handshake.
    #[error(transparent)]
    Io(std::io::Error),
    /// The server's certificate or handshake was rejected, or the host is no valid server name.
    #[error("{0}")]
    Tls(String),
}

/// A TCP connection (no Nagle delay) to `host:port`, wrapped in TLS when `tls` is given.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Box<dyn Stream>, ConnectError> {
    let tcp = TcpStream::connect((host, port)).await.map_err(ConnectError::Io)?;
    let _ = tcp.set_nodelay(true);
    let Some(connector) = tls else { return Ok(Box::new(tcp)) };
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| ConnectError::Tls(e.to_string()))?;
    let tls = connector.connect(name, tcp).await.map_err(|e| {
        // Certificate and handshake failures come back as InvalidData.
        if e.kind() == std::io::ErrorKind::InvalidData { ConnectError::Tls(e.to_string()) } else { ConnectError::Io(e) }
    })?;
    Ok(Box::new(tls))
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A client for one base URL.
#[derive(Clone)]
pub struct HttpClient {
    base: Url,
    tls: Option<tokio_rustls::TlsConnector>,
    token_file: Option<PathBuf>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("base", &self.base).field("token_file", &self.token_file).finish()
    }
}

impl HttpClient {
    /// `timeout` bounds connecting and receiving the response head of each request.
    pub fn new(
        base: &str,
        tls: &TlsOptions,
        token_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let base = Url::parse(base)?;
        let tls = match base.tls {
            true => Some(tls::connector(tls).map_err(|e| HttpError::TlsSetup(e.0))?),
            false => None,
        };
        Ok(HttpClient { base, tls, token_file, timeout })
    }

    /// A plain `http://` client for one resolved address, `authority` being the `Host` header
    /// (another daemon's admin endpoint, one of the addresses its name resolves to).
    pub fn for_addr(addr: SocketAddr, authority: &str, timeout: Duration) -> Self {
        let base = Url {
            tls: false,
            host: addr.ip().to_string(),
            port: addr.port(),
            authority: authority.to_owned(),
            path: String::new(),
        };
        HttpClient { base, tls: None, token_file: None, timeout }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Sends `GET path` and returns once the response head is in (any status).
    pub async fn get(&self, path: &str) -> Result<Response, HttpError> {
        let endpoint = self.base.endpoint(path);
        match tokio::time::timeout(self.timeout, self.get_inner(path, &endpoint)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout { endpoint, after: self.timeout }),
        }
    }

    /// `GET path`, a 2xx status, and the whole body (at most `limit` bytes), all within the
    /// client's timeout.
    pub async fn get_body(&self, path: &str, limit: usize) -> Result<Vec<u8>, HttpError> {
        let endpoint = self.base.endpoint(path);
        let work = async {
            let resp = self.get(path).await?.error_for_status().await?;
            resp.read_all(limit).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout { endpoint, after: self.timeout }),
        }
    }

    async fn get_inner(&self, path: &str, endpoint: &str) -> Result<Response, HttpError> {
        let io = |source| HttpError::Io { endpoint: endpoint.to_owned(), source };
        let mut conn = self.connect(endpoint).await?;
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tracer/{}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.base.authority,
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(token) = self.token_file.as_deref().and_then(read_token) {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).await.map_err(io)?;
        conn.flush().await.map_err(io)?;
        read_head(conn, endpoint).await
    }

    async fn connect(&self, endpoint: &str) -> Result<Box<dyn Stream>, HttpError> {
        connect(&self.base.host, self.base.port, self.tls.as_ref()).await.map_err(|e| match e {
            ConnectError::Io(source) => HttpError::Io { endpoint: endpoint.to_owned(), source },
            ConnectError::Tls(why) => HttpError::Protocol { endpoint: endpoint.to_owned(), why },
        })
    }
}

/// The token in a file, trimmed; `None` when the file is missing or empty.
fn read_token(path: &Path) -> Option<String> {
    let t = std::fs::read_to_string(path).ok()?;
    let t = t.trim();
    (!t.is_empty() && !t.bytes().any(|b| b.is_ascii_control())).then(|| t.to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Bytes left.
    Length(usize),
    Chunked {
        left_in_chunk: usize,
        crlf_due: bool,
        done: bool,
    },
    UntilClose {
        done: bool,
    },
}

/// A response whose head has been read; the body is read on demand.
pub struct Response {
    pub status: u16,
    /// HTTP/1.1 without `Connection: close`, or `Connection: keep-alive`.
    keep_alive: bool,
    /// The head's fields (names lower case), as sent.
    headers: Vec<(String, String)>,
    endpoint: String,
    conn: Box<dyn Stream>,
    /// Raw bytes received and not yet decoded.
    raw: Vec<u8>,
    framing: Framing,
    /// Decoded body bytes not yet handed out as lines.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response").field("status", &self.status).field("endpoint", &self.endpoint).finish()
    }
}

/// Reads a response head from `conn` (after a request was written on it); the body is read on
/// demand, or discarded by [`Response::into_reusable`].
pub async fn read_head(mut conn: Box<dyn Stream>, endpoint: &str) -> Result<Response, HttpError> {
    let perr = |why: String| HttpError::Protocol { endpoint: endpoint.to_owned(), why };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut need_more = true;
    loop {
        if need_more {
            let n = conn
                .read(&mut chunk)
                .await
                .map_err(|source| HttpError::Io { endpoint: endpoint.to_owned(), source })?;
            if n == 0 {
                return Err(perr("connection closed before a response".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        need_more = true;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err(perr("response head too large".into())),
            Err(e) => return Err(perr(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) {
            // An interim response; the final one follows, perhaps in the same read.
            buf.drain(..head_len);
            need_more = buf.is_empty();
            continue;
        }
        let mut length = None;
        let mut chunked = false;
        let mut keep_alive = resp.version == Some(1);
        let fields = resp
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_owned()))
            .collect();
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                length = Some(v.parse::<usize>().map_err(|_| perr("invalid content-length".into()))?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = String::from_utf8_lossy(h.value).to_ascii_lowercase().contains("chunked");
            }
        }
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked { left_in_chunk: 0, crlf_due: false, done: false }
        } else if let Some(len) = length {
            Framing::Length(len)
        } else {
            Framing::UntilClose { done: false }
        };
        let raw = buf.split_off(head_len);
        return Ok(Response {
            status,
            keep_alive,
            headers: fields,
            endpoint: endpoint.to_owned(),
            conn,
            raw,
            framing,
            pending: Vec::new(),
        });
    }
}

impl Response {
    /// Self when the status is 2xx, else an error quoting the start of the body.
    pub async fn error_for_status(self) -> Result<Self, HttpError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let (endpoint, status) = (self.endpoint.clone(), self.status);
        let body = match tokio::time::timeout(Duration::from_secs(2), self.read_all(64 * 1024)).await {
            Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(ERROR_BODY_QUOTE)]).trim().to_owned(),
            _ => String::new(),
        };
        Err(HttpError::Status { endpoint, status, body })
    }

    fn perr(&self, why: &str) -> HttpError {
        HttpError::Protocol { endpoint: self.endpoint.clone(), why: why.to_owned() }
    }

    /// Reads more raw bytes; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, HttpError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self
            .conn
            .read(&mut chunk)
            .await
            .map_err(|source| HttpError::Io { endpoint: self.endpoint.clone(), source })?;
        self.raw.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next piece of the decoded body; `None` at its end.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            match self.framing {
                Framing::Length(0) => return Ok(None),
                Framing::Length(left) => {
                    if self.raw.is_empty() && !self.fill().await? {
                        return Err(self.perr("body cut short"));
                    }
                    let take = left.min(self.raw.len());
                    self.framing = Framing::Length(left - take);
                    return Ok(Some(self.raw.drain(..take).collect()));
                }
                Framing::UntilClose { done: true } => return Ok(None),
                Framing::UntilClose { done: false } => {
                    if self.raw.is_empty() && !self.fill().await? {
                        self.framing = Framing::UntilClose { done: true };
                        return Ok(None);
                    }
                    return Ok(Some(std::mem::take(&mut self.raw)));
                }
                Framing::Chunked { done: true, .. } => return Ok(None),
                Framing::Chunked { left_in_chunk, crlf_due, done: false } => {
                    if crlf_due {
                        while self.raw.len() < 2 {
                            if !self.fill().await? {
                                return Err(self.perr("chunked body cut short"));
                            }
                        }
                        if &self.raw[..2] != b"\r\n" {
                            return Err(self.perr("missing CRLF after a chunk"));
                        }
                        self.raw.drain(..2);
                        self.framing = Framing::Chunked { left_in_chunk: 0, crlf_due: false, done: false };
                        continue;
                    }
                    if left_in_chunk == 0 {
                        let eol = loop {
                            if let Some(i) = self.raw.windows(2).position(|w| w == b"\r\n") {
                                break i;
                            }
                            if self.raw.len() > MAX_CHUNK_LINE {
                                return Err(self.perr("chunk-size line too long"));
                            }
                            if !self.fill().await? {
                                return Err(self.perr("chunked body cut short"));
                            }
                        };
                        let line = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16).map_err(|_| self.perr("invalid chunk size"))?;
                        self.raw.drain(..eol + 2);
                        if size == 0 {
                            // Trailers, if any, are not read: the connection is closed after.
                            self.framing = Framing::Chunked { left_in_chunk: 0, crlf_due: false, done: true };
                            return Ok(None);
                        }
                        self.framing = Framing::Chunked { left_in_chunk: size, crlf_due: false, done: false };
                        continue;
                    }
                    if self.raw.is_empty() && !self.fill().await? {
                        return Err(self.perr("chunked body cut short"));
                    }
                    let take = left_in_chunk.min(self.raw.len());
                    let left = left_in_chunk - take;
                    self.framing = Framing::Chunked { left_in_chunk: left, crlf_due: left == 0, done: false };
                    return Ok(Some(self.raw.drain(..take).collect()));
                }
            }
        }
    }

    /// The value of the first header field named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Reads the body to its end (at most `limit` bytes) and hands back the connection when
    /// another request may follow on it: keep-alive, the body framed by length or chunks, and
    /// nothing read past it.
    pub async fn into_reusable(mut self, limit: usize) -> Option<Box<dyn Stream>> {
        if matches!(self.framing, Framing::UntilClose { .. }) || !self.keep_alive {
            return None;
        }
        let mut total = 0usize;
        loop {
            match self.next_data().await {
                Ok(Some(piece)) => {
                    total = total.saturating_add(piece.len());
                    if total > limit {
                        return None;
                    }
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        if matches!(self.framing, Framing::Chunked { done: true, .. }) {
            // The last chunk is followed by an empty trailer section: its CRLF ends the body.
            while self.raw.len() < 2 {
                if !self.fill().await.ok()? {
                    return None;
                }
            }
            if &self.raw[..2] != b"\r\n" {
                return None;
            }
            self.raw.drain(..2);
        }
        self.raw.is_empty().then_some(self.conn)
    }

    /// The whole body; an error past `limit` bytes.
    pub async fn read_all(mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = std::mem::take(&mut self.pending);
        while let Some(piece) = self.next_data().await? {
            body.extend_from_slice(&piece);
            if body.len() > limit {
                return Err(self.perr(&format!("body larger than {limit} bytes")));
            }
        }
        Ok(body)
    }

    /// The next `\n`-terminated line of the body (without the line end); the last line may be
    /// unterminated; `None` at the end. An error when a line grows past `limit` bytes.
    pub async fn next_line(&mut self, limit: usize) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.pending.len() > limit {
                return Err(self.perr(&format!("line longer than {limit} bytes")));
            }
            match self.next_data().await? {
                Some(piece) => self.pending.extend_from_slice(&piece),
                None if self.pending.is_empty() => return Ok(None),
                None => return Ok(Some(std::mem::take(&mut self.pending))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn urls_parse() {
        let u = Url::parse("https://10.96.0.1").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.authority.as_str()), (true, "10.96.0.1", 443, "10.96.0.1"));
        let u = Url::parse("http://[::1]:8080/pods?x").unwrap();
        assert_eq!(u.path, "/pods?x");
        assert_eq!((u.tls, u.host.as_str(), u.port, u.authority.as_str()), (false, "::1", 8080, "[::1]:8080"));
        assert_eq!(u.endpoint("/pods"), "http://[::1]:8080/pods");
        let bad_urls = ["ftp://x", "http://", "https://u:p@h", "http://h:99999", "http://[::1", "http://[::1]x"];
        for bad in bad_urls.into_iter().chain(["http://a b", "http://h/a b"]) {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(encode_query_value("spec.nodeName=node-1"), "spec.nodeName%3Dnode-1");
    }

    /// Serves one connection with `reply` after reading the request head; returns the head.
    async fn serve_once(reply: Vec<u8>) -> (String, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut b).await.unwrap();
                assert!(n > 0);
                head.extend_from_slice(&b[..n]);
            }
            // Dribble the reply in small writes to exercise partial reads.
            // The client may hang up early (a body over its limit).
            for piece in reply.chunks(7) {
                if s.write_all(piece).await.is_err() || s.flush().await.is_err() {
                    break;
                }
            }
            String::from_utf8(head).unwrap()
        });
        (url, task)
    }

    fn client(url: &str, token: Option<PathBuf>) -> HttpClient {
        HttpClient::new(url, &TlsOptions::default(), token, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn content_length_body_and_bearer_token() {
        let dir = std::env::temp_dir().join(format!("tracer-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"items\":[]}".to_vec()).await;
        let body = client(&url, Some(token)).get_body("/pods", 1024).await.unwrap();
        assert_eq!(body, b"{\"items\":[]");
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /pods HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nAuthorization: Bearer s3cret\r\n"), "{head}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn chunked_lines_split_across_chunks() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n9\r\n1}\n{\"b\":2\r\n3;ext=1\r\n}\n\n\r\n0\r\n\r\n".to_vec();
        let (url, server) = serve_once(reply).await;
        let mut resp = client(&url, None).get("/watch").await.unwrap();
        assert_eq!(resp.status, 200);
        let mut lines = Vec::new();
        while let Some(l) = resp.next_line(1024).await.unwrap() {
            lines.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", ""]);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn until_close_limits_and_status_errors() {
        let (url, server) = serve_once(b"HTTP/1.0 200 OK\r\n\r\nline1\nline2".to_vec()).await;
        let mut resp = client(&url, None).get("/").await.unwrap();
        assert_eq!(resp.next_line(100).await.unwrap().unwrap(), b"line1");
        assert_eq!(resp.next_line(100).await.unwrap().unwrap(), b"line2");
        assert_eq!(resp.next_line(100).await.unwrap(), None);
        server.await.unwrap();

        let (url, server) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".iter().copied().chain([b'x'; 100]).collect())
                .await;
        let err = client(&url, None).get_body("/", 10).await.unwrap_err().to_string();
        assert!(err.contains("larger than 10 bytes"), "{err}");
        server.await.unwrap();

        let forbidden = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 24\r\n\r\npods is forbidden: no\n\n\n".to_vec();
        let (url, server) = serve_once(forbidden).await;
        let err = client(&url, None).get_body("/api/v1/pods", 1024).await.unwrap_err();
        match err {
            HttpError::Status { status: 403, body, .. } => assert_eq!(body, "pods is forbidden: no"),
            other => panic!("{other}"),
        }
        server.await.unwrap();

        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()).await;
        assert!(client(&url, None).get_body("/", 1024).await.is_err());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let c = HttpClient::new(&url, &TlsOptions::default(), None, Duration::from_millis(200)).unwrap();
        let err = c.get("/").await.unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
        drop(l);
    }
}
