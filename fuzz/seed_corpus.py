#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets from the recorded captures.

    python3 fuzz/seed_corpus.py      # -> fuzz/corpus/{http,http2,redis,mysql}/

Each capture (tracer-daemon/testdata/<proto>/*.cap) becomes seeds in the input layout of
fuzz_targets/common.rs: one per role, one call per recorded chunk, plus a variant whose calls
keep only their first 512 bytes (the rest as a capture gap). The corpus folder is not tracked;
rerun this to rebuild it.
"""

import os
import re

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


def main() -> None:
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
