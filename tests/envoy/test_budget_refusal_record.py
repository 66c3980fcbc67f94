"""What the record of a call refused for its budget says, in a real Envoy (issue #26): the filter
reads the request body it holds for the rewrite before it checks the budget, so the record names
the model the client asked for, and `llm-cost report` can show the refusal under that model. The
refusal itself is unchanged: a 429 and an upstream that never sees the call, also when the body is
too large to hold or the headers cannot be held at all."""

import pytest

from support import harness
from support.calls import key_id, recorded, send

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"
LIMITED = "sk-refusal-record-1"


@pytest.fixture
def refusing_envoy(envoy_bin, upstream, collector):
    envoys = []

    def start(**extra):
        config = {"collector": {"flush_interval_ms": 100}, "budgets": {"limits_usd": {key_id(LIMITED): "0"}},
                  **extra}
        e = harness.Envoy(envoy_bin, upstream.port, collector.port, plugin_config=config)
        envoys.append(e)
        return e

    yield start
    for e in envoys:
        e.stop()


def refused(envoy, upstream, collector, name):
    resp, rid = send(envoy, name, extra_headers={"authorization": "Bearer " + LIMITED})
    assert resp.status == 429, resp.body[:300]
    assert b"budget_exceeded" in resp.body
    assert [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid] == []
    [record] = collector.records_for(rid)
    assert (record["status_code"], record["error"], record["cost_status"]) == (429, "budget_exceeded", "no_usage")
    return record


def test_a_refused_call_s_record_names_the_requested_model(refusing_envoy, upstream, collector):
    envoy = refusing_envoy()
    for name in (JSON, STREAM):
        record = refused(envoy, upstream, collector, name)
        assert record["model_requested"] == recorded(name).request_body["model"], record
        # `model` falls back to the requested model when nothing answered; nothing priced it.
        assert record["model"] == record["model_requested"] and record["priced_as"] is None
        assert record["stream"] == bool(recorded(name).request_body.get("stream")), record


def test_a_body_too_large_to_hold_is_still_refused(refusing_envoy, upstream, collector):
    # The fixture's body is larger than this: the filter stops holding it, and checks the budget
    # before the held headers go on.
    envoy = refusing_envoy(max_request_body_bytes=64)
    assert len(recorded(JSON).body_bytes()) > 64
    record = refused(envoy, upstream, collector, JSON)
    assert record["model_requested"] is None  # the body was never read


def test_without_held_headers_the_refusal_comes_at_the_headers(refusing_envoy, upstream, collector):
    envoy = refusing_envoy(hold_headers=False)
    record = refused(envoy, upstream, collector, JSON)
    assert record["model_requested"] is None  # the headers are all the filter had
