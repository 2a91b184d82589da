//! Tests of the HTTP transport against collectors on 127.0.0.1: the request, fail-over,
//! spreading, status handling, timeouts and response framing.

use super::*;
use crate::api::{self, Request, Response, Router};
use crate::jaeger::decode::decode_batch;
use crate::model::{JaegerSpan, Process, Tag, TraceId};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;

#[test]
fn urls_parse() {
    let u = collector_url("http://jaeger:14268").unwrap();
    assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()), (false, "jaeger", 14268, "/api/traces"));
    let u = collector_url("https://c.example/custom?x=1").unwrap();
    assert_eq!((u.tls, u.port, u.path.as_str(), u.authority.as_str()), (true, 443, "/custom?x=1", "c.example"));
    let u = collector_url("http://[::1]:9/").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 9, "/api/traces"));
    for bad in ["ftp://x", "http://", "http://u:p@x", "http://x:99999", "http://x:1/a b", "jaeger:14268"] {
        assert!(collector_url(bad).is_err(), "{bad}");
    }
}

fn batch(n: u64) -> Batch {
    let process = Arc::new(Process { service_name: "svc".into(), tags: vec![Tag::str("hostname", "h")] });
    let spans = (0..n)
        .map(|i| JaegerSpan {
            trace_id: TraceId { high: 0, low: 77 },
            span_id: i + 1,
            parent_span_id: 0,
            operation: "op".into(),
            flags: 1,
            start_us: 10,
            duration_us: 20,
            tags: vec![Tag::long("n", i as i64)],
            logs: vec![],
            references: vec![],
            process: process.clone(),
        })
        .collect();
    Batch::new(process, spans)
}

/// A collector that records requests and answers with scripted statuses (202 by default).
struct Collector {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn collector() -> Collector {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let statuses: Arc<Mutex<Vec<u16>>> = Arc::new(Mutex::new(Vec::new()));
    let (s, st) = (seen.clone(), statuses.clone());
    let router = Router::new().route("POST", "/api/traces", move |req| {
        s.lock().unwrap().push(req.clone());
        let status = st.lock().unwrap().pop().unwrap_or(202);
        Response::text(status, "")
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(api::serve(listener, Arc::new(router), rx));
    Collector { addr, seen, statuses, _stop: tx }
}

/// A port nothing listens on.
async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn exporter(urls: &[String], cfg: ExportConfig) -> (HttpExporter, ExportMetrics) {
    let m = ExportMetrics::detached();
    (HttpExporter::new(urls, &cfg, m.clone()).unwrap(), m)
}

#[tokio::test]
async fn posts_binary_batches_with_headers() {
    let c = collector().await;
    let cfg = ExportConfig {
        collector_token: Some("s3cret".into()),
        collector_headers: vec!["X-Tenant: blue".into()],
        ..Default::default()
    };
    let (mut ex, m) = exporter(&[format!("http://{}", c.addr)], cfg);
    m.dropped_queue_full.add(4);
    let d = ex.export(&batch(3)).await.unwrap();
    assert_eq!((d.spans, d.requests), (3, 1));
    ex.export(&batch(2)).await.unwrap();
    let seen = c.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let req = &seen[0];
    assert_eq!(req.header("content-type"), Some("application/x-thrift"));
    assert_eq!(req.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(req.header("x-tenant"), Some("blue"));
    assert_eq!(req.body.len(), d.bytes);
    let got = decode_batch(Protocol::Binary, &req.body).unwrap();
    assert_eq!(got.spans, batch(3).spans);
    assert_eq!(got.process.service_name, "svc");
    assert_eq!(got.seq_no, Some(1));
    assert_eq!(got.stats.unwrap().full_queue_dropped_spans, 4);
    assert_eq!(decode_batch(Protocol::Binary, &seen[1].body).unwrap().seq_no, Some(2));
}

#[tokio::test]
async fn fails_over_and_spreads() {
    let (a, b) = (collector().await, collector().await);
    let dead = dead_port().await;
    let urls = vec![format!("http://127.0.0.1:{dead}"), format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let (mut ex, _m) = exporter(&urls, ExportConfig::default());
    for _ in 0..6 {
        ex.export(&batch(1)).await.unwrap();
    }
    let (na, nb) = (a.seen.lock().unwrap().len(), b.seen.lock().unwrap().len());
    assert_eq!(na + nb, 6);
    assert!(na >= 2 && nb >= 2, "spread: {na} / {nb}");
}

#[tokio::test]
async fn all_down_is_retryable_and_4xx_is_not() {
    let dead = dead_port().await;
    let (mut ex, _m) = exporter(&[format!("http://127.0.0.1:{dead}")], ExportConfig::default());
    let e = ex.export(&batch(1)).await.unwrap_err();
    assert!(matches!(e, ExportError::Io { .. }) && e.is_retryable(), "{e}");

    let c = collector().await;
    let (mut ex, _m) = exporter(&[format!("http://{}", c.addr)], ExportConfig::default());
    c.statuses.lock().unwrap().push(503);
    let e = ex.export(&batch(1)).await.unwrap_err();
    assert!(matches!(e, ExportError::Status { status: 503, .. }) && e.is_retryable());
    c.statuses.lock().unwrap().push(400);
    let e = ex.export(&batch(1)).await.unwrap_err();
    assert!(matches!(e, ExportError::Status { status: 400, .. }) && !e.is_retryable());
    ex.export(&batch(1)).await.unwrap();
}

#[tokio::test]
async fn a_silent_collector_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (_s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let cfg = ExportConfig { collector_timeout_ms: 100, ..Default::default() };
    let (mut ex, _m) = exporter(&[format!("http://{addr}")], cfg);
    let e = ex.export(&batch(1)).await.unwrap_err();
    assert!(matches!(e, ExportError::Timeout { .. }) && e.is_retryable(), "{e}");
    hold.abort();
}

/// Answers requests on `s` (head + Content-Length body) with `responses`, one per request,
/// recording each body; returns when the peer closes or the responses run out.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    responses: &mut impl Iterator<Item = &'static [u8]>,
    bodies: &Mutex<Vec<Vec<u8>>>,
) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        if buf.len() < end + 4 + len {
            continue;
        }
        bodies.lock().unwrap().push(buf[end + 4..end + 4 + len].to_vec());
        buf.drain(..end + 4 + len);
        match responses.next() {
            Some(r) => {
                s.write_all(r).await.unwrap();
                s.flush().await.unwrap();
            }
            None => return,
        }
    }
}

/// Serves canned raw responses, one per request, on one connection at a time.
async fn raw_server(responses: Vec<&'static [u8]>) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut responses = responses.into_iter();
        let bodies = Mutex::new(Vec::new());
        while let Ok((s, _)) = l.accept().await {
            answer(s, &mut responses, &bodies).await;
        }
    });
    addr
}

#[tokio::test]
async fn reads_chunked_and_interim_responses_and_reuses_connections() {
    let addr = raw_server(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
    ])
    .await;
    let (mut ex, _m) = exporter(&[format!("http://{addr}")], ExportConfig::default());
    ex.export(&batch(1)).await.unwrap();
    ex.export(&batch(1)).await.unwrap();
    let e = ex.export(&batch(1)).await.unwrap_err();
    assert!(matches!(e, ExportError::Status { status: 500, .. }), "{e}");
}

/// A TLS collector for `localhost` with a fresh self-signed certificate, and that
/// certificate's PEM file.
async fn tls_server(dir: &Path) -> (u16, PathBuf, Arc<Mutex<Vec<Vec<u8>>>>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = dir.join("collector-ca.pem");
    std::fs::write(&pem, key.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, b) = (acceptor.clone(), b.clone());
            tokio::spawn(async move {
                let mut responses = std::iter::repeat(&b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"[..]);
                // A failed handshake (an untrusting client) just ends that connection.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer(tls, &mut responses, &b).await;
                }
            });
        }
    });
    (port, pem, bodies)
}

#[tokio::test]
async fn https_with_a_trusted_ca_file() {
    let dir = std::env::temp_dir().join(format!("tracer-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (port, pem, bodies) = tls_server(&dir).await;
    let url = format!("https://localhost:{port}");

    // Trusted through the CA file: delivered, twice over one connection.
    let cfg = ExportConfig { collector_ca_file: Some(pem.clone()), ..Default::default() };
    let (mut ex, _m) = exporter(std::slice::from_ref(&url), cfg);
    ex.export(&batch(2)).await.unwrap();
    ex.export(&batch(1)).await.unwrap();
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(decode_batch(Protocol::Binary, &got[0]).unwrap().spans, batch(2).spans);

    // Not trusted by the web PKI roots alone: a TLS error, not retried.
    let (mut ex, _m) = exporter(std::slice::from_ref(&url), ExportConfig::default());
    let e = ex.export(&batch(1)).await.unwrap_err();
    assert!(matches!(e, ExportError::Tls { .. }) && !e.is_retryable(), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
