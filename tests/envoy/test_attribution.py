"""Issue #14 in a real Envoy: who spent it. Envoy's `jwt_authn` verifies a token signed here (inline
`local_jwks`) and copies its `team` claim to `x-team` (`claim_to_headers`); the filter reads `team`
from that header and `feature` from `x-llm-tags`. The records' `attributes`, the Prometheus `team`
label and `llm-cost report --by team --by feature` over the collected records must all agree with what
the clients were told (`X-LLM-Cost`), group by group, to the last digit; a client's own `x-team` never
beats the claim.
"""

import json
import os
import re
import subprocess
import tempfile
import time
from decimal import Decimal

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from support import harness
from support.calls import send

FIXTURES = [
    "openrouter-cache-all-settings-real-api-0",
    "openrouter-cache-all-settings-real-api-1",
    "openrouter-cache-messages-e2e",
]
ISSUER = "https://idp.llm-cost.test"

ATTRIBUTION = {
    "tags_header": "x-llm-tags",
    "dimensions": {
        "team": {"from": ["header:x-team"]},
        "feature": {"from": ["tag:feature", "body:metadata.feature"]},
        "user": {"from": ["body:user", "header:x-user-id"], "hash": True},
    },
    "metric_labels": ["team"],
    "max_label_values": 50,
}

# envoy/demo.yaml (the tests' template) carries the stats_tags rule that makes `.team=<value>` a
# Prometheus label (docs/CONFIGURATION.md), before the model rule.
TEAM_TAG = '  - {tag_name: team, regex: "(\\\\.team=([^=]+))\\\\.[a-z_]+="}\n  - {tag_name: model,'


def with_team_tag(text):
    assert TEAM_TAG in text, "envoy/demo.yaml lost the team stats tag"
    return text


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(key):
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "test-key", "alg": "RS256", "use": "sig"})
    return json.dumps({"keys": [public]})


def token(key, team, subject="svc"):
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": subject, "iat": now, "exp": now + 600}
    if team is not None:
        claims["team"] = team
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-key"})


def jwt_config(key, upstream_port, collector_port, plugin_config):
    text = harness.render_config(harness.WASM, upstream_port, collector_port, os.devnull, plugin_config)
    # No filter of ours removes a client's x-team first: Envoy 1.40's jwt_authn itself drops client
    # copies of claim_to_headers headers (test_a_client_cannot_forge_the_team_the_jwt_claims pins it).
    jwt_filter = """          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: %s
                  from_headers: [{name: x-id-token}]
                  local_jwks: {inline_string: '%s'}
                  claim_to_headers: [{header_name: x-team, claim_name: team}]
              rules:
              - match: {prefix: "/"}
                requires: {provider_name: idp}
""" % (ISSUER, jwks(key))
    text = harness.substitute(text, "          # BEGIN llm-cost filter\n", jwt_filter + "          # BEGIN llm-cost filter\n")
    return with_team_tag(text)


@pytest.fixture(scope="module")
def jwt_envoy(envoy_bin, upstream, collector, signing_key):
    config = {"collector": {"flush_interval_ms": 100}, "attribution": ATTRIBUTION}
    text = jwt_config(signing_key, upstream.port, collector.port, config)
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, config_text=text, concurrency=2)
    yield e
    e.stop()


def body_with(name, **extra):
    from support.calls import recorded

    body = dict(recorded(name).request_body)
    body.update(extra)
    return body


def report(records, *args):
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    try:
        out = subprocess.run([harness.CLI, "report", "--json", *args, f.name],
                             capture_output=True, timeout=30, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout)


def test_two_jwt_teams_and_three_features_add_up_in_records_metrics_and_report(
        jwt_envoy, collector, signing_key):
    calls = []  # (team, feature, request id, X-LLM-Cost)
    features = ["summarize", "chat", "extract"]
    for i in range(12):
        team = ["search", "ads"][i % 2]
        feature = features[i % 3]
        name = FIXTURES[i % len(FIXTURES)]
        headers = {"x-id-token": token(signing_key, team), "x-llm-tags": "env=test, feature=%s" % feature}
        resp, rid = send(jwt_envoy, name, extra_headers=headers)
        assert resp.status == 200, resp.body[:300]
        calls.append((team, feature, rid, Decimal(resp.header("x-llm-cost"))))

    records = []
    for team, feature, rid, cost in calls:
        [record] = collector.records_for(rid)
        assert record["attributes"] == {"team": team, "feature": feature}, record
        assert Decimal(record["cost_usd"]) == cost
        records.append(record)

    got = report(records, "--by", "team", "--by", "feature")
    for dimension, index in (("team", 0), ("feature", 1)):
        want = {}
        for call in calls:
            want[call[index]] = want.get(call[index], Decimal(0)) + call[3]
        groups = got["by"][dimension]
        assert set(groups) == set(want), groups
        for value, total in want.items():
            assert Decimal(groups[value]["cost_usd"]) == total, (dimension, value)
            assert groups[value]["calls"] == sum(1 for c in calls if c[index] == value)
    assert Decimal(got["total"]["cost_usd"]) == sum(c[3] for c in calls)

    # Counters with a `team` label (summed in each VM, flushed on the 100 ms timer).
    def team_costs():
        text = jwt_envoy.prometheus()
        out = {}
        for line in text.splitlines():
            m = re.match(r'llmcost_cost_micros_total\{(.*)\} (\d+)$', line)
            if m and 'team="' in m.group(1):
                team = re.search(r'team="([^"]*)"', m.group(1)).group(1)
                out[team] = out.get(team, 0) + int(m.group(2))
        return out if set(out) >= {"search", "ads"} else None

    costs = harness.wait_until(team_costs, 5, what="llmcost_cost_micros_total with a team label")
    for team in ("search", "ads"):
        micros = sum(int(r["cost_micros"]) for r in records if r["attributes"]["team"] == team)
        assert costs[team] >= micros  # other tests of this module may add to the same counters


def test_a_client_cannot_forge_the_team_the_jwt_claims(jwt_envoy, collector, upstream, signing_key):
    name = FIXTURES[0]
    headers = {"x-id-token": token(signing_key, "search"), "x-team": "other"}
    resp, rid = send(jwt_envoy, name, extra_headers=headers)
    assert resp.status == 200, resp.body[:300]
    [record] = collector.records_for(rid)
    assert record["attributes"]["team"] == "search", record
    # What the upstream saw: the claim's team only.
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert seen["headers"].get("x-team") == "search", seen["headers"]
    # A valid token without a team claim: jwt_authn still removed the client's x-team, so the call
    # has no team (instead of the forged one).
    headers = {"x-id-token": token(signing_key, None), "x-team": "other"}
    resp, rid = send(jwt_envoy, name, extra_headers=headers)
    assert resp.status == 200, resp.body[:300]
    [record] = collector.records_for(rid)
    assert "team" not in record["attributes"], record
    # Without a token Envoy's jwt_authn answers 401 and nothing is metered as that team.
    resp, rid = send(jwt_envoy, name, extra_headers={"x-team": "search"})
    assert resp.status == 401


def test_body_sources_and_hashing_reach_the_record(jwt_envoy, collector, signing_key):
    name = FIXTURES[0]
    body = body_with(name, user="end-user-1234", metadata={"feature": "from-body"})
    headers = {"x-id-token": token(signing_key, "ads")}
    resp, rid = send(jwt_envoy, name, body=body, extra_headers=headers)
    assert resp.status == 200, resp.body[:300]
    [record] = collector.records_for(rid)
    attributes = record["attributes"]
    assert attributes["team"] == "ads" and attributes["feature"] == "from-body", record
    assert re.fullmatch(r"[0-9a-f]{12}", attributes["user"]), record
    assert "end-user-1234" not in json.dumps(record)


@pytest.fixture
def plain_envoy(envoy_bin, upstream, collector):
    envoys = []

    def start(attribution, concurrency=1):
        config = {"collector": {"flush_interval_ms": 100}, "attribution": attribution}
        text = with_team_tag(harness.render_config(harness.WASM, upstream.port, collector.port, os.devnull, config))
        e = harness.Envoy(envoy_bin, upstream.port, collector.port, config_text=text, concurrency=concurrency)
        envoys.append(e)
        return e

    yield start
    for e in envoys:
        e.stop()


def test_label_values_are_bounded_per_envoy_process_and_bad_values_dropped(plain_envoy, collector, upstream):
    envoy = plain_envoy(dict(ATTRIBUTION, max_label_values=2), concurrency=2)
    name = FIXTURES[0]
    rids = {}
    for team in ["t1", "t2", "t3", "t4", "t1"]:
        resp, rid = send(envoy, name, extra_headers={"x-team": team, "x-llm-tags": "feature=f"})
        assert resp.status == 200
        rids[rid] = team
    resp, bad = send(envoy, name, extra_headers={"x-team": "not allowed!"})
    assert resp.status == 200, "a bad attribute value never fails the call"
    resp, nothing = send(envoy, name)
    for rid, team in rids.items():
        [record] = collector.records_for(rid)
        assert record["attributes"]["team"] == team  # the record keeps every value
    [record] = collector.records_for(bad)
    assert record["attributes"] == {} and record["cost_status"] == "exact"

    def labels():
        text = envoy.prometheus()
        teams = set(re.findall(r'llmcost_requests_total\{[^}]*team="([^"]*)"', text))
        dropped = re.search(r"^llmcost_attributes_dropped_total\{\} (\d+)$", text, re.M)
        return (teams, text) if {"other", "none"} <= teams and dropped else None

    teams, text = harness.wait_until(labels, 5, what="bounded team labels")
    # Two values admitted (t1, t2 came first), t3 and t4 under `other`, calls without a team: `none`.
    assert teams == {"t1", "t2", "other", "none"}, teams
    assert re.search(r"^llmcost_attributes_dropped_total\{\} 1$", text, re.M), text

    # Attribution headers stay on the request by default, even `x-llm-tags` under our prefix.
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == list(rids)[0]]
    assert seen["headers"].get("x-llm-tags") == "feature=f"
    assert seen["headers"].get("x-team") == "t1"


def test_remove_headers_keeps_attribution_headers_from_the_upstream(plain_envoy, collector, upstream):
    envoy = plain_envoy(dict(ATTRIBUTION, remove_headers=True))
    resp, rid = send(envoy, FIXTURES[0], extra_headers={"x-team": "search", "x-llm-tags": "feature=f"})
    assert resp.status == 200
    [record] = collector.records_for(rid)
    assert record["attributes"] == {"team": "search", "feature": "f"}
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert "x-team" not in seen["headers"] and "x-llm-tags" not in seen["headers"], seen["headers"]


GEMINI = "gemini-google-model-cached-content-2"


def send_gemini(envoy, headers, query=""):
    """The recorded native Gemini call with only the given credential carriers (no Authorization)."""
    from support.calls import recorded
    from support import rawhttp
    import uuid

    rec = recorded(GEMINI)
    rid = str(uuid.uuid4())
    all_headers = {"host": rec.host, "content-type": "application/json", "x-replay-fixture": GEMINI,
                   "x-request-id": rid, **headers}
    return rawhttp.request(envoy.port, "POST", rec.path + query, all_headers, rec.body_bytes()), rid


def test_native_gemini_credentials_give_a_key_id_and_its_budget_applies(envoy_bin, upstream, collector):
    from support.calls import key_id

    limited, other = "AIza-test-gemini-budget-1", "AIza-test-gemini-budget-2"
    config = {"collector": {"flush_interval_ms": 100},
              "budgets": {"limits_usd": {key_id(limited): "0.000001"}, "reserve_usd": "0.000001"}}
    e = harness.Envoy(envoy_bin, upstream.port, collector.port, plugin_config=config)
    try:
        # Both Gemini carriers give the key's key_id (before #14 they gave none).
        for headers, query in [({"x-goog-api-key": other}, ""), ({}, "?alt=json&key=" + other)]:
            resp, rid = send_gemini(e, headers, query)
            assert resp.status == 200, resp.body[:300]
            [record] = collector.records_for(rid)
            assert record["key_id"] == key_id(other), record
            assert record["cost_status"] == "exact" and other not in json.dumps(record)
        # A limited key: the first call is admitted (nothing spent yet), then it is over budget.
        resp, rid = send_gemini(e, {"x-goog-api-key": limited})
        assert resp.status == 200, resp.body[:300]
        collector.records_for(rid)
        for headers, query in [({"x-goog-api-key": limited}, ""), ({}, "?key=" + limited)]:
            resp, rid = send_gemini(e, headers, query)
            assert resp.status == 429, (headers, query, resp.status)
            assert limited not in resp.body.decode()
            [record] = collector.records_for(rid)
            assert record["error"] == "budget_exceeded" and record["key_id"] == key_id(limited)
    finally:
        e.stop()
