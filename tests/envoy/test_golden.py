"""Every recorded response through the real Envoy: the client sees the upstream's bytes (plus only
the documented additions) and the cost the filter reports equals what `llm-cost price` computes
for the same recording."""

import json

import pytest

from support.calls import (
    cli_record,
    expected_headers,
    fixture_names,
    recorded,
    send,
    split_comment,
    stable,
)

# Errors the core decides from the response headers alone, answering "pass through".
PASSED_THROUGH = {
    "unmetered_endpoint",
    "unsupported_endpoint",
    "upstream_status",
    "compressed_response",
    "response_too_large",
    "unsupported_content_type",
}


@pytest.mark.parametrize("name", fixture_names("json"))
def test_json_response_headers_equal_the_cli_record(envoy, collector, cli, name):
    resp, rid = send(envoy, name)
    assert resp.status == 200 and resp.complete
    assert resp.body == recorded(name).response, "JSON body must reach the client unchanged"
    golden = cli_record(cli, name)
    if golden.get("error") in PASSED_THROUGH:
        # Decided at the response headers (other API dialect, upstream error, ...): nothing is
        # held, so no header can be added; the record says why.
        assert resp.llm_headers() == {}
    else:
        assert resp.llm_headers() == expected_headers(golden)
    [record] = collector.records_for(rid)
    assert stable(record) == stable(golden)


@pytest.mark.parametrize("name", fixture_names("sse"))
def test_stream_bytes_pass_unchanged_and_the_cost_rides_at_the_end(envoy, collector, cli, name):
    rec = recorded(name)
    resp, rid = send(envoy, name)
    assert resp.status == 200 and resp.complete
    golden = cli_record(cli, name)
    [record] = collector.records_for(rid)
    assert stable(record) == stable(golden)
    if resp.llm_trailers() and rec.provider == "gemini":
        # Metered Gemini stream: `stream_cost_comment` is off for Gemini by default (Google's
        # google-genai raises on any non-`data:` line): the upstream bytes exactly, then trailers.
        assert resp.body == rec.response
        assert resp.llm_trailers() == expected_headers(golden)
    elif resp.llm_trailers():
        # Metered stream: the upstream bytes, then one `: llm-cost {...}` comment, then trailers.
        body, comment = split_comment(resp.body)
        assert body == rec.response
        assert comment is not None
        assert comment["cost_usd"] == golden["cost_usd"]
        assert comment["cost_micros"] == golden["cost_micros"]
        assert comment["cost_status"] == golden["cost_status"]
        assert resp.llm_trailers() == expected_headers(golden)
    else:
        # Not a stream the core meters (another API dialect): bytes strictly unchanged.
        assert resp.body == rec.response
        assert golden["cost_status"] == "error", json.dumps(golden)
