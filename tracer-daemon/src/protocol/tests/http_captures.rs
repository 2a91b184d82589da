//! Expected exchanges of the HTTP captures in `testdata/http/`, checked in every
//! segmentation and in both roles.

use super::harness::{Case, check_case};

#[test]
fn curl_100_continue() {
    check_case(&Case {
        proto: "http",
        name: "curl_100_continue",
        client: &[
            "0 POST /upload | http.method=\"POST\" http.target=\"/upload\" http.host=\"127.0.0.1:40465\" http.flavor=\"1.1\" http.request_content_length=1101 http.status_code=201 http.response_content_length=17 | err=- @0-4",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_chunked_request() {
    check_case(&Case {
        proto: "http",
        name: "curl_chunked_request",
        client: &[
            "0 POST /upload | http.method=\"POST\" http.target=\"/upload?draft=?\" http.host=\"127.0.0.1:39915\" http.flavor=\"1.1\" http.status_code=201 http.response_content_length=17 | err=- @0-2",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_chunked_response() {
    check_case(&Case {
        proto: "http",
        name: "curl_chunked_response",
        client: &[
            "0 GET /chunked | http.method=\"GET\" http.target=\"/chunked\" http.host=\"127.0.0.1:36859\" http.flavor=\"1.1\" http.status_code=200 | err=- @0-3",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_head() {
    check_case(&Case {
        proto: "http",
        name: "curl_head",
        client: &[
            "0 HEAD /index.html | http.method=\"HEAD\" http.target=\"/index.html\" http.host=\"127.0.0.1:32803\" http.flavor=\"1.1\" http.status_code=200 | err=- @0-1",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_keepalive() {
    check_case(&Case {
        proto: "http",
        name: "curl_keepalive",
        client: &[
            "0 GET /index.html | http.method=\"GET\" http.target=\"/index.html\" http.host=\"127.0.0.1:36683\" http.flavor=\"1.1\" http.status_code=200 http.response_content_length=52 | err=- @0-1",
            "1 GET /missing.html | http.method=\"GET\" http.target=\"/missing.html?user=?&token=?\" http.host=\"127.0.0.1:36683\" http.flavor=\"1.1\" http.status_code=404 http.response_content_length=153 | err=HTTP 404 @2-3",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_large() {
    check_case(&Case {
        proto: "http",
        name: "curl_large",
        client: &[
            "0 GET /large.txt | http.method=\"GET\" http.target=\"/large.txt\" http.host=\"127.0.0.1:40159\" http.flavor=\"1.1\" http.status_code=200 http.response_content_length=200000 | err=- @0-5",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_traceparent() {
    check_case(&Case {
        proto: "http",
        name: "curl_traceparent",
        client: &[
            "0 GET /api/items | http.method=\"GET\" http.target=\"/api/items?id=?\" http.host=\"127.0.0.1:36675\" http.flavor=\"1.1\" http.status_code=200 http.response_content_length=27 | err=- | ctx=4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:1:Traceparent @0-1",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn curl_uber_trace_id() {
    check_case(&Case {
        proto: "http",
        name: "curl_uber_trace_id",
        client: &[
            "0 GET /boom | http.method=\"GET\" http.target=\"/boom\" http.host=\"127.0.0.1:39501\" http.flavor=\"1.1\" http.status_code=500 http.response_content_length=16 | err=HTTP 500 | ctx=5af7183fb1d4cf5f:6c4a1e2bd08e3f21:1:UberTraceId @0-2",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn http10_until_close() {
    check_case(&Case {
        proto: "http",
        name: "http10_until_close",
        client: &[
            "0 GET /legacy | http.method=\"GET\" http.target=\"/legacy\" http.host=\"localhost\" http.flavor=\"1.0\" http.status_code=200 | err=- @0-2",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn nginx_204() {
    check_case(&Case {
        proto: "http",
        name: "nginx_204",
        client: &[
            "0 GET /status/204 | http.method=\"GET\" http.target=\"/status/204\" http.host=\"127.0.0.1:39367\" http.flavor=\"1.1\" http.status_code=204 | err=- @0-1",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn nginx_500() {
    check_case(&Case {
        proto: "http",
        name: "nginx_500",
        client: &[
            "0 GET /error | http.method=\"GET\" http.target=\"/error\" http.host=\"127.0.0.1:42245\" http.flavor=\"1.1\" http.status_code=500 http.response_content_length=177 | err=HTTP 500 @0-1",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn raw_pipeline() {
    check_case(&Case {
        proto: "http",
        name: "raw_pipeline",
        client: &[
            "0 GET /index.html | http.method=\"GET\" http.target=\"/index.html\" http.host=\"localhost\" http.flavor=\"1.1\" http.status_code=200 http.response_content_length=52 | err=- @0-1",
            "1 HEAD /index.html | http.method=\"HEAD\" http.target=\"/index.html\" http.host=\"localhost\" http.flavor=\"1.1\" http.status_code=200 | err=- @0-2",
            "2 GET /status/204 | http.method=\"GET\" http.target=\"/status/204\" http.host=\"localhost\" http.flavor=\"1.1\" http.status_code=204 | err=- @0-3",
            "3 GET /nothing-here | http.method=\"GET\" http.target=\"/nothing-here\" http.host=\"localhost\" http.flavor=\"1.1\" http.status_code=404 http.response_content_length=153 | err=HTTP 404 @0-4",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}
