"""What operators see: one record per call at the collector (batched), the access-log line, the
Prometheus counters by model, and configuration errors that Envoy refuses with the field named."""

import json
from concurrent.futures import ThreadPoolExecutor
import re

import pytest

from support import harness
from support.calls import cli_record, send

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"


def test_collector_receives_exactly_one_record_per_call_in_batches(envoy, collector):
    before = harness.http_json(collector.url("/_posts"))["posts"]
    # Ten concurrent calls finish within a few flush intervals (100 ms in the tests).
    with ThreadPoolExecutor(max_workers=10) as pool:
        rids = [rid for _, rid in pool.map(lambda name: send(envoy, name), [JSON, STREAM] * 5)]
    records = []
    for rid in rids:
        records += collector.records_for(rid)
    assert len(records) == len(rids) == len({r["request_id"] for r in records})
    posts = harness.http_json(collector.url("/_posts"))["posts"] - before
    assert 1 <= posts < len(rids), "records are batched, not one POST per call"
    for r in records:
        assert r["cost_status"] == "exact" and r["key_id"] and "sk-test" not in json.dumps(r)


def test_access_log_carries_the_record_as_filter_state(envoy, collector):
    resp, rid = send(envoy, JSON)
    [record] = collector.records_for(rid)
    line = harness.wait_until(
        lambda: next((l for l in envoy.access_log_lines() if rid in l), None), 5, what="access log line"
    )
    logged = json.loads(line.split(" llm_cost=", 1)[1])
    assert logged == record


def test_prometheus_shows_cost_and_tokens_by_model(envoy, cli):
    send(envoy, JSON)
    send(envoy, JSON, fault="malformed")
    golden = cli_record(cli, JSON)
    # Counters are summed in the VM and handed to Envoy on the flush timer (100 ms here).
    text = harness.wait_until(
        lambda: (lambda t: t if 'llmcost_errors_total{reason="malformed_json"}' in t else None)(envoy.prometheus()),
        5, what="llmcost counters in /stats/prometheus",
    )

    def value(metric, **labels):
        sel = ",".join('%s="%s"' % kv for kv in labels.items())
        m = re.search(r"^%s\{%s\} (\d+)$" % (re.escape(metric), re.escape(sel)), text, re.M)
        return int(m.group(1)) if m else None

    model = golden["priced_as"]
    requests = value("llmcost_requests_total", model=model)
    assert requests and requests >= 1
    assert value("llmcost_cost_micros_total", model=model) >= golden["cost_micros"]
    assert value("llmcost_prompt_tokens_total", model=model) >= golden["prompt_tokens"]
    assert value("llmcost_completion_tokens_total", model=model) >= golden["completion_tokens"]
    assert value("llmcost_records_total", cost_status="exact") >= 1
    assert value("llmcost_errors_total", reason="malformed_json") >= 1
    assert value("llmcost_requests_total", model="other") >= 1  # the malformed call: no model known


@pytest.mark.parametrize(
    "config, field",
    [
        ({"header_prefx": "x-"}, "header_prefx"),
        ({"collector": {"clustr": "c"}}, "clustr"),
        # The filter reads its own `collector` section (plugin/src/collector.rs): same naming.
        ({"collector": {"timeout_ms": -1}}, "collector.timeout_ms"),
        ({"models": {"m": {"prompt": "cheap"}}}, "models.m.prompt"),
        ({"header_prefix": "x llm"}, "header_prefix"),
    ],
)
def test_bad_plugin_configuration_is_refused_naming_the_field(envoy_bin, config, field):
    text = harness.render_config(harness.WASM, 1, 2, "/dev/null", config)
    code, output = harness.validate(envoy_bin, text)
    assert code != 0
    assert field in output, output[-2000:]


def test_good_plugin_configuration_validates(envoy_bin):
    config = {"header_prefix": "x-cost-", "collector": {"cluster": "llm_cost_collector", "flush_interval_ms": 250},
              "models": {"acme/model": {"prompt": "0.000001", "completion": "0.000002"}}}
    code, output = harness.validate(envoy_bin, harness.render_config(harness.WASM, 1, 2, "/dev/null", config))
    assert code == 0, output[-2000:]


def test_a_partial_override_by_table_id_merges_and_prices_the_dated_slug(envoy_bin, upstream, collector, cli):
    # The recording answers as anthropic/claude-4.6-sonnet-20260217 (2572 prompt tokens, 2569 of
    # them written to the cache, 63 completion). The override names the table id and `prompt`
    # only: cache writes and completion keep the table's prices (0.00000375, 0.000015).
    config = {"collector": {"flush_interval_ms": 100},
              "models": {"anthropic/claude-sonnet-4.6": {"prompt": "0.001"}}}
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, plugin_config=config)
    try:
        resp, rid = send(e, JSON)
        assert resp.header("x-llm-cost-status") == "exact"
        assert resp.header("x-llm-cost") == "0.01357875"  # 3 × 0.001 + 2569 × 0.00000375 + 63 × 0.000015
        [record] = collector.records_for(rid)
        assert record["priced_as"] == "anthropic/claude-sonnet-4.6"
        assert "+cfg-" in record["pricing_version"]
    finally:
        e.stop()


def test_header_prefix_and_model_prices_from_the_plugin_configuration(envoy_bin, upstream, collector, cli):
    config = {"header_prefix": "x-cost-", "collector": {"flush_interval_ms": 100},
              "models": {"anthropic/claude-sonnet-4.6": {"prompt": "0.001", "completion": "0.002",
                                                         "input_cache_write": "0.001"}}}
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, plugin_config=config)
    try:
        resp, rid = send(e, JSON)
        assert resp.header("x-llm-cost") is None
        assert resp.header("x-cost-cost-status") == "exact"
        [record] = collector.records_for(rid)
        default_version = cli_record(cli, JSON)["pricing_version"]
        assert record["pricing_version"].startswith(default_version + "+")
        assert resp.header("x-cost-cost") == record["cost_usd"]
    finally:
        e.stop()


def test_shipped_openrouter_config_validates(envoy_bin):
    """envoy/envoy-openrouter.yaml with the built .wasm (relative path: run from the repo root)."""
    code, output = harness.validate_file(envoy_bin, "envoy/envoy-openrouter.yaml", cwd=harness.ROOT)
    assert code == 0, output[-2000:]
