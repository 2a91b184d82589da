//! Fuzzes the daemon's HTTP/1.1 listeners without a socket: the bytes a client sends arrive
//! in chunks and go through the connection loop's steps (`api::fuzzing::parse_request_head`,
//! the head-size limit, `Content-Length` bodies, keep-alive and pipelining), and every whole
//! request is routed to the admin endpoint's real handlers (`/metrics`, the service graph, the
//! trace store's query API) and the sampling endpoint's.
//!
//! Input layout: one config byte (bits 0-3: chunk size `1 + n * 61` bytes, bit 4: a 16-byte
//! body limit rather than the admin default), then the bytes the client sends.
//!
//! Invariants: no panic; a head is never longer than the bytes received, nor its body above
//! the limit; a refusal is 400, 411, 413 or 431 with its matching drop reason; header names
//! are lowercase; where the chunks fall does not change the
//! head parsed.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tracer_daemon::agent::sampling::{self, Strategies};
use tracer_daemon::api::fuzzing::{HeadOutcome, parse_request_head};
use tracer_daemon::api::{DropReason, Limits, MAX_HEADER_BYTES, Router};
use tracer_daemon::deps::{self, GraphConfig, SharedGraph};
use tracer_daemon::metrics::Registry;
use tracer_daemon::store::{self, SharedStore, StoreCounters, TraceStore};

fn routers() -> &'static (Router, Router) {
    static ROUTERS: OnceLock<(Router, Router)> = OnceLock::new();
    ROUTERS.get_or_init(|| {
        let registry = Registry::new();
        let admin =
            deps::api::routes(Router::new().metrics(registry.clone()), SharedGraph::new(GraphConfig::default()));
        let trace_store = SharedStore::new(TraceStore::new(1 << 20, StoreCounters::detached()));
        let admin = store::v3::routes(store::api::routes(admin, trace_store.clone()), trace_store);
        let strategies = Arc::new(Strategies::load(None, None).expect("the default strategies"));
        (admin, sampling::router(strategies, &registry))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, mut input)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(config & 15) * 61;
    let max_body = if config & 16 != 0 { 16 } else { Limits::ADMIN.max_body_bytes };
    let (admin, sampling) = routers();
    let mut buf: Vec<u8> = Vec::new();
    // The client's next chunk into `buf`; false once it has sent everything.
    let next = |input: &mut &[u8], buf: &mut Vec<u8>| {
        let n = chunk.min(input.len());
        buf.extend_from_slice(&input[..n]);
        *input = &input[n..];
        n > 0
    };
    'requests: loop {
        // The connection loop's read_request: parse what has arrived, else read more.
        let (req, head_len, content_length, keep_alive) = loop {
            if !buf.is_empty() {
                match parse_request_head(&buf, max_body) {
                    HeadOutcome::Partial => {}
                    HeadOutcome::Head { req, head_len, content_length, keep_alive, .. } => {
                        break (req, head_len, content_length, keep_alive);
                    }
                    HeadOutcome::Reject { status, reason } => {
                        let expected = match status {
                            400 | 411 => DropReason::Malformed,
                            413 => DropReason::BodyTooLarge,
                            431 => DropReason::HeaderTooLarge,
                            other => panic!("refused with {other}"),
                        };
                        assert_eq!(reason, expected, "status {status}");
                        return;
                    }
                }
                if buf.len() > MAX_HEADER_BYTES {
                    return;
                }
            }
            if !next(&mut input, &mut buf) {
                return;
            }
        };
        assert!(head_len > 0 && head_len <= buf.len(), "head of {head_len} bytes in {}", buf.len());
        assert!(head_len <= MAX_HEADER_BYTES);
        assert!(content_length <= max_body);
        for (name, _) in &req.headers {
            assert_eq!(*name, name.to_ascii_lowercase());
        }
        // Where the chunks fell does not matter: the head parses the same from everything the
        // client sent.
        let mut whole = buf.clone();
        whole.extend_from_slice(input);
        match parse_request_head(&whole, max_body) {
            HeadOutcome::Head { req: again, head_len: len_again, .. } => {
                assert_eq!((&again, len_again), (&req, head_len), "the head depends on the chunks");
            }
            other => panic!("the head parsed from a prefix only: {other:?}"),
        }
        // finish_request: the body, then what follows is the next request.
        let total = head_len + content_length;
        while buf.len() < total {
            if !next(&mut input, &mut buf) {
                break 'requests;
            }
        }
        let mut req = req;
        req.body = buf[head_len..total].to_vec();
        buf.drain(..total);
        for router in [admin, sampling] {
            let (resp, allow) = router.handle(&req);
            assert!((100..600).contains(&resp.status), "status {}", resp.status);
            assert_eq!(allow.is_some(), resp.status == 405);
        }
        if !keep_alive {
            return;
        }
    }
});
