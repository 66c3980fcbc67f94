"""LangChain's chat models (`langchain-openai` ChatOpenAI on chat completions and the Responses
API, `langchain-anthropic` ChatAnthropic with thinking), `invoke` and `stream`, against the
replaying upstream, through Envoy and through the Worker: see sdkcheck.py for what must hold.
(`langchain-google-genai` 4.4.2, the newest, cannot install beside google-genai 3.6.1.)"""

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

import sdkcheck
from test_python_sdks import KEY, PROMPT, model_of


def openai_model(fixture, base, hdrs, responses):
    return ChatOpenAI(model=model_of(fixture), base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=30,
                      default_headers=hdrs, stream_usage=True, use_responses_api=responses)


def anthropic_model(fixture, base, hdrs):
    return ChatAnthropic(model=model_of(fixture), base_url=base, api_key=KEY, max_retries=0, timeout=30,
                         default_headers=hdrs, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048})


def summary(message):
    content = message.content
    text = content if isinstance(content, str) else "".join(
        b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return {
        "text": text,
        "content": content,
        "tool_calls": [[t["name"], t["args"]] for t in message.tool_calls],
        "usage": message.usage_metadata,
    }


def invoke(make):
    def call(base, hdrs):
        return summary(make(base, hdrs).invoke(PROMPT))
    return call


def stream(make):
    def call(base, hdrs):
        total = None
        for chunk in make(base, hdrs).stream(PROMPT):
            total = chunk if total is None else total + chunk
        return summary(total)
    return call


CASES = [
    ("chatopenai-invoke", "openai", "openai-model-sees-multiple-images-openai-chat-1",
     lambda f: invoke(lambda b, h: openai_model(f, b, h, False))),
    ("chatopenai-stream-tools", "openai", "openai-multiple-agents-1",
     lambda f: stream(lambda b, h: openai_model(f, b, h, False))),
    ("chatopenai-responses-invoke", "openai", "openai-responses-reasoning-model-with-temperature",
     lambda f: invoke(lambda b, h: openai_model(f, b, h, True))),
    ("chatopenai-responses-stream", "openai", "openai-responses-stream-0",
     lambda f: stream(lambda b, h: openai_model(f, b, h, True))),
    ("chatanthropic-invoke-thinking", "anthropic", "anthropic-inline-system-prompt-cache-prefix-is-reused-1",
     lambda f: invoke(lambda b, h: anthropic_model(f, b, h))),
    ("chatanthropic-stream-thinking", "anthropic", "anthropic-request-stream-fallback-for-high-max-tokens",
     lambda f: stream(lambda b, h: anthropic_model(f, b, h))),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_langchain_sees_the_same_through_the_gateways(case, targets, upstream, collector):
    name, provider, fixture, make = case
    outcomes = sdkcheck.run_python(make(fixture), fixture, targets)
    sdkcheck.check(outcomes, upstream, collector, provider, label=name)
