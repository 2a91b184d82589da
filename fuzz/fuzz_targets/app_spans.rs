//! Fuzzes the decoders of the spans apps send to the agent over HTTP: OTLP protobuf and OTLP
//! JSON (`render::otlp_in`), and Zipkin v2 JSON (`render::zipkin`), then every renderer on what
//! they give.
//!
//! Input layout: one byte choosing the decoder (0: OTLP protobuf, 1: OTLP JSON, else Zipkin),
//! then the body.
//!
//! Invariants: no panic; a decoded span sent on as Zipkin JSON decodes again to one span with the
//! same ids, start and name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_daemon::export::zipkin::body;
use tracer_daemon::render::{self, otlp_in, zipkin};

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    let decoded = match which {
        0 | 1 => otlp_in::decode_body(which == 1, input).map(|r| otlp_in::decode(r, &[])),
        _ => zipkin::decode(input, &[]),
    };
    let Ok(decoded) = decoded else { return };
    for span in &decoded.spans {
        let jaeger = render::jaeger::render(span);
        let _ = render::otlp::render(span);
        let sent = body(std::slice::from_ref(&jaeger)).expect("a rendered span encodes");
        let again = zipkin::decode(&sent, &[]).expect("the daemon's Zipkin JSON decodes");
        assert_eq!((again.spans.len(), again.rejected), (1, 0), "{}", String::from_utf8_lossy(&sent));
        let s = &again.spans[0];
        assert_eq!((s.trace_id, s.span_id, s.parent_span_id), (span.trace_id, span.span_id, span.parent_span_id));
        assert_eq!((s.start_us, &s.operation), (span.start_us, &span.operation));
    }
});
