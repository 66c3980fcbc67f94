"""Fixtures for the SDK compatibility suite: ONE replaying upstream, ONE collector, ONE Envoy with
the built filter and ONE Worker in workerd (`wrangler dev --local`, started by
tests/sdk/js/worker.mjs through tests/worker/harness.mjs) for the whole session.

Every SDK call runs against three base URLs (`direct`: the replaying upstream itself; `envoy`;
`worker`) and must see the same thing through the gateways as without them. Envoy, the built
.wasm or the Worker bundle missing is a failure, never a skip: run `scripts/test-sdk`.
(`envoy_bin` and `collector` come from tests/conftest.py, shared with tests/envoy.)
"""

import os
import select
import subprocess

import pytest

from sdkcheck import NODE
from support import harness  # Envoy, the replaying upstream and the collector

WORKER_JS = os.path.join(harness.ROOT, "tests", "sdk", "js", "worker.mjs")
WORKER_BUNDLE = os.path.join(harness.ROOT, "worker", "build", "index.js")


class Worker:
    """The Worker under `wrangler dev --local`; stops when its stdin closes."""

    def __init__(self, upstream_url, sink_url):
        env = dict(os.environ, SDK_UPSTREAM_URL=upstream_url, SDK_SINK_URL=sink_url)
        self.proc = subprocess.Popen(
            [NODE, WORKER_JS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        out = b""
        deadline = 90.0
        while b"\n" not in out or not out.startswith(b"WORKER "):
            ready, _, _ = select.select([self.proc.stdout], [], [], deadline)
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                self.stop()
                raise RuntimeError("the Worker did not start: %s" % out.decode(errors="replace")[-3000:])
            out += chunk
            if not out.startswith(b"WORKER ") and b"\n" in out:
                self.stop()
                raise RuntimeError("the Worker did not start: %s" % out.decode(errors="replace")[-3000:])
        self.url = out.split(b"\n")[0].split()[1].decode()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture(scope="session")
def upstream():
    up = harness.Upstream(event_delay_ms=1)
    yield up
    up.stop()


@pytest.fixture(scope="session")
def envoy(envoy_bin, upstream, collector):
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, plugin_config={"collector": {"flush_interval_ms": 100}})
    yield e
    e.stop()


@pytest.fixture(scope="session")
def worker(upstream, collector):
    for path, fix in [(NODE, "scripts/install-worker-tools"), (WORKER_BUNDLE, "scripts/build-worker")]:
        if not os.path.isfile(path):
            pytest.fail("%s missing: run %s (or scripts/test-sdk)" % (path, fix))
    w = Worker(upstream.url(""), collector.url("/ingest"))
    yield w
    w.stop()


@pytest.fixture(scope="session")
def targets(upstream, envoy, worker):
    """Base URL (no trailing slash) of each way to reach the upstream."""
    return {
        "direct": upstream.url(""),
        "envoy": "http://127.0.0.1:%d" % envoy.port,
        "worker": worker.url,
    }
