//! Expected exchanges of the HTTP/2 (gRPC) captures in `testdata/http2/`, checked in every
//! segmentation and in both roles, and from connections joined after their start.

use super::harness::{Case, Chunk, Feed, check_case, load, render_all, run, truncated, whole};
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
