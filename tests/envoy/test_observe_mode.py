"""`"hold_headers": false` in an Envoy without `allow_on_headers_stop_iteration` — what Istio's
`WasmPlugin` and Envoy Gateway's `EnvoyExtensionPolicy` generate (docs/DEPLOY.md). The filter then
never holds headers: it copies request and JSON response bodies as they pass (bounded), meters them
for the record, filter state and metrics, and adds no headers to JSON responses (they already went).
Streams are metered as usual."""

import json
from decimal import Decimal

import pytest

from support import harness
from support.calls import cli_record, recorded, send, split_comment

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"
FLAG = "allow_on_headers_stop_iteration: true"


@pytest.fixture(scope="module")
def observing_envoy(envoy_bin, upstream, collector):
    text = harness.render_config(harness.WASM, upstream.port, collector.port, "/dev/null",
                                 {"hold_headers": False, "collector": {"flush_interval_ms": 100}})
    assert FLAG in text, "envoy/demo.yaml no longer sets the flag this test removes"
    e = harness.Envoy(envoy_bin, 0, 0, config_text=text.replace(FLAG, "allow_on_headers_stop_iteration: false"))
    yield e
    e.stop()


def upstream_body(upstream, rid):
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    return seen["body"]


def test_json_call_is_metered_in_the_record_and_the_request_passes_untouched(observing_envoy, upstream, collector,
                                                                             cli):
    rec = recorded(JSON)
    resp, rid = send(observing_envoy, JSON, timeout=10)
    assert resp.status == 200 and resp.body == rec.response
    assert resp.llm_headers() == {}  # the headers left before the body was read
    assert upstream_body(upstream, rid) == rec.body_bytes().decode()  # nothing injected
    [record] = collector.records_for(rid)
    assert record["cost_usd"] == cli_record(cli, JSON)["cost_usd"]
    assert record["model_requested"] == rec.request_body["model"]
    assert record["error"] is None and record["cost_status"] == "exact"


def test_a_large_request_body_arriving_in_many_chunks_is_read_whole(observing_envoy, upstream, collector):
    """300 KB reaches the filter in several body callbacks; a wrong copy (missing or repeated
    chunks) would not parse and the record would say `request_not_json`."""
    rec = recorded(JSON)
    body = dict(rec.request_body, metadata={"padding": "x" * 300_000})
    resp, rid = send(observing_envoy, JSON, body=body, timeout=10)
    assert resp.status == 200 and resp.body == rec.response
    assert upstream_body(upstream, rid) == json.dumps(body)
    [record] = collector.records_for(rid)
    assert record["model_requested"] == rec.request_body["model"], record
    assert record["error"] is None and record["cost_status"] == "exact", record


def test_stream_is_metered_from_the_usage_the_upstream_sends(observing_envoy, upstream, collector, cli):
    rec = recorded(STREAM)
    resp, rid = send(observing_envoy, STREAM, timeout=10)
    body, comment = split_comment(resp.body)
    assert resp.status == 200 and body == rec.response  # no usage chunk hidden: none was injected
    assert Decimal(comment["cost_usd"]) == Decimal(cli_record(cli, STREAM)["cost_usd"])
    assert upstream_body(upstream, rid) == rec.body_bytes().decode()  # nothing injected
    assert resp.llm_trailers()["x-llm-cost"] == comment["cost_usd"]
    [record] = collector.records_for(rid)
    assert record["stream"] is True and record["cost_status"] == "exact"
