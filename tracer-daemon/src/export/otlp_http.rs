//! OTLP/HTTP export: one protobuf `ExportTraceServiceRequest` per batch, gzip-compressed,
//! POSTed to `/v1/traces`. Retries follow OTLP: 429, 502, 503 and 504 are retried (after
//! `Retry-After` when given), every other failure status is final; partial success counts the
//! rejected spans as not delivered.

use prost::Message as _;

use super::post::{Poster, gzip};
use super::{Batch, Delivered, ExportError, Exporter};
use crate::config::export::{ConfigError, ExportConfig};
use crate::render::otlp::{self, OtlpSpan, proto::collector::trace::v1::ExportTraceServiceResponse};

/// The OTLP/HTTP traces path, used when the URL has none.
pub const TRACES_PATH: &str = "/v1/traces";

/// Whether OTLP/HTTP says a failed request may be retried.
pub fn status_is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
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
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::super::post::parse_retry_after;
    use super::*;
    use crate::net::http;

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
