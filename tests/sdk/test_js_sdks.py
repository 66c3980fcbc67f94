"""The official JavaScript SDKs (`openai`, `@anthropic-ai/sdk`, `@google/genai`, Vercel `ai` with
`@ai-sdk/openai-compatible` and `@openrouter/ai-sdk-provider`), run by tests/sdk/js/clients.mjs in
the Worker's Node 22, against the replaying upstream, through Envoy and through the Worker: one
node process per target for all calls; see sdkcheck.py for what must hold."""

import json
import os
import subprocess
import uuid

import pytest

from support import harness
import sdkcheck
from test_python_sdks import model_of

CLIENTS_JS = os.path.join(harness.ROOT, "tests", "sdk", "js", "clients.mjs")

CASES = [
    # (id, client in clients.mjs, provider the record must name, fixture, extra call fields)
    ("openai-chat-json", "openai-chat-json", "openai", "openai-model-sees-multiple-images-openai-chat-1", {}),
    ("openai-chat-stream", "openai-chat-stream", "openai", "openai-run-stream-sync-streams-real-model-0", {}),
    ("openai-chat-stream-tools", "openai-chat-stream", "openai", "openai-multiple-agents-1", {}),
    ("openai-responses-json", "openai-responses-json", "openai",
     "openai-responses-reasoning-model-with-temperature", {}),
    ("openai-responses-stream", "openai-responses-stream", "openai", "openai-responses-stream-0", {}),
    ("anthropic-json-thinking", "anthropic-json", "anthropic",
     "anthropic-inline-system-prompt-cache-prefix-is-reused-1", {}),
    ("anthropic-json-tools", "anthropic-json", "anthropic",
     "anthropic-code-execution-files-cache-prefix-stable-messages--2", {}),
    ("anthropic-stream-thinking-tools", "anthropic-stream", "anthropic", "anthropic-advisor-tool-stream", {}),
    ("ai-openai-compatible-json", "ai-openai-compatible-json", "openai",
     "openai-model-sees-multiple-images-openai-chat-1", {}),
    ("ai-openai-compatible-stream-tools", "ai-openai-compatible-stream", "openai",
     "openai-run-stream-sync-streams-real-model-0", {"tools": ["get_capital"]}),
    ("ai-openai-compatible-stream-multi-tools", "ai-openai-compatible-stream", "openai",
     "openai-multiple-agents-1", {"tools": ["get_country", "get_product_name"]}),
    ("ai-openrouter-json", "ai-openrouter-json", "openrouter", "openrouter-cache-instructions-e2e", {}),
    ("ai-openrouter-stream-reasoning", "ai-openrouter-stream", "openrouter", "openrouter-stream-with-reasoning", {}),
    ("ai-openrouter-stream", "ai-openrouter-stream", "openrouter", "openrouter-advisor-tool-stream", {}),
]
for version in ("v1beta", "v1"):
    CASES += [
        ("genai-%s-json" % version, "genai-json", "gemini", "gemini-google-optional-fields-native-output-1",
         {"api_version": version}),
        ("genai-%s-stream" % version, "genai-stream", "gemini", "gemini-google-model-web-fetch-tool-stream",
         {"api_version": version}),
        ("genai-%s-stream-tools" % version, "genai-stream", "gemini",
         "gemini-native-output-with-function-tools-stream-0", {"api_version": version}),
    ]

NODE = sdkcheck.NODE


def run_node(calls):
    proc = subprocess.run([NODE, CLIENTS_JS], input=json.dumps(calls).encode(), capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("clients.mjs exited %d: %s" % (proc.returncode, proc.stderr.decode(errors="replace")[-3000:]))
    return {o["id"]: o for o in json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def js_outcomes(targets):
    """{case id: {target: outcome}} for every case, one node process per target."""
    by_case = {c[0]: {} for c in CASES}
    for target, base in targets.items():
        calls = []
        for case_id, client, _, fixture, extra in CASES:
            rid = "sdk-js-%s-%s" % (target, uuid.uuid4())
            calls.append(dict(extra, id=case_id, client=client, fixture=fixture, model=model_of(fixture), base=base,
                              headers=sdkcheck.headers(fixture, rid)))
        for case_id, outcome in run_node(calls).items():
            by_case[case_id][target] = outcome
    return by_case


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_js_sdk_sees_the_same_through_the_gateways(case, js_outcomes, upstream, collector):
    case_id, _, provider, _, _ = case
    sdkcheck.check(js_outcomes[case_id], upstream, collector, provider, label="js " + case_id)
