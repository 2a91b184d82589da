#!/usr/bin/env python3
"""Sends a small trace through the real Jaeger Python client to an agent on 127.0.0.1, then
prints what it sent as JSON, for tests/tests/export.rs.

usage: send_spans.py AGENT_UDP_PORT SAMPLING_PORT SERVICE
"""
import json
import sys
import time

from jaeger_client import Config


def main():
    agent_port, sampling_port, service = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    config = Config(
        config={
            "sampler": {"type": "const", "param": 1},
            "local_agent": {
                "reporting_host": "127.0.0.1",
                "reporting_port": agent_port,
                "sampling_port": sampling_port,
            },
            "reporter_batch_size": 2,
            "reporter_flush_interval": 0.1,
            "logging": False,
        },
        service_name=service,
        validate=True,
    )
    tracer = config.initialize_tracer()
    with tracer.start_span("py-root") as root:
        root.set_tag("span.kind", "server")
        root.set_tag("http.status_code", 201)
        root.set_tag("ratio", 0.25)
        root.set_tag("cached", True)
        root.set_tag("note", "héllo ✓")
        with tracer.start_span("py-child", child_of=root) as child:
            child.set_tag("db.type", "redis")
            child.log_kv({"event": "cache-miss", "key": "user:42"})
    sent = {
        "traceId": "%x" % root.context.trace_id,
        "rootSpanId": "%x" % root.context.span_id,
        "childSpanId": "%x" % child.context.span_id,
    }
    flushed = tracer.close()
    deadline = time.monotonic() + 10
    while not flushed.done():
        if time.monotonic() > deadline:
            sys.exit("the Jaeger client did not flush within 10 s")
        time.sleep(0.01)
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
