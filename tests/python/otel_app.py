"""An app instrumented with the OpenTelemetry SDK: one server span with an erroring client
child, exported over OTLP (gRPC or HTTP) to --endpoint; prints the trace id."""

import argparse

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["grpc", "http"], required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--service", required=True)
    a = p.parse_args()
    if a.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=a.endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=a.endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": a.service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("otel-app")
    with tracer.start_as_current_span("handle", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("app.user", 7)
        with tracer.start_as_current_span("call-db", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "db down"))
        print(format(parent.get_span_context().trace_id, "032x"), flush=True)
    provider.shutdown()


if __name__ == "__main__":
    main()
