"""One SDK call, made straight at the replaying upstream and through each gateway, and the checks
every call must pass: the same result (text, tool calls, usage, the SDK's whole parsed answer),
no error and no warning, the same request path at the upstream, a cost record `exact` with the
right provider for each gateway call, and a path the core's provider tests know.
"""

import contextlib
import json
import logging
import os
import re
import uuid
import warnings

from support import harness

GATEWAYS = ("envoy", "worker")
# The Worker's Node 22 (scripts/install-worker-tools): runs wrangler and the JavaScript SDKs.
NODE = os.path.join(harness.ROOT, "worker", "node_modules", ".bin", "node")
PROVIDER_RS = os.path.join(harness.ROOT, "core", "src", "provider.rs")


def sdk_paths_in_core_tests():
    """The path literals of `paths_the_sdks_send` in core/src/provider.rs."""
    with open(PROVIDER_RS) as f:
        text = f.read()
    start = text.index("fn paths_the_sdks_send")
    end = text.index("\n    }\n", start)
    return set(re.findall(r'"(/[^"]*)"', text[start:end]))


def headers(fixture, request_id):
    return {"x-replay-fixture": fixture, "x-request-id": request_id}


class Captured(logging.Handler):
    """Python warnings and log records at WARNING or above, as text."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.items = []

    def emit(self, record):
        self.items.append("log %s: %s" % (record.name, record.getMessage()))


@contextlib.contextmanager
def capture():
    handler = Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.items
        handler.items.extend("warning %s: %s" % (w.category.__name__, w.message) for w in caught)
    finally:
        root.removeHandler(handler)


def run_python(call, fixture, targets):
    """`call(base_url, headers)` once per target; returns {target: outcome}."""
    out = {}
    for target, base in targets.items():
        rid = "sdk-%s-%s" % (target, uuid.uuid4())
        outcome = {"request_id": rid}
        with capture() as seen:
            try:
                outcome["result"] = call(base, headers(fixture, rid))
            except Exception as e:  # the suite reports what the SDK raised, not a traceback
                outcome["error"] = "%s: %s" % (type(e).__name__, str(e)[:2000])
        outcome["warnings"] = list(seen)
        out[target] = outcome
    return out


def sent_paths(upstream, request_id):
    return [r["path"] for r in upstream.requests() if r["headers"].get("x-request-id") == request_id]


def check(outcomes, upstream, collector, provider, label=""):
    """The checks of the module docstring; returns the path the SDK sent."""
    direct = outcomes["direct"]
    assert "error" not in direct, "%s straight at the upstream: %s" % (label, direct["error"])
    assert direct["warnings"] == [], "%s straight at the upstream warned: %s" % (label, direct["warnings"])
    result = direct["result"]
    assert result.get("text") or result.get("tool_calls"), "%s: no text and no tool call: %s" % (label, result)
    assert result.get("usage"), "%s: the SDK reported no usage" % label
    paths = sent_paths(upstream, direct["request_id"])
    assert len(paths) == 1, "%s: %d requests reached the upstream: %s" % (label, len(paths), paths)
    known = sdk_paths_in_core_tests()
    assert paths[0] in known, "%s sent %s: add it to paths_the_sdks_send in core/src/provider.rs" % (label, paths[0])
    for gw in GATEWAYS:
        got = outcomes[gw]
        assert "error" not in got, "%s through %s raised: %s" % (label, gw, got["error"])
        assert got["warnings"] == [], "%s through %s warned: %s" % (label, gw, got["warnings"])
        assert got["result"] == result, "%s through %s differs:\n%s\nvs direct\n%s" % (
            label, gw, json.dumps(got["result"], sort_keys=True)[:3000], json.dumps(result, sort_keys=True)[:3000])
        assert sent_paths(upstream, got["request_id"]) == paths, "%s through %s: another path upstream" % (label, gw)
        records = collector.records_for(got["request_id"], timeout=10)
        assert len(records) == 1, "%s through %s: %d records" % (label, gw, len(records))
        rec = records[0]
        assert (rec["provider"], rec["cost_status"], rec.get("error")) == (provider, "exact", None), (
            "%s through %s: metered %s/%s (%s)" % (label, gw, rec["provider"], rec["cost_status"], rec.get("error")))
        assert rec.get("cost_usd"), "%s through %s: no cost" % (label, gw)
    return paths[0]
