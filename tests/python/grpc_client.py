#!/usr/bin/env python3
"""A grpcio (C-core) client of the Go demo service (tests/go/grpc_demo.go) on one channel.

    grpc_client.py PORT      SayHello("py"), SayHello("missing") -> NOT_FOUND, Count("3")

Messages are hand-encoded like the Go side's codec: one string field (field 1, wire type 2).
Prints one line per call.
"""

import sys

import grpc


def encode(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 128
    return bytes([0x0A, len(b)]) + b


def decode(b: bytes) -> str:
    return b[2:].decode() if b else ""


def main() -> None:
    port = int(sys.argv[1])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        hello = ch.unary_unary("/demo.Greeter/SayHello", request_serializer=encode, response_deserializer=decode)
        count = ch.unary_stream("/demo.Greeter/Count", request_serializer=encode, response_deserializer=decode)
        print("ok", hello("py", timeout=10), flush=True)
        try:
            hello("missing", timeout=10)
            print("unexpected success", flush=True)
        except grpc.RpcError as e:
            print("err", e.code().name, e.details(), flush=True)
        print("ok stream", len(list(count("3", timeout=10))), flush=True)


if __name__ == "__main__":
    main()
