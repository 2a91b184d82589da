#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets from the recorded captures.

    python3 fuzz/seed_corpus.py      # -> fuzz/corpus/<target>/

Each capture (tracer-daemon/testdata/<proto>/*.cap) becomes seeds in the input layout of
fuzz_targets/common.rs: one per role, one call per recorded chunk, plus a variant whose calls
keep only their first 512 bytes (the rest as a capture gap). The other targets get seeds in
their own layouts (see the doc comment of each target): `emitBatch` packets written with the
Python Thrift library (when installed), HTTP requests, small ELF files built with gcc (when
present) and event sequences of whole exchanges. The corpus folder is not tracked; rerun this
to rebuild it.
"""

import os
import re
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "tracer-daemon", "testdata")


def unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = text[i + 1]
        if n == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"\\": b"\\", "r": b"\r", "n": b"\n", "t": b"\t"}[n]
        i += 2
    return bytes(out)


def load(path: str):
    chunks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("> ") or line.startswith("< "):
                chunks.append((line[0] == ">", unescape(line[2:])))
    return chunks


def encode(chunks, server: bool, cap: int = 0) -> bytes:
    out = bytearray([1 if server else 0])
    for from_client, data in chunks:
        egress = from_client != server
        gap_units = 0
        if cap and len(data) > cap:
            gap_units = min(63, (len(data) - cap) // 61)
            data = data[:cap]
        for start in range(0, max(len(data), 1), 65535):
            piece = data[start:start + 65535]
            flags = (0 if egress else 1) | ((2 | (gap_units << 2)) if gap_units and start == 0 else 0)
            out += bytes([flags]) + len(piece).to_bytes(2, "little") + piece
    return bytes(out)


def write_seeds(target: str, seeds) -> None:
    folder = os.path.join(ROOT, "fuzz", "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"fuzz/corpus/{target}: {len(seeds)} seeds")


def thrift_seeds():
    """emitBatch packets and bare batches, compact and binary (config byte first)."""
    try:
        from thrift.protocol import TBinaryProtocol, TCompactProtocol
        from thrift.Thrift import TMessageType, TType
        from thrift.transport import TTransport
    except ImportError:
        print("fuzz/corpus/agent_thrift: no seeds (the Python thrift package is missing)")
        return []

    def tag(p, key, vtype, value):
        p.writeStructBegin("Tag")
        p.writeFieldBegin("key", TType.STRING, 1)
        p.writeString(key)
        p.writeFieldEnd()
        p.writeFieldBegin("vType", TType.I32, 2)
        p.writeI32(vtype)
        p.writeFieldEnd()
        field = {0: (TType.STRING, 3, p.writeString), 1: (TType.DOUBLE, 4, p.writeDouble),
                 2: (TType.BOOL, 5, p.writeBool), 3: (TType.I64, 6, p.writeI64),
                 4: (TType.STRING, 7, p.writeBinary)}[vtype]
        p.writeFieldBegin("v", field[0], field[1])
        field[2](value)
        p.writeFieldEnd()
        p.writeFieldStop()
        p.writeStructEnd()

    def tags(p, fid, items):
        p.writeFieldBegin("tags", TType.LIST, fid)
        p.writeListBegin(TType.STRUCT, len(items))
        for item in items:
            tag(p, *item)
        p.writeListEnd()
        p.writeFieldEnd()

    def i64(p, fid, v):
        p.writeFieldBegin("f", TType.I64, fid)
        p.writeI64(v)
        p.writeFieldEnd()

    def span(p, n, parent):
        p.writeStructBegin("Span")
        i64(p, 1, 0x0123456789ABCDEF)
        i64(p, 2, -1)
        i64(p, 3, n)
        i64(p, 4, parent)
        p.writeFieldBegin("operationName", TType.STRING, 5)
        p.writeString(f"GET /items/{n} ✓")
        p.writeFieldEnd()
        if parent:
            p.writeFieldBegin("references", TType.LIST, 6)
            p.writeListBegin(TType.STRUCT, 1)
            p.writeStructBegin("SpanRef")
            p.writeFieldBegin("refType", TType.I32, 1)
            p.writeI32(1)
            p.writeFieldEnd()
            i64(p, 2, 0x0123456789ABCDEF)
            i64(p, 3, -1)
            i64(p, 4, parent)
            p.writeFieldStop()
            p.writeStructEnd()
            p.writeListEnd()
            p.writeFieldEnd()
        p.writeFieldBegin("flags", TType.I32, 7)
        p.writeI32(1)
        p.writeFieldEnd()
        i64(p, 8, 1_700_000_000_000_000 + n)
        i64(p, 9, 1500)
        tags(p, 10, [("span.kind", 0, "server"), ("http.status_code", 3, 201), ("ratio", 1, 0.25),
                     ("error", 2, False), ("raw", 4, b"\x00\xff")])
        p.writeFieldBegin("logs", TType.LIST, 11)
        p.writeListBegin(TType.STRUCT, 1)
        p.writeStructBegin("Log")
        i64(p, 1, 1_700_000_000_000_100)
        tags(p, 2, [("event", 0, "cache-miss")])
        p.writeFieldStop()
        p.writeStructEnd()
        p.writeListEnd()
        p.writeFieldEnd()
        p.writeFieldStop()
        p.writeStructEnd()

    def batch(p, spans):
        p.writeStructBegin("Batch")
        p.writeFieldBegin("process", TType.STRUCT, 1)
        p.writeStructBegin("Process")
        p.writeFieldBegin("serviceName", TType.STRING, 1)
        p.writeString("checkout")
        p.writeFieldEnd()
        tags(p, 2, [("hostname", 0, "h1"), ("jaeger.version", 0, "Python-4.8.0")])
        p.writeFieldStop()
        p.writeStructEnd()
        p.writeFieldEnd()
        p.writeFieldBegin("spans", TType.LIST, 2)
        p.writeListBegin(TType.STRUCT, spans)
        for n in range(spans):
            span(p, n + 1, n)
        p.writeListEnd()
        p.writeFieldEnd()
        i64(p, 3, 7)
        p.writeFieldBegin("stats", TType.STRUCT, 4)
        p.writeStructBegin("ClientStats")
        for fid in (1, 2, 3):
            i64(p, fid, fid)
        p.writeFieldStop()
        p.writeStructEnd()
        p.writeFieldEnd()
        p.writeFieldStop()
        p.writeStructEnd()

    seeds = []
    for binary in (False, True):
        for bare in (False, True):
            for spans in (0, 1, 3):
                out = TTransport.TMemoryBuffer()
                p = TBinaryProtocol.TBinaryProtocol(out) if binary else TCompactProtocol.TCompactProtocol(out)
                if not bare:
                    p.writeMessageBegin("emitBatch", TMessageType.ONEWAY, 1)
                    p.writeStructBegin("emitBatch_args")
                    p.writeFieldBegin("batch", TType.STRUCT, 1)
                batch(p, spans)
                if not bare:
                    p.writeFieldEnd()
                    p.writeFieldStop()
                    p.writeStructEnd()
                    p.writeMessageEnd()
                config = (1 if binary else 0) | (2 if bare else 0)
                name = f"{'binary' if binary else 'compact'}-{'batch' if bare else 'emit'}-{spans}"
                seeds.append((name, bytes([config]) + out.getvalue()))
    return seeds


HTTP_REQUESTS = [
    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"GET /api/services HTTP/1.1\r\nHost: a\r\n\r\n"
    b"GET /api/traces?service=checkout&limit=5&lookback=1h&tags=%7B%22error%22%3A%22true%22%7D HTTP/1.1\r\n\r\n",
    b"GET /api/dependencies?endTs=1700000000000&lookback=3600000 HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
    b"GET /dependencies?format=dot HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /api/v3/traces?query.service_name=s&query.start_time_min=2024-01-01T00:00:00Z HTTP/1.1\r\n\r\n",
    b"GET /api/traces/0123456789abcdef0123456789abcdef HTTP/1.1\r\n\r\n",
    b"GET /sampling?service=checkout HTTP/1.1\r\nAccept: */*\r\n\r\n",
    b"POST /api/traces HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
    b"DELETE /metrics HTTP/1.1\r\n\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
    b"GET /%e2%9c%93?a=%zz&b=+x+ HTTP/1.1\r\nX: " + b"y" * 300 + b"\r\n\r\n",
]


def http_seeds():
    seeds = []
    for i, req in enumerate(HTTP_REQUESTS):
        for config in (15, 0, 16 | 3):
            seeds.append((f"req{i}-{config}", bytes([config]) + req))
    return seeds


ELF_SOURCE = r"""
/* Symbols of hiredis 1.x and libmariadb, a Go build-information blob and a structure the
   seed script renames to runtime.g in the DWARF, so that one small file reaches every path
   of uprobes::elf and uprobes::golang. */
struct runtime_g { long stack[2]; long pad[17]; long goid; };
struct runtime_g the_g;
int redisCommand(void) { return 1; }
int redisvCommand(void) { return 2; }
int redisCommandArgv(void) { return 3; }
int redisGetReply(void) { return 4; }
int redisAppendCommand(void) { return 5; }
int redisAppendCommandArgv(void) { return 6; }
int redisAsyncCommand(void) { return 7; }
int redisSetPushCallback(void) { return 8; }
int __redisAppendCommand(void) { return 9; }
int mysql_real_query(void) { return 10; }
int mysql_real_connect(void) { return 11; }
int mysql_stmt_execute(void) { return 12; }
int mariadb_get_infov(void) { return 13; }
__attribute__((section(".go.buildinfo"), used, aligned(16)))
const unsigned char buildinfo[48] = "\xff Go buildinf:\x08\x02" "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0" "\x08go1.21.5";
"""


def elf_seeds():
    gcc = shutil.which("gcc")
    if gcc is None:
        print("fuzz/corpus/elf: no seeds (gcc is missing)")
        return []
    seeds = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "lib.c")
        with open(src, "w") as f:
            f.write(ELF_SOURCE)
        variants = {"plain": [], "zdebug": ["-Wl,--compress-debug-sections=zlib"], "stripped": ["-s"]}
        for name, extra in variants.items():
            out = os.path.join(tmp, name + ".so")
            cmd = [gcc, "-shared", "-fPIC", "-O1", "-g", "-o", out, src] + extra
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                continue
            with open(out, "rb") as f:
                data = f.read()
            # Same length, so every offset in the file stays right.
            data = data.replace(b"runtime_g", b"runtime.g")
            for flavor in (0, 2):
                seeds.append((f"{name}-{flavor}", bytes([flavor]) + data))
    return seeds


def assembler_seeds():
    """Whole exchanges on each connection pair, in the layout of fuzz_targets/assembler.rs."""
    CONNECT, ACCEPT, CLOSE, WRITE, READ, TICK = 0, 8, 16, 1, 2, 15

    def conn(op, c):
        return bytes([op, c])

    def data(op, c, msg, flags=0):
        return bytes([op, c, flags, msg])

    def exchange(pair, calls, flags=0):
        client, server = pair, pair + 4
        out = conn(CONNECT, client) + conn(ACCEPT, server)
        for from_client, msg in calls:
            src, dst = (client, server) if from_client else (server, client)
            out += data(WRITE, src, msg, flags) + data(READ, dst, msg, flags)
        return out + conn(CLOSE, client) + conn(CLOSE, server) + bytes([TICK, 0])

    http = exchange(0, [(True, 0), (False, 1), (True, 2), (False, 3)])
    redis = exchange(1, [(True, 4), (False, 5), (True, 6), (False, 7)])
    mysql = exchange(2, [(False, 8), (True, 9), (False, 10), (True, 9), (False, 11)])
    grpc = exchange(3, [(True, 12), (False, 13), (True, 14), (False, 15)])
    # Kernel contexts and sequence numbers (flags bit 2; bits 4-5: client context).
    propagated = exchange(0, [(True, 0), (False, 1)], flags=0x14)
    # hiredis: enter, the formatted command as an argument, the wire, the exit.
    lib = (bytes([5, 1, 0, 0]) + bytes([5 | 8, 1, 0, 4]) + exchange(1, [(True, 4), (False, 5)])
           + bytes([5 | 16, 1, 0x20, 5]))
    # Mid-stream: data on connections never opened, a reset, then the process exits.
    midstream = (data(READ, 4, 0) + data(WRITE, 4, 1) + data(WRITE, 5, 4, flags=3) + bytes([4, 4])
                 + bytes([TICK, 0]))
    seeds = [("http", http), ("redis", redis), ("mysql", mysql), ("grpc", grpc),
             ("propagated", propagated), ("hiredis", lib), ("midstream", midstream),
             ("all", http + redis + mysql + grpc + lib)]
    return seeds


def app_span_seeds():
    """Bodies apps post: a Zipkin v2 list and an OTLP/HTTP JSON request."""
    zipkin = (
        b'[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c",'
        b'"name":"get /api","kind":"SERVER","timestamp":1556604172355737,"duration":1431,'
        b'"localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},'
        b'"remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},'
        b'"annotations":[{"timestamp":1556604172355800,"value":"wr"}],"tags":{"error":"boom"}}]'
    )
    otlp = (
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},'
        b'"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",'
        b'"name":"x","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"}]}]}]}'
    )
    return [("zipkin", b"\x02" + zipkin), ("otlp-json", b"\x01" + otlp)]


def main() -> None:
    write_seeds("app_spans", app_span_seeds())
    write_seeds("agent_thrift", thrift_seeds())
    write_seeds("admin_http", http_seeds())
    write_seeds("elf", elf_seeds())
    write_seeds("assembler", assembler_seeds())
    for proto in ("http", "http2", "redis", "mysql"):
        target = os.path.join(ROOT, "fuzz", "corpus", proto)
        os.makedirs(target, exist_ok=True)
        count = 0
        for name in sorted(os.listdir(os.path.join(TESTDATA, proto))):
            if not name.endswith(".cap"):
                continue
            chunks = load(os.path.join(TESTDATA, proto, name))
            stem = re.sub(r"\W", "_", name[:-4])
            for server in (False, True):
                for cap in (0, 512):
                    seed = encode(chunks, server, cap)
                    role = "server" if server else "client"
                    with open(os.path.join(target, f"{stem}-{role}-{cap}"), "wb") as f:
                        f.write(seed)
                    count += 1
        print(f"fuzz/corpus/{proto}: {count} seeds")


if __name__ == "__main__":
    main()
