"""The filter built with `--features estimate` (tiktoken o200k_base inside the .wasm): a stream that
ends before its usage still yields a priced record, marked `estimated`."""

import os

from support import harness
from support.calls import send


def record_of_a_stream_reset_mid_way(envoy_bin, upstream, collector, name):
    """Sends recording `name` through the estimate build; the upstream resets after half the
    events, so the usage never comes. Returns the collected record."""
    assert os.path.exists(harness.WASM_ESTIMATE), "scripts/test-envoy builds it"
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, wasm=harness.WASM_ESTIMATE,
                      plugin_config={"collector": {"flush_interval_ms": 100}})
    try:
        resp, rid = send(e, name, fault="reset-mid-stream")
        assert resp.status == 200 and len(resp.body) > 0
        [record] = collector.records_for(rid, timeout=10)
    finally:
        e.stop()
    return record


def test_estimate_build_loads_and_prices_a_stream_cut_before_its_usage(envoy_bin, upstream, collector):
    record = record_of_a_stream_reset_mid_way(envoy_bin, upstream, collector,
                                              "openrouter-stream-with-reasoning")
    assert record["cost_status"] == "estimated", record
    assert record["error"] in ("aborted", "truncated_stream")
    assert record["prompt_tokens"] == 10  # "Who are you" + per-message overhead
    assert 0 < record["completion_tokens"] < 104  # half the stream's text, never more than the whole
    assert record["cost_usd"] is not None


def test_estimate_build_frames_a_gpt_oss_stream_as_harmony(envoy_bin, upstream, collector):
    # gpt-oss reads OpenAI's harmony format: its fixed system message is part of the prompt
    # (74 estimated, 78 reported by the full recording; o200k text alone would be 14), and the
    # reasoning text it streams before the cut is reported as reasoning.
    record = record_of_a_stream_reset_mid_way(envoy_bin, upstream, collector,
                                              "openrouter-responses-raw-cot-stream-openrouter")
    assert record["cost_status"] == "estimated", record
    assert record["endpoint"] == "responses"
    assert record["prompt_tokens"] == 74
    assert 0 < record["reasoning_tokens"] <= record["completion_tokens"] < 37
    assert record["cost_usd"] is not None
