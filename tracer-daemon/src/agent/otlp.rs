//! The OTLP and Zipkin receivers of the agent role: apps' OpenTelemetry SDKs export to
//! `POST /v1/traces` (OTLP/HTTP, protobuf or JSON, gzip or not) and to `TraceService/Export`
//! (OTLP/gRPC); Zipkin senders post v2 JSON to `POST /api/v2/spans`. Spans get this host's agent
//! tags and go through one adapter per format (`render::otlp_in`, `render::zipkin`) into the
//! export pipeline. Bad input gets the protocol's answer (400 with a message, 413, 415, OTLP's
//! partial success with the rejected count) and is counted.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::net::TcpListener;

use super::SpanObserver;
use super::limited::LimitedIncoming;
use crate::api::{DropCounters, DropReason, Limits, Request, Response, Router};
use crate::export::SpanSender;
use crate::metrics::{Counter, Registry};
use crate::model::Tag;
use crate::render::otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use crate::render::{otlp_in, zipkin};
use crate::supervise::Stages;

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

/// How an OTLP request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Undecodable body or compression.
    BadRequest,
    /// Content type (or encoding) the receiver does not speak.
    UnsupportedMediaType,
    TooLarge,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::BadRequest, Outcome::UnsupportedMediaType, Outcome::TooLarge];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::BadRequest => "bad_request",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::TooLarge => "too_large",
        }
    }
}

/// Counters of one receiver: `tracer_otlp_*{transport="http"|"grpc"}` or `tracer_zipkin_*`.
#[derive(Clone)]
struct Metrics {
    requests: [Counter; Outcome::ALL.len()],
    spans: Counter,
    rejected: Counter,
    dropped: Counter,
}

impl Metrics {
    fn new(reg: &Registry, transport: &str) -> Self {
        Self::family(reg, "otlp", "OTLP", &[("transport", transport)])
    }

    fn zipkin(reg: &Registry) -> Self {
        Self::family(reg, "zipkin", "Zipkin", &[])
    }

    fn family(reg: &Registry, family: &str, what: &str, labels: &[(&str, &str)]) -> Self {
        let name = |series: &str| format!("tracer_{family}_{series}");
        Metrics {
            requests: Outcome::ALL.map(|o| {
                let mut l = labels.to_vec();
                l.push(("outcome", o.as_str()));
                reg.counter(&name("requests_total"), &format!("{what} export requests from apps, by outcome."), &l)
            }),
            spans: reg.counter(
                &name("spans_received_total"),
                &format!("Spans accepted from apps over {what}."),
                labels,
            ),
            rejected: reg.counter(
                &name("spans_rejected_total"),
                &format!("Spans from apps over {what} refused as invalid (ids)."),
                labels,
            ),
            dropped: reg.counter(
                &name("spans_dropped_total"),
                &format!("Spans from apps over {what} the export queue refused."),
                labels,
            ),
        }
    }

    fn outcome(&self, o: Outcome) {
        self.outcome_counter(o).inc();
    }

    fn outcome_counter(&self, o: Outcome) -> &Counter {
        &self.requests[Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0)]
    }
}

/// Decoded requests into the pipeline.
#[derive(Clone)]
struct Intake {
    sender: SpanSender,
    agent_tags: Arc<Vec<Tag>>,
    observer: Option<SpanObserver>,
    metrics: Metrics,
    max_bytes: usize,
}

impl Intake {
    /// Queues the request's valid spans; the partial success to answer with, if any span was
    /// rejected.
    fn take(&self, req: ExportTraceServiceRequest) -> Option<ExportTracePartialSuccess> {
        self.queue(otlp_in::decode(req, &self.agent_tags))
            .map(|(rejected_spans, error_message)| ExportTracePartialSuccess { rejected_spans, error_message })
    }

    /// Queues decoded spans; the count of rejected ones and why, if any was.
    fn queue(&self, decoded: otlp_in::Decoded) -> Option<(i64, String)> {
        self.metrics.spans.add(decoded.spans.len() as u64);
        for span in decoded.spans {
            let span = std::sync::Arc::new(span);
            if let Some(observe) = &self.observer {
                observe(&span);
            }
            if !self.sender.try_send_shared(span) {
                self.metrics.dropped.inc();
            }
        }
        self.metrics.outcome(Outcome::Ok);
        (decoded.rejected > 0).then(|| {
            self.metrics.rejected.add(decoded.rejected as u64);
            (decoded.rejected, decoded.error.unwrap_or_default())
        })
    }
}

#[derive(Clone, Copy)]
enum Body {
    Protobuf,
    Json,
}

fn refuse(m: &Metrics, o: Outcome, status: u16, why: String) -> Response {
    m.outcome(o);
    Response::text(status, format!("{why}\n"))
}

/// Inflates a gzip body, refusing more than `max` bytes.
fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Outcome> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body).take(limit).read_to_end(&mut out).map_err(|_| Outcome::BadRequest)?;
    if out.len() > max { Err(Outcome::TooLarge) } else { Ok(out) }
}

/// The request's body type (by `Content-Type`, one of `types`) and its bytes, inflated; or
/// the refusal to answer with.
fn read_body<'a, T: Copy>(
    intake: &Intake,
    req: &'a Request,
    types: &[(&str, T)],
) -> Result<(T, std::borrow::Cow<'a, [u8]>), Response> {
    let m = &intake.metrics;
    let ctype = req.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(kind) = types.iter().find(|(t, _)| *t == ctype).map(|(_, k)| *k) else {
        return Err(refuse(m, Outcome::UnsupportedMediaType, 415, format!("unsupported content type {ctype:?}")));
    };
    if req.body.len() > intake.max_bytes {
        return Err(refuse(m, Outcome::TooLarge, 413, "request body too large".into()));
    }
    match req.header("content-encoding").map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "identity") => Ok((kind, std::borrow::Cow::Borrowed(&req.body[..]))),
        Some("gzip") => match gunzip(&req.body, intake.max_bytes) {
            Ok(b) => Ok((kind, std::borrow::Cow::Owned(b))),
            Err(Outcome::TooLarge) => Err(refuse(m, Outcome::TooLarge, 413, "request body too large".into())),
            Err(o) => Err(refuse(m, o, 400, "invalid gzip body".into())),
        },
        Some(other) => {
            Err(refuse(m, Outcome::UnsupportedMediaType, 415, format!("unsupported content encoding {other:?}")))
        }
    }
}

/// `POST /v1/traces`.
fn http_export(intake: &Intake, req: &Request) -> Response {
    let m = &intake.metrics;
    let types = [
        ("application/x-protobuf", Body::Protobuf),
        ("application/protobuf", Body::Protobuf),
        ("application/json", Body::Json),
    ];
    let (kind, body) = match read_body(intake, req, &types) {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let body = &body[..];
    let request = match otlp_in::decode_body(matches!(kind, Body::Json), body) {
        Ok(r) => r,
        Err(why) => return refuse(m, Outcome::BadRequest, 400, format!("invalid ExportTraceServiceRequest: {why}")),
    };
    let resp = ExportTraceServiceResponse { partial_success: intake.take(request) };
    match kind {
        Body::Protobuf => {
            Response { status: 200, content_type: "application/x-protobuf".to_owned(), body: resp.encode_to_vec() }
        }
        Body::Json => Response::json_value(200, &resp),
    }
}

/// `POST /api/v2/spans`: Zipkin v2 JSON. 202 when every span was taken; 400 with the reason
/// when the body is not a span list, or when some spans had invalid ids (the others are taken).
fn zipkin_export(intake: &Intake, req: &Request) -> Response {
    let m = &intake.metrics;
    let (_, body) = match read_body(intake, req, &[("application/json", ())]) {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let decoded = match zipkin::decode(&body, &intake.agent_tags) {
        Ok(d) => d,
        Err(why) => return refuse(m, Outcome::BadRequest, 400, format!("invalid Zipkin v2 span list: {why}")),
    };
    match intake.queue(decoded) {
        None => Response::text(202, ""),
        Some((rejected, why)) => Response::text(400, format!("{rejected} spans rejected: {why}\n")),
    }
}

struct Grpc(Intake);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let partial_success = self.0.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success }))
    }
}

/// Where the receivers listen and what they feed.
pub(super) struct Setup<'a> {
    pub sender: SpanSender,
    pub agent_tags: Vec<Tag>,
    pub observer: Option<SpanObserver>,
    pub metrics: &'a Registry,
    pub max_bytes: usize,
    pub max_connections: usize,
    /// Deadline of one whole request (HTTP: head and body; gRPC: the call).
    pub request_timeout: Duration,
    pub stages: Stages,
}

/// Interval of HTTP/2 pings on idle gRPC connections; an unanswered one closes the connection.
const GRPC_KEEPALIVE: Duration = Duration::from_secs(60);

impl Setup<'_> {
    fn intake(&self, metrics: Metrics) -> Intake {
        Intake {
            sender: self.sender.clone(),
            agent_tags: Arc::new(self.agent_tags.clone()),
            observer: self.observer.clone(),
            metrics,
            max_bytes: self.max_bytes,
        }
    }

    /// Serves OTLP/HTTP on `listener` until `stop`, with the receiver's connection, body and
    /// deadline limits (drops counted under `listener="otlp_http"`).
    pub fn http(&self, listener: TcpListener, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        self.serve_http(
            listener,
            stop,
            "otlp_http",
            TRACES_PATH,
            self.intake(Metrics::new(self.metrics, "http")),
            http_export,
        )
    }

    /// Serves Zipkin v2 (`POST /api/v2/spans`) on `listener` until `stop`, with the OTLP/HTTP
    /// receiver's limits (drops counted under `listener="zipkin"`).
    pub fn zipkin(
        &self,
        listener: TcpListener,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let intake = self.intake(Metrics::zipkin(self.metrics));
        self.serve_http(listener, stop, "zipkin", zipkin::SPANS_PATH, intake, zipkin_export)
    }

    fn serve_http(
        &self,
        listener: TcpListener,
        stop: tokio::sync::watch::Receiver<bool>,
        name: &str,
        path: &str,
        intake: Intake,
        handler: fn(&Intake, &Request) -> Response,
    ) -> tokio::task::JoinHandle<()> {
        // A body refused at the door is a request too large as well.
        let too_large = intake.metrics.outcome_counter(Outcome::TooLarge).clone();
        let router = Arc::new(Router::new().route("POST", path, move |r| handler(&intake, r)));
        let limits = Limits {
            max_connections: self.max_connections,
            max_body_bytes: self.max_bytes,
            request_timeout: self.request_timeout,
            idle_timeout: Limits::ADMIN.idle_timeout,
        };
        let drops = DropCounters::register(self.metrics, name).also(DropReason::BodyTooLarge, too_large);
        self.stages.spawn(&format!("{name} receiver"), crate::api::serve_with(listener, router, stop, limits, drops))
    }

    /// Serves OTLP/gRPC on `listener` until `stop`: at most `max_connections` connections
    /// (one more is closed, counted under `listener="otlp_grpc"`), messages up to `max_bytes`,
    /// each call within `request_timeout`, headers as small as the HTTP/1.1 server's; tonic
    /// answers a call over a limit with an error status.
    pub fn grpc(
        &self,
        listener: TcpListener,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        use tonic::codec::CompressionEncoding::Gzip;
        let service = TraceServiceServer::new(Grpc(self.intake(Metrics::new(self.metrics, "grpc"))))
            .accept_compressed(Gzip)
            .send_compressed(Gzip)
            .max_decoding_message_size(self.max_bytes);
        let streams = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let drops = DropCounters::register(self.metrics, "otlp_grpc");
        let incoming = LimitedIncoming::new(listener, self.max_connections, drops);
        let timeout = self.request_timeout;
        self.stages.spawn("otlp_grpc receiver", async move {
            let shutdown = async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            };
            tonic::transport::Server::builder()
                .max_concurrent_streams(Some(streams))
                .timeout(timeout)
                .http2_keepalive_interval(Some(GRPC_KEEPALIVE))
                .http2_max_header_list_size(Some(crate::api::MAX_HEADER_BYTES as u32))
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        })
    }
}
