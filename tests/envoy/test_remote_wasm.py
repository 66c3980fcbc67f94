"""Pricing updates across a fleet without a file on every host: Envoy fetches the filter by URL
(`vm_config.code.remote` with `http_uri` and `sha256`, docs/SCALE.md) from a local HTTP server.
A matching sha256 loads and meters; a wrong one leaves the filter out (FAIL_OPEN): traffic passes
unmetered, only Envoy's log says so."""

import functools
import hashlib
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support import harness
from support.calls import cli_record, send

JSON = "openrouter-cache-all-settings-real-api-0"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


@pytest.fixture(scope="module")
def wasm_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=os.path.dirname(harness.WASM)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def remote_config(upstream, collector, port, sha256):
    text = harness.render_config(harness.WASM, upstream.port, collector.port, "/dev/null",
                                 {"collector": {"flush_interval_ms": 100}})
    local = 'code: {local: {filename: "%s"}}' % harness.WASM
    assert local in text
    remote = ('code: {remote: {http_uri: {uri: "http://127.0.0.1:%d/%s", cluster: wasm_server, timeout: 10s}, '
              'sha256: "%s"}}' % (port, os.path.basename(harness.WASM), sha256))
    return text.replace(local, remote) + """  - name: wasm_server
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: wasm_server
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
""" % port


@pytest.mark.parametrize("good_hash", [True, False], ids=["sha256-matches", "sha256-wrong"])
def test_filter_fetched_by_url_with_sha256(envoy_bin, upstream, collector, wasm_server, cli, good_hash):
    with open(harness.WASM, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    sha256 = digest if good_hash else "0" * 64
    envoy = harness.Envoy(envoy_bin, upstream.port, collector.port,
                          config_text=remote_config(upstream, collector, wasm_server, sha256))
    try:
        if not good_hash:
            harness.wait_until(lambda: "failed to load" in envoy.log_text(), 15, what="the plugin load failure")
        resp, _ = send(envoy, JSON)
        assert resp.status == 200
        if good_hash:
            assert resp.header("x-llm-cost") == cli_record(cli, JSON)["cost_usd"]
        else:
            assert resp.llm_headers() == {}  # unmetered, not refused
            assert "Plugin llm_cost failed to load" in envoy.log_text()
    finally:
        envoy.stop()
