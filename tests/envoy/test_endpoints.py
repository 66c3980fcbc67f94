"""Endpoints beyond chat through the real Envoy: embeddings (OpenAI, OpenRouter, Gemini) and legacy
completions get `X-LLM-Cost` from their recorded usage, their requests go upstream untouched where
no rewrite applies, and an answer without usage says so instead of looking free.

Expected costs come from fixtures/golden.json (the independent reference fixtures/make_golden.py:
tokens × the bundled table's price)."""

import base64
import json
import os
import tempfile
import uuid

import pytest

from support import harness, rawhttp
from support.calls import recorded, send

GOLDEN = json.load(open(os.path.join(harness.ROOT, "fixtures", "golden.json")))

EMBEDDINGS = [
    "openai-embeddings-documents",
    "openai-embeddings-ada-002-food",
    "gemini-embeddings-task-prefix-default-query",
]


def seen_by_upstream(upstream, rid):
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    return seen


@pytest.mark.parametrize("name", EMBEDDINGS)
def test_an_embeddings_call_gets_its_cost_headers(envoy, upstream, collector, name):
    golden = GOLDEN[name]
    rec = recorded(name)
    resp, rid = send(envoy, name)
    assert resp.status == 200 and resp.complete
    assert resp.body == rec.response, "the vectors reach the client unchanged"
    assert resp.header("x-llm-cost") == golden["cost_usd"]
    assert resp.header("x-llm-cost-status") == "exact"
    assert resp.header("x-llm-tokens-in") == str(golden["prompt_tokens"])
    assert resp.header("x-llm-tokens-out") == "0"
    [record] = collector.records_for(rid)
    assert record["endpoint"] == "embeddings"
    assert (record["cost_usd"], record["priced_as"]) == (golden["cost_usd"], golden["priced_as"])
    # Nothing to ask for: embeddings always report usage, so the request goes as sent.
    assert seen_by_upstream(upstream, rid)["body"].encode() == rec.body_bytes()


def test_openrouter_embeddings_are_not_rewritten(envoy, upstream, collector):
    # The same recorded answer behind OpenRouter's path: chat calls there get `usage.include`
    # spliced in, embeddings must not (OpenRouter's embeddings API has no such parameter).
    name = "openai-embeddings-documents"
    body = {"model": "openai/text-embedding-3-small", "input": ["hello", "world"]}
    resp, rid = send(envoy, name, body=body, extra_headers={"host": "openrouter.ai"}, path="/api/v1/embeddings")
    assert resp.status == 200
    assert seen_by_upstream(upstream, rid)["body"].encode() == json.dumps(body).encode()
    [record] = collector.records_for(rid)
    assert (record["provider"], record["endpoint"]) == ("openrouter", "embeddings")
    # (The recorded answer is OpenAI's, naming `text-embedding-3-small` without OpenRouter's
    # `openai/` prefix, so its pricing is not what this test is about; its usage still counts.)
    assert record["prompt_tokens"] == 2 and resp.header("x-llm-tokens-in") == "2"


def test_gemini_embeddings_without_usage_say_so(envoy, collector):
    name = "gemini-embeddings-query-without-usage"
    resp, rid = send(envoy, name)
    assert resp.status == 200 and resp.body == recorded(name).response
    assert resp.header("x-llm-cost") is None, "no usage: no made-up cost"
    assert resp.header("x-llm-cost-status") == "no_usage"
    assert resp.header("x-llm-cost-error") == "usage_not_reported"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["model"]) == ("embeddings", "gemini-embedding-2-preview")


def test_legacy_completions_are_priced_like_chat(envoy, collector):
    name = "openai-legacy-completions-once-upon-a-time"
    golden = GOLDEN[name]
    resp, rid = send(envoy, name)
    assert resp.status == 200 and resp.body == recorded(name).response
    assert resp.header("x-llm-cost") == golden["cost_usd"] == "0.000016"
    [record] = collector.records_for(rid)
    assert record["endpoint"] == "completions"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (4, 5)


# Image generation: no public recording with usage was found yet (fixtures/SOURCES.md), so these
# answers are documented-shape fakes of OpenAI's `ImagesResponse` (gpt-image-1: `usage.input_tokens`,
# `input_tokens_details.{text_tokens,image_tokens}`, `output_tokens`), served by the real replay
# upstream from a directory of their own. Labelled as fakes, never presented as recorded.
def images_answer(png_bytes):
    return {
        "created": 1713833628,
        "data": [{"b64_json": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * png_bytes).decode()}],
        "usage": {"total_tokens": 330, "input_tokens": 58, "output_tokens": 272,
                  "input_tokens_details": {"text_tokens": 18, "image_tokens": 40}},
    }


@pytest.fixture(scope="module")
def images_envoy(envoy_bin, collector):
    with tempfile.TemporaryDirectory() as fakes:
        for name, size in [("fake-images-small", 1000), ("fake-images-over-1mib", 900_000)]:
            with open(os.path.join(fakes, name + ".json"), "w") as f:
                json.dump(images_answer(size), f)
        up = harness.Upstream(fixtures=fakes)
        envoy = harness.Envoy(envoy_bin, up.port, collector.port)
        try:
            yield envoy
        finally:
            envoy.stop()
            up.stop()


def send_image_call(envoy, fake, path="/v1/images/generations"):
    rid = str(uuid.uuid4())
    body = json.dumps({"model": "gpt-image-1", "prompt": "a cat", "quality": "low"}).encode()
    headers = {"host": "api.openai.com", "content-type": "application/json",
               "authorization": "Bearer sk-test-not-a-real-key", "x-replay-fixture": fake,
               "x-request-id": rid}
    return rawhttp.request(envoy.port, "POST", path, headers, body), rid


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
def test_an_image_call_gets_its_cost_from_its_token_usage(images_envoy, collector, path):
    resp, rid = send_image_call(images_envoy, "fake-images-small", path)
    assert resp.status == 200 and resp.complete
    assert json.loads(resp.body)["data"][0]["b64_json"].startswith("iVBORw0KGgo")
    # The bundled table's openai/gpt-image-1 (OpenRouter): prompt 0.00001 (no `image` price of its
    # own: input image tokens at `prompt`), image_output 0.00004. 58 × 0.00001 + 272 × 0.00004.
    assert resp.header("x-llm-cost") == "0.01146"
    assert resp.header("x-llm-cost-status") == "exact"
    [record] = collector.records_for(rid)
    assert record["endpoint"] == "images"
    assert (record["image_prompt_tokens"], record["image_completion_tokens"]) == (40, 272)
    assert record["priced_as"] == "openai/gpt-image-1"


def test_an_image_answer_over_the_body_limit_passes_unchanged_and_says_so(images_envoy, collector):
    resp, rid = send_image_call(images_envoy, "fake-images-over-1mib")
    assert resp.status == 200 and resp.complete
    assert len(resp.body) > 1 << 20
    assert json.loads(resp.body)["usage"]["output_tokens"] == 272, "the image reaches the client whole"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["error"]) == ("images", "response_too_large")
