"""Issue #18: `llm-cost billing fetch` against local stand-ins of the three providers' billing
APIs (pagination, a 429 with retry-after, a 401/403 that says what the key lacks), and
`llm-cost reconcile` on records collected from calls through the real Envoy against a bill holding
the same calls plus spend from a key that bypassed the gateway: it reports that spend, and
nothing else, to the last digit; its exit code follows `--tolerance`.

The stand-in (tests/support/billing_server.py) answers in the documented shapes, which the
schemas below transcribe and `test_stand_in_answers_match_the_published_schemas` checks:
  OpenRouter  `GET /api/v1/activity` (`ActivityResponse` / `ActivityItem`, query `api_key_hash`:
              "SHA-256 hex string, as returned by the keys API"), `GET /api/v1/keys` (`offset`),
              errors `{"error": {"code", "message"}}`: OpenRouter's openapi.yaml as shipped in
              OpenRouterTeam/go-sdk `.speakeasy/out.openapi.yaml` @ 542fe50c. That the hash is the
              SHA-256 of the key itself: OpenRouterTeam/docs `guides/overview/auth/oauth.mdx`
              @ c26125a5 ("Deep-link to the user's key": `api_key_hash=${sha256Hex(key)}`).
  OpenAI      `GET /v1/organization/costs` and `/v1/organization/usage/completions`
              (`UsageResponse` {object: page, data, has_more, next_page}, `UsageTimeBucket`,
              `CostsResult` {amount {value: number, currency}}, `UsageCompletionsResult`; admin key
              auth; `group_by` values and `limit` ranges): openai/openai-openapi `openapi.yaml`
              @ f85dbe22.
  Anthropic   `GET /v1/organizations/cost_report` ("amount: cost in lowest currency units (e.g.
              cents) as a decimal string", group_by workspace_id/description) and
              `GET /v1/organizations/usage_report/messages` (its response example: `cache_creation`
              {ephemeral_1h_input_tokens, ephemeral_5m_input_tokens}, `uncached_input_tokens`, ...):
              platform.claude.com/docs/en/api/admin/cost_report and
              /docs/en/api/admin-api/usage-cost/get-messages-usage-report; `x-api-key` +
              `anthropic-version: 2023-06-01`; errors `{"type": "error", "error": {type, message}}`.
  The OpenAI and OpenRouter answers were also validated once against the full published documents
  (their `UsageResponse` and `ActivityResponse` with every `$ref` resolved) while this was written;
  the schemas here are the part CI keeps checking.
  Query arrays are sent as `group_by[]=…`, as the official OpenAI and Anthropic Python SDKs send
  them (`Querystring(array_format="brackets")`).
"""

import calendar
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from decimal import Decimal

import jsonschema
import pytest

from support import harness
from support.calls import fixture_names, recorded, send
from test_collect_report import Collect, client_cost

KEYS = {  # the admin keys the stand-in accepts; none may ever be printed
    "openrouter": "sk-or-v1-mgmt-" + "5e" * 24,
    "openai": "sk-admin-" + "a1" * 24,
    "anthropic": "sk-ant-admin01-" + "c3" * 24,
}
ENV = {"openrouter": "OPENROUTER_MANAGEMENT_KEY", "openai": "OPENAI_ADMIN_KEY", "anthropic": "ANTHROPIC_ADMIN_KEY"}
GATEWAY_KEY = "sk-test-not-a-real-key"  # what every call through Envoy carries (support.calls.send)
BYPASS_KEY = "sk-or-v1-bypass-" + "77" * 24  # used without the gateway


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def unix_day(day):
    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


def dec(amount):
    """A Decimal as plain decimal text (never `1E-7`)."""
    return format(amount, "f")


def rfc3339(day):
    return day + "T00:00:00Z"


def next_day(day):
    return time.strftime("%Y-%m-%d", time.gmtime(unix_day(day) + 86400))


# -- the published response shapes, transcribed (sources: the module docstring) -------------

NULLABLE_STR = {"type": ["string", "null"]}
COUNT = {"type": "integer", "minimum": 0}
SCHEMAS = {
    "/api/v1/activity": {
        "type": "object", "required": ["data"],
        "properties": {"data": {"type": "array", "items": {
            "type": "object",
            "required": ["date", "model", "model_permaslug", "endpoint_id", "provider_name", "usage",
                         "byok_usage_inference", "requests", "prompt_tokens", "completion_tokens",
                         "reasoning_tokens"],
            "properties": {"date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}, "model": {"type": "string"},
                           "model_permaslug": {"type": "string"}, "endpoint_id": {"type": "string"},
                           "provider_name": {"type": "string"}, "usage": {"type": "number"},
                           "byok_usage_inference": {"type": "number"}, "requests": COUNT,
                           "prompt_tokens": COUNT, "completion_tokens": COUNT, "reasoning_tokens": COUNT}}}}},
    "/api/v1/keys": {
        "type": "object", "required": ["data"],
        "properties": {"data": {"type": "array", "items": {
            "type": "object", "required": ["hash"],
            "properties": {"hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}}},
}
OPENAI_PAGE = lambda result: {  # noqa: E731 (UsageResponse with one kind of result)
    "type": "object", "required": ["object", "data", "has_more", "next_page"],
    "properties": {"object": {"const": "page"}, "has_more": {"type": "boolean"}, "next_page": NULLABLE_STR,
                   "data": {"type": "array", "items": {
                       "type": "object", "required": ["object", "start_time", "end_time", "results"],
                       "properties": {"object": {"const": "bucket"}, "start_time": {"type": "integer"},
                                      "end_time": {"type": "integer"}, "results": {"type": "array", "items": result}}}}}}
SCHEMAS["/v1/organization/costs"] = OPENAI_PAGE({
    "type": "object", "required": ["object"],
    "properties": {"object": {"const": "organization.costs.result"},
                   "amount": {"type": "object", "properties": {"value": {"type": "number"}, "currency": {"type": "string"}}},
                   "line_item": NULLABLE_STR, "project_id": NULLABLE_STR, "api_key_id": NULLABLE_STR}})
SCHEMAS["/v1/organization/usage/completions"] = OPENAI_PAGE({
    "type": "object", "required": ["object", "input_tokens", "output_tokens", "num_model_requests"],
    "properties": {"object": {"const": "organization.usage.completions.result"}, "input_tokens": COUNT,
                   "input_cached_tokens": COUNT, "output_tokens": COUNT, "num_model_requests": COUNT,
                   "project_id": NULLABLE_STR, "api_key_id": NULLABLE_STR, "model": NULLABLE_STR,
                   "service_tier": NULLABLE_STR, "batch": {"type": ["boolean", "null"]}}})
ANTHROPIC_PAGE = lambda result: {  # noqa: E731
    "type": "object", "required": ["data", "has_more", "next_page"],
    "properties": {"has_more": {"type": "boolean"}, "next_page": NULLABLE_STR,
                   "data": {"type": "array", "items": {
                       "type": "object", "required": ["starting_at", "ending_at", "results"],
                       "properties": {"starting_at": {"type": "string"}, "ending_at": {"type": "string"},
                                      "results": {"type": "array", "items": result}}}}}}
SCHEMAS["/v1/organizations/cost_report"] = ANTHROPIC_PAGE({
    "type": "object", "required": ["amount", "currency"],
    "properties": {"amount": {"type": "string", "pattern": r"^\d+(\.\d+)?$"}, "currency": {"const": "USD"},
                   "description": NULLABLE_STR, "cost_type": NULLABLE_STR, "model": NULLABLE_STR,
                   "service_tier": NULLABLE_STR, "token_type": NULLABLE_STR, "workspace_id": NULLABLE_STR}})
SCHEMAS["/v1/organizations/usage_report/messages"] = ANTHROPIC_PAGE({
    "type": "object", "required": ["uncached_input_tokens", "cache_read_input_tokens", "cache_creation", "output_tokens"],
    "properties": {"uncached_input_tokens": COUNT, "cache_read_input_tokens": COUNT, "output_tokens": COUNT,
                   "cache_creation": {"type": "object",
                                      "required": ["ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"],
                                      "properties": {"ephemeral_1h_input_tokens": COUNT, "ephemeral_5m_input_tokens": COUNT}},
                   "api_key_id": NULLABLE_STR, "workspace_id": NULLABLE_STR, "model": NULLABLE_STR,
                   "service_tier": NULLABLE_STR, "context_window": NULLABLE_STR}})


# -- billing data in the providers' shapes ----------------------------------------------------


def or_item(day, model, usage, requests, prompt=10, completion=5, endpoint="ep-" + "0" * 8):
    return {"date": day, "model": model, "model_permaslug": model + "-20250101", "endpoint_id": endpoint,
            "provider_name": model.split("/")[0], "usage": usage, "byok_usage_inference": "0",
            "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion, "reasoning_tokens": 0}


def openai_bucket(day, results):
    start = unix_day(day)
    return {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results}


def openai_cost(line_item, value, api_key_id="key_gateway", project_id="proj_main"):
    return {"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"},
            "line_item": line_item, "project_id": project_id, "api_key_id": api_key_id,
            "quantity": None, "quantity_unit": None}


def openai_usage(model, requests, input_tokens=100, output_tokens=20, api_key_id="key_gateway"):
    return {"object": "organization.usage.completions.result", "input_tokens": input_tokens,
            "input_cached_tokens": 0, "input_cache_write_tokens": 0, "input_uncached_tokens": input_tokens,
            "output_tokens": output_tokens, "num_model_requests": requests, "project_id": "proj_main",
            "user_id": None, "api_key_id": api_key_id, "model": model, "batch": None, "service_tier": "default"}


def anthropic_bucket(day, results):
    return {"starting_at": rfc3339(day), "ending_at": rfc3339(next_day(day)), "results": results}


def anthropic_cost(model, cents):
    return {"amount": cents, "currency": "USD", "cost_type": "tokens", "context_window": "0-200k",
            "description": "%s Usage - Input Tokens" % model, "model": model, "service_tier": "standard",
            "token_type": "uncached_input_tokens", "workspace_id": None}


def anthropic_usage(model, uncached=100, read=20, written=(5, 7), output=30):
    return {"api_key_id": "apikey_01Gateway", "workspace_id": None, "model": model, "service_tier": "standard",
            "context_window": "0-200k", "uncached_input_tokens": uncached, "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_1h_input_tokens": written[0], "ephemeral_5m_input_tokens": written[1]},
            "output_tokens": output, "server_tool_use": {"web_search_requests": 0}}


# -- running the stand-in and the CLI ----------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    s = harness.Helper("billing_server.py")
    yield s
    s.stop()


def put_state(server, state):
    state = dict(state)
    state.setdefault("keys", KEYS)
    req = urllib.request.Request(server.url("/_state"), data=json.dumps(state).encode(), method="PUT")
    urllib.request.urlopen(req, timeout=5).read()


def served(server):
    return harness.http_json(server.url("/_requests"))


def fetch(cli, server, provider, since, until, key=None, out=None, extra=()):
    env = {k: v for k, v in os.environ.items() if k not in ENV.values()}
    env[ENV[provider]] = KEYS[provider] if key is None else key
    args = [cli, "billing", "fetch", "--provider", provider, "--since", since, "--until", until,
            "--base-url", server.url(""), *extra]
    if out:
        args += ["--out", out]
    proc = subprocess.run(args, capture_output=True, timeout=120, env=env)
    text = (proc.stdout + proc.stderr).decode()
    for secret in KEYS.values():
        assert secret not in text, "an admin key was printed"
    if out and os.path.exists(out):
        assert all(secret not in open(out).read() for secret in KEYS.values())
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return proc, rows


DAY = "2026-11-03"


def test_openrouter_fetch_pages_the_keys_retries_a_429_and_joins_the_key_hash(cli, server):
    ours, bypass, deleted = sha256(GATEWAY_KEY), sha256(BYPASS_KEY), sha256("sk-or-v1-deleted")
    put_state(server, {
        "page_size": 1, "rate_limit_first": 1,
        "openrouter": {
            "keys": [{"hash": ours, "name": "gateway"}, {"hash": bypass, "name": "laptop"}],
            "activity": {
                ours: [or_item(DAY, "openai/gpt-4o-mini", "0.1", 2), or_item(DAY, "openai/gpt-4o-mini", "0.2", 1),
                       or_item("2026-11-01", "openai/gpt-4o-mini", "9", 1)],  # before --since
                bypass: [or_item(DAY, "openai/gpt-4o-mini", "0.000000123456789012345678", 1)],
                deleted: [or_item(DAY, "anthropic/claude-sonnet-4.5", "1.5", 3, endpoint="ep-anthropic")],
            }}})
    proc, rows = fetch(cli, server, "openrouter", "2026-11-02", DAY)
    assert proc.returncode == 0, proc.stderr.decode()
    by_key = {r["api_key"]: r for r in rows}
    assert set(by_key) == {ours, bypass, None}, rows
    # 0.1 + 0.2 summed exactly (0.30000000000000004 in floating point), the 24-digit amount intact.
    assert by_key[ours]["cost_usd"] == "0.3" and by_key[ours]["requests"] == 3
    assert by_key[ours]["key_id"] == ours[:12] == sha256(GATEWAY_KEY)[:12]
    assert by_key[bypass]["cost_usd"] == "0.000000123456789012345678"
    assert by_key[None]["cost_usd"] == "1.5" and by_key[None]["key_id"] is None, "the deleted key's spend"
    assert {r["source"] for r in rows} == {"GET /api/v1/activity"} and {r["day"] for r in rows} == {DAY}
    log = served(server)
    assert [r["status"] for r in log if r["path"] == "/api/v1/keys"] == [429, 200, 200, 200], "1 per page + 429"
    assert [r["query"].get("offset") for r in log if r["path"] == "/api/v1/keys" and r["status"] == 200] == \
        [["0"], ["1"], ["2"]]
    assert b"retrying in 1s" in proc.stderr


def test_openai_fetch_follows_next_page_and_keeps_every_digit(cli, server):
    put_state(server, {
        "page_size": 2, "rate_limit_first": 1,
        "openai": {
            "costs": [openai_bucket(d, [openai_cost("gpt-4o-mini-2024-07-18, input", "0.8958740000000000001"),
                                        openai_cost("gpt-4o-mini-2024-07-18, output", "1.2e-05"),
                                        openai_cost("web search tool calls", "0.03", api_key_id=None)])
                      for d in ("2026-11-01", "2026-11-02", DAY)],
            "completions": [openai_bucket(d, [openai_usage("gpt-4o-mini-2024-07-18", 4)])
                            for d in ("2026-11-01", "2026-11-02", DAY)]}})
    proc, rows = fetch(cli, server, "openai", "2026-11-01", DAY)
    assert proc.returncode == 0, proc.stderr.decode()
    costs = [r for r in rows if r["source"] == "GET /v1/organization/costs"]
    usage = [r for r in rows if r["source"] == "GET /v1/organization/usage/completions"]
    assert len(costs) == 9 and len(usage) == 3
    assert {r["cost_usd"] for r in costs} == {"0.8958740000000000001", "0.000012", "0.03"}
    assert {r["model"] for r in costs} == {"gpt-4o-mini-2024-07-18", "web search tool calls"}
    assert all(r["key_id"] is None for r in rows), "OpenAI key ids are not our key hashes"
    assert {(r["requests"], r["prompt_tokens"], r["completion_tokens"]) for r in usage} == {(4, 100, 20)}
    log = [r for r in served(server) if r["path"] == "/v1/organization/costs"]
    assert [r["status"] for r in log] == [429, 200, 200], "a retry, then two pages"
    assert log[2]["query"]["page"] and log[1]["query"]["group_by[]"] == ["line_item", "project_id", "api_key_id"]
    assert log[1]["query"]["start_time"] == [str(unix_day("2026-11-01"))]
    assert log[1]["query"]["end_time"] == [str(unix_day(next_day(DAY)))]


def test_anthropic_fetch_turns_cents_into_dollars_and_pages(cli, server):
    days = ("2026-11-01", "2026-11-02", DAY)
    put_state(server, {
        "page_size": 2, "rate_limit_first": 1,
        "anthropic": {
            "cost_report": [anthropic_bucket(d, [anthropic_cost("claude-sonnet-4-5-20250929", "123.456789")])
                            for d in days],
            "messages": [anthropic_bucket(d, [anthropic_usage("claude-sonnet-4-5-20250929")]) for d in days]}})
    proc, rows = fetch(cli, server, "anthropic", "2026-11-01", DAY)
    assert proc.returncode == 0, proc.stderr.decode()
    costs = [r for r in rows if r["source"] == "GET /v1/organizations/cost_report"]
    usage = [r for r in rows if r["source"] == "GET /v1/organizations/usage_report/messages"]
    assert [r["cost_usd"] for r in costs] == ["1.23456789"] * 3
    assert {(r["prompt_tokens"], r["cached_tokens"], r["cache_write_tokens"], r["completion_tokens"])
            for r in usage} == {(100 + 20 + 12, 20, 12, 30)}
    assert {r["api_key"] for r in usage} == {"apikey_01Gateway"}
    log = [r for r in served(server) if r["path"] == "/v1/organizations/cost_report"]
    assert [r["status"] for r in log] == [429, 200, 200]
    assert all(r["x-api-key"] and r["anthropic-version"] == "2023-06-01" for r in log)


@pytest.mark.parametrize("provider,says", [
    ("openai", "api.usage.read"), ("anthropic", "Admin API key"), ("openrouter", "management key")])
def test_a_key_without_the_permission_is_told_what_it_lacks(cli, server, provider, says):
    put_state(server, {})
    proc, rows = fetch(cli, server, provider, DAY, DAY, key="sk-a-plain-inference-key-0123456789")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and rows == [], err
    assert says in err, err
    assert "sk-a-plain-inference-key-0123456789" not in err
    status = {"openai": 401, "anthropic": 401, "openrouter": 403}[provider]
    assert (" %d " % status) in err and len(served(server)) == 1, "denied is not retried"
    if provider == "openai":
        assert "Missing scopes: api.usage.read" in err, "the provider's own words are shown too"


def test_retries_on_429_are_bounded(cli, server):
    put_state(server, {"rate_limit_first": 1000, "anthropic": {"cost_report": [], "messages": []}})
    started = time.monotonic()
    proc, rows = fetch(cli, server, "anthropic", DAY, DAY)
    assert proc.returncode == 2 and rows == []
    assert b"429 Number of requests has exceeded your rate limit (after 5 attempt(s))" in proc.stderr, proc.stderr
    assert len(served(server)) == 5 and time.monotonic() - started < 30, "5 tries, retry-after: 1 between them"


def test_a_hung_api_times_out(cli, server):
    put_state(server, {"hang_seconds": 5, "openai": {"costs": [], "completions": []}})
    started = time.monotonic()
    proc, rows = fetch(cli, server, "openai", DAY, DAY, extra=["--timeout", "1"])
    assert proc.returncode == 2 and rows == [] and b"GET /v1/organization/costs" in proc.stderr, proc.stderr
    assert b"timeout" in proc.stderr.lower() or b"timed out" in proc.stderr.lower(), proc.stderr
    assert time.monotonic() - started < 5


def test_no_admin_key_in_the_environment_names_the_variable(cli, server):
    env = {k: v for k, v in os.environ.items() if k not in ENV.values()}
    proc = subprocess.run([cli, "billing", "fetch", "--provider", "openai", "--since", DAY, "--base-url",
                           server.url("")], capture_output=True, timeout=30, env=env)
    assert proc.returncode == 2 and b"$OPENAI_ADMIN_KEY is not set" in proc.stderr


def test_stand_in_answers_match_the_published_schemas(server):
    ours = sha256(GATEWAY_KEY)
    put_state(server, {
        "openrouter": {"keys": [{"hash": ours, "name": "g"}], "activity": {ours: [or_item(DAY, "openai/gpt-4o", "0.01", 1)]}},
        "openai": {"costs": [openai_bucket(DAY, [openai_cost("gpt-4o, input", "0.5")])],
                   "completions": [openai_bucket(DAY, [openai_usage("gpt-4o", 1)])]},
        "anthropic": {"cost_report": [anthropic_bucket(DAY, [anthropic_cost("claude-sonnet-4-5", "1")])],
                      "messages": [anthropic_bucket(DAY, [anthropic_usage("claude-sonnet-4-5")])]}})
    queries = {
        "/api/v1/activity": "", "/api/v1/keys": "?offset=0",
        "/v1/organization/costs": "?start_time=%d" % unix_day(DAY),
        "/v1/organization/usage/completions": "?start_time=%d" % unix_day(DAY),
        "/v1/organizations/cost_report": "?starting_at=%s" % rfc3339(DAY),
        "/v1/organizations/usage_report/messages": "?starting_at=%s" % rfc3339(DAY),
    }
    for path, schema in SCHEMAS.items():
        provider = "anthropic" if "/organizations/" in path else "openrouter" if "/api/" in path else "openai"
        headers = ({"x-api-key": KEYS[provider], "anthropic-version": "2023-06-01"} if provider == "anthropic"
                   else {"authorization": "Bearer " + KEYS[provider]})
        req = urllib.request.Request(server.url(path + queries[path]), headers=headers)
        doc = json.loads(urllib.request.urlopen(req, timeout=5).read())
        jsonschema.validate(doc, schema)
        assert doc.get("data"), path


# -- end to end: calls through the real Envoy, a bill with the same calls plus a bypass ---------


@pytest.fixture
def out_dir():
    d = tempfile.mkdtemp(prefix="llm-cost-reconcile-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def reconcile(cli, *args):
    proc = subprocess.run([cli, "reconcile", *args], capture_output=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc


def test_reconcile_finds_exactly_the_bypassed_spend_and_matches_the_rest(envoy_bin, upstream, cli, server, out_dir):
    names = [n for n in fixture_names("json") if recorded(n).provider in ("openrouter", "openai", "anthropic")]
    collect = Collect(out_dir)
    envoy = None
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, collect.port)
        told_by_id = {}  # request id → (provider, what the client was told)
        for name in names:
            resp, rid = send(envoy, name)
            assert resp.status == 200 and resp.complete, name
            told_by_id[rid] = (recorded(name).provider, client_cost(resp))
        harness.wait_until(lambda: collect.report()["total"]["calls"] >= len(told_by_id), 30,
                           what="%d records in the collector's files" % len(told_by_id))
        envoy.stop()
        envoy = None
        assert collect.terminate() == 0, collect.log_text()
    finally:
        if envoy is not None:
            envoy.stop()
        collect.stop()
    records = collect.files()
    stored = {r["request_id"]: r for path in records for r in map(json.loads, open(path))}
    assert set(stored) == set(told_by_id)
    # (provider, the call's record — for the model's name only —, what the client was told)
    calls = [(p, stored[rid], told) for rid, (p, told) in told_by_id.items()]
    day = calls[0][1]["ts"][:10]

    # What each provider bills: exactly what the gateway told the client, per day and model, as
    # each provider names models (OpenRouter by its model id, OpenAI and Anthropic by the name the
    # response carried), plus one key OpenRouter saw that never went through the gateway.
    billed = {}
    for provider, record, told in calls:
        if told > 0:
            model = record["priced_as"] if provider == "openrouter" else record["model"]
            n, usd = billed.get((provider, model), (0, Decimal(0)))
            billed[(provider, model)] = (n + 1, usd + told)
    bypass_model = next(m for p, m in sorted(billed) if p == "openrouter")
    bypass_usd = "0.004321987654321"
    ours, bypass = sha256(GATEWAY_KEY), sha256(BYPASS_KEY)
    state = {
        "page_size": 2, "rate_limit_first": 1,
        "openrouter": {"keys": [{"hash": ours, "name": "gateway"}, {"hash": bypass, "name": "laptop"}],
                       "activity": {ours: [or_item(day, m, dec(u), n) for (p, m), (n, u) in billed.items() if p == "openrouter"],
                                    bypass: [or_item(day, bypass_model, bypass_usd, 1)]}},
        "openai": {"costs": [openai_bucket(day, [openai_cost(m + ", input", dec(u)) for (p, m), (n, u) in billed.items()
                                                  if p == "openai"])],
                   "completions": [openai_bucket(day, [openai_usage(m, n) for (p, m), (n, u) in billed.items() if p == "openai"])]},
        "anthropic": {"cost_report": [anthropic_bucket(day, [anthropic_cost(m, dec(u * 100)) for (p, m), (n, u) in billed.items()
                                                             if p == "anthropic"])],
                      "messages": [anthropic_bucket(day, [anthropic_usage(m) for (p, m), (n, u) in billed.items() if p == "anthropic"])]},
    }
    assert {p for p, _ in billed} == {"openrouter", "openai", "anthropic"}, billed
    put_state(server, state)
    bills = []
    for provider in ("openrouter", "openai", "anthropic"):
        path = os.path.join(out_dir, "bill-%s.ndjson" % provider)
        proc, _ = fetch(cli, server, provider, day, day, out=path)
        assert proc.returncode == 0, proc.stderr.decode()
        bills += ["--billing", path]

    # By key: the bypassed key's spend is the one group that differs, and all of it is unmetered.
    proc = reconcile(cli, *bills, "--by", "day,provider,model,key", "--json", *records)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["ok"] is False
    off = [g for g in report["groups"] if g["status"] != "match"]
    assert off == [dict(off[0], key=bypass[:12], model=bypass_model, provider="openrouter", status="unmetered",
                        metered_calls=0, metered_usd="0", billed_usd=bypass_usd, difference_usd="+" + bypass_usd)], off
    assert report["unmetered_usd"] == bypass_usd and report["unbilled_usd"] == "0"
    matched = [g for g in report["groups"] if g["status"] == "match"]
    assert all(g["difference_usd"] == "0" for g in matched)
    # Every billed group matched (the others: calls that cost nothing, e.g. an unpriced model).
    assert len([g for g in matched if g["billed_usd"] != "0"]) == len(billed)
    assert all(g["billed_usd"] == g["metered_usd"] == "0" for g in matched if g["billed_requests"] is None
               and g["provider"] != "anthropic"), matched
    # Requests as the provider counts them (Anthropic's usage report has no count).
    assert all(g["billed_requests"] == g["metered_calls"] for g in matched
               if g["billed_requests"] is not None), matched
    told = sum((u for _, u in billed.values()), Decimal(0))
    assert Decimal(report["metered_usd"]) == told, "metered = what the clients were told, to the last digit"
    assert Decimal(report["billed_usd"]) == told + Decimal(bypass_usd)
    assert report["records_out_of_scope"] == 0 and report["malformed_lines"] == 0
    # Calls the bill does not show: exactly those that cost nothing (the stand-in bills only priced ones).
    assert sum(g["unbilled_calls"] or 0 for g in report["groups"]) == sum(1 for _, _, t in calls if t == 0)

    # By model only: that model's group is off by exactly the bypass, and names the key.
    proc = reconcile(cli, *bills, "--json", *records)
    report = json.loads(proc.stdout)
    off = [g for g in report["groups"] if g["status"] != "match"]
    assert len(off) == 1 and off[0]["model"] == bypass_model and off[0]["status"] == "outside", off
    assert off[0]["difference_usd"] == "+" + bypass_usd
    assert off[0]["unmetered_keys"] == [{"key_id": bypass[:12], "billed_usd": bypass_usd}]
    percent = Decimal(off[0]["difference_percent"])
    # Exit codes follow the tolerance: just below the difference fails, just above passes.
    below, above = str(percent - Decimal("0.0001")), str(percent + Decimal("0.0001"))
    assert reconcile(cli, *bills, "--tolerance", below, *records).returncode == 1
    inside = reconcile(cli, *bills, "--tolerance", above, "--json", *records)
    assert inside.returncode == 0 and json.loads(inside.stdout)["ok"] is True
    assert [g["status"] for g in json.loads(inside.stdout)["groups"] if g["status"] != "match"] == ["within"]

    # The table and the CSV say the same.
    table = reconcile(cli, *bills, *records).stdout.decode()
    assert "unmetered keys: %s=%s" % (bypass[:12], bypass_usd) in table and "FAIL" in table
    rows = list(csv.DictReader(io.StringIO(reconcile(cli, *bills, "--csv", *records).stdout.decode())))
    assert len(rows) == len(report["groups"])
    assert [(r["model"], r["difference_usd"], r["unmetered_keys"]) for r in rows if r["status"] != "match"] == \
        [(bypass_model, "+" + bypass_usd, "%s=%s" % (bypass[:12], bypass_usd))]
    print("reconciled %d calls (%s USD) against 3 bills; unmetered %s USD on key %s"
          % (len(calls), told, bypass_usd, bypass[:12]))
