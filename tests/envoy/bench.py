"""Overhead of the llm-cost filter in Envoy, side by side with baseline filters, from one run.

Rows (each its own Envoy 1.40, `--concurrency 1`, in front of one upstream Envoy answering the
recorded OpenRouter response from memory with `direct_response`):

    none              no filter on the listener
    no-op filter      bench/noop-filter: a proxy-wasm root + HTTP context, nothing else
    naive filter      bench/naive-filter: hold request and response, serde_json::Value parse of
                      both, re-serialise the request, one header
    llm-cost, collector off   dist/llm_cost_plugin.wasm with {"collector": {"enabled": false}}
    llm-cost, collector on    dist/llm_cost_plugin.wasm with --plugin-config (the collector batching)

JSON table: throughput of metered JSON calls (`wrk -t1 -c16` on loopback) as a ratio of the
no-filter row, p50, the Envoy process's CPU per call (utime+stime from /proc, 10 ms ticks) and
its ratio to the no-filter row's (the throughput ratio of a CPU-bound Envoy worker, which a
machine busy with other work does not skew the way it skews req/s).
Stream table (none, no-op, llm-cost with collector on): one SSE response of --stream-chunks small
content events (the recorded OpenRouter stream's first event repeated, then its finish, usage and
`[DONE]`), CPU per stream and per event, and the ratio of each to the no-op filter. The rounds
interleave the rows (row 1..5, row 1..5, ...) and each figure is the median over --rounds, so a
burst of load from other work on the machine hits every row alike: read the ratios.

    ~/.cache/llm-cost-tools/venv/bin/python tests/envoy/bench.py [--rounds 5] [--seconds 4]
        [--connections 16] [--stream-chunks 10000] [--no-build] [--path P]
        [--upstream-delay-ms D] [--plugin-config JSON] [--compare NAME=WASM ...]

Builds the two baseline filters first (cargo, wasm32-unknown-unknown, release; `--no-build`
skips it) and uses dist/llm_cost_plugin.wasm as `scripts/build-plugin` left it. Not part of the
test suite; needs `wrk` (Debian package `wrk`). Bounded: rounds x rows x --seconds, each wrk run
killed after --seconds + 30 s.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

# A script, not a test: put tests/ on the path as tests/conftest.py does for the suites.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import harness  # noqa: E402
from support.calls import recorded  # noqa: E402

FIXTURE = "openrouter-cache-all-settings-real-api-0"
STREAM_FIXTURE = "openrouter-cache-streaming-e2e"
BASELINES = {"noop": "llm-cost-bench-noop", "naive": "llm-cost-bench-naive"}

# Requests carrying `x-bench: stream` get the long SSE body, all others the JSON answer.
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
            # The long stream is megabytes; direct_response bodies are capped at 4 KiB by default.
            max_direct_response_body_size_bytes: 67108864
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/", headers: [{name: x-bench, string_match: {exact: stream}}]}
                direct_response: {status: 200, body: {filename: "%s"}}
                response_headers_to_add:
                - header: {key: content-type, value: text/event-stream}
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


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(envoy, script, seconds, connections, path):
    """One wrk run against `envoy`: (req/s, p50 ms, non-2xx, requests, Envoy CPU seconds)."""
    before = cpu_seconds(envoy.proc.pid)
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", "%ds" % seconds, "--latency", "-s", script,
         "http://127.0.0.1:%d%s" % (envoy.port, path)],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    cpu = cpu_seconds(envoy.proc.pid) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": float(p50.group(1)) * scale, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "requests": requests, "cpu": cpu}


def wrk_script(path, body, stream):
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(body.decode()))
        f.write('wrk.headers["content-type"] = "application/json"\n')
        f.write('wrk.headers["authorization"] = "Bearer sk-bench"\n')
        if stream:
            f.write('wrk.headers["x-bench"] = "stream"\n')


def long_stream(chunks):
    """The recorded stream with its first content event repeated `chunks` times; (bytes, events)."""
    with open(recorded(STREAM_FIXTURE).file("sse"), "rb") as f:
        events = f.read().split(b"\n\n")
    first = next(i for i, e in enumerate(events) if e.startswith(b"data: {"))
    body = b"\n\n".join(events[:first] + [events[first]] * chunks + events[first + 1:])
    return body, chunks + sum(1 for e in events[first + 1:] if e.startswith(b"data:"))


def build_baselines():
    """The two baseline filters (bench/), release .wasm; returns {name: path}."""
    cmd = ["cargo", "build", "-q", "--release", "--target", "wasm32-unknown-unknown"]
    for package in BASELINES.values():
        cmd += ["-p", package]
    subprocess.run(cmd, cwd=harness.ROOT, check=True, timeout=1800)
    out = os.path.join(harness.TARGET, "wasm32-unknown-unknown", "release")
    return {name: os.path.join(out, package.replace("-", "_") + ".wasm") for name, package in BASELINES.items()}


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def cpu_per_request(runs):
    """Envoy CPU seconds per request, pooled over the rounds."""
    return sum(r["cpu"] for r in runs) / max(1, sum(r["requests"] for r in runs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--stream-chunks", type=int, default=10000,
                    help="content events in the long stream (0: no stream table)")
    ap.add_argument("--no-build", action="store_true", help="use the baseline .wasm files as last built")
    ap.add_argument("--path", default="/api/v1/chat/completions",
                    help="request path (an unmetered one such as /healthz measures the bare filter)")
    ap.add_argument("--upstream-delay-ms", type=int, default=0,
                    help="make the upstream answer after this delay (Envoy fault filter), like a real LLM")
    ap.add_argument("--plugin-config", default='{"collector": {"flush_interval_ms": 500}}',
                    help="plugin_config JSON of the 'collector on' row")
    ap.add_argument("--compare", metavar="NAME=WASM", action="append", default=[],
                    help="one more 'collector on' row in both tables, running another build of the "
                         "filter (e.g. before a change), so before and after come from one run")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk not found (apt-get install wrk)")
    if not os.path.isfile(harness.WASM):
        sys.exit("bench: %s missing (scripts/build-plugin)" % harness.WASM)
    baselines = build_baselines() if not args.no_build else {
        name: os.path.join(harness.TARGET, "wasm32-unknown-unknown", "release", p.replace("-", "_") + ".wasm")
        for name, p in BASELINES.items()}
    envoy_bin = harness.find_envoy()
    rec = recorded(FIXTURE)
    tmp = tempfile.mkdtemp(prefix="llm-cost-bench-")
    json_script = os.path.join(tmp, "post.lua")
    wrk_script(json_script, rec.body_bytes(), stream=False)
    stream_script = os.path.join(tmp, "stream.lua")
    wrk_script(stream_script, recorded(STREAM_FIXTURE).body_bytes(), stream=True)
    sse_path = os.path.join(tmp, "stream.sse")
    sse_body, sse_events = long_stream(args.stream_chunks)
    with open(sse_path, "wb") as f:
        f.write(sse_body)
    collector = harness.Collector()
    delay = DELAY_FILTER % (args.upstream_delay_ms / 1000) if args.upstream_delay_ms else ""
    started = [collector]
    try:
        upstream = harness.Envoy(envoy_bin, 0, 0, config_text=UPSTREAM % (sse_path, rec.file("json"), delay))
        started.append(upstream)

        def envoy(**kw):
            e = harness.Envoy(envoy_bin, upstream.port, collector.port, **kw)
            started.append(e)
            return e

        rows = [
            ("none", envoy(with_filter=False)),
            ("no-op filter", envoy(wasm=baselines["noop"])),
            ("naive filter", envoy(wasm=baselines["naive"])),
            ("llm-cost, collector off", envoy(plugin_config={"collector": {"enabled": False}})),
            ("llm-cost, collector on", envoy(plugin_config=json.loads(args.plugin_config))),
        ]
        for spec in args.compare:
            name, _, wasm = spec.partition("=")
            if not os.path.isfile(wasm):
                sys.exit("bench: --compare %s: no such file" % spec)
            rows.append((name, envoy(wasm=wasm, plugin_config=json.loads(args.plugin_config))))
        stream_rows = [rows[0], rows[1]] + rows[4:] if args.stream_chunks else []
        json_runs = {name: [] for name, _ in rows}
        stream_runs = {name: [] for name, _ in stream_rows}
        for _ in range(args.rounds):
            for name, e in rows:
                json_runs[name].append(wrk(e, json_script, args.seconds, args.connections, args.path))
            for name, e in stream_rows:
                stream_runs[name].append(wrk(e, stream_script, args.seconds, args.connections, args.path))

        print("JSON calls (%s, -c%d, median of %d rounds of %d s; CPU = Envoy process, pooled):"
              % (args.path, args.connections, args.rounds, args.seconds))
        print("%-25s %9s %7s %9s %10s %9s %8s" % ("filter", "req/s", "ratio", "p50 ms", "CPU/call",
                                                  "CPU ratio", "non-2xx"))
        base = median(json_runs["none"], "rps")
        base_cpu = cpu_per_request(json_runs["none"])
        for name, runs in json_runs.items():
            print("%-25s %9.0f %7.2f %9.3f %8.1f us %9.2f %8d" % (
                name, median(runs, "rps"), median(runs, "rps") / base, median(runs, "p50"),
                cpu_per_request(runs) * 1e6, base_cpu / cpu_per_request(runs), sum(r["non2xx"] for r in runs)))
        print("(CPU ratio: Envoy CPU per call without a filter / with it = the throughput ratio of a\n"
              " CPU-bound Envoy worker; it holds when other work on the machine skews req/s)")
        if stream_rows:
            print("\nStreams (%d events of %d bytes in all, -c%d, same rounds):"
                  % (sse_events, len(sse_body), args.connections))
            print("%-25s %9s %12s %12s %14s %8s" % ("filter", "streams/s", "CPU/stream", "CPU/event",
                                                   "vs no-op", "non-2xx"))
            noop = cpu_per_request(stream_runs["no-op filter"])
            for name, runs in stream_runs.items():
                cpu = cpu_per_request(runs)
                print("%-25s %9.1f %9.2f ms %9.3f us %13.2fx %8d" % (
                    name, median(runs, "rps"), cpu * 1e3, cpu / sse_events * 1e6, cpu / noop,
                    sum(r["non2xx"] for r in runs)))
        records = len(collector.records())
        posts = harness.http_json(collector.url("/_posts"))["posts"]
        print("\ncollector: %d records in %d POSTs" % (records, posts))
    finally:
        for p in reversed(started):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
