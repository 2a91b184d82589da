//! HTTP transport to Jaeger collectors: `POST /api/traces` with a binary-protocol `Batch`
//! (`Content-Type: application/x-thrift`), keep-alive connections, optional TLS for
//! `https://`, extra headers, round-robin across collectors and fail-over when one is down.
//! URLs, connecting and TLS come from `net`.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::pipeline::ExportMetrics;
use super::{Batch, Delivered, ExportError, Exporter};
use crate::config::export::{ConfigError, ExportConfig};
use crate::jaeger::encode::{BatchMeta, Protocol, encode_batch};
use crate::model::JaegerSpan;
use crate::net::http::{self, ConnectError, HttpError, Stream, Url};
use crate::net::tls::{self, TlsOptions};

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
        let (status, kept) = read_response(conn, &endpoint).await?;
        self.endpoints[i].conn = kept;
        if (200..300).contains(&status) { Ok(()) } else { Err(ExportError::Status { endpoint, status }) }
    }
}

/// Reads one response; returns the status and the connection when it can be reused.
async fn read_response(conn: Box<dyn Stream>, endpoint: &str) -> Result<(u16, Option<Box<dyn Stream>>), ExportError> {
    let resp = http::read_head(conn, endpoint).await.map_err(|e| match e {
        HttpError::Io { source, .. } => ExportError::Io { endpoint: endpoint.to_owned(), source },
        other => ExportError::Protocol { endpoint: endpoint.to_owned(), why: other.to_string() },
    })?;
    let status = resp.status;
    Ok((status, resp.into_reusable(MAX_RESPONSE_BODY).await))
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
