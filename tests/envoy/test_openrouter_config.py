"""envoy/envoy-openrouter.yaml as shipped, with only its addresses pointed at local stand-ins: a
TLS replay upstream whose self-signed certificate is for `openrouter.ai` (so SNI, certificate
verification and the host rewrite are exercised) and the test collector."""

import tempfile

import pytest

from support import harness
from support.calls import cli_record, expected_headers, recorded, send, split_comment

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"


@pytest.fixture(scope="module")
def openrouter_envoy(envoy_bin, collector):
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = harness.openrouter_cert(tmp)
        upstream = harness.Upstream(tls=(cert, key))
        text = harness.local_openrouter_config(harness.shipped_config("envoy-openrouter.yaml"), cert, upstream.port,
                                               collector.port)
        envoy = harness.Envoy(envoy_bin, 0, 0, config_text=text)
        try:
            yield envoy, upstream
        finally:
            envoy.stop()
            upstream.stop()


def test_json_call_through_tls_to_openrouter_gets_its_cost(openrouter_envoy, collector, cli):
    envoy, upstream = openrouter_envoy
    resp, rid = send(envoy, JSON, extra_headers={"host": "127.0.0.1:10000", "accept-encoding": "gzip"})
    assert resp.status == 200 and resp.body == recorded(JSON).response
    assert resp.llm_headers() == expected_headers(cli_record(cli, JSON))
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert seen["headers"]["host"] == "openrouter.ai"  # host_rewrite_literal
    assert seen["has_authorization"]  # the client's API key passes through
    assert "accept-encoding" not in seen["headers"]  # removed so responses stay meterable
    [record] = collector.records_for(rid, timeout=5)
    assert record["provider"] == "openrouter" and record["cost_status"] == "exact"


def test_stream_through_tls_to_openrouter_gets_comment_and_trailers(openrouter_envoy, cli):
    envoy, _ = openrouter_envoy
    resp, _ = send(envoy, STREAM, extra_headers={"host": "127.0.0.1:10000"})
    body, comment = split_comment(resp.body)
    assert body == recorded(STREAM).response
    golden = cli_record(cli, STREAM)
    assert comment["cost_usd"] == golden["cost_usd"]
    assert resp.llm_trailers() == expected_headers(golden)
