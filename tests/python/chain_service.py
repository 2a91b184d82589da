"""An HTTP service for the end-to-end span tests.

Serves one request at a time on its main thread (so its outbound calls are that request's
children by thread causality). Depending on the path it calls a real redis-server (raw RESP over
a socket), a real mariadb (PyMySQL) and another HTTP service, then answers.

  GET /checkout  redis GET, mysql SELECT, HTTP GET <next>/hello; 200
  GET /fail      redis LPOP on a string (WRONGTYPE), a SQL syntax error, HTTP GET <next>/boom; 500
  GET /pipeline  three redis commands in one write; 200
  GET /relay     redis GET (with --redis), HTTP GET <next>/relay (with --next); 200
  GET /line      one "FETCH" line to the --line service, 200 when it answers "VALUE"
  GET /hello     200 "hello"        (a leaf service: no --redis/--mysql/--next)
  GET /boom      500 "boom"

With --line-protocol it speaks a line protocol of its own instead of HTTP (one the daemon does
not parse): each "FETCH <key>" line makes a redis GET (with --redis) and a mysql SELECT (with
--mysql), answered "VALUE <n>".
"""
import argparse
import http.client
import http.server
import socket

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--redis", type=int)
ap.add_argument("--mysql", type=int)
ap.add_argument("--next", type=int)
ap.add_argument("--bind", default="127.0.0.1", help="address to listen on")
ap.add_argument("--redis-host", default="127.0.0.1")
ap.add_argument("--next-host", default="127.0.0.1")
ap.add_argument("--mysql-host", default="127.0.0.1")
ap.add_argument("--line", type=int, help="port of a --line-protocol service")
ap.add_argument("--line-host", default="127.0.0.1")
ap.add_argument("--line-protocol", action="store_true", help="serve the line protocol, not HTTP")
ap.add_argument("--keep-alive", action="store_true", help="answer as HTTP/1.1, keeping connections open")
opts = ap.parse_args()


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_call(payload, replies):
    with socket.create_connection((opts.redis_host, opts.redis), timeout=10) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"\r\n") < replies:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def mysql_query(sql):
    import pymysql

    conn = pymysql.connect(host=opts.mysql_host, port=opts.mysql, user="root", database="shop", autocommit=True)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(sql)
                return cur.fetchall()
            except pymysql.err.ProgrammingError as e:
                return str(e)
    finally:
        conn.close()


def http_get(path):
    c = http.client.HTTPConnection(opts.next_host, opts.next, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


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
        if path == "/checkout":
            redis_call(resp("SET", "user:7", "alice"), 1)
            redis_call(resp("GET", "user:7"), 2)
            mysql_query("SELECT name FROM items WHERE id = 1")
            status, _ = http_get("/hello")
            self.answer(200 if status == 200 else 502, b"checked out")
        elif path == "/fail":
            redis_call(resp("SET", "user:8", "bob"), 1)
            redis_call(resp("LPOP", "user:8"), 1)
            mysql_query("SELEC broken FROM nowhere")
            http_get("/boom")
            self.answer(500, b"failed")
        elif path == "/pipeline":
            redis_call(resp("SET", "p:1", "x") + resp("INCR", "p:counter") + resp("GET", "p:1"), 3)
            self.answer(200, b"pipelined")
        elif path == "/relay":
            ok = True
            if opts.redis:
                ok = redis_call(resp("GET", "relay:key"), 1).startswith((b"$", b"_"))
            if opts.next:
                status, _ = http_get("/relay")
                ok = ok and status == 200
            self.answer(200 if ok else 502, b"relayed")
        elif path == "/line":
            with socket.create_connection((opts.line_host, opts.line), timeout=10) as s:
                s.sendall(b"FETCH relay:key\n")
                reply = s.makefile("rb").readline()
            self.answer(200 if reply.startswith(b"VALUE") else 502, reply)
        elif path == "/hello":
            self.answer(200, b"hello")
        elif path == "/boom":
            self.answer(500, b"boom")
        else:
            self.answer(404, b"no such path")


def serve_lines():
    """One connection at a time on the main thread, so its calls are the request's by thread."""
    listener = socket.create_server((opts.bind, opts.port))
    while True:
        conn, _ = listener.accept()
        with conn, conn.makefile("rwb") as f:
            for line in f:
                n = 0
                if line.startswith(b"FETCH ") and opts.redis:
                    key = line[6:].strip().decode()
                    n += redis_call(resp("GET", key), 1).startswith((b"$", b"_"))
                if opts.mysql:
                    n += len(mysql_query("SELECT name FROM items WHERE id = 1"))
                f.write(b"VALUE %d\n" % n)
                f.flush()


if opts.line_protocol:
    serve_lines()
if opts.keep_alive:
    Handler.protocol_version = "HTTP/1.1"
http.server.HTTPServer((opts.bind, opts.port), Handler).serve_forever()
