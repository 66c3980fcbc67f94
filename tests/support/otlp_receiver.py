#!/usr/bin/env python3
"""A minimal OTLP/gRPC logs receiver for end-to-end tests: the real
`opentelemetry.proto.collector.logs.v1.LogsService/Export` protocol, served by grpcio with the
service classes of the `opentelemetry-proto` package, listening on 127.0.0.1 (free port).

In a test:

    receiver = OtlpLogsReceiver()        # started; receiver.port
    ...
    receiver.log_records()               # every LogRecord received so far, flattened (below)
    receiver.stop()

Run alone (`python3 tests/support/otlp_receiver.py --port 4317`) it prints `LISTENING <port>` and
then one JSON line per received log record, e.g. to watch what `envoy/envoy-otel.yaml` sends.
"""

import argparse
import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

try:  # imported as part of the tests/support package
    from support import serving
except ImportError:  # run as a script (`python3 tests/support/otlp_receiver.py`): its directory is on sys.path
    import serving


def any_value(value):
    """An OTLP AnyValue as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    return getattr(value, kind)


def flatten(request):
    """One dict per LogRecord of an ExportLogsServiceRequest, with its resource and scope."""
    out = []
    for resource_logs in request.resource_logs:
        resource = {kv.key: any_value(kv.value) for kv in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                out.append({
                    "resource": resource,
                    "scope": scope_logs.scope.name,
                    "time_unix_nano": record.time_unix_nano,
                    "severity_text": record.severity_text,
                    "body": any_value(record.body),
                    "attributes": {kv.key: any_value(kv.value) for kv in record.attributes},
                    "trace_id": record.trace_id.hex(),
                    "span_id": record.span_id.hex(),
                })
    return out


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, owner):
        self.owner = owner

    def Export(self, request, context):
        with self.owner.lock:
            self.owner.requests.append(request)
        if self.owner.on_records is not None:
            self.owner.on_records(flatten(request))
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpLogsReceiver:
    def __init__(self, port=0, on_records=None):
        self.lock = threading.Lock()
        self.requests = []
        self.on_records = on_records
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:%d" % port)
        if not self.port:
            raise RuntimeError("could not bind 127.0.0.1:%d" % port)
        self.server.start()

    def export_requests(self):
        with self.lock:
            return list(self.requests)

    def log_records(self):
        return [r for req in self.export_requests() for r in flatten(req)]

    def stop(self):
        self.server.stop(grace=None).wait(5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    def show(records):
        for r in records:
            print(json.dumps(r, sort_keys=True), flush=True)

    receiver = OtlpLogsReceiver(args.port, on_records=show)
    return serving.announce_and_serve(receiver.port, receiver.stop)


if __name__ == "__main__":
    sys.exit(main())
