//! Calls the kernel lost or captured short: spans say so, same-host joins by number stop, and
//! the connection's session pairs afresh.

use super::*;

#[test]
fn a_lost_server_read_ends_same_host_joins_on_its_connection() {
    let mut h = Host::new();
    let (c, s) = (tuple("127.0.0.1:40100", "127.0.0.1:8080"), tuple("127.0.0.1:8080", "127.0.0.1:40100"));
    h.open(ConnKind::Connect, 1, 100, c);
    h.open(ConnKind::Accept, 2, 200, s);
    let req = |p: &str| format!("GET /{p} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
    let len = req("a").len() as u32;
    h.data(1, 100, Direction::Egress, &req("a"));
    h.data_seq(2, 200, Direction::Ingress, &req("a"), 1000, None);
    h.data(2, 200, Direction::Egress, OK);
    h.data(1, 100, Direction::Ingress, OK);
    // The server's read and response of /b were lost (ring buffer full): its session numbers
    // /c as its second request, which on the client is /b.
    h.data(1, 100, Direction::Egress, &req("b"));
    h.data(1, 100, Direction::Ingress, OK);
    h.data(1, 100, Direction::Egress, &req("c"));
    h.data_seq(2, 200, Direction::Ingress, &req("c"), 1000 + 2 * len, None);
    h.data(2, 200, Direction::Egress, OK);
    h.data(1, 100, Direction::Ingress, OK);
    let spans = h.spans();
    let server = |op: &str| spans.iter().find(|s| s.kind() == Some("server") && s.operation == op).unwrap();
    let client = |op: &str| spans.iter().find(|s| s.kind() == Some("client") && s.operation == op).unwrap();
    assert_eq!(server("GET /a").parent_span_id, client("GET /a").span_id, "aligned before the loss");
    assert_eq!(server("GET /c").parent_span_id, 0, "never paired with /b: {spans:#?}");
    assert_eq!(h.counters.lost_calls.get(), 1);
    // The spans of the connection after the loss say so, with a log; those before do not.
    let lost = |s: &JaegerSpan| s.tags.iter().any(|t| t.key == "tracer.data_lost" && t.value == TagValue::Bool(true));
    let logged =
        |s: &JaegerSpan| s.logs.iter().any(|l| l.fields.iter().any(|f| f.value == TagValue::Str("data_lost".into())));
    assert!(!lost(server("GET /a")) && !logged(server("GET /a")), "{spans:#?}");
    assert!(lost(server("GET /c")) && logged(server("GET /c")), "{spans:#?}");
    assert!(!lost(client("GET /c")), "the client's connection lost nothing: {spans:#?}");
}

#[test]
fn a_loss_the_kernel_reports_re_pairs_the_connection_at_the_next_response() {
    // The server's responses to /b and /b2 were lost in the kernel (ring buffer full); no
    // sequence number shows it. The next call on the socket says so each time: /c's response
    // must not be taken for /b's or /b2's.
    let mut h = Host::new();
    let s = tuple("127.0.0.1:8080", "127.0.0.1:40100");
    h.open(ConnKind::Accept, 2, 200, s);
    let req = |p: &str| format!("GET /{p} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
    let status = |code: u16| format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").into_bytes();
    h.data(2, 200, Direction::Ingress, &req("a"));
    h.data(2, 200, Direction::Egress, &status(201));
    h.data(2, 200, Direction::Ingress, &req("b"));
    h.pending_lost.egress = true;
    h.data(2, 200, Direction::Ingress, &req("b2"));
    // /b2's response was lost too: reported again by the next read.
    h.pending_lost.egress = true;
    h.data(2, 200, Direction::Ingress, &req("c"));
    h.data(2, 200, Direction::Egress, &status(404));
    h.data(2, 200, Direction::Ingress, &req("d"));
    h.data(2, 200, Direction::Egress, &status(202));
    let spans = h.spans();
    let span = |op: &str| spans.iter().find(|s| s.operation == op).unwrap_or_else(|| panic!("{op}: {spans:#?}"));
    let code = |op: &str| tag(span(op), "http.status_code").cloned();
    assert_eq!(code("GET /a"), Some(TagValue::Long(201)));
    assert_eq!(code("GET /c"), Some(TagValue::Long(404)), "/c's own response: {spans:#?}");
    assert_eq!(code("GET /d"), Some(TagValue::Long(202)));
    for op in ["GET /b", "GET /b2"] {
        assert_eq!(code(op), None, "{op}'s response was never seen: {spans:#?}");
        assert_eq!(tag(span(op), "tracer.truncated"), Some(&TagValue::Bool(true)));
    }
    let lost = |op: &str| tag(span(op), "tracer.data_lost") == Some(&TagValue::Bool(true));
    assert!(!lost("GET /a") && lost("GET /c") && lost("GET /d"), "{spans:#?}");
    assert_eq!(h.counters.lost_calls.get(), 1);
}

#[test]
fn spans_over_a_call_captured_short_say_so_and_later_ones_do_not() {
    let mut h = Host::new();
    h.open(ConnKind::Accept, 2, 200, tuple("127.0.0.1:8080", "127.0.0.1:40100"));
    let req = |p: &str| format!("GET /{p} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
    h.data(2, 200, Direction::Ingress, &req("a"));
    h.pending_degraded = true;
    h.data(2, 200, Direction::Egress, OK);
    h.data(2, 200, Direction::Ingress, &req("b"));
    h.data(2, 200, Direction::Egress, OK);
    let spans = h.spans();
    let degraded = |op: &str| {
        let s = spans.iter().find(|s| s.operation == op).unwrap_or_else(|| panic!("{op}: {spans:#?}"));
        tag(s, "tracer.capture_degraded") == Some(&TagValue::Bool(true))
    };
    assert!(degraded("GET /a"), "its response was captured short: {spans:#?}");
    assert!(!degraded("GET /b"), "{spans:#?}");
}
