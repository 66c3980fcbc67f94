"""The official Python SDKs (`openai`, `anthropic`, `google-genai`) against the replaying upstream,
through Envoy with the filter and through the Worker: see sdkcheck.py for what must hold."""

import json
import os

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from support import harness
import sdkcheck

KEY = "sk-test-not-a-real-key"
PROMPT = "Say hello."


def model_of(fixture):
    with open(os.path.join(harness.FIXTURES, fixture + ".meta.json")) as f:
        meta = json.load(f)
    return meta.get("model_requested") or (meta.get("request_body") or {}).get("model")


def dump(obj):
    # warnings=False: a block type newer than the SDK (Anthropic's `advisor` server tool) makes
    # pydantic's serializer warn; that is this suite's dump, not the SDK's parse.
    return obj.model_dump(mode="json", exclude_none=True, warnings=False) if obj is not None else None


# -- openai ---------------------------------------------------------------------------------------


def openai_client(base, hdrs):
    return openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=30, default_headers=hdrs)


def openai_chat_json(fixture):
    def call(base, hdrs):
        r = openai_client(base, hdrs).chat.completions.create(
            model=model_of(fixture), messages=[{"role": "user", "content": PROMPT}])
        msg = r.choices[0].message
        return {
            "text": msg.content,
            "tool_calls": [[t.function.name, t.function.arguments] for t in msg.tool_calls or []],
            "usage": dump(r.usage),
            "answer": dump(r),
        }
    return call


def openai_chat_stream(fixture):
    def call(base, hdrs):
        stream = openai_client(base, hdrs).chat.completions.create(
            model=model_of(fixture), messages=[{"role": "user", "content": PROMPT}], stream=True,
            stream_options={"include_usage": True})
        text, tools, usage, chunks = "", {}, None, []
        for chunk in stream:
            chunks.append(dump(chunk))
            usage = dump(chunk.usage) or usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for t in choice.delta.tool_calls or []:
                    name, args = tools.get(t.index, ["", ""])
                    fn = t.function
                    tools[t.index] = [name + ((fn and fn.name) or ""), args + ((fn and fn.arguments) or "")]
        return {"text": text, "tool_calls": [tools[i] for i in sorted(tools)], "usage": usage, "answer": chunks}
    return call


def openai_responses_json(fixture):
    def call(base, hdrs):
        r = openai_client(base, hdrs).responses.create(model=model_of(fixture), input=PROMPT)
        return {
            "text": r.output_text,
            "tool_calls": [[o.name, o.arguments] for o in r.output if o.type == "function_call"],
            "usage": dump(r.usage),
            "answer": dump(r),
        }
    return call


def openai_responses_stream(fixture):
    def call(base, hdrs):
        events = []
        with openai_client(base, hdrs).responses.stream(model=model_of(fixture), input=PROMPT) as stream:
            for event in stream:
                events.append(event.type)
            r = stream.get_final_response()
        return {
            "text": r.output_text,
            "tool_calls": [[o.name, o.arguments] for o in r.output if o.type == "function_call"],
            "usage": dump(r.usage),
            "answer": [events, dump(r)],
        }
    return call


# -- anthropic ------------------------------------------------------------------------------------


def anthropic_client(base, hdrs):
    return anthropic.Anthropic(base_url=base, api_key=KEY, max_retries=0, timeout=30, default_headers=hdrs)


def anthropic_summary(message):
    blocks = [dump(b) for b in message.content]
    return {
        "text": "".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
        "thinking": "".join(b.get("thinking", "") for b in blocks if b.get("type") == "thinking"),
        "tool_calls": [[b.get("name"), b.get("input")] for b in blocks if b.get("type", "").endswith("tool_use")],
        "usage": dump(message.usage),
        "answer": dump(message),
    }


def anthropic_request(fixture):
    return dict(model=model_of(fixture), max_tokens=4096, messages=[{"role": "user", "content": PROMPT}],
                thinking={"type": "enabled", "budget_tokens": 2048})


def anthropic_json(fixture):
    def call(base, hdrs):
        return anthropic_summary(anthropic_client(base, hdrs).messages.create(**anthropic_request(fixture)))
    return call


def anthropic_stream(fixture):
    def call(base, hdrs):
        events = []
        with anthropic_client(base, hdrs).messages.stream(**anthropic_request(fixture)) as stream:
            for event in stream:
                events.append(event.type)
            message = stream.get_final_message()
        out = anthropic_summary(message)
        out["answer"] = [events, out["answer"]]
        return out
    return call


# -- google-genai ---------------------------------------------------------------------------------


def genai_client(base, hdrs, version):
    return genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(
        base_url=base, api_version=version, headers=hdrs, timeout=30_000))


def genai_parts(responses):
    """Text and function calls from the candidates' parts (not `response.text`, which warns on
    non-text parts whatever the transport)."""
    text, calls = "", []
    for r in responses:
        for cand in r.candidates or []:
            for part in (cand.content and cand.content.parts) or []:
                if part.text and not part.thought:
                    text += part.text
                if part.function_call:
                    calls.append([part.function_call.name, dump(part.function_call).get("args")])
    return text, calls


def genai_json(fixture, version):
    def call(base, hdrs):
        client = genai_client(base, hdrs, version)  # kept: the SDK closes its HTTP client when collected
        r = client.models.generate_content(model=model_of(fixture), contents=PROMPT)
        text, calls = genai_parts([r])
        return {"text": text, "tool_calls": calls, "usage": dump(r.usage_metadata),
                "answer": dump(r) | {"sdk_http_response": None}}
    return call


def genai_stream(fixture, version):
    def call(base, hdrs):
        client = genai_client(base, hdrs, version)
        chunks = list(client.models.generate_content_stream(model=model_of(fixture), contents=PROMPT))
        text, calls = genai_parts(chunks)
        usage = next((dump(c.usage_metadata) for c in reversed(chunks) if c.usage_metadata), None)
        return {"text": text, "tool_calls": calls, "usage": usage,
                "answer": [dump(c) | {"sdk_http_response": None} for c in chunks]}
    return call


CASES = [
    # (id, provider the record must name, fixture, call)
    ("openai-chat-json", "openai", "openai-model-sees-multiple-images-openai-chat-1", openai_chat_json),
    ("openai-chat-stream", "openai", "openai-run-stream-sync-streams-real-model-0", openai_chat_stream),
    ("openai-chat-stream-tools", "openai", "openai-multiple-agents-1", openai_chat_stream),
    ("openai-responses-json", "openai", "openai-responses-reasoning-model-with-temperature", openai_responses_json),
    ("openai-responses-stream", "openai", "openai-responses-stream-0", openai_responses_stream),
    ("anthropic-json-thinking", "anthropic", "anthropic-inline-system-prompt-cache-prefix-is-reused-1", anthropic_json),
    ("anthropic-json-tools", "anthropic", "anthropic-code-execution-files-cache-prefix-stable-messages--2",
     anthropic_json),
    ("anthropic-stream-thinking-tools", "anthropic", "anthropic-advisor-tool-stream", anthropic_stream),
]
for version in ("v1beta", "v1"):
    CASES += [
        ("genai-%s-json" % version, "gemini", "gemini-google-optional-fields-native-output-1",
         lambda f, v=version: genai_json(f, v)),
        ("genai-%s-stream" % version, "gemini", "gemini-google-model-web-fetch-tool-stream",
         lambda f, v=version: genai_stream(f, v)),
        ("genai-%s-stream-tools" % version, "gemini", "gemini-native-output-with-function-tools-stream-0",
         lambda f, v=version: genai_stream(f, v)),
    ]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_python_sdk_sees_the_same_through_the_gateways(case, targets, upstream, collector):
    name, provider, fixture, make = case
    outcomes = sdkcheck.run_python(make(fixture), fixture, targets)
    sdkcheck.check(outcomes, upstream, collector, provider, label=name)
