"""envoy/envoy-otel.yaml as shipped (addresses pointed at local stand-ins, as in
test_openrouter_config.py): Envoy's own OpenTelemetry access logger sends one OTLP log record per
call to a real OTLP/gRPC LogsService receiver (grpcio + the opentelemetry-proto service classes),
and the record's attributes carry what the client saw."""

import json
import tempfile
import time

import pytest

from support import harness
from support.harness import substitute
from support.calls import key_id, cli_record, recorded, send, split_comment
from support.otlp_receiver import OtlpLogsReceiver

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"


@pytest.fixture(scope="module")
def otel_envoy(envoy_bin, collector):
    receiver = upstream = envoy = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cert, key = harness.openrouter_cert(tmp)
            receiver = OtlpLogsReceiver()
            upstream = harness.Upstream(tls=(cert, key))
            text = harness.local_openrouter_config(harness.shipped_config("envoy-otel.yaml"), cert, upstream.port,
                                                   collector.port)
            text = substitute(text, "port_value: 4317", "port_value: %d" % receiver.port)
            text = substitute(text, "buffer_flush_interval: 1s", "buffer_flush_interval: 0.1s")
            envoy = harness.Envoy(envoy_bin, 0, 0, config_text=text)
            yield envoy, receiver
        finally:
            for proc in (envoy, upstream, receiver):
                if proc is not None:
                    proc.stop()


def records_for(receiver, request_id, timeout=10):
    """The OTLP log records of one call: waits for the first, then a little longer for extras."""
    pick = lambda: [r for r in receiver.log_records() if r["attributes"].get("http.request.id") == request_id]
    harness.wait_until(pick, timeout, what="an OTLP log record for %s" % request_id)
    time.sleep(0.4)  # four flush intervals: a duplicate would have arrived
    return pick()


def send_as(envoy, name, api_key, extra=None, **kw):
    headers = {"host": "127.0.0.1:10000", "authorization": "Bearer " + api_key, **(extra or {})}
    return send(envoy, name, extra_headers=headers, **kw)


def test_json_call_gives_one_log_record_with_what_the_client_saw(otel_envoy, collector, cli):
    envoy, receiver = otel_envoy
    api_key = "sk-otel-json-1"
    resp, rid = send_as(envoy, JSON, api_key)
    assert resp.status == 200 and resp.body == recorded(JSON).response
    golden = cli_record(cli, JSON)
    assert resp.header("x-llm-cost") == golden["cost_usd"]

    [log] = records_for(receiver, rid)
    attrs = log["attributes"]
    assert attrs["llm.cost_usd"] == resp.header("x-llm-cost")
    assert attrs["llm.cost_micros"] == resp.header("x-llm-cost-micros") == str(golden["cost_micros"])
    assert attrs["llm.cost_status"] == resp.header("x-llm-cost-status") == "exact"
    assert attrs["llm.model"] == resp.header("x-llm-model") == golden["model"]
    assert attrs["llm.prompt_tokens"] == resp.header("x-llm-tokens-in") == str(golden["prompt_tokens"])
    assert attrs["llm.completion_tokens"] == resp.header("x-llm-tokens-out") == str(golden["completion_tokens"])
    assert attrs["llm.key_id"] == key_id(api_key)
    assert attrs["http.response.status_code"] == "200"
    assert attrs["url.path"] == recorded(JSON).path
    assert api_key not in json.dumps(log)  # the key itself never leaves Envoy

    # The body is the whole cost record, the same one the NDJSON collector got.
    body = json.loads(log["body"])
    [ndjson] = collector.records_for(rid)
    assert body == ndjson
    assert body["cost_usd"] == attrs["llm.cost_usd"] and body["key_id"] == key_id(api_key)
    # The logger's name and Envoy's built-in labels travel as resource attributes.
    assert log["resource"].get("log_name") == "llm_cost"


def test_attribution_reaches_the_log_record_attributes(otel_envoy, collector):
    envoy, receiver = otel_envoy
    extra = {"x-team": "search", "x-llm-tags": "feature=summarize"}
    resp, rid = send_as(envoy, JSON, "sk-otel-attr-1", extra=extra)
    assert resp.status == 200
    [log] = records_for(receiver, rid)
    attrs = log["attributes"]
    assert (attrs["llm.team"], attrs["llm.feature"]) == ("search", "summarize")
    assert json.loads(attrs["llm.attributes"]) == {"team": "search", "feature": "summarize"}
    [ndjson] = collector.records_for(rid)
    assert ndjson["attributes"] == json.loads(log["body"])["attributes"] == json.loads(attrs["llm.attributes"])
    # A call without attribution: `{}`, and Envoy's "no value" for the dimensions.
    resp, rid = send_as(envoy, JSON, "sk-otel-attr-2")
    [log] = records_for(receiver, rid)
    assert log["attributes"]["llm.attributes"] == "{}" and log["attributes"]["llm.team"] == "-"
    # The counters carry the team label too (stats_tags rule of the shipped config).
    labelled = lambda: (lambda t: 'team="search"' in t and 'team="none"' in t)(envoy.prometheus())
    harness.wait_until(labelled, 5, what="llmcost counters with a team label")


def test_stream_gives_one_log_record_matching_the_stream_comment(otel_envoy, cli):
    envoy, receiver = otel_envoy
    api_key = "sk-otel-stream-1"
    resp, rid = send_as(envoy, STREAM, api_key)
    body, comment = split_comment(resp.body)
    assert body == recorded(STREAM).response and comment is not None
    assert comment["cost_usd"] == cli_record(cli, STREAM)["cost_usd"]

    [log] = records_for(receiver, rid)
    attrs = log["attributes"]
    assert attrs["llm.cost_usd"] == comment["cost_usd"]
    assert attrs["llm.cost_micros"] == str(comment["cost_micros"])
    assert attrs["llm.cost_status"] == comment["cost_status"] == "exact"
    assert attrs["llm.model"] == comment["model"]
    assert attrs["llm.prompt_tokens"] == str(comment["prompt_tokens"])
    assert attrs["llm.completion_tokens"] == str(comment["completion_tokens"])
    assert attrs["llm.key_id"] == key_id(api_key)
    assert attrs["http.response.status_code"] == "200"
    # Streams carry the values as trailers; the attributes agree with them too.
    assert resp.trailers["x-llm-cost"] == attrs["llm.cost_usd"]
    assert json.loads(log["body"])["stream"] is True


def test_aborted_stream_gives_one_log_record_without_a_cost(otel_envoy):
    envoy, receiver = otel_envoy
    api_key = "sk-otel-abort-1"
    resp, rid = send_as(envoy, STREAM, api_key, extra={"x-replay-event-delay-ms": "20"},
                        abort_after_bytes=2000)
    assert resp.status == 200 and len(resp.body) >= 2000
    [log] = records_for(receiver, rid)
    attrs = log["attributes"]
    record = json.loads(log["body"])
    assert (record["cost_status"], record["error"]) == ("error", "aborted")
    assert attrs["llm.cost_micros"] == "0"  # no cost known: 0, never a made-up number
    assert attrs["llm.cost_usd"] == "-"  # Envoy's "no value"
    assert attrs["llm.key_id"] == key_id(api_key)


def test_collector_disabled_sends_no_batches_but_still_meters(envoy_bin, upstream, collector):
    """`"collector": {"enabled": false}` for OTLP-only setups: headers, filter state and metrics as
    usual, and not one POST to the collector cluster (which still exists here and would get it)."""
    config = {"collector": {"enabled": False, "flush_interval_ms": 50}}
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, plugin_config=config)
    try:
        resp, rid = send(e, JSON)
        assert resp.status == 200 and resp.header("x-llm-cost")
        harness.wait_until(lambda: "llmcost_requests_total" in e.prometheus(), 5, what="metrics flushed")
        time.sleep(0.5)  # ten flush intervals
        assert [r for r in collector.records() if r.get("request_id") == rid] == []
    finally:
        e.stop()
