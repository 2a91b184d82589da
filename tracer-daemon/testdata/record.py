#!/usr/bin/env python3
"""Record the protocol captures in this folder from real servers on 127.0.0.1.

Every capture is one TCP connection seen through a small recording proxy that sits between a
real client and a real server, both on 127.0.0.1. The proxy logs each chunk it receives, per
direction and in the order it received them (one `recv` = one line), then forwards it unchanged.

    python3 tracer-daemon/testdata/record.py [http] [http2] [redis] [mysql]   # default: all

Needs: Go with grpc-go (Debian golang-go, golang-google-grpc-dev) and grpcio from PyPI for http2, redis-server and redis-cli, mariadbd / mariadb-install-db / mariadb (Debian
mariadb-server), nginx, curl, gcc with libmariadb-dev, openssl, and PyMySQL from PyPI. Servers
are started on free high ports under a private temporary directory and stopped by pid.

File format (`<proto>/<name>.cap`), one chunk per line:

    # comment lines (scenario, server and client versions)
    > bytes the client sent (client -> server)
    < bytes the server sent (server -> client)

Re-recording changes ports, scrambles and ids inside the captures: the expected exchanges in
tracer-daemon/src/protocol/tests/*_captures.rs must then be checked again (the test helper
`harness::dump` prints what a capture produces).

Bytes are written as text: printable ASCII as is, backslash as `\\\\`, CR/LF/TAB as `\\r` `\\n`
`\\t`, every other byte (and a trailing space) as `\\xNN`.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UBER = "5af7183fb1d4cf5f:6c4a1e2bd08e3f21:0:1"


def escape(data: bytes) -> str:
    out = []
    for i, b in enumerate(data):
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif 0x20 <= b < 0x7F and not (b == 0x20 and i == len(data) - 1):
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Proxy:
    """Accepts on a free loopback port and relays to `upstream`, logging every chunk."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.conns = []  # one list of (dir, bytes) per accepted connection
        self.threads = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            log = []
            with self.lock:
                self.conns.append(log)
            for src, dst, tag in ((client, server, ">"), (server, client, "<")):
                t = threading.Thread(target=self._pump, args=(src, dst, tag, log), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, tag, log):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with self.lock:
                log.append((tag, data))
            try:
                dst.sendall(data)
            except OSError:
                return

    def finish(self, timeout_s: float = 10.0):
        end = time.monotonic() + timeout_s
        for t in list(self.threads):
            t.join(max(0.0, end - time.monotonic()))
        self.listener.close()
        return self.conns


def record(proto: str, name: str, upstream: int, comment: str, client) -> None:
    """Runs `client(port)` against a fresh proxy and writes each connection it made."""
    proxy = Proxy(upstream)
    client(proxy.port)
    conns = proxy.finish()
    os.makedirs(os.path.join(HERE, proto), exist_ok=True)
    for i, log in enumerate(conns):
        suffix = "" if i == 0 else f"-{i + 1}"
        path = os.path.join(HERE, proto, f"{name}{suffix}.cap")
        with open(path, "w") as f:
            for line in comment.strip().splitlines():
                f.write(f"# {line}\n")
            for tag, data in log:
                f.write(f"{tag} {escape(data)}\n")
        print(f"wrote {os.path.relpath(path, HERE)}: {len(log)} chunks")


def run(cmd, check=True, **kw):
    proc = subprocess.run(cmd, capture_output=True, timeout=60, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr!r}")
    return proc


def raw_session(port: int, steps, idle_s: float = 0.15) -> None:
    """A scripted raw client: each step is bytes to send in one write, then read until idle."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for step in steps:
            if callable(step):
                step()
                continue
            s.sendall(step)
            s.settimeout(idle_s)
            while True:
                try:
                    if not s.recv(65536):
                        return
                except socket.timeout:
                    break
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        while s.recv(65536):
            pass


def resp(*args) -> bytes:
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


# ---------------------------------------------------------------------------------------- HTTP


class Backend(BaseHTTPRequestHandler):
    """The dynamic half of the HTTP captures: chunked bodies with trailers, 100-continue, 1.0."""

    protocol_version = "HTTP/1.1"
    server_version = "backend/1"
    sys_version = ""

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            for i, part in enumerate([b"hello, ", b"chunked ", b"world\n"]):
                ext = b";name=part%d" % i if i == 1 else b""
                self.wfile.write(b"%x%s\r\n%s\r\n" % (len(part), ext, part))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Checksum: 1234\r\n\r\n")
        elif self.path.startswith("/legacy"):
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            self.wfile.write(b"a body that ends when the connection closes\n" * 3)
            self.close_connection = True
        elif self.path.startswith("/boom"):
            self._send(500, b'{"error":"boom"}', "application/json")
        else:
            self._send(200, b'{"id":7,"status":"shipped"}', "application/json")

    def do_HEAD(self):
        self._send(200, b"x" * 512)

    def do_POST(self):
        body = self._read_body()
        self._send(201, b'{"received":%d}' % len(body), "application/json")


NGINX_CONF = """
daemon off;
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        keepalive_requests 100;
        location = /status/204 {{ return 204; }}
        location = /error {{ return 500; }}
    }}
}}
"""


def record_http(tmp: str) -> None:
    prefix = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(prefix, "www"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    with open(os.path.join(prefix, "www", "index.html"), "w") as f:
        f.write("<html><body><h1>tracer test page</h1></body></html>\n")
    with open(os.path.join(prefix, "www", "large.txt"), "w") as f:
        for i in range(4000):
            f.write(f"line {i:05} of a large static file served by nginx\n")
    nport = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(prefix=prefix, port=nport))
    nginx = subprocess.Popen(["nginx", "-c", conf, "-p", prefix], stderr=subprocess.DEVNULL)
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    bport = backend.server_address[1]
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        wait_port(nport)
        nver = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        cver = run(["curl", "--version"], text=True).stdout.splitlines()[0]
        src = f"server: {nver}; client: {cver}"
        py = f"server: Python {sys.version.split()[0]} http.server handler in record.py"

        def curl(*args):
            return lambda port: run(["curl", "-sS", "-o", "/dev/null", *[a.format(p=port) for a in args]])

        record("http", "curl_keepalive", nport, f"GET, then GET of a missing page with a query, one connection (keep-alive)\n{src}",
               curl("http://127.0.0.1:{p}/index.html", "-o", "/dev/null", "http://127.0.0.1:{p}/missing.html?user=alice&token=s3cret"))
        record("http", "curl_head", nport, f"HEAD\n{src}", lambda p: run(["curl", "-sS", "-I", f"http://127.0.0.1:{p}/index.html"]))
        record("http", "nginx_204", nport, f"GET answered 204 No Content\n{src}", curl("http://127.0.0.1:{p}/status/204"))
        record("http", "nginx_500", nport, f"GET answered 500\n{src}", curl("http://127.0.0.1:{p}/error"))
        record("http", "curl_large", nport, f"GET of a 220 KB static file\n{src}", curl("http://127.0.0.1:{p}/large.txt"))
        record("http", "curl_traceparent", bport, f"GET with a W3C traceparent header\n{py}; {cver}",
               curl("-H", f"traceparent: {TRACEPARENT}", "-H", "tracestate: vendor=value", "http://127.0.0.1:{p}/api/items?id=42"))
        record("http", "curl_uber_trace_id", bport, f"GET with a Jaeger uber-trace-id header, answered 500\n{py}; {cver}",
               curl("-H", f"uber-trace-id: {UBER}", "http://127.0.0.1:{p}/boom"))
        record("http", "curl_chunked_response", bport, f"GET answered with a chunked body, a chunk extension and a trailer\n{py}; {cver}",
               curl("--raw", "http://127.0.0.1:{p}/chunked"))
        body = os.path.join(tmp, "body.json")
        with open(body, "w") as f:
            f.write('{"items":[' + ",".join(str(i) for i in range(300)) + "]}")
        record("http", "curl_100_continue", bport, f"POST with Expect: 100-continue\n{py}; {cver}",
               curl("-H", "Expect: 100-continue", "-H", "Content-Type: application/json", "--data-binary", "@" + body, "http://127.0.0.1:{p}/upload"))
        record("http", "curl_chunked_request", bport, f"POST with a chunked request body\n{py}; {cver}",
               curl("-H", "Transfer-Encoding: chunked", "-H", "Expect:", "--data-binary", "@" + body, "http://127.0.0.1:{p}/upload?draft=1"))
        pipeline = (b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    b"HEAD /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    b"GET /status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    b"GET /nothing-here HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        record("http", "raw_pipeline", nport, f"four requests in one write (pipelining), the last with Connection: close\n{src}; client: raw socket",
               lambda p: raw_session(p, [pipeline], idle_s=1.0))
        record("http", "http10_until_close", bport, f"HTTP/1.0 request, response body delimited by the connection close\n{py}; client: raw socket",
               lambda p: raw_session(p, [b"GET /legacy HTTP/1.0\r\nHost: localhost\r\n\r\n"], idle_s=1.0))
    finally:
        backend.shutdown()
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)


# --------------------------------------------------------------------------------------- Redis


def record_redis(tmp: str) -> None:
    port = free_port()
    rdir = os.path.join(tmp, "redis")
    os.makedirs(rdir)
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", rdir, "--enable-debug-command", "yes"],
                              stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        sver = run(["redis-server", "--version"], text=True).stdout.split()[2]
        cver = run(["redis-cli", "--version"], text=True).stdout.strip()
        src = f"server: redis-server {sver}"

        def cli(script, *extra):
            return lambda p: run(["redis-cli", "-p", str(p), *extra], input=script.encode())

        basic = "\n".join([
            "PING", "SET user:1 alice", "GET user:1", "GET user:404", "INCR visits", "RPUSH list a b c",
            "LRANGE list 0 -1", "HSET profile:1 name alice city paris", "HGETALL profile:1",
            "CLIENT SETNAME tracer-test", "CONFIG GET maxmemory", "LPUSH user:1 x", "MULTI",
            "SET counter 10", "INCRBY counter 5", "EXEC", "DEL user:1 list profile:1 counter visits",
            "AUTH not-a-password", ""])
        record("redis", "cli_basic", port, f"redis-cli commands from stdin on one connection (RESP2)\n{src}; client: {cver}", cli(basic))
        pipe = b"".join(resp(*c) for c in (["SET", "pipe:1", "one"], ["SET", "pipe:2", "two"], ["MGET", "pipe:1", "pipe:2", "pipe:3"],
                                            ["EXPIRE", "pipe:1", "60"], ["TTL", "pipe:1"], ["DEL", "pipe:1", "pipe:2"]))
        record("redis", "cli_pipe", port, f"redis-cli --pipe (mass insertion; it appends ECHO of a random marker)\n{src}; client: {cver}",
               lambda p: run(["redis-cli", "-p", str(p), "--pipe"], input=pipe))
        burst = (resp("SET", "k1", "v1") + resp("GET", "k1") + resp("INCR", "n") + b"PING\r\n" + b"SET inline:key hello\r\n"
                 + resp("GET", "inline:key") + resp("DEL", "k1", "n", "inline:key"))
        record("redis", "raw_pipeline", port, f"seven commands in one write, two of them inline commands\n{src}; client: raw socket",
               lambda p: raw_session(p, [burst, resp("QUIT")]))
        big = b"v" * 100000
        record("redis", "raw_large_value", port, f"SET and GET of a 100 KB value\n{src}; client: raw socket",
               lambda p: raw_session(p, [resp("SET", "big", big), resp("GET", "big"), resp("STRLEN", "big"), resp("DEL", "big")]))
        resp3 = [resp("HELLO", "3"), resp("HSET", "h3", "a", "1", "b", "2"), resp("HGETALL", "h3"), resp("SADD", "s3", "x", "y"),
                 resp("SMEMBERS", "s3"), resp("GET", "missing"), resp("ZADD", "z3", "1.5", "m"), resp("ZSCORE", "z3", "m"),
                 resp("DEBUG", "PROTOCOL", "bignum"), resp("DEBUG", "PROTOCOL", "true"), resp("DEBUG", "PROTOCOL", "verbatim"),
                 resp("DEBUG", "PROTOCOL", "attrib"), resp("DEBUG", "PROTOCOL", "null"), resp("DEBUG", "PROTOCOL", "double"),
                 resp("DEBUG", "PROTOCOL", "push"), resp("CLIENT", "TRACKING", "on"), resp("GET", "tracked"),
                 resp("SET", "tracked", "1"), resp("INCR", "h3"), resp("DEL", "h3", "s3", "z3", "tracked")]
        record("redis", "raw_resp3", port, f"RESP3 after HELLO 3: maps, sets, nulls, doubles, DEBUG PROTOCOL types, tracking pushes\n{src}; client: raw socket",
               lambda p: raw_session(p, resp3))

        def publish():
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(resp("PUBLISH", "news", "first") + resp("PUBLISH", "alerts", "second"))
                time.sleep(0.2)

        record("redis", "raw_pubsub", port, f"RESP2 subscribe mode: messages arrive between replies\n{src}; client: raw socket",
               lambda p: raw_session(p, [resp("SUBSCRIBE", "news", "alerts"), publish, resp("PING"), resp("UNSUBSCRIBE"), resp("PING")]))
        record("redis", "raw_resp3_pubsub", port, f"RESP3 subscribe: confirmations and messages are pushes, GET still answered\n{src}; client: raw socket",
               lambda p: raw_session(p, [resp("HELLO", "3"), resp("SUBSCRIBE", "news"), publish, resp("GET", "user:404"), resp("UNSUBSCRIBE", "news")]))
    finally:
        server.terminate()
        server.wait(10)


# --------------------------------------------------------------------------------------- MySQL

STMT_C = os.path.join(HERE, "mysql", "stmt_client.c")


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def read_idle(s: socket.socket, idle_s: float = 0.15) -> bytes:
    data = b""
    s.settimeout(idle_s)
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def raw_mysql(port: int, user: str, password: str, db: str, caps: int, commands) -> None:
    """A minimal MySQL client: mysql_native_password login with the given capability flags, then
    each command (payload bytes, or a callable taking the previous response) as one packet."""
    import hashlib
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(5)
        greeting = s.recv(65536)[4:]
        end = greeting.index(b"\0", 1)
        scramble = greeting[end + 5:end + 13] + greeting[end + 13 + 18 + 1:end + 13 + 18 + 1 + 12]
        h1 = hashlib.sha1(password.encode()).digest()
        h2 = hashlib.sha1(scramble + hashlib.sha1(h1).digest()).digest()
        token = bytes(a ^ b for a, b in zip(h1, h2))
        login = (caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + bytes([45]) + bytes(23)
                 + user.encode() + b"\0" + bytes([len(token)]) + token + db.encode() + b"\0" + b"mysql_native_password\0")
        s.sendall(mysql_packet(1, login))
        last = read_idle(s)
        for cmd in commands:
            payload = cmd(last) if callable(cmd) else cmd
            s.sendall(mysql_packet(0, payload))
            last = read_idle(s)


def record_mysql(tmp: str) -> None:
    datadir = os.path.join(tmp, "mariadb")
    run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db", "--user=root"])
    ssl = os.path.join(tmp, "ssl")
    os.makedirs(ssl)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-keyout", os.path.join(ssl, "key.pem"), "-out", os.path.join(ssl, "cert.pem")])
    port = free_port()
    sock = os.path.join(tmp, "mariadb.sock")
    server = subprocess.Popen(["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}", f"--port={port}",
                               "--bind-address=127.0.0.1", "--user=root", "--local-infile=1", "--skip-name-resolve",
                               f"--ssl-cert={ssl}/cert.pem", f"--ssl-key={ssl}/key.pem"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        setup = [
            "CREATE DATABASE shop",
            "CREATE TABLE shop.users (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), score DOUBLE)",
            "INSERT INTO shop.users VALUES (1,'alice','alice@example.com',9.5),(2,'bob',NULL,7.25),(3,'carol','carol@example.com',8)",
            "CREATE USER 'app'@'%' IDENTIFIED BY 'app-secret'",
            "GRANT ALL ON shop.* TO 'app'@'%'",
            "CREATE DATABASE inventory",
            "GRANT ALL ON inventory.* TO 'app'@'%'",
            "CREATE PROCEDURE shop.two_results() BEGIN SELECT id FROM shop.users WHERE id < 3; SELECT COUNT(*) AS n FROM shop.users; END",
        ]
        for sql in setup:
            run(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "--delimiter=$$", "-e", sql])
        sver = run(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-N", "-e", "SELECT VERSION()"], text=True).stdout.strip()
        cver = run(["mariadb", "--version"], text=True).stdout.strip()
        src = f"server: MariaDB {sver}"

        def cli(sql, *flags):
            return lambda p: run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(p), "-u", "app", "-papp-secret",
                                  "--force", *flags, "-D", "shop", "-e", sql], check=False)

        record("mysql", "cli_queries", port, f"mariadb CLI over TCP without TLS: queries, an insert, a syntax error\n{src}; client: {cver}",
               cli("SELECT id, name FROM users WHERE name = 'alice'; INSERT INTO users VALUES (4,'dave','d@example.com',1.5);"
                   " SELEC broken; UPDATE users SET score = score + 1 WHERE id IN (1,2,3); DELETE FROM users WHERE id = 4", "--skip-ssl"))
        record("mysql", "cli_ssl", port, f"mariadb CLI that switches to TLS after the server greeting\n{src}; client: {cver}",
               cli("SELECT 1", "--ssl"))

        def pymysql_client(p):
            import pymysql
            from pymysql.constants import CLIENT
            conn = pymysql.connect(host="127.0.0.1", port=p, user="app", password="app-secret", database="shop",
                                   client_flag=CLIENT.MULTI_STATEMENTS, local_infile=True, autocommit=True,
                                   ssl_disabled=True)
            with conn.cursor() as c:
                c.execute("SELECT id, name, email, score FROM users ORDER BY id")
                c.fetchall()
                c.execute(f"/*traceparent='{TRACEPARENT}'*/ SELECT name FROM users WHERE id = 2")
                c.execute("SELECT 1 AS one; SELECT 'two' AS two; UPDATE users SET score = 9 WHERE id = 3")
                while c.nextset():
                    pass
                try:
                    c.execute("SELEKT * FROM users")
                except pymysql.err.ProgrammingError:
                    pass
                c.callproc("two_results")
                while c.nextset():
                    pass
                data = os.path.join(tmp, "rows.csv")
                with open(data, "w") as f:
                    f.write("10,eve,eve@example.com,3.5\n11,frank,,4\n")
                c.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE users FIELDS TERMINATED BY ','")
                c.execute("DELETE FROM users WHERE id >= 10")
            conn.ping(reconnect=False)
            conn.select_db("inventory")
            conn.close()

        import pymysql
        record("mysql", "pymysql_text", port,
               f"PyMySQL {pymysql.__version__}: text result sets, sqlcommenter traceparent, multi-statements, syntax error,"
               f" a procedure with two result sets, LOAD DATA LOCAL INFILE, ping, select_db\n{src}", pymysql_client)

        deprecate_eof = 0x1 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x10000 | 0x20000 | 0x40000 | 0x80000 | 0x1000000
        record("mysql", "raw_deprecate_eof", port,
               f"raw client with CLIENT_DEPRECATE_EOF (result sets end with an OK packet that has the 0xFE header): text and"
               f" binary result sets, an empty result, multi-statements, a procedure, an error, quit\n{src}; client: record.py raw_mysql",
               lambda p: raw_mysql(p, "app", "app-secret", "shop", deprecate_eof, [
                   b"\x03SELECT id, name, email FROM users ORDER BY id",
                   b"\x03SELECT * FROM users WHERE id = 99",
                   b"\x03SELECT 1 AS one; SELECT 'x' AS two; DO 0",
                   b"\x03CALL two_results()",
                   b"\x16SELECT name, score FROM users WHERE id < 3",
                   lambda prepared: b"\x17" + prepared[5:9] + b"\x00\x01\x00\x00\x00",
                   b"\x03INSERT INTO users VALUES (7, 'x', 'y')",
                   b"\x0e",
                   b"\x01",
               ]))

        binary = os.path.join(tmp, "stmt_client")
        run(["gcc", "-O1", "-o", binary, STMT_C, *run(["mariadb_config", "--cflags", "--libs"], text=True).stdout.split()])
        record("mysql", "capi_stmt", port,
               f"MariaDB Connector/C (libmariadb) prepared statements, binary result sets, ping, init db, quit;"
               f" asks for caching_sha2_password so the server answers with an auth switch\n{src}; client: stmt_client.c",
               lambda p: run([binary, str(p)]))
    finally:
        server.terminate()
        server.wait(30)


# --------------------------------------------------------------------------------------- HTTP/2


def record_http2(tmp: str) -> None:
    src = os.path.join(HERE, "..", "..", "tests", "go", "grpc_demo.go")
    binary = os.path.join(tmp, "grpc_demo")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=os.path.join(tmp, "gocache"))
    run(["go", "build", "-o", binary, src], env=env)
    port = free_port()
    server = subprocess.Popen([binary, "server", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        wait_port(port)
        version = run(["go", "version"]).stdout.decode().strip()
        grpc = "grpc-go 1.33 (Debian golang-google-grpc-dev), " + version

        def client(commands):
            def go(proxy_port):
                out = run([binary, "client", f"127.0.0.1:{proxy_port}"], input="\n".join(commands + ["quit"]).encode())
                print(out.stdout.decode().strip())
            return go

        record("http2", "grpc_calls", port,
               f"grpc-go client -> grpc-go server, one connection: SayHello OK, SayHello NOT_FOUND with a\n"
               f"message, Count streaming 3 messages\n{grpc}",
               client(["unary alice", "missing", "stream 3"]))
        record("http2", "grpc_concurrent", port,
               f"grpc-go: 8 SayHello calls at once on one connection (streams interleave)\n{grpc}",
               client(["concurrent 8"]))
        record("http2", "grpc_large", port,
               f"grpc-go: SayHello with a 20000-byte request and response (DATA frames over several reads)\n{grpc}",
               client(["big 20000", "unary after"]))
        import grpc as grpcio

        pyclient = os.path.join(HERE, "..", "..", "tests", "python", "grpc_client.py")
        record("http2", "grpcio_calls", port,
               f"Python grpcio {grpcio.__version__} (C-core) client -> grpc-go server: SayHello OK, NOT_FOUND,\n"
               f"Count streaming 3 messages\n{grpc}",
               lambda p: print(run(["python3", pyclient, str(p)]).stdout.decode().strip()))
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    wanted = sys.argv[1:] or ["http", "http2", "redis", "mysql"]
    tmp = tempfile.mkdtemp(prefix="tracer-record-")
    try:
        for proto in wanted:
            {"http": record_http, "http2": record_http2, "redis": record_redis, "mysql": record_mysql}[proto](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
