#!/usr/bin/env python3
"""Decodes Jaeger Thrift bytes with the Apache `thrift` library and the Jaeger types generated
into the `jaeger-client` package, and prints every field as JSON, for tests/tests/export.rs.

The package's generated `Batch` predates `Batch.seqNo` and `Batch.stats` (`ClientStats`), so
the bytes are decoded twice: by the generated classes (process and spans), and by the thrift
library's generic spec-driven reader (`readStruct`) with a `Batch` spec that adds those two
fields as `jaeger.thrift` declares them.

usage: jaeger_decode.py {binary|compact} {batch|emitBatch} < bytes
Reads one or more inputs from stdin, each prefixed by its length as 4 big-endian bytes, and
prints one JSON document per input, one per line.
"""
import json
import struct
import sys

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.transport import TTransport
from thrift.Thrift import TMessageType, TType

from jaeger_client.thrift_gen.jaeger import ttypes as jaeger
from jaeger_client.thrift_gen.agent import Agent


class SpecStruct(object):
    """A struct read by the thrift library's generic reader from its `thrift_spec`."""
    thrift_spec = ()

    def read(self, iprot):
        iprot.readStruct(self, self.thrift_spec)


class ClientStats(SpecStruct):
    # jaeger.thrift: struct ClientStats { 1: required i64 fullQueueDroppedSpans,
    #   2: required i64 tooLargeDroppedSpans, 3: required i64 failedToEmitSpans }
    fullQueueDroppedSpans = tooLargeDroppedSpans = failedToEmitSpans = None
    thrift_spec = (
        None,
        (1, TType.I64, "fullQueueDroppedSpans", None, None),
        (2, TType.I64, "tooLargeDroppedSpans", None, None),
        (3, TType.I64, "failedToEmitSpans", None, None),
    )


class FullBatch(SpecStruct):
    # jaeger.thrift: struct Batch { 1: required Process process, 2: required list<Span> spans,
    #   3: optional i64 seqNo, 4: optional ClientStats stats }
    process = spans = seqNo = stats = None
    thrift_spec = (
        None,
        (1, TType.STRUCT, "process", (jaeger.Process, jaeger.Process.thrift_spec), None),
        (2, TType.LIST, "spans", (TType.STRUCT, (jaeger.Span, jaeger.Span.thrift_spec), False), None),
        (3, TType.I64, "seqNo", None, None),
        (4, TType.STRUCT, "stats", (ClientStats, ClientStats.thrift_spec), None),
    )


class EmitBatchArgs(SpecStruct):
    batch = None
    thrift_spec = (None, (1, TType.STRUCT, "batch", (FullBatch, FullBatch.thrift_spec), None))


def binary(v):
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)


def tag(t):
    return {
        "key": t.key,
        "vType": jaeger.TagType._VALUES_TO_NAMES[t.vType],
        "vStr": t.vStr,
        "vDouble": None if t.vDouble is None else repr(t.vDouble),
        "vBool": t.vBool,
        "vLong": t.vLong,
        "vBinary": None if t.vBinary is None else binary(t.vBinary).hex(),
    }


def tags(ts):
    return None if ts is None else [tag(t) for t in ts]


def span(s):
    return {
        "traceIdLow": s.traceIdLow,
        "traceIdHigh": s.traceIdHigh,
        "spanId": s.spanId,
        "parentSpanId": s.parentSpanId,
        "operationName": s.operationName,
        "references": None if s.references is None else [
            {
                "refType": jaeger.SpanRefType._VALUES_TO_NAMES[r.refType],
                "traceIdLow": r.traceIdLow,
                "traceIdHigh": r.traceIdHigh,
                "spanId": r.spanId,
            }
            for r in s.references
        ],
        "flags": s.flags,
        "startTime": s.startTime,
        "duration": s.duration,
        "tags": tags(s.tags),
        "logs": None if s.logs is None else [
            {"timestamp": l.timestamp, "fields": tags(l.fields)} for l in s.logs
        ],
    }


def batch(b, full):
    if len(full.spans) != len(b.spans) or full.process.serviceName != b.process.serviceName:
        raise ValueError("the generic and the generated decoders disagree")
    stats = full.stats
    return {
        "process": {"serviceName": b.process.serviceName, "tags": tags(b.process.tags)},
        "spans": [span(s) for s in b.spans],
        "seqNo": full.seqNo,
        "stats": None if stats is None else {
            "fullQueueDroppedSpans": stats.fullQueueDroppedSpans,
            "tooLargeDroppedSpans": stats.tooLargeDroppedSpans,
            "failedToEmitSpans": stats.failedToEmitSpans,
        },
    }


# The generated code reads `binary` fields (Tag.vBinary) with readString, which decodes UTF-8;
# keep arbitrary bytes intact through that decode and recover them in tag().
def _read_string(self):
    return self.readBinary().decode("utf-8", "surrogateescape")


class BinaryProtocol(TBinaryProtocol.TBinaryProtocol):
    readString = _read_string


class CompactProtocol(TCompactProtocol.TCompactProtocol):
    readString = _read_string


MESSAGE_TYPES = {TMessageType.CALL: "CALL", TMessageType.REPLY: "REPLY",
                 TMessageType.EXCEPTION: "EXCEPTION", TMessageType.ONEWAY: "ONEWAY"}


def protocol(proto, data):
    trans = TTransport.TMemoryBuffer(data)
    if proto == "binary":
        # The pure-Python protocol, not the accelerated C decoder.
        return trans, BinaryProtocol(trans, strictRead=True)
    return trans, CompactProtocol(trans)


def decode(proto, kind, data):
    out = {}
    # 1. The generated classes of jaeger-client.
    trans, prot = protocol(proto, data)
    if kind == "emitBatch":
        name, mtype, seqid = prot.readMessageBegin()
        out["message"] = {"name": name, "type": MESSAGE_TYPES.get(mtype, mtype), "seqid": seqid}
        args = Agent.emitBatch_args()
        args.read(prot)
        prot.readMessageEnd()
        b = args.batch
    else:
        b = jaeger.Batch()
        b.read(prot)
    b.validate()
    out["trailing"] = len(data) - trans._buffer.tell()
    # 2. The generic reader with the full Batch spec.
    trans, prot = protocol(proto, data)
    if kind == "emitBatch":
        prot.readMessageBegin()
        args = EmitBatchArgs()
        args.read(prot)
        full = args.batch
    else:
        full = FullBatch()
        full.read(prot)
    out["batch"] = batch(b, full)
    return out


def main():
    proto, kind = sys.argv[1], sys.argv[2]
    raw = sys.stdin.buffer.read()
    i = 0
    while i < len(raw):
        (n,) = struct.unpack(">I", raw[i:i + 4])
        print(json.dumps(decode(proto, kind, raw[i + 4:i + 4 + n])))
        i += 4 + n


if __name__ == "__main__":
    main()
