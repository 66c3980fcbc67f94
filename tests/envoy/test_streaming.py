"""Streams through the filter: never held, the injected usage chunk hidden, the cost delivered in a
comment and trailers that real clients (curl over HTTP/2, the `openai` SDK) handle."""

import json
import shutil
import subprocess

import openai
import pytest

from support import harness
from support.calls import cli_record, expected_headers, recorded, send, split_comment, sse_events, usage_only

STREAM = "openrouter-cache-streaming-e2e"  # 7 events, client asked for usage
LONG_STREAM = "openrouter-stream-with-reasoning"  # 110 events


def test_request_rewrite_asks_for_usage_with_a_correct_content_length(envoy, upstream):
    rec = recorded(STREAM)
    body = dict(rec.request_body)
    body.pop("stream_options")
    resp, rid = send(envoy, STREAM, body=body)
    assert resp.status == 200
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    sent = json.loads(seen["body"])
    assert sent["stream_options"] == {"include_usage": True}
    assert int(seen["headers"]["content-length"]) == len(seen["body"].encode())
    assert "authorization" not in seen["headers"]  # the replay upstream drops it from its log only
    # A stale content-length would leave bytes on the pooled upstream connection: the next
    # request on it would fail.
    again, _ = send(envoy, STREAM)
    assert again.status == 200 and again.complete


def test_injected_usage_chunk_is_hidden_from_a_client_that_did_not_ask(envoy, collector, cli):
    rec = recorded(STREAM)
    body = dict(rec.request_body)
    body.pop("stream_options")
    resp, rid = send(envoy, STREAM, body=body)
    client_body, comment = split_comment(resp.body)
    expected = b"".join(e for e in sse_events(rec.response) if not usage_only(e))
    assert expected != rec.response, "the fixture has a usage-only chunk"
    assert client_body == expected
    [record] = collector.records_for(rid)
    golden = cli_record(cli, STREAM)
    assert comment["cost_usd"] == record["cost_usd"] == golden["cost_usd"]
    assert record["prompt_tokens"] == golden["prompt_tokens"]


def test_a_client_that_asked_for_usage_keeps_the_usage_chunk(envoy):
    rec = recorded(STREAM)
    resp, _ = send(envoy, STREAM)
    body, comment = split_comment(resp.body)
    assert body == rec.response
    assert comment["cost_status"] == "exact"


def ttfb(port, name, delay_ms):
    resp, _ = send(port, name, extra_headers={"x-replay-event-delay-ms": str(delay_ms)})
    assert resp.status == 200 and resp.complete
    return resp


def test_first_event_reaches_the_client_before_the_upstream_finishes(envoy_bin, envoy, upstream, collector):
    """Each of the 7 events is sent 150 ms apart: a filter that buffered the stream would deliver
    the first byte after ~900 ms."""
    baseline = harness.Envoy(envoy_bin, upstream.port, collector.port, with_filter=False)
    try:
        plain = min((ttfb(baseline.port, STREAM, 150) for _ in range(2)), key=lambda r: r.first_byte_at)
    finally:
        baseline.stop()
    metered = min((ttfb(envoy.port, STREAM, 150) for _ in range(2)), key=lambda r: r.first_byte_at)
    total = metered.done_at
    print("TTFB without filter %.1f ms, with filter %.1f ms; stream %.0f ms"
          % (plain.first_byte_at * 1e3, metered.first_byte_at * 1e3, total * 1e3))
    assert total > 0.8
    assert metered.first_byte_at < 0.25 * total
    assert metered.first_byte_at < max(3 * plain.first_byte_at, plain.first_byte_at + 0.05)
    # Events arrive spread over the stream, not in one burst at the end.
    arrivals = [t for t, chunk in metered.chunks if chunk]
    assert len(arrivals) >= 5 and arrivals[-1] - arrivals[0] > 0.6


def test_trailers_reach_an_http2_client(envoy, cli):
    curl = shutil.which("curl")
    if not curl:
        pytest.fail("curl is required")
    rec = recorded(LONG_STREAM)
    out = subprocess.run(
        [curl, "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
         "-H", "host: openrouter.ai", "-H", "content-type: application/json",
         "-H", "x-replay-fixture: " + LONG_STREAM, "--data-binary", rec.body_bytes().decode(),
         "http://127.0.0.1:%d%s" % (envoy.port, rec.path)],
        capture_output=True, timeout=60, check=True,
    ).stdout.decode()
    assert out.startswith("HTTP/2 200")
    # curl prints trailers after the headers block.
    fields = {}
    for line in out.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.lower().startswith("x-llm-"):
            fields[name.lower()] = value.strip()
    assert fields == expected_headers(cli_record(cli, LONG_STREAM))


def openai_client(envoy, fixture):
    """The real OpenAI SDK pointed at Envoy; the replay upstream answers with `fixture`."""
    return openai.OpenAI(
        base_url="http://127.0.0.1:%d/api/v1" % envoy.port,
        api_key="sk-test-not-a-real-key",
        default_headers={"x-replay-fixture": fixture},
        max_retries=0,
        timeout=30,
    )


def test_the_openai_sdk_parses_the_metered_stream(envoy, cli):
    rec = recorded(LONG_STREAM)
    client = openai_client(envoy, LONG_STREAM)
    stream = client.chat.completions.create(
        model=rec.request_body["model"],
        messages=rec.request_body["messages"],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "no chunks parsed"
    usage = [c.usage for c in chunks if c.usage]
    golden = cli_record(cli, LONG_STREAM)
    assert usage and usage[-1].prompt_tokens == golden["prompt_tokens"]
    assert usage[-1].completion_tokens == golden["completion_tokens"]


def test_the_openai_sdk_sees_the_cost_headers_on_a_json_response(envoy, cli):
    name = "openrouter-cache-all-settings-real-api-0"
    rec = recorded(name)
    client = openai_client(envoy, name)
    raw = client.chat.completions.with_raw_response.create(
        model=rec.request_body["model"], messages=rec.request_body["messages"]
    )
    completion = raw.parse()
    golden = cli_record(cli, name)
    assert completion.usage.prompt_tokens == golden["prompt_tokens"]
    assert raw.headers["x-llm-cost-status"] == "exact"
    assert raw.headers["x-llm-cost-micros"] == str(golden["cost_micros"])
