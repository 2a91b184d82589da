//! Expected exchanges of the HTTP/2 (gRPC) captures in `testdata/http2/`, checked in every
//! segmentation and in both roles, and from connections joined after their start.

use super::harness::{self, Case, Chunk, Feed, check_case, load, render_all, run, truncated, whole};
use crate::protocol::{Protocol, Redaction, Role};

#[test]
fn grpc_calls() {
    check_case(&Case {
        proto: "http2",
        name: "grpc_calls",
        client: &[
            "1 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:41281\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=1 | err=- @2-4",
            "3 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=5 rpc.grpc.message=\"no such user: missing\" rpc.grpc.request_messages=1 rpc.grpc.response_messages=0 net.peer.name=\"127.0.0.1:41281\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=3 | err=NOT_FOUND: no such user: missing @5-6",
            "5 /demo.Greeter/Count | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"Count\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=3 net.peer.name=\"127.0.0.1:41281\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=5 | err=- @7-8",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn grpc_concurrent() {
    check_case(&Case {
        proto: "http2",
        name: "grpc_concurrent",
        client: &[
            "13 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=13 | err=- @3-4",
            "1 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=1 | err=- @3-4",
            "3 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=3 | err=- @3-4",
            "5 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=5 | err=- @3-4",
            "7 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=7 | err=- @3-4",
            "9 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=9 | err=- @3-4",
            "11 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=11 | err=- @3-4",
            "15 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:36093\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=15 | err=- @5-6",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn grpc_large() {
    check_case(&Case {
        proto: "http2",
        name: "grpc_large",
        client: &[
            "1 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:45833\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=1 | err=- @3-4",
            "3 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:45833\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=3 | err=- @7-8",
        ],
        gap_safe: false,
        pipelinable: true,
    });
}

/// The exchanges of a capture fed from chunk `from` on: the daemon joined the connection late.
fn joined_at(name: &str, from: usize, role: Role) -> Vec<String> {
    let chunks: Vec<Chunk> = load("http2", name).into_iter().skip(from).collect();
    render_all(&run(Protocol::Http2, role, Redaction::default(), whole(&chunks)), false)
}

#[test]
fn joined_after_the_start_never_guesses() {
    // From the second call on, the first stream's request was seen whole but its table
    // insertions were not: later requests name unseen entries and are marked.
    assert_eq!(joined_at("grpc_calls", 2, Role::Client), joined_at("grpc_calls", 0, Role::Client));
    let late = joined_at("grpc_calls", 5, Role::Client);
    assert_eq!(
        late,
        [
            "3 HTTP/2 POST | http.method=\"POST\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=3 http2.headers_incomplete=Bool(true) | err=-",
            "5 POST /demo.Greeter/Count | http.method=\"POST\" http.target=\"/demo.Greeter/Count\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=5 http2.headers_incomplete=Bool(true) | err=-",
        ]
    );
    let from3 = joined_at("grpc_calls", 3, Role::Server);
    assert_eq!(from3.len(), 2);
    assert!(from3[0].starts_with("3 grpc | rpc.system=\"grpc\" rpc.grpc.status_code=5"), "{}", from3[0]);
    assert!(from3.iter().all(|l| l.contains("http2.headers_incomplete=Bool(true)")), "{from3:?}");
}

/// The capture re-cut so that every call carries exactly one frame (the preface alone).
fn one_frame_per_call(chunks: &[Chunk]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for from_client in [true, false] {
        let bytes: Vec<u8> =
            chunks.iter().filter(|c| c.from_client == from_client).flat_map(|c| c.data.clone()).collect();
        let mut at = 0;
        if from_client && bytes.starts_with(crate::protocol::http2::frame::PREFACE) {
            at = crate::protocol::http2::frame::PREFACE.len();
            out.push(Chunk { from_client, data: bytes[..at].to_vec() });
        }
        while at + 9 <= bytes.len() {
            let len = (usize::from(bytes[at]) << 16) | (usize::from(bytes[at + 1]) << 8) | usize::from(bytes[at + 2]);
            let end = (at + 9 + len).min(bytes.len());
            out.push(Chunk { from_client, data: bytes[at..end].to_vec() });
            at = end;
        }
    }
    out
}

#[test]
fn truncated_frames_are_skipped_by_length() {
    // Client frames first, then the server's: each call one frame, DATA frames cut to their
    // first 20 bytes (the 20000-byte messages lose nearly everything); framing holds.
    let chunks = one_frame_per_call(&load("http2", "grpc_large"));
    let cut = |c: &Chunk| if c.data.len() > 9 && c.data[3] == 0 { 20 } else { c.data.len() };
    let feeds = || {
        chunks.iter().enumerate().map(move |(i, c)| Feed {
            chunk: i,
            from_client: c.from_client,
            data: &c.data[..cut(c)],
            total: c.data.len(),
        })
    };
    assert!(chunks.iter().filter(|c| cut(c) < c.data.len()).count() >= 4);
    for role in [Role::Client, Role::Server] {
        let got = render_all(&run(Protocol::Http2, role, Redaction::default(), feeds()), false);
        // Headers cut too: decoded up to the cut, then marked, never guessed.
        let headers_cut = render_all(&run(Protocol::Http2, role, Redaction::default(), truncated(&chunks, 20)), false);
        assert_eq!(headers_cut.len(), 2);
        assert!(headers_cut.iter().all(|l| l.contains("http2.headers_incomplete=Bool(true)")), "{headers_cut:?}");
        let want = render_all(&run(Protocol::Http2, role, Redaction::default(), whole(&chunks)), false);
        assert_eq!(got, want);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| l.contains("rpc.grpc.status_code=0") && !l.contains("incomplete")), "{got:?}");
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// POST /svc.A/Call with content-type application/grpc, from the static table and literals.
fn grpc_request_block() -> Vec<u8> {
    let mut b = vec![0x83, 0x86, 0x04, 11];
    b.extend_from_slice(b"/svc.A/Call");
    b.extend_from_slice(&[0x0f, 0x10, 16]);
    b.extend_from_slice(b"application/grpc");
    b
}

#[test]
fn continuation_padding_priority_reset_and_goaway() {
    use crate::protocol::http2::frame::{
        CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING, PREFACE, PRIORITY_FLAG, RST_STREAM,
        SETTINGS, WINDOW_UPDATE,
    };
    let block = grpc_request_block();
    let (a, b) = block.split_at(5);
    // HEADERS with padding and priority, its block finished by a CONTINUATION.
    let mut headers = vec![3u8, 0, 0, 0, 0, 16];
    headers.extend_from_slice(a);
    headers.extend_from_slice(&[0, 0, 0]);
    let mut client = PREFACE.to_vec();
    client.extend(frame(SETTINGS, 0, 0, &[]));
    client.extend(frame(HEADERS, PADDED | PRIORITY_FLAG, 1, &headers));
    client.extend(frame(CONTINUATION, END_HEADERS, 1, b));
    client.extend(frame(PING, 0, 0, &[0; 8]));
    let data = [2u8, 0, 0, 0, 0, 1, 0x0a, 0, 0];
    client.extend(frame(DATA, PADDED | END_STREAM, 1, &data));
    let mut server = frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
    server.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    server.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    let reset = frame(RST_STREAM, 0, 1, &8u32.to_be_bytes());
    let second = frame(HEADERS, END_HEADERS | END_STREAM, 3, &block);
    let mut goaway = 1u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&0u32.to_be_bytes());
    let goaway = frame(GOAWAY, 0, 0, &goaway);
    let chunks = vec![
        Chunk { from_client: true, data: client },
        Chunk { from_client: false, data: server },
        Chunk { from_client: true, data: reset },
        Chunk { from_client: true, data: second },
        Chunk { from_client: false, data: goaway },
    ];
    for role in [Role::Client, Role::Server] {
        let got = render_all(&run(Protocol::Http2, role, Redaction::default(), whole(&chunks)), true);
        assert_eq!(
            got,
            [
                "1 /svc.A/Call | rpc.system=\"grpc\" rpc.service=\"svc.A\" rpc.method=\"Call\" rpc.grpc.request_messages=1 rpc.grpc.response_messages=0 http.flavor=\"2.0\" http.status_code=200 http2.stream_id=1 | err=stream reset by client: CANCEL @0-2",
                "3 /svc.A/Call | rpc.system=\"grpc\" rpc.service=\"svc.A\" rpc.method=\"Call\" rpc.grpc.request_messages=0 rpc.grpc.response_messages=0 http.flavor=\"2.0\" http2.stream_id=3 | err=GOAWAY (NO_ERROR) before response @3-4",
            ],
            "{role:?}"
        );
    }
}

#[test]
fn grpcio_calls() {
    // Python grpcio (C-core): literal headers with indexing, a different frame layout.
    check_case(&Case {
        proto: "http2",
        name: "grpcio_calls",
        client: &[
            "1 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=1 net.peer.name=\"127.0.0.1:44779\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=1 | err=- @2-4",
            "3 /demo.Greeter/SayHello | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"SayHello\" rpc.grpc.status_code=5 rpc.grpc.message=\"no such user: missing\" rpc.grpc.request_messages=1 rpc.grpc.response_messages=0 net.peer.name=\"127.0.0.1:44779\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=3 | err=NOT_FOUND: no such user: missing @7-8",
            "5 /demo.Greeter/Count | rpc.system=\"grpc\" rpc.service=\"demo.Greeter\" rpc.method=\"Count\" rpc.grpc.status_code=0 rpc.grpc.request_messages=1 rpc.grpc.response_messages=3 net.peer.name=\"127.0.0.1:44779\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=5 | err=- @10-11",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn a_reused_stream_id_opens_no_second_call() {
    use crate::protocol::http2::frame::{END_HEADERS, END_STREAM, HEADERS, PREFACE};
    let block = grpc_request_block();
    let mut client = PREFACE.to_vec();
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let response = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]);
    let chunks = vec![
        Chunk { from_client: true, data: client },
        Chunk { from_client: false, data: response.clone() },
        Chunk { from_client: true, data: frame(HEADERS, END_HEADERS | END_STREAM, 1, &block) },
        Chunk { from_client: false, data: response },
    ];
    let got = render_all(&run(Protocol::Http2, Role::Server, Redaction::default(), whole(&chunks)), false);
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn an_h2c_upgrade_answers_its_request_on_stream_1_and_goes_on_in_http2() {
    use crate::protocol::http2::frame::{DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS};
    let upgrade = b"GET /up?key=secret HTTP/1.1\r\nHost: svc:8080\r\nConnection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";
    // The 101, the server's SETTINGS and the start of stream 1's response in one write.
    let mut switched = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    switched.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    switched.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    let mut client = PREFACE.to_vec();
    client.extend(frame(SETTINGS, 0, 0, &[]));
    // GET / (static table), http, :authority svc:8080 as a literal.
    let mut get = vec![0x82, 0x84, 0x86, 0x01, 8];
    get.extend_from_slice(b"svc:8080");
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &get));
    let chunks = vec![
        Chunk { from_client: true, data: upgrade.to_vec() },
        Chunk { from_client: false, data: switched },
        Chunk { from_client: true, data: client },
        Chunk { from_client: false, data: frame(DATA, END_STREAM, 1, b"hello") },
        Chunk { from_client: false, data: frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x8d]) },
    ];
    for (role, bytewise) in [(Role::Client, false), (Role::Server, false), (Role::Client, true), (Role::Server, true)] {
        let feeds: Vec<Feed<'_>> =
            if bytewise { harness::bytewise(&chunks).collect() } else { whole(&chunks).collect() };
        let got = render_all(&run(Protocol::Http, role, Redaction::default(), feeds), true);
        // A 404 is the client's error only.
        let err = if role == Role::Client { "HTTP 404" } else { "-" };
        assert_eq!(
            got,
            [
                "0 GET /up | http.method=\"GET\" http.target=\"/up?key=?\" http.host=\"svc:8080\" http.flavor=\"2.0\" http.status_code=200 http2.stream_id=1 | err=- @0-3".to_string(),
                format!("4 GET / | http.method=\"GET\" http.target=\"/\" http.host=\"svc:8080\" http.flavor=\"2.0\" http.status_code=404 http2.stream_id=3 | err={err} @2-4"),
            ],
            "{role:?}, bytewise {bytewise}"
        );
    }
}
