//! OTLP/gRPC export: `TraceService/Export` over one HTTP/2 channel (tonic), gzip when
//! configured. Retries follow OTLP: `UNAVAILABLE`, `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`,
//! `OUT_OF_RANGE` and `DATA_LOSS` are retried, every other code is final.

use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::{Batch, Delivered, ExportError, Exporter};
use crate::config::export::{ConfigError, ExportConfig};
use crate::net::http::Url;
use crate::render::otlp::{self, OtlpSpan, proto::collector::trace::v1::trace_service_client::TraceServiceClient};

/// Whether OTLP says a call that ended with `code` may be retried.
pub fn code_is_retryable(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(code, C::Cancelled | C::DeadlineExceeded | C::Aborted | C::OutOfRange | C::Unavailable | C::DataLoss)
}

/// Sends batches to one OTLP/gRPC receiver.
pub struct OtlpGrpcExporter {
    client: TraceServiceClient<Channel>,
    name: String,
    headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
}

impl OtlpGrpcExporter {
    /// A lazily connecting channel to `url` (`http://host:4317`, `https://` for TLS). Needs a
    /// running tokio runtime.
    pub fn new(url: &str, cfg: &ExportConfig) -> Result<Self, ConfigError> {
        let bad = |why: String| ConfigError::CollectorUrl { url: url.to_owned(), why };
        let parsed = Url::parse(url).map_err(|e| ConfigError::CollectorUrl { url: e.url, why: e.why })?;
        let timeout = Duration::from_millis(cfg.collector_timeout_ms);
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("tracer/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| bad(e.to_string()))?;
        if parsed.tls {
            let mut tls = ClientTlsConfig::new().with_webpki_roots().domain_name(parsed.host.clone());
            if let Some(path) = &cfg.collector_ca_file {
                let pem = std::fs::read(path).map_err(|e| ConfigError::Read { path: path.clone(), source: e })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| ConfigError::Tls(e.to_string()))?;
        }
        let mut client = TraceServiceClient::new(endpoint.connect_lazy());
        if cfg.otlp_gzip {
            client = client.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip);
        }
        let mut headers = Vec::new();
        for (k, v) in cfg.parsed_headers()? {
            let key = AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| ConfigError::Header(format!("{k}: {v}")))?;
            let value =
                AsciiMetadataValue::try_from(v.as_str()).map_err(|_| ConfigError::Header(format!("{k}: {v}")))?;
            headers.push((key, value));
        }
        Ok(OtlpGrpcExporter { client, name: url.to_owned(), headers, timeout })
    }
}

impl Exporter for OtlpGrpcExporter {
    type Span = OtlpSpan;

    fn name(&self) -> &'static str {
        "otlp_grpc"
    }

    async fn export(&mut self, batch: &Batch<OtlpSpan>) -> Result<Delivered, ExportError> {
        let message = otlp::request(&batch.process, &batch.spans);
        let bytes = prost::Message::encoded_len(&message);
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.timeout);
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        match self.client.export(req).await {
            Ok(resp) => {
                let rejected = resp
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| usize::try_from(p.rejected_spans.max(0)).unwrap_or(0));
                if rejected > 0 {
                    tracing::warn!(endpoint = %self.name, rejected, "OTLP receiver rejected spans");
                }
                Ok(Delivered { spans: batch.spans.len().saturating_sub(rejected), requests: 1, bytes })
            }
            Err(status) => Err(ExportError::Refused {
                endpoint: self.name.clone(),
                what: format!("gRPC {:?}: {}", status.code(), status.message()),
                retryable: code_is_retryable(status.code()),
                retry_after: None,
            }),
        }
    }
}
