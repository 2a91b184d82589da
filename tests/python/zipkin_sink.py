"""A Zipkin v2 receiver for the tests: every POST /api/v2/spans body (JSON, gzip or not) is
checked against the Zipkin v2 span-list schema (zipkin2_span_schema.json, with jsonschema);
a valid list is answered 202 and its spans appended to --out, one JSON line each; an invalid
one is answered 400 and the reason appended to --out as {"invalid": ...}. GET /ping answers
200 (traffic for the daemon to trace)."""

import argparse
import gzip
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

SCHEMA = json.load(open(os.path.join(os.path.dirname(__file__), "zipkin2_span_schema.json")))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            spans = json.loads(body)
            VALIDATOR.validate(spans)
            lines = [json.dumps(s) for s in spans]
            status = 202
        except (ValueError, jsonschema.ValidationError) as e:
            lines = [json.dumps({"invalid": str(e)[:2000]})]
            status = 400
        with open(self.server.out, "a") as f:
            f.write("".join(line + "\n" for line in lines))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.out = a.out
    server.serve_forever()


if __name__ == "__main__":
    main()
