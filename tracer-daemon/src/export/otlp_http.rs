//! OTLP/HTTP export: one protobuf `ExportTraceServiceRequest` per batch, gzip-compressed,
//! POSTed to `/v1/traces`. Retries follow OTLP: 429, 502, 503 and 504 are retried (after
//! `Retry-After` when given), every other failure status is final; partial success counts the
//! rejected spans as not delivered.

use std::io::Write as _;
use std::time::Duration;

use prost::Message as _;
use tokio::io::AsyncWriteExt;

use super::{Batch, Delivered, ExportError, Exporter};
use crate::config::export::{ConfigError, ExportConfig};
use crate::net::http::{self, ConnectError, HttpError, Url};
use crate::net::tls::{self, TlsOptions};
use crate::render::otlp::{self, OtlpSpan, proto::collector::trace::v1::ExportTraceServiceResponse};

/// The OTLP/HTTP traces path, used when the URL has none.
pub const TRACES_PATH: &str = "/v1/traces";
/// Most response bytes read (head and body).
const MAX_RESPONSE: usize = 1024 * 1024;

/// Whether OTLP/HTTP says a failed request may be retried.
pub fn status_is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The delay a `Retry-After` value asks for (seconds; HTTP dates are not honoured).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(300)))
}

/// One HTTP destination that takes each batch in one `POST` on a fresh connection (OTLP/HTTP,
/// Zipkin): its URL, fixed request headers, timeout and TLS.
pub(super) struct Poster {
    url: Url,
    name: String,
    /// Request head lines after the request line, up to `Content-Length`.
    fixed_headers: String,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
}

/// A destination's answer to one `POST`.
pub(super) struct Answer {
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

/// Sends batches to one OTLP/HTTP receiver.
pub struct OtlpHttpExporter {
    poster: Poster,
    gzip: bool,
}

impl OtlpHttpExporter {
    pub fn new(url: &str, cfg: &ExportConfig) -> Result<Self, ConfigError> {
        let poster = Poster::new(url, TRACES_PATH, "application/x-protobuf", cfg.otlp_gzip, cfg)?;
        Ok(OtlpHttpExporter { poster, gzip: cfg.otlp_gzip })
    }

    fn body(&self, batch: &Batch<OtlpSpan>) -> Result<Vec<u8>, ExportError> {
        let raw = otlp::request(&batch.process, &batch.spans).encode_to_vec();
        if self.gzip { gzip(&raw) } else { Ok(raw) }
    }
}

/// `raw`, gzip-compressed (fast level).
pub(super) fn gzip(raw: &[u8]) -> Result<Vec<u8>, ExportError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 4), flate2::Compression::fast());
    gz.write_all(raw).map_err(|e| ExportError::Encode(e.to_string()))?;
    gz.finish().map_err(|e| ExportError::Encode(e.to_string()))
}

/// Spans the receiver rejected, from a protobuf (or JSON) `ExportTraceServiceResponse`.
fn rejected(body: &[u8]) -> i64 {
    if body.is_empty() {
        return 0;
    }
    let resp = ExportTraceServiceResponse::decode(body)
        .ok()
        .or_else(|| serde_json::from_slice::<ExportTraceServiceResponse>(body).ok());
    resp.and_then(|r| r.partial_success).map_or(0, |p| p.rejected_spans.max(0))
}

impl Exporter for OtlpHttpExporter {
    type Span = OtlpSpan;

    fn name(&self) -> &'static str {
        "otlp_http"
    }

    async fn export(&mut self, batch: &Batch<OtlpSpan>) -> Result<Delivered, ExportError> {
        let body = self.body(batch)?;
        let answer = self.poster.post(&body).await?;
        if (200..300).contains(&answer.status) {
            let rejected = usize::try_from(rejected(&answer.body)).unwrap_or(0);
            if rejected > 0 {
                tracing::warn!(endpoint = %self.poster.name(), rejected, "OTLP receiver rejected spans");
            }
            return Ok(Delivered { spans: batch.spans.len().saturating_sub(rejected), requests: 1, bytes: body.len() });
        }
        let retryable = status_is_retryable(answer.status);
        Err(self.poster.refused(answer, retryable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules_follow_otlp() {
        for s in [429, 502, 503, 504] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 500, 501] {
            assert!(!status_is_retryable(s), "{s}");
        }
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[tokio::test]
    async fn responses_parse() {
        async fn parse(raw: &'static [u8]) -> (u16, Option<Duration>, Vec<u8>) {
            let (mut server, client) = tokio::io::duplex(4096);
            server.write_all(raw).await.unwrap();
            drop(server);
            let resp = http::read_head(Box::new(client), "test").await.unwrap();
            let retry = resp.header("Retry-After").and_then(parse_retry_after);
            (resp.status, retry, resp.read_all(1024).await.unwrap())
        }
        let r = parse(b"HTTP/1.1 503 Unavailable\r\nRetry-After: 2\r\nContent-Length: 4\r\n\r\nbusy").await;
        assert_eq!(r, (503, Some(Duration::from_secs(2)), b"busy".to_vec()));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await;
        assert_eq!(r.2, b"abc");
        let partial = ExportTraceServiceResponse {
            partial_success: Some(otlp::proto::collector::trace::v1::ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "bad".into(),
            }),
        };
        assert_eq!(rejected(&partial.encode_to_vec()), 2);
        assert_eq!(rejected(br#"{"partialSuccess":{"rejectedSpans":3}}"#), 3);
    }
}
