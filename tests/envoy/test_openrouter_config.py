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


def test_the_shipped_config_fetches_openrouters_price_list_over_tls(openrouter_envoy):
    """`pricing.source`: a GET of /api/v1/models through the TLS cluster to openrouter.ai. The
    replay upstream has no price list (it answers an error): the bundled table keeps pricing."""
    envoy, upstream = openrouter_envoy

    def fetch():
        return [r for r in upstream.requests() if r["method"] == "GET" and r["path"] == "/api/v1/models"]

    [seen, *_] = harness.wait_until(fetch, 10, interval=0.2, what="a price-list fetch")
    assert seen["headers"]["host"] == "openrouter.ai"
    assert not seen["has_authorization"]  # the public list needs no key
    harness.wait_until(lambda: envoy.stats().get("wasmcustom.llmcost.pricing.refreshes_total.result=failed", 0) >= 1,
                       10, interval=0.2, what="the failed refresh counted")
