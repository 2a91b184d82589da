//! One `POST` per batch on a fresh connection, for the destinations that take a batch as one
//! HTTP request (OTLP/HTTP, Zipkin): URL, fixed headers, TLS and timeout, and the answer's
//! status, `Retry-After` and body.

use std::io::Write as _;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::ExportError;
use crate::config::export::{ConfigError, ExportConfig};
use crate::net::http::{self, ConnectError, HttpError, Url};
use crate::net::tls::{self, TlsOptions};

/// Most response bytes read (head and body).
const MAX_RESPONSE: usize = 1024 * 1024;

/// The delay a `Retry-After` value asks for (seconds; HTTP dates are not honoured).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(300)))
}

/// One HTTP destination that takes each batch in one `POST` on a fresh connection (OTLP/HTTP,
/// Zipkin): its URL, fixed request headers, timeout and TLS.
pub struct Poster {
    url: Url,
    name: String,
    /// Request head lines after the request line, up to `Content-Length`.
    fixed_headers: String,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
}

/// A destination's answer to one `POST`.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Poster {
    /// `default_path` when the URL has none; `content_type` and `gzip` (Content-Encoding) for
    /// every request; the collector headers, CA file and timeout of `cfg`.
    pub fn new(
        url: &str,
        default_path: &str,
        content_type: &str,
        gzip: bool,
        cfg: &ExportConfig,
    ) -> Result<Self, ConfigError> {
        let mut url = Url::parse(url).map_err(|e| ConfigError::CollectorUrl { url: e.url, why: e.why })?;
        if url.path.is_empty() || url.path == "/" {
            url.path = default_path.to_owned();
        }
        let tls = if url.tls {
            let opts = TlsOptions { ca_file: cfg.collector_ca_file.clone(), insecure_skip_verify: false };
            Some(tls::connector(&opts).map_err(|e| ConfigError::Tls(e.0))?)
        } else {
            None
        };
        let mut fixed_headers = format!("Content-Type: {content_type}\r\n");
        fixed_headers.push_str(concat!("User-Agent: tracer/", env!("CARGO_PKG_VERSION"), "\r\n"));
        if gzip {
            fixed_headers.push_str("Content-Encoding: gzip\r\n");
        }
        for (k, v) in cfg.parsed_headers()? {
            fixed_headers.push_str(&format!("{k}: {v}\r\n"));
        }
        Ok(Poster {
            name: url.endpoint(&url.path),
            url,
            fixed_headers,
            timeout: Duration::from_millis(cfg.collector_timeout_ms),
            tls,
        })
    }

    /// The endpoint, for logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One request on a fresh connection, within the timeout.
    pub async fn post(&self, body: &[u8]) -> Result<Answer, ExportError> {
        match tokio::time::timeout(self.timeout, self.post_once(body)).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::Timeout { endpoint: self.name.clone() }),
        }
    }

    async fn post_once(&self, body: &[u8]) -> Result<Answer, ExportError> {
        let endpoint = &self.name;
        let tls = if self.url.tls { self.tls.as_ref() } else { None };
        let mut conn = http::connect(&self.url.host, self.url.port, tls).await.map_err(|e| match e {
            ConnectError::Io(source) => ExportError::Io { endpoint: endpoint.clone(), source },
            ConnectError::Tls(why) => ExportError::Tls { endpoint: endpoint.clone(), why },
        })?;
        let io = |e: std::io::Error| ExportError::Io { endpoint: endpoint.clone(), source: e };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}Content-Length: {}\r\n\r\n",
            self.url.path,
            self.url.authority,
            self.fixed_headers,
            body.len()
        );
        conn.write_all(head.as_bytes()).await.map_err(io)?;
        conn.write_all(body).await.map_err(io)?;
        conn.flush().await.map_err(io)?;
        let resp = http::read_head(conn, endpoint).await.map_err(|e| match e {
            HttpError::Io { source, .. } => ExportError::Io { endpoint: endpoint.clone(), source },
            other => ExportError::Protocol { endpoint: endpoint.clone(), why: other.to_string() },
        })?;
        let status = resp.status;
        let retry_after = resp.header("retry-after").and_then(parse_retry_after);
        // The body only says how many spans were rejected, or why: one too large to read says
        // nothing.
        let body = resp.read_all(MAX_RESPONSE).await.unwrap_or_default();
        Ok(Answer { status, retry_after, body })
    }

    /// The error for a non-2xx answer: retryable when `retryable` says so.
    pub fn refused(&self, a: Answer, retryable: bool) -> ExportError {
        let text = String::from_utf8_lossy(&a.body[..a.body.len().min(200)]).trim().to_owned();
        ExportError::Refused {
            endpoint: self.name.clone(),
            what: format!("HTTP {} {text}", a.status),
            retryable,
            retry_after: a.retry_after,
        }
    }
}

/// `raw`, gzip-compressed (fast level).
pub fn gzip(raw: &[u8]) -> Result<Vec<u8>, ExportError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 4), flate2::Compression::fast());
    gz.write_all(raw).map_err(|e| ExportError::Encode(e.to_string()))?;
    gz.finish().map_err(|e| ExportError::Encode(e.to_string()))
}
