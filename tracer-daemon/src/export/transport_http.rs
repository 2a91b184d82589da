//! HTTP transport to Jaeger collectors: `POST /api/traces` with a binary-protocol `Batch`
//! (`Content-Type: application/x-thrift`), keep-alive connections, optional TLS for
//! `https://`, extra headers, round-robin across collectors and fail-over when one is down.
//! URLs, connecting and TLS come from `net`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pipeline::ExportMetrics;
use super::{Batch, Delivered, ExportError, Exporter};
use crate::config::export::{ConfigError, ExportConfig};
use crate::jaeger::encode::{BatchMeta, Protocol, encode_batch};
use crate::model::JaegerSpan;
use crate::net::http::{self, ConnectError, Stream, Url};
use crate::net::tls::{self, TlsOptions};

/// Largest response head accepted from a collector, bytes.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Response bodies are read and discarded up to this size; larger closes the connection.
const MAX_RESPONSE_BODY: usize = 1024 * 1024;
/// First and longest time a collector that failed is tried after the others.
const DOWN_MIN: Duration = Duration::from_millis(500);
const DOWN_MAX: Duration = Duration::from_secs(30);

/// A collector URL: `http(s)://host[:port][/path]`, the path defaulting to `/api/traces`.
pub fn collector_url(url: &str) -> Result<Url, ConfigError> {
    let mut u = Url::parse(url).map_err(|e| ConfigError::CollectorUrl { url: e.url, why: e.why })?;
    if u.path.is_empty() || u.path == "/" {
        u.path = "/api/traces".to_owned();
    }
    Ok(u)
}

struct Endpoint {
    url: Url,
    name: String,
    conn: Option<Box<dyn Stream>>,
    /// Tried after the healthy ones until then.
    down_until: Option<Instant>,
    failures: u32,
}

/// Sends batches to one or more collectors.
pub struct HttpExporter {
    endpoints: Vec<Endpoint>,
    next: usize,
    /// Request head lines after the request line, ending with the blank line's start.
    fixed_headers: String,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
    body: Vec<u8>,
    metrics: ExportMetrics,
}

impl HttpExporter {
    pub fn new(urls: &[String], cfg: &ExportConfig, metrics: ExportMetrics) -> Result<Self, ConfigError> {
        let parsed: Vec<Url> = urls.iter().map(|u| collector_url(u)).collect::<Result<_, _>>()?;
        let tls = if parsed.iter().any(|u| u.tls) {
            let opts = TlsOptions { ca_file: cfg.collector_ca_file.clone(), insecure_skip_verify: false };
            Some(tls::connector(&opts).map_err(|e| ConfigError::Tls(e.0))?)
        } else {
            None
        };
        let mut fixed_headers = String::new();
        fixed_headers.push_str("Content-Type: application/x-thrift\r\n");
        fixed_headers.push_str(concat!("User-Agent: tracer/", env!("CARGO_PKG_VERSION"), "\r\n"));
        for (k, v) in cfg.parsed_headers()? {
            fixed_headers.push_str(&format!("{k}: {v}\r\n"));
        }
        Ok(HttpExporter {
            endpoints: parsed
                .into_iter()
                .map(|url| Endpoint { name: url.endpoint(&url.path), url, conn: None, down_until: None, failures: 0 })
                .collect(),
            next: 0,
            fixed_headers,
            timeout: Duration::from_millis(cfg.collector_timeout_ms),
            tls,
            body: Vec::new(),
            metrics,
        })
    }

    /// The order to try endpoints in: healthy ones round-robin from `next`, then those marked
    /// down, soonest back first.
    fn order(&self, now: Instant) -> Vec<usize> {
        let n = self.endpoints.len();
        let rotated = (0..n).map(|i| (self.next + i) % n);
        let (mut up, mut down): (Vec<usize>, Vec<usize>) =
            rotated.partition(|&i| self.endpoints[i].down_until.is_none_or(|t| t <= now));
        down.sort_by_key(|&i| self.endpoints[i].down_until);
        up.append(&mut down);
        up
    }
}

async fn connect(tls: Option<tokio_rustls::TlsConnector>, url: Url) -> Result<Box<dyn Stream>, ExportError> {
    let endpoint = url.endpoint(&url.path);
    if url.tls && tls.is_none() {
        return Err(ExportError::Tls { endpoint, why: "TLS is not configured".into() });
    }
    let tls = if url.tls { tls.as_ref() } else { None };
    http::connect(&url.host, url.port, tls).await.map_err(|e| match e {
        ConnectError::Io(source) => ExportError::Io { endpoint, source },
        ConnectError::Tls(why) => ExportError::Tls { endpoint, why },
    })
}

impl HttpExporter {
    /// One POST to endpoint `i`, on its kept-alive connection when it has one (retried once
    /// on a fresh connection if the kept one turns out to be closed).
    async fn post(&mut self, i: usize, head: &[u8]) -> Result<(), ExportError> {
        let reused = self.endpoints[i].conn.is_some();
        match self.post_once(i, head).await {
            Err(ExportError::Io { .. } | ExportError::Protocol { .. }) if reused => self.post_once(i, head).await,
            other => other,
        }
    }

    async fn post_once(&mut self, i: usize, head: &[u8]) -> Result<(), ExportError> {
        let endpoint = self.endpoints[i].name.clone();
        let mut conn = match self.endpoints[i].conn.take() {
            Some(c) => c,
            None => connect(self.tls.clone(), self.endpoints[i].url.clone()).await?,
        };
        let io = |e: std::io::Error| ExportError::Io { endpoint: endpoint.clone(), source: e };
        conn.write_all(head).await.map_err(io)?;
        conn.write_all(&self.body).await.map_err(io)?;
        conn.flush().await.map_err(io)?;
        let (status, keep) = read_response(&mut conn, &endpoint).await?;
        if keep {
            self.endpoints[i].conn = Some(conn);
        }
        if (200..300).contains(&status) { Ok(()) } else { Err(ExportError::Status { endpoint, status }) }
    }
}

/// Reads one response; returns the status and whether the connection can be reused.
async fn read_response(conn: &mut Box<dyn Stream>, endpoint: &str) -> Result<(u16, bool), ExportError> {
    let perr = |why: &str| ExportError::Protocol { endpoint: endpoint.to_owned(), why: why.to_owned() };
    let io = |e: std::io::Error| ExportError::Io { endpoint: endpoint.to_owned(), source: e };
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let mut need_more = true;
    loop {
        if need_more {
            let n = conn.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(perr("connection closed before a response"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD => {
                need_more = true;
                continue;
            }
            Ok(httparse::Status::Partial) => return Err(perr("response head too large")),
            Err(e) => return Err(perr(&e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) {
            // An interim response (100 Continue): the final one follows.
            buf.drain(..head_len);
            need_more = buf.is_empty();
            continue;
        }
        let mut keep = resp.version == Some(1);
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for h in resp.headers.iter() {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(v.trim().parse().map_err(|_| perr("invalid content-length"))?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.contains("chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                if v.contains("close") {
                    keep = false;
                } else if v.contains("keep-alive") {
                    keep = true;
                }
            }
        }
        let mut rest = buf.split_off(head_len);
        if status == 204 || status == 304 {
            return Ok((status, keep));
        }
        if chunked {
            let ok = skip_chunked(conn, &mut rest).await;
            return Ok((status, keep && ok));
        }
        match length {
            Some(len) if len <= MAX_RESPONSE_BODY => {
                while rest.len() < len {
                    let n = conn.read(&mut chunk).await.map_err(io)?;
                    if n == 0 {
                        return Ok((status, false));
                    }
                    rest.extend_from_slice(&chunk[..n]);
                }
                return Ok((status, keep && rest.len() == len));
            }
            // No length, or too long to bother: the status is known, the connection is spent.
            _ => return Ok((status, false)),
        }
    }
}

/// Reads a chunked body to its end; `false` when it is malformed, too large or cut short.
async fn skip_chunked(conn: &mut Box<dyn Stream>, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    let mut total = 0usize;
    loop {
        // A chunk-size line.
        let Some(eol) = find_crlf(buf) else {
            if buf.len() > 1024 {
                return false;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let line = String::from_utf8_lossy(&buf[..eol]).to_string();
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return false;
        };
        total = total.saturating_add(size);
        if total > MAX_RESPONSE_BODY {
            return false;
        }
        // Size line, data, CRLF; the last chunk is followed by (no) trailers and CRLF.
        let need = eol + 2 + size + 2;
        while buf.len() < need {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..need);
        if size == 0 {
            return buf.is_empty();
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

impl Exporter for HttpExporter {
    type Span = JaegerSpan;

    fn name(&self) -> &'static str {
        "http"
    }

    /// Tries each collector once, healthy ones first, until one takes the batch.
    async fn export(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let meta = BatchMeta { seq_no: Some(self.metrics.next_seq()), stats: Some(self.metrics.client_stats()) };
        self.body.clear();
        encode_batch(Protocol::Binary, &batch.process, &batch.spans, &meta, &mut self.body)
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let mut last: Option<ExportError> = None;
        let now = Instant::now();
        for i in self.order(now) {
            let url = &self.endpoints[i].url;
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: {}\r\n\r\n",
                url.path,
                url.authority,
                self.fixed_headers,
                self.body.len()
            );
            let name = self.endpoints[i].name.clone();
            let result = match tokio::time::timeout(self.timeout, self.post(i, head.as_bytes())).await {
                Ok(r) => r,
                Err(_) => {
                    self.endpoints[i].conn = None;
                    Err(ExportError::Timeout { endpoint: name })
                }
            };
            match result {
                Ok(()) => {
                    let ep = &mut self.endpoints[i];
                    ep.down_until = None;
                    ep.failures = 0;
                    self.next = (i + 1) % self.endpoints.len();
                    return Ok(Delivered { spans: batch.spans.len(), requests: 1, bytes: self.body.len() });
                }
                Err(e) if e.is_retryable() => {
                    let ep = &mut self.endpoints[i];
                    ep.conn = None;
                    ep.failures = ep.failures.saturating_add(1);
                    let cool = DOWN_MIN.saturating_mul(1 << ep.failures.min(8)).min(DOWN_MAX);
                    ep.down_until = Some(Instant::now() + cool);
                    last = Some(e);
                }
                // 4xx, TLS, encoding: another collector would not take it either.
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ExportError::Encode("no collector configured".into())))
    }
}

#[cfg(test)]
#[path = "transport_http_tests.rs"]
mod tests;
