"""An app instrumented with the OpenTelemetry SDK and its Zipkin exporter (v2 JSON): a server
span whose client child fails and calls --ping over HTTP with the child's traceparent, exported
to --endpoint (a Zipkin /api/v2/spans URL); prints the trace id."""

import argparse
import urllib.request

from opentelemetry import propagate, trace
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--ping", required=True)
    a = p.parse_args()
    provider = TracerProvider(resource=Resource.create({"service.name": a.service}))
    provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=a.endpoint)))
    tracer = provider.get_tracer("zipkin-app")
    with tracer.start_as_current_span("handle", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("app.user", 7)
        with tracer.start_as_current_span("call-ping", kind=SpanKind.CLIENT) as child:
            headers = {}
            propagate.inject(headers)
            urllib.request.urlopen(urllib.request.Request(a.ping, headers=headers), timeout=10).read()
            child.set_status(Status(StatusCode.ERROR, "ping failed"))
        print(format(parent.get_span_context().trace_id, "032x"), flush=True)
    provider.shutdown()


if __name__ == "__main__":
    main()
