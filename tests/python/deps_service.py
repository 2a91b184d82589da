"""An HTTP service for the dependency-graph tests across network namespaces.

Binds the address it is given (a veth address inside a namespace the test created), and for
GET /call makes one HTTP GET /hello to --next HOST:PORT before answering, with the Host header
--host-header when given (a DNS name for the callee, as a client resolving it would send).

  GET /call   HTTP GET http://<next>/hello; 200 when it answered 200, else 502
  GET /hello  200 "hello"
"""
import argparse
import http.client
import http.server

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--bind", default="127.0.0.1")
ap.add_argument("--next")
ap.add_argument("--host-header")
opts = ap.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/call" and opts.next:
            host, port = opts.next.rsplit(":", 1)
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            headers = {"Host": opts.host_header} if opts.host_header else {}
            c.request("GET", "/hello", headers=headers)
            r = c.getresponse()
            r.read()
            c.close()
            self.answer(200 if r.status == 200 else 502, b"called")
        elif path == "/hello":
            self.answer(200, b"hello")
        else:
            self.answer(404, b"no such path")


http.server.HTTPServer((opts.bind, opts.port), Handler).serve_forever()
