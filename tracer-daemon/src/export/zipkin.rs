//! Zipkin v2 export: one JSON array of spans per batch, POSTed to `/api/v2/spans` (gzip when
//! `--zipkin-gzip` is on). Zipkin answers 202; 429 and 5xx are retried (after `Retry-After`
//! when given), every other failure status is final.

use super::post::{Poster, gzip};
use super::{Batch, Delivered, ExportError, Exporter};
use crate::config::export::{ConfigError, ExportConfig};
use crate::model::JaegerSpan;
use crate::render::zipkin::{self, SPANS_PATH};

/// Whether a failed Zipkin request may be retried.
pub fn status_is_retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Sends batches to one Zipkin server (or a collector's Zipkin receiver).
pub struct ZipkinExporter {
    poster: Poster,
    gzip: bool,
}

impl ZipkinExporter {
    pub fn new(url: &str, cfg: &ExportConfig) -> Result<Self, ConfigError> {
        let poster = Poster::new(url, SPANS_PATH, "application/json", cfg.zipkin_gzip, cfg)?;
        Ok(ZipkinExporter { poster, gzip: cfg.zipkin_gzip })
    }
}

/// A batch as Zipkin v2 JSON.
pub fn body(spans: &[JaegerSpan]) -> Result<Vec<u8>, ExportError> {
    let spans: Vec<zipkin::ZipkinSpan> = spans.iter().map(zipkin::render).collect();
    serde_json::to_vec(&spans).map_err(|e| ExportError::Encode(e.to_string()))
}

impl Exporter for ZipkinExporter {
    type Span = JaegerSpan;

    fn name(&self) -> &'static str {
        "zipkin"
    }

    async fn export(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let raw = body(&batch.spans)?;
        let body = if self.gzip { gzip(&raw)? } else { raw };
        let answer = self.poster.post(&body).await?;
        if (200..300).contains(&answer.status) {
            return Ok(Delivered { spans: batch.spans.len(), requests: 1, bytes: body.len() });
        }
        let retryable = status_is_retryable(answer.status);
        Err(self.poster.refused(answer, retryable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules() {
        for s in [429, 500, 502, 503, 504] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 415] {
            assert!(!status_is_retryable(s), "{s}");
        }
    }
}
