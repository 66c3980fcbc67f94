"""Endpoints beyond chat through the real Envoy: embeddings (OpenAI, OpenRouter, Gemini) and legacy
completions get `X-LLM-Cost` from their recorded usage, their requests go upstream untouched where
no rewrite applies, and an answer without usage says so instead of looking free.

Expected costs come from fixtures/golden.json (the independent reference fixtures/make_golden.py:
tokens × the bundled table's price)."""

import json
import os

import pytest

from support import harness
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
