"""An HTTP service for the stitching tests (tests/tests/stitching.rs), serving many requests at
once. `GET /r/<id>` sets and reads the Redis key `req:<id>` (redis-py) and runs
`SELECT 'req:<id>'` on mariadb (PyMySQL), then answers 200.

  --mode thread   http.server.ThreadingHTTPServer: a thread per connection
  --mode asyncio  asyncio.start_server with a small HTTP/1.1 handler on one event loop;
                  Redis through redis.asyncio, SQL on the loop's default thread pool
"""
import argparse
import asyncio
import http.server
import re

import pymysql
import redis

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--redis", type=int, required=True)
ap.add_argument("--mysql", type=int, required=True)
ap.add_argument("--mode", choices=["thread", "asyncio"], required=True)
opts = ap.parse_args()

PATH = re.compile(r"^/r/(\d+)$")


def sql(key):
    conn = pymysql.connect(host="127.0.0.1", port=opts.mysql, user="root", database="shop", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT '%s'" % key)
            return cur.fetchall()
    finally:
        conn.close()


def serve_threads():
    pool = redis.ConnectionPool(host="127.0.0.1", port=opts.redis)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            m = PATH.match(self.path)
            if not m:
                self.send_error(404)
                return
            key = "req:" + m.group(1)
            r = redis.Redis(connection_pool=pool)
            r.set(key, m.group(1))
            r.get(key)
            sql(key)
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.request_queue_size = 128
    http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler).serve_forever()


async def serve_asyncio():
    import redis.asyncio as aioredis

    r = aioredis.Redis(host="127.0.0.1", port=opts.redis)
    loop = asyncio.get_running_loop()

    async def handle(reader, writer):
        try:
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            m = PATH.match(parts[1]) if len(parts) >= 2 else None
            if not m:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                key = "req:" + m.group(1)
                await r.set(key, m.group(1))
                await r.get(key)
                await loop.run_in_executor(None, sql, key)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", opts.port, backlog=128)
    async with server:
        await server.serve_forever()


if opts.mode == "thread":
    serve_threads()
else:
    asyncio.run(serve_asyncio())
