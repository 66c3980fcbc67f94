"""Recorded calls sent through Envoy, and the values the filter must produce for them."""

import functools
import hashlib
import glob
import json
import os
import re
import subprocess
import tempfile
import uuid

from support import harness, rawhttp


# -- recorded calls ---------------------------------------------------------------------------


def fixture_names(kind=None):
    names = []
    for meta in sorted(glob.glob(os.path.join(harness.FIXTURES, "*.meta.json"))):
        name = os.path.basename(meta)[: -len(".meta.json")]
        k = "sse" if os.path.isfile(os.path.join(harness.FIXTURES, name + ".sse")) else "json"
        if kind in (None, k):
            names.append(name)
    return names


class Recorded:
    """A recorded call: where it went, what was asked, what came back."""

    def __init__(self, name):
        self.name = name
        with open(os.path.join(harness.FIXTURES, name + ".meta.json")) as f:
            self.meta = json.load(f)
        self.kind = "sse" if os.path.isfile(self.file("sse")) else "json"
        with open(self.file(self.kind), "rb") as f:
            self.response = f.read()
        self.provider = self.meta.get("provider", "openai")
        self.host = harness.provider_host(self.provider)
        model = self.meta.get("model_requested") or "model"
        self.path = self.meta.get("endpoint", "/v1/chat/completions").replace("{model}", model)
        self.request_body = self.meta.get("request_body") or {}

    def file(self, ext):
        return os.path.join(harness.FIXTURES, "%s.%s" % (self.name, ext))

    def body_bytes(self, body=None):
        return json.dumps(self.request_body if body is None else body).encode()


@functools.lru_cache(maxsize=None)
def recorded(name):
    return Recorded(name)


def send(envoy_or_port, name, fault=None, body=None, extra_headers=None, request_id=None, path=None, **kw):
    """Sends recorded call `name` through Envoy (to `path`, default the recording's); returns
    (rawhttp.Response, request_id)."""
    rec = recorded(name)
    rid = request_id or str(uuid.uuid4())
    headers = {
        "host": rec.host,
        "content-type": "application/json",
        "authorization": "Bearer sk-test-not-a-real-key",
        "x-replay-fixture": name,
        "x-request-id": rid,
        "te": "trailers",
    }
    if fault:
        headers["x-replay-fault"] = fault
    headers.update(extra_headers or {})
    port = envoy_or_port if isinstance(envoy_or_port, int) else envoy_or_port.port
    resp = rawhttp.request(port, "POST", path or rec.path, headers, rec.body_bytes(body), **kw)
    return resp, rid


@functools.lru_cache(maxsize=None)
def cli_record(cli_path, name, body_json=None):
    """What `llm-cost price --request <req> <fixture>` prints, parsed."""
    rec = recorded(name)
    req_path = os.path.join(tempfile.gettempdir(), "llm-cost-req-%s-%d.json" % (name, os.getpid()))
    with open(req_path, "wb") as f:
        f.write(body_json.encode() if body_json else rec.body_bytes())
    out = subprocess.run(
        [cli_path, "price", "--request", req_path, "--provider", rec.provider, "--path", rec.path, rec.file(rec.kind)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    os.unlink(req_path)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def expected_headers(record, prefix="x-llm-"):
    """The X-LLM-Cost family the filter adds for `record` (docs/ENVOY.md, "Headers")."""
    out = {}
    if record.get("cost_usd") is not None and record.get("cost_micros") is not None:
        out[prefix + "cost"] = record["cost_usd"]
        out[prefix + "cost-micros"] = str(record["cost_micros"])
    out[prefix + "cost-status"] = record["cost_status"]
    if record.get("error") is not None:
        out[prefix + "cost-error"] = record["error"]
    if record.get("model") is not None:
        out[prefix + "model"] = record["model"]
    if record.get("prompt_tokens") is not None:
        out[prefix + "tokens-in"] = str(record["prompt_tokens"])
    if record.get("completion_tokens") is not None:
        out[prefix + "tokens-out"] = str(record["completion_tokens"])
    out[prefix + "pricing-version"] = record["pricing_version"]
    if record.get("upstream_cost_usd") is not None:
        out[prefix + "cost-upstream"] = record["upstream_cost_usd"]
    return out


# Fields of a record that depend on the host or the moment, not on the bytes.
VOLATILE = {"ts", "request_id", "host", "duration_ms", "key_id"}


def stable(record):
    return {k: v for k, v in record.items() if k not in VOLATILE}


COMMENT = re.compile(rb"\n: llm-cost (\{[^\n]*\})\n\n\Z")


def split_comment(body):
    """(body without the trailing `: llm-cost {...}` comment, the comment's JSON or None)."""
    m = COMMENT.search(body)
    if not m:
        return body, None
    return body[: m.start() + 1], json.loads(m.group(1))


def sse_events(data):
    return [e for e in re.split(rb"(?<=\n\n)", data) if e]


def usage_only(event):
    for line in event.splitlines():
        if line.startswith(b"data:") and line[5:].strip() not in (b"[DONE]", b""):
            try:
                obj = json.loads(line[5:])
            except ValueError:
                return False
            return isinstance(obj, dict) and obj.get("usage") is not None and not obj.get("choices")
    return False


def key_id(api_key):
    """The record's `key_id`, computed independently of the filter: sha256, first 12 hex digits."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]
