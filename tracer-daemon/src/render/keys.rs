//! Every tag and attribute key the renderers write or the daemon reads from apps' spans, after
//! the OpenTelemetry semantic conventions (the versions Jaeger clients and go-zero emit) and the
//! daemon's own `tracer.*` keys.

pub const SPAN_KIND: &str = "span.kind";
pub const ERROR: &str = "error";
pub const ERROR_MESSAGE: &str = "error.message";
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Log fields of an error log.
pub const LOG_EVENT: &str = "event";
pub const LOG_MESSAGE: &str = "message";

pub const HTTP_METHOD: &str = "http.method";
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_TARGET: &str = "http.target";
pub const HTTP_HOST: &str = "http.host";
pub const HTTP_FLAVOR: &str = "http.flavor";
pub const HTTP_REQUEST_CONTENT_LENGTH: &str = "http.request_content_length";
pub const HTTP_STATUS_CODE: &str = "http.status_code";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const HTTP_RESPONSE_CONTENT_LENGTH: &str = "http.response_content_length";

pub const DB_SYSTEM: &str = "db.system";
pub const DB_NAME: &str = "db.name";
pub const DB_USER: &str = "db.user";
pub const DB_OPERATION: &str = "db.operation";
pub const DB_STATEMENT: &str = "db.statement";
pub const DB_MYSQL_ROWS: &str = "db.mysql.rows";
pub const DB_MYSQL_ERROR_CODE: &str = "db.mysql.error_code";
pub const DB_MYSQL_RETURN_CODE: &str = "db.mysql.return_code";
pub const DB_MYSQL_CONNECT_PORT: &str = "db.mysql.connect_port";
pub const DB_REDIS_REPLY_TYPE: &str = "db.redis.reply_type";
pub const DB_REDIS_LIBRARY: &str = "db.redis.library";
pub const DB_MYSQL_LIBRARY: &str = "db.mysql.library";
pub const CODE_FUNCTION: &str = "code.function";

pub const HTTP2_STREAM_ID: &str = "http2.stream_id";
/// Some header of an HTTP/2 stream could not be decoded (HPACK state unknown): never guessed.
pub const HTTP2_HEADERS_INCOMPLETE: &str = "http2.headers_incomplete";

pub const RPC_SYSTEM: &str = "rpc.system";
pub const RPC_SERVICE: &str = "rpc.service";
pub const RPC_METHOD: &str = "rpc.method";
pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
pub const RPC_GRPC_MESSAGE: &str = "rpc.grpc.message";
/// Length-prefixed gRPC messages each way (streaming calls have several).
pub const RPC_GRPC_REQUEST_MESSAGES: &str = "rpc.grpc.request_messages";
pub const RPC_GRPC_RESPONSE_MESSAGES: &str = "rpc.grpc.response_messages";
pub const MESSAGING_SYSTEM: &str = "messaging.system";

pub const NET_PEER_IP: &str = "net.peer.ip";
pub const NET_PEER_PORT: &str = "net.peer.port";
pub const NET_PEER_NAME: &str = "net.peer.name";
pub const NET_HOST_IP: &str = "net.host.ip";
pub const NET_HOST_PORT: &str = "net.host.port";
pub const PEER_SERVICE: &str = "peer.service";
/// Jaeger clients' peer tags.
pub const PEER_IPV4: &str = "peer.ipv4";
pub const PEER_PORT: &str = "peer.port";
pub const PEER_HOSTNAME: &str = "peer.hostname";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const THREAD_ID: &str = "thread.id";

/// The evidence that linked a span to its parent.
pub const TRACER_LINK: &str = "tracer.link";
/// Thread causality was ambiguous: no thread link was made.
pub const TRACER_LINK_AMBIGUOUS: &str = "tracer.link.ambiguous";
/// The response was never seen (framing lost).
pub const TRACER_TRUNCATED: &str = "tracer.truncated";
/// Calls of the span's connection were lost (the ring buffer was full, or a sequence gap).
pub const TRACER_DATA_LOST: &str = "tracer.data_lost";
/// The log event of a span whose connection lost calls, and what it says.
pub const EVENT_DATA_LOST: &str = "data_lost";
pub const DATA_LOST_MESSAGE: &str = "captured calls of this connection were lost before this span ended (the kernel could not hand them over, or a TCP sequence gap showed it): its request number may differ from the peer's, so it was not joined by number, and its session was paired afresh from the next message";
/// The span's connection had calls captured short while the ring buffer was half full: details
/// past their first `DEGRADED_CAPTURE` bytes (1024: statements, headers) may be missing.
pub const TRACER_CAPTURE_DEGRADED: &str = "tracer.capture_degraded";
/// `uprobe` on spans with client-library details.
pub const TRACER_SOURCE: &str = "tracer.source";

// OTLP: resource attributes and the keys of status and events the OTLP renderer and the OTLP
// receiver use.

/// Resource attributes (OpenTelemetry semantic conventions).
pub const SERVICE_NAME: &str = "service.name";
pub const HOST_NAME: &str = "host.name";
pub const HOST_IP: &str = "host.ip";
pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
/// The OpenTelemetry span status description, as Jaeger shows OTLP spans.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";
/// The name of the event an error log becomes.
pub const EVENT_ERROR: &str = "error";
/// The name of an event made from a span log without an `event` field.
pub const EVENT_LOG: &str = "log";
/// Jaeger process tags and the resource attributes they become.
pub const JAEGER_HOSTNAME: &str = "hostname";
pub const JAEGER_IP: &str = "ip";
/// The instrumentation scope of spans the daemon builds.
pub const SCOPE_NAME: &str = "tracer";
