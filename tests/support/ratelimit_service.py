#!/usr/bin/env python3
"""A minimal global rate limit service speaking Envoy's real protocol
(`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over gRPC), for the fleet-budget
tests: per-descriptor running totals against a configured limit, in whatever unit the hits are
(here micro-USD).

No registry here ships a real one (envoyproxy/ratelimit is a Go service on Redis, not packaged
for PyPI, npm, crates.io or Debian). The protocol is compiled at run time with grpcio-tools from
the `.proto` copies in `tests/support/proto` (see SOURCES.md there) into a descriptor set, so the
messages on the wire are the real ones, field numbers included.

Semantics (those of envoyproxy/ratelimit, minus time windows):
- a descriptor's hits are its own `hits_addend` when set (Envoy sets it from a route's
  `RateLimit.hits_addend`), else the request's `hits_addend`, else 1 (the protocol's default);
  `is_negative_hits` subtracts them;
- its running total grows by the hits first; the descriptor is OVER_LIMIT when the total then
  exceeds its limit, so a check with 0 hits is refused once earlier charges went over;
- a descriptor without a limit is OK and not counted; the request is OVER_LIMIT if any
  descriptor is.

    rls = RateLimitService(limits={("llm_key_id", "3f2a9c1b7e44"): 5000}, default_limits={"llm_key_id": 10**6})
    rls.port; rls.calls(); rls.totals(); rls.stop()
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

try:  # imported as part of the tests/support package
    from support import serving
except ImportError:  # run as a script (`python3 tests/support/ratelimit_service.py`): its directory is on sys.path
    import serving

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proto")
RLS_PROTO = "envoy/service/ratelimit/v3/rls.proto"
SERVICE = "envoy.service.ratelimit.v3.RateLimitService"


def compile_descriptor_set():
    """Compiles tests/support/proto with grpcio-tools; returns the FileDescriptorSet (imports included)."""
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rls.pb")
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR, "-I", well_known,
             "--include_imports", "--descriptor_set_out=" + out, RLS_PROTO],
            check=True, capture_output=True, timeout=120,
        )
        with open(out, "rb") as f:
            return descriptor_pb2.FileDescriptorSet.FromString(f.read())


def message_classes(descriptor_set):
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_set.file:
        pool.Add(file_proto)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return get("envoy.service.ratelimit.v3.RateLimitRequest"), get("envoy.service.ratelimit.v3.RateLimitResponse")


class RateLimitService:
    def __init__(self, limits=None, default_limits=None, port=0):
        self.limits = dict(limits or {})  # (key, value) of the descriptor's last entry -> limit
        self.default_limits = dict(default_limits or {})  # key of the last entry -> limit
        self.lock = threading.Lock()
        self._totals = {}
        self._calls = []
        self.Request, self.Response = message_classes(compile_descriptor_set())
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
                self._should_rate_limit,
                request_deserializer=self.Request.FromString,
                response_serializer=self.Response.SerializeToString,
            ),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:%d" % port)
        if not self.port:
            raise RuntimeError("could not bind 127.0.0.1:%d" % port)
        self.server.start()

    def limit_for(self, entries):
        if not entries:
            return None
        key, value = entries[-1]
        return self.limits.get((key, value), self.default_limits.get(key))

    def _should_rate_limit(self, request, context):
        Code = self.Response.Code
        response = self.Response(overall_code=Code.Value("OK"))
        seen = []
        with self.lock:
            for descriptor in request.descriptors:
                entries = tuple((e.key, e.value) for e in descriptor.entries)
                if descriptor.HasField("hits_addend"):
                    hits = descriptor.hits_addend.value
                else:
                    hits = request.hits_addend or 1
                if descriptor.is_negative_hits:
                    hits = -hits
                limit = self.limit_for(entries)
                status = response.statuses.add(code=Code.Value("OK"))
                total = None
                if limit is not None:
                    total = self._totals.get(entries, 0) + hits
                    self._totals[entries] = total
                    status.current_limit.requests_per_unit = min(limit, 2**32 - 1)
                    status.current_limit.unit = self.Response.RateLimit.Unit.Value("DAY")
                    status.limit_remaining = max(0, min(limit - total, 2**32 - 1))
                    if total > limit:
                        status.code = Code.Value("OVER_LIMIT")
                        response.overall_code = Code.Value("OVER_LIMIT")
                seen.append({
                    "entries": entries,
                    "descriptor_hits_addend": descriptor.hits_addend.value if descriptor.HasField("hits_addend") else None,
                    "hits": hits,
                    "total": total,
                    "limit": limit,
                    "code": Code.Name(status.code),
                })
            self._calls.append({
                "time": time.monotonic(),
                "domain": request.domain,
                "request_hits_addend": request.hits_addend,
                "descriptors": seen,
                "overall_code": Code.Name(response.overall_code),
            })
        return response

    def calls(self):
        with self.lock:
            return list(self._calls)

    def totals(self):
        with self.lock:
            return dict(self._totals)

    def stop(self):
        self.server.stop(grace=None).wait(5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--default-limit", type=int, default=1_000_000,
                        help="limit per llm_key_id descriptor (micro-USD); default 1000000 = $1")
    args = parser.parse_args()
    rls = RateLimitService(default_limits={"llm_key_id": args.default_limit}, port=args.port)
    return serving.announce_and_serve(rls.port, rls.stop)


if __name__ == "__main__":
    sys.exit(main())
