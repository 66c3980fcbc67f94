"""Overhead of the llm-cost filter in Envoy: JSON chat completions per second and latency, with and
without the filter, against a fast upstream (a second Envoy answering the recorded response from
memory with `direct_response`). Not part of the test suite; needs `wrk` (Debian package `wrk`).

    ~/.cache/llm-cost-tools/venv/bin/python tests/envoy/bench.py [--seconds 5] [--connections 16]
        [--upstream-delay-ms 0] [--path /api/v1/chat/completions] [--plugin-config JSON]

Bounded: 2 rounds x 2 configurations x --seconds each. Numbers on a shared 2-core machine are
rough: wrk, both Envoys and the upstream compete for the same cores.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# A script, not a test: put tests/ on the path as tests/conftest.py does for the suites.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import harness  # noqa: E402
from support.calls import recorded  # noqa: E402

FIXTURE = "openrouter-cache-all-settings-real-api-0"

UPSTREAM = """
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: upstream
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {filename: "%s"}}
                response_headers_to_add:
                - header: {key: content-type, value: application/json}
          http_filters:%s
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""

# Envoy's own fault filter: every upstream answer waits a fixed delay (an LLM's time to answer).
DELAY_FILTER = """
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              delay: {fixed_delay: %.3fs, percentage: {numerator: 100}}"""


def wrk(port, script, seconds, connections, path="/api/v1/chat/completions"):
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", "%ds" % seconds, "--latency", "-s", script,
         "http://127.0.0.1:%d%s" % (port, path)],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(p50.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--path", default="/api/v1/chat/completions",
                    help="request path (an unmetered one such as /healthz measures the bare filter)")
    ap.add_argument("--upstream-delay-ms", type=int, default=0,
                    help="make the upstream answer after this delay (Envoy fault filter), like a real LLM")
    ap.add_argument("--plugin-config", default='{"collector": {"flush_interval_ms": 500}}',
                    help="plugin_config JSON of the metered Envoy")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk not found (apt-get install wrk)")
    envoy_bin = harness.find_envoy()
    rec = recorded(FIXTURE)
    tmp = tempfile.mkdtemp(prefix="llm-cost-bench-")
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(rec.body_bytes().decode()))
        f.write('wrk.headers["content-type"] = "application/json"\n')
        f.write('wrk.headers["authorization"] = "Bearer sk-bench"\n')
    collector = harness.Collector()
    delay = DELAY_FILTER % (args.upstream_delay_ms / 1000) if args.upstream_delay_ms else ""
    upstream = harness.Envoy(envoy_bin, 0, 0, config_text=UPSTREAM % (rec.file("json"), delay))
    plain = harness.Envoy(envoy_bin, upstream.port, collector.port, with_filter=False)
    metered = harness.Envoy(envoy_bin, upstream.port, collector.port,
                            plugin_config=json.loads(args.plugin_config))
    try:
        results = {"without filter": [], "with filter": []}
        for _ in range(2):
            for name, e in (("without filter", plain), ("with filter", metered)):
                results[name].append(wrk(e.port, script, args.seconds, args.connections, args.path))
        for name, runs in results.items():
            best = max(runs)
            print("%-15s %8.0f req/s  p50 %.2f ms  non-2xx %d" % (name, best[0], best[1], best[2]))
        ratio = max(results["with filter"])[0] / max(results["without filter"])[0]
        print("throughput ratio with/without: %.2f" % ratio)
        p50 = lambda name: min(r[1] for r in results[name])
        print("p50 with/without: %.3f (%+.2f ms)" % (p50("with filter") / p50("without filter"),
                                                   p50("with filter") - p50("without filter")))
        records = len(collector.records())
        posts = harness.http_json(collector.url("/_posts"))["posts"]
        print("collector: %d records in %d POSTs" % (records, posts))
    finally:
        for p in (metered, plain, upstream, collector):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
