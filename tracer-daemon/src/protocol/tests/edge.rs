//! Hand-written edge cases: gaps in bodies and headers, interim responses, pushes, blob errors,
//! continuation packets, TLS switches, bounds, redaction off, and conversations concatenated on
//! one connection.

use super::harness::{Chunk, Feed, coalesced, load, pipelined, render_all, renumber, run, untimed, whole};
use crate::model::Tag;
use crate::protocol::session::MAX_PENDING;
use crate::protocol::{Direction, Exchange, Protocol, Redaction, Role, Session};

/// Feeds `(from_client, captured, total_len)` calls (0: all was captured), chunk index =
/// position, then closes.
fn calls(p: Protocol, redaction: Redaction, list: &[(bool, &[u8], usize)]) -> Vec<String> {
    let feeds = list.iter().enumerate().map(|(i, (c, d, t))| Feed {
        chunk: i,
        from_client: *c,
        data: d,
        total: (*t).max(d.len()),
    });
    render_all(&run(p, Role::Client, redaction, feeds), true)
}

fn on() -> Redaction {
    Redaction::default()
}

#[test]
fn http_body_gap_is_skipped_by_length() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
    let mut first = head.to_vec();
    first.extend_from_slice(&[b'x'; 100]);
    let got = calls(
        Protocol::Http,
        on(),
        &[
            (true, b"GET /a HTTP/1.1\r\n\r\n", 19),
            (false, &first, head.len() + 10000),
            (true, b"GET /b HTTP/1.1\r\n\r\n", 19),
            (false, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 45),
        ],
    );
    assert_eq!(
        got,
        [
            "0 GET /a | http.method=\"GET\" http.target=\"/a\" http.flavor=\"1.1\" http.status_code=200 http.response_content_length=10000 | err=- @0-1",
            "1 GET /b | http.method=\"GET\" http.target=\"/b\" http.flavor=\"1.1\" http.status_code=404 http.response_content_length=0 | err=HTTP 404 @2-3",
        ]
    );
}

#[test]
fn http_gap_in_headers_keeps_the_request_line_and_status() {
    let req = b"GET /cut?q=1 HTTP/1.1\r\nHost: h\r\nX-Long: ";
    let resp = b"HTTP/1.1 503 Service Unavailable\r\nServer: x\r\nX-Lo";
    let got = calls(
        Protocol::Http,
        on(),
        &[
            (true, req, req.len() + 5000),
            (false, resp, resp.len() + 5000),
            (true, b"garbage that is not a request\r\n", 31),
            (true, b"GET /next HTTP/1.1\r\n\r\n", 22),
            (false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40),
        ],
    );
    assert_eq!(
        got,
        [
            "0 GET /cut | http.method=\"GET\" http.target=\"/cut?q=?\" http.flavor=\"1.1\" http.status_code=503 | err=HTTP 503 @0-1",
            "1 GET /next | http.method=\"GET\" http.target=\"/next\" http.flavor=\"1.1\" http.status_code=200 http.response_content_length=2 | err=- @3-4",
        ]
    );
}

#[test]
fn http_interim_head_204_304_and_trailers() {
    let got = calls(Protocol::Http, on(), &[
        (true, b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", 0),
        (false, b"HTTP/1.1 100 Continue\r\n\r\n", 0),
        (true, b"abc", 0),
        (false, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0),
        (true, b"HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n", 0),
        (false, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0),
        (false, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", 0),
        (false, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=\"a b\"\r\nwiki\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", 0),
    ]);
    assert_eq!(
        got,
        [
            "0 PUT /x | http.method=\"PUT\" http.target=\"/x\" http.flavor=\"1.1\" http.request_content_length=3 http.status_code=200 http.response_content_length=0 | err=- @0-3",
            "1 HEAD /h | http.method=\"HEAD\" http.target=\"/h\" http.flavor=\"1.1\" http.status_code=200 | err=- @4-5",
            "2 GET /n | http.method=\"GET\" http.target=\"/n\" http.flavor=\"1.1\" http.status_code=204 | err=- @4-5",
            "3 GET /m | http.method=\"GET\" http.target=\"/m\" http.flavor=\"1.1\" http.status_code=304 | err=- @4-6",
            "4 GET /c | http.method=\"GET\" http.target=\"/c\" http.flavor=\"1.1\" http.status_code=200 | err=- @4-7",
        ]
    );
}

#[test]
fn http_upgrade_stops_parsing() {
    let got = calls(
        Protocol::Http,
        on(),
        &[
            (true, b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0),
            (false, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", 0),
            (true, b"GET /not-http-anymore HTTP/1.1\r\n\r\n", 0),
        ],
    );
    assert_eq!(
        got,
        ["0 GET /ws | http.method=\"GET\" http.target=\"/ws\" http.flavor=\"1.1\" http.status_code=101 | err=- @0-1"]
    );
}

#[test]
fn redis_pushes_blob_errors_and_nested_attributes() {
    let got = calls(Protocol::Redis, on(), &[
        (true, b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*1\r\n$4\r\nSYNC\r\n*2\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n", 0),
        (false, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n$1\r\n1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n", 0),
        (false, b"_\r\n!21\r\nSYNTAX invalid syntax\r\n*2\r\n|1\r\n+ttl\r\n:3\r\n:1\r\n%1\r\n+k\r\n~1\r\n,1.5\r\n", 0),
    ]);
    assert_eq!(
        got,
        [
            "0 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET a\" | err=- @0-1",
            "1 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET b\" | err=- @0-2",
            "2 redis SYNC | db.system=\"redis\" db.operation=\"SYNC\" db.statement=\"SYNC\" | err=SYNTAX invalid syntax @0-2",
            "3 redis LRANGE | db.system=\"redis\" db.operation=\"LRANGE\" db.statement=\"LRANGE l\" | err=- @0-2",
        ]
    );
}

#[test]
fn redis_large_value_beyond_the_capture() {
    let mut set = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$100000\r\n".to_vec();
    let head_len = set.len();
    set.extend_from_slice(&[b'v'; 1000]);
    let got = calls(
        Protocol::Redis,
        Redaction { enabled: false },
        &[
            (true, &set, head_len + 100_002),
            (false, b"+OK\r\n", 5),
            (true, b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 22),
            (false, b"$100000\r\nvvvv", 100_011),
            (true, b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", 25),
            (false, b"-WRONGPASS invalid username-password pair\r\n", 43),
        ],
    );
    let value = "v".repeat(128);
    assert_eq!(got, [
        format!("0 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET big {value}\" | err=- @0-1"),
        "1 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET big\" | err=- @2-3".to_string(),
        "2 redis AUTH | db.system=\"redis\" db.operation=\"AUTH\" db.statement=\"AUTH ?\" | err=WRONGPASS invalid username-password pair @4-5".to_string(),
    ]);
}

#[test]
fn redis_lost_reply_does_not_shift_pairing() {
    let chunks = load("redis", "cli_basic");
    let feeds = super::harness::truncated(&chunks, 1024);
    let got = render_all(&run(Protocol::Redis, Role::Client, on(), feeds), true);
    // The COMMAND DOCS reply is cut after 1 KiB of its first 64 KiB call: its exchange ends
    // there, the rest of the reply is dropped, and PING's reply resyncs the stream.
    assert_eq!(
        &got[..3],
        [
            "0 redis COMMAND DOCS | db.system=\"redis\" db.operation=\"COMMAND DOCS\" db.statement=\"COMMAND DOCS\" | err=- @0-1",
            "1 redis PING | db.system=\"redis\" db.operation=\"PING\" db.statement=\"PING\" | err=- @4-5",
            "2 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET user:1 ?\" | err=- @6-7",
        ]
    );
    assert_eq!(got.len(), 19);
    assert!(got[18].starts_with("18 redis AUTH"), "{}", got[18]);
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// The greeting, handshake response and OK of the recorded CLI session.
fn mysql_login() -> Vec<Chunk> {
    load("mysql", "cli_queries").into_iter().take(3).collect()
}

fn mysql_calls(extra: &[(bool, Vec<u8>, usize)]) -> Vec<String> {
    let login = mysql_login();
    let mut list: Vec<(bool, &[u8], usize)> =
        login.iter().map(|c| (c.from_client, c.data.as_slice(), c.data.len())).collect();
    list.extend(extra.iter().map(|(c, d, t)| (*c, d.as_slice(), *t)));
    calls(Protocol::Mysql, on(), &list)
}

const BASE: &str = "db.system=\"mysql\" db.name=\"shop\" db.user=\"app\"";

#[test]
fn mysql_query_longer_than_the_capture_and_continuation_packets() {
    let mut sql = b"\x03INSERT INTO t VALUES ".to_vec();
    sql.extend(std::iter::repeat_n(b"('abc',1),".as_slice(), 3000).flatten());
    let big = packet(0, &sql);
    let mut huge = vec![0xff, 0xff, 0xff, 0x00, 0x03];
    huge.extend_from_slice(b"SELECT 'x");
    let tail = packet(1, b"yz'");
    let got = mysql_calls(&[
        (true, big[..4096].to_vec(), big.len()),
        (false, packet(1, b"\x00\x01\x00\x02\x00\x00\x00"), 11),
        (true, huge.clone(), 4 + 0xff_ffff),
        (true, tail.clone(), tail.len()),
        (false, packet(1, b"\x01"), 5),
        (false, packet(2, b"\x03def\x00\x00\x00\x01x\x00\x0c\x21\x00\x03\x00\x00\x00\xfd\x00\x00\x00\x00\x00"), 27),
        (
            false,
            [packet(3, b"\xfe\x00\x00\x02\x00"), packet(4, b"\x03xyz"), packet(5, b"\xfe\x00\x00\x02\x00")].concat(),
            22,
        ),
    ]);
    assert_eq!(
        got,
        [
            format!(
                "0 mysql INSERT | {BASE} db.operation=\"INSERT\" db.statement=\"INSERT INTO t VALUES {}\" | err=- @3-4",
                "(?,?),".repeat(2048).chars().take(2048 - 21).collect::<String>()
            ),
            format!(
                "1 mysql SELECT | {BASE} db.operation=\"SELECT\" db.statement=\"SELECT ?\" db.mysql.rows=1 | err=- @5-9"
            ),
        ]
    );
}

#[test]
fn mysql_handshake_error_and_tls_produce_nothing() {
    let greeting = load("mysql", "cli_queries").remove(0);
    let got = calls(
        Protocol::Mysql,
        on(),
        &[
            (false, &greeting.data, greeting.data.len()),
            (true, &packet(1, &[&[0x8d, 0xa2, 0xbf, 0x00], &[0u8; 28][..], b"app\x00\x00"].concat()), 41),
            (false, &packet(2, b"\xff\x15\x04#28000Access denied for user 'app'"), 43),
            (true, &packet(0, b"\x03SELECT 1"), 13),
        ],
    );
    assert!(got.is_empty(), "{got:?}");
    assert!(
        calls(
            Protocol::Mysql,
            on(),
            &load("mysql", "cli_ssl")
                .iter()
                .map(|c| (c.from_client, c.data.as_slice(), c.data.len()))
                .collect::<Vec<_>>()
        )
        .is_empty()
    );
}

#[test]
fn close_and_reset_end_pending_requests() {
    for (reset, msg) in [(false, "connection closed before response"), (true, "connection reset before response")] {
        let mut s = Session::new(Protocol::Redis, Role::Server, on());
        let mut out: Vec<Exchange> = Vec::new();
        s.feed(Direction::Ingress, b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 28, 10, 20, &mut out);
        s.feed(Direction::Egress, b"+PONG\r\n", 7, 30, 40, &mut out);
        s.close(99, reset, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].seq, out[0].start_ns, out[0].end_ns, out[0].error.as_deref()), (0, 10, 40, None));
        assert_eq!((out[1].seq, out[1].start_ns, out[1].end_ns, out[1].error.as_deref()), (1, 10, 99, Some(msg)));
        let mut after = Vec::new();
        s.feed(Direction::Egress, b"+PONG\r\n", 7, 100, 110, &mut after);
        assert!(after.is_empty());
    }
}

#[test]
fn pending_queue_and_buffer_are_bounded() {
    let mut s = Session::new(Protocol::Redis, Role::Client, on());
    let mut out = Vec::new();
    let many = b"*1\r\n$4\r\nPING\r\n".repeat(MAX_PENDING + 76);
    s.feed(Direction::Egress, &many, many.len(), 1, 2, &mut out);
    assert_eq!((s.pending(), s.stats().dropped_requests), (MAX_PENDING, 76));
    let mut h = Session::new(Protocol::Http, Role::Server, on());
    let mut big = b"GET /big HTTP/1.1\r\nX-Fill: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70_000));
    h.feed(Direction::Ingress, &big, big.len(), 1, 2, &mut out);
    h.feed(Direction::Ingress, b"aaaa\r\n\r\n", 8, 3, 4, &mut out);
    h.feed(Direction::Ingress, b"GET /after HTTP/1.1\r\n\r\n", 23, 5, 6, &mut out);
    assert_eq!(h.pending(), 2, "the oversize request is kept by its request line, then resync");
    assert_eq!(h.stats().resyncs, 1);
    assert_eq!(h.stats().dropped_calls, 1);
}

#[test]
fn redaction_off_keeps_targets_and_sql() {
    let off = Redaction { enabled: false };
    let got = calls(
        Protocol::Http,
        off,
        &[(true, b"GET /p?a=1&b=2 HTTP/1.0\r\n\r\n", 0), (false, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0)],
    );
    assert_eq!(
        got,
        [
            "0 GET /p | http.method=\"GET\" http.target=\"/p?a=1&b=2\" http.flavor=\"1.0\" http.status_code=200 http.response_content_length=0 | err=- @0-1"
        ]
    );
    let login = mysql_login();
    let mut list: Vec<(bool, &[u8], usize)> =
        login.iter().map(|c| (c.from_client, c.data.as_slice(), c.data.len())).collect();
    let q = packet(0, b"\x03SELECT * FROM t WHERE a = 'x' AND b IN (1,2)");
    let ok = packet(1, b"\x00\x00\x00\x02\x00\x00\x00");
    list.push((true, &q, q.len()));
    list.push((false, &ok, ok.len()));
    let got = calls(Protocol::Mysql, off, &list);
    assert_eq!(
        got,
        [format!(
            "0 mysql SELECT | {BASE} db.operation=\"SELECT\" db.statement=\"SELECT * FROM t WHERE a = 'x' AND b IN (1,2)\" | err=- @3-4"
        )]
    );
}

#[test]
fn tag_order_and_types() {
    let mut s = Session::new(Protocol::Http, Role::Server, on());
    let mut out = Vec::new();
    s.feed(Direction::Ingress, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, 1, 2, &mut out);
    s.feed(Direction::Egress, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 45, 3, 4, &mut out);
    assert_eq!(out[0].tags()[4], Tag::long("http.status_code", 404));
    assert_eq!(out[0].error, None, "4xx is not a server-side error");
    assert_eq!(out[0].protocol.as_str(), "http");
}

/// Concatenated conversations on one session give the concatenated exchanges, also when the
/// requests of all of them are pipelined ahead of every response.
fn check_concat(proto: &str, p: Protocol, parts: &[(&str, usize)]) {
    let mut chunks = Vec::new();
    let mut want = Vec::new();
    for (name, skip) in parts {
        let c = load(proto, name);
        let alone: Vec<String> = untimed(
            &render_all(&run(p, Role::Client, on(), whole(&c)), true).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let from =
            if *skip > 0 { c.iter().position(|x| x.from_client && x.data.get(3) == Some(&0)).unwrap_or(0) } else { 0 };
        let alone = if from > 0 {
            untimed(
                &render_all(&run(p, Role::Client, on(), whole(&[mysql_login(), c[from..].to_vec()].concat())), true)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
        } else {
            alone
        };
        want.extend(renumber(&alone, want.len() as u64));
        chunks.extend(c.into_iter().skip(from));
    }
    let render = |cs: &[Chunk]| {
        untimed(
            &render_all(&run(p, Role::Client, on(), whole(cs)), true).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    assert_eq!(render(&chunks), want, "{proto} concatenated");
    assert_eq!(render(&coalesced(&chunks)), want, "{proto} concatenated, coalesced");
    if p != Protocol::Mysql {
        assert_eq!(render(&pipelined(&chunks)), want, "{proto} concatenated, pipelined");
        assert_eq!(render(&coalesced(&pipelined(&chunks))), want, "{proto} concatenated, pipelined in one write");
    }
    assert!(want.len() >= parts.len(), "{want:?}");
}

#[test]
fn concatenated_http() {
    check_concat(
        "http",
        Protocol::Http,
        &[
            ("curl_keepalive", 0),
            ("curl_chunked_response", 0),
            ("curl_100_continue", 0),
            ("curl_chunked_request", 0),
            ("raw_pipeline", 0),
        ],
    );
}

#[test]
fn concatenated_redis() {
    check_concat(
        "redis",
        Protocol::Redis,
        &[("raw_pipeline", 0), ("cli_pipe", 0), ("raw_resp3", 0), ("raw_pubsub", 0), ("raw_large_value", 0)],
    );
}

#[test]
fn concatenated_mysql() {
    // Both later conversations end by switching database, so each comes last once.
    check_concat("mysql", Protocol::Mysql, &[("cli_queries", 0), ("cli_queries", 1), ("capi_stmt", 1)]);
    check_concat("mysql", Protocol::Mysql, &[("cli_queries", 0), ("pymysql_text", 1)]);
}

#[test]
fn requests_report_the_call_and_offset_of_their_first_byte() {
    use crate::protocol::At;
    let mut s = Session::new(Protocol::Http, Role::Client, on());
    let mut out = Vec::new();
    let post = b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
    let get = b"GET /b HTTP/1.1\r\n\r\n";
    // A request split over two calls, its body and the next request sharing a call, then a
    // request in a call of its own.
    s.feed(Direction::Egress, &post[..10], 10, 100, 101, &mut out);
    let second: Vec<u8> = [&post[10..], &get[..]].concat();
    s.feed(Direction::Egress, &second, second.len(), 200, 201, &mut out);
    s.feed(Direction::Egress, get, get.len(), 300, 301, &mut out);
    let at: Vec<Option<At>> = s.take_started().map(|st| st.at).collect();
    assert_eq!(
        at,
        vec![
            Some(At { call: 100, offset: 0 }),
            Some(At { call: 200, offset: (post.len() - 10) as u64 }),
            Some(At { call: 300, offset: 0 }),
        ]
    );
}
