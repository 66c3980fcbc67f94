"""Live prices (`pricing.source`, issue #15) in a real Envoy with `--concurrency 2`: the filter
fetches a price document from a local pricing server (tests/support/pricing_server.py), every
worker VM prices with it, bad documents are rejected, and the bundled table prices while the
source is down. The expected costs come from the CLI pricing the same document (`--pricing FILE`).

The tests of this module run in order against one Envoy: each leaves the server's document as the
next one expects.
"""

import concurrent.futures
import copy
import json
import os
import subprocess
import tempfile
import time
import urllib.request

import pytest

from support import harness
from support.calls import cli_record, recorded, send

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"
FLEX = "openai-responses-streaming-usage-flex"  # served at flex: gpt-5's supplemented prices
MODEL = "anthropic/claude-sonnet-4.6"  # what the bundled table prices JSON as
INTERVAL_S = 1
TICK_MS = 100
COUNTER = "wasmcustom.llmcost.pricing.refreshes_total.result=%s"
AGE = "wasmcustom.llmcost.pricing.table_age_seconds"


def bundled():
    with open(os.path.join(harness.ROOT, "pricing-data", "bundled.json")) as f:
        return json.load(f)


def without_model(doc, model=MODEL):
    """`doc` without `model` and its variants (`:batch`, ...), which its slug would resolve to."""
    doc = copy.deepcopy(doc)
    doc["data"] = [m for m in doc["data"] if m["id"].split(":")[0] != model]
    return doc


def with_price(doc, prompt, completion, model=MODEL):
    """`doc` with `model` priced at `prompt`/`completion` (added if missing: bundled entry)."""
    doc = copy.deepcopy(doc)
    entry = next((m for m in bundled()["data"] if m["id"] == model), None)
    assert entry is not None, model
    doc["data"] = [m for m in doc["data"] if m["id"] != model]
    entry = copy.deepcopy(entry)
    entry["pricing"].update({"prompt": prompt, "completion": completion})
    doc["data"].append(entry)
    return doc


def plugin_config(cluster="llm_cost_pricing"):
    return {
        "collector": {"flush_interval_ms": TICK_MS},
        "pricing": {
            "source": {"cluster": cluster, "authority": "pricing.test", "path": "/api/v1/models",
                       "format": "openrouter", "refresh_interval_s": INTERVAL_S, "timeout_ms": 2000},
            "max_removed_percent": 20,
        },
    }


def envoy_config(upstream, collector, pricing_port, access_log):
    text = harness.render_config(harness.WASM, upstream.port, collector.port, access_log, plugin_config())
    cluster = (
        "  clusters:\n"
        "  - name: llm_cost_pricing\n"
        "    type: STATIC\n"
        "    connect_timeout: 1s\n"
        "    load_assignment:\n"
        "      cluster_name: llm_cost_pricing\n"
        "      endpoints:\n"
        "      - lb_endpoints:\n"
        "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}\n" % pricing_port
    )
    return harness.substitute(text, "  clusters:\n", cluster)


class PricingServer(harness.Helper):
    def __init__(self):
        super().__init__("pricing_server.py")

    def put(self, doc):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        req = urllib.request.Request(self.url("/_document"), data=body, method="PUT")
        urllib.request.urlopen(req, timeout=5).read()

    def fetch_times(self):
        return harness.http_json(self.url("/_fetches"))["times"]


@pytest.fixture(scope="module")
def live(envoy_bin, upstream, collector):
    server = PricingServer()
    server.put(without_model(bundled()))
    envoy = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            text = envoy_config(upstream, collector, server.port, os.path.join(tmp, "access.log"))
            envoy = harness.Envoy(envoy_bin, 0, 0, config_text=text, concurrency=2)
            yield envoy, server
    finally:
        if envoy:
            envoy.stop()
        server.stop()


def expected(cli, doc, name=JSON):
    """The CLI's record for fixture `name` priced with `doc` (a file, as `--pricing`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        return cli_record_with(cli, f.name, name)
    finally:
        os.unlink(f.name)


def cli_record_with(cli, pricing_path, name):
    rec = recorded(name)
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as req:
        req.write(rec.body_bytes())
    try:
        out = subprocess.run([cli, "price", "--pricing", pricing_path, "--request", req.name, "--provider",
                              rec.provider, "--path", rec.path, rec.file(rec.kind)],
                             capture_output=True, timeout=60, check=True)
    finally:
        os.unlink(req.name)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def hash_of(version):
    return version.rsplit("+", 1)[-1]


def calls(envoy, n=6):
    """`n` calls (spread over both workers by Envoy's connection balancing): their headers."""
    out = []
    for _ in range(n):
        resp, _ = send(envoy, JSON)
        assert resp.status == 200, resp.status
        out.append(resp.headers)
    return out


def wait_for_version(envoy, want_hash, timeout=10):
    """Until every call of a burst is priced by the table with content hash `want_hash`."""
    def all_new():
        return all(hash_of(h["x-llm-pricing-version"]) == want_hash for h in calls(envoy, 4))

    harness.wait_until(all_new, timeout, interval=0.2, what="pricing version +%s on every worker" % want_hash)


def test_a_model_added_at_the_server_is_priced_instead_of_unpriced(live, cli):
    envoy, server = live
    first = expected(cli, without_model(bundled()))
    assert first["cost_status"] == "unpriced"
    wait_for_version(envoy, hash_of(first["pricing_version"]))
    for headers in calls(envoy):
        assert headers["x-llm-pricing-version"].startswith("live-"), headers
        assert headers["x-llm-cost-status"] == "unpriced"
    doc = with_price(without_model(bundled()), "0.000006", "0.00003")
    want = expected(cli, doc)
    assert want["cost_status"] == "exact" and want["cost_usd"] != cli_record(cli, JSON)["cost_usd"]
    server.put(doc)
    wait_for_version(envoy, hash_of(want["pricing_version"]))
    for headers in calls(envoy):
        assert headers["x-llm-cost"] == want["cost_usd"]
        assert headers["x-llm-pricing-version"] == "live-%s+%s" % (
            time.strftime("%Y-%m-%d", time.gmtime()), hash_of(want["pricing_version"]))
    stats = envoy.stats()
    assert stats.get(COUNTER % "ok", 0) >= 2, stats
    assert stats.get(AGE, 99) <= 3, stats.get(AGE)


def test_a_price_changed_at_the_server_changes_x_llm_cost_within_an_interval(live, cli):
    envoy, server = live
    doc = with_price(without_model(bundled()), "0.000001", "0.000002")
    want = expected(cli, doc)
    server.put(doc)
    started = time.monotonic()
    wait_for_version(envoy, hash_of(want["pricing_version"]))
    assert time.monotonic() - started < INTERVAL_S * 1.1 + 2  # an interval + jitter + slack of a busy machine
    for headers in calls(envoy):
        assert headers["x-llm-cost"] == want["cost_usd"]


def test_a_stream_that_spans_a_refresh_is_priced_with_one_table(live, cli, collector):
    envoy, server = live
    before = with_price(bundled(), "0.000004", "0.00002", model="openai/o3")
    after = with_price(bundled(), "0.000008", "0.00004", model="openai/o3")
    want_before, want_after = expected(cli, before, STREAM), expected(cli, after, STREAM)
    assert want_before["cost_usd"] != want_after["cost_usd"]
    server.put(before)
    wait_for_version(envoy, hash_of(want_before["pricing_version"]))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # 103 events 30 ms apart: about 3 s, over two refresh intervals.
        stream = pool.submit(send, envoy, STREAM, extra_headers={"x-replay-event-delay-ms": "30"}, timeout=30)
        time.sleep(0.3)
        server.put(after)
        wait_for_version(envoy, hash_of(want_after["pricing_version"]))
        assert not stream.done(), "the stream ended before the refresh: make it longer"
        resp, rid = stream.result(timeout=30)
    assert resp.status == 200 and resp.complete
    (record,) = collector.records_for(rid)
    assert hash_of(record["pricing_version"]) == hash_of(want_before["pricing_version"])
    assert record["cost_usd"] == want_before["cost_usd"], record
    assert record["priced_as"] == "openai/o3"


def test_a_live_document_gets_the_bundled_supplement_so_a_flex_call_stays_priced(live, cli, collector):
    """The bundled document itself, fetched live: the core adds pricing-data/supplement.json's
    LiteLLM prices (gpt-5's flex prices, which OpenRouter's data lacks), so the live table is the
    bundled one and a call served at flex is priced as with it, `priced_as` naming the supplement."""
    envoy, server = live
    want = cli_record(cli, FLEX)
    assert want["cost_status"] == "exact" and want["service_tier"] == "flex", want
    assert want["priced_as"] == "openai/gpt-5+litellm:gpt-5", want
    server.put(bundled())
    wait_for_version(envoy, hash_of(want["pricing_version"]))
    resp, rid = send(envoy, FLEX)
    assert resp.status == 200 and resp.complete
    (record,) = collector.records_for(rid)
    assert record["pricing_version"].startswith("live-"), record
    assert hash_of(record["pricing_version"]) == hash_of(want["pricing_version"])
    for field in ("cost_status", "cost_usd", "priced_as", "service_tier"):
        assert record[field] == want[field], (field, record)


def test_the_process_fetches_once_per_interval_not_once_per_worker(live):
    envoy, server = live
    time.sleep(4 * INTERVAL_S)
    times = server.fetch_times()
    recent = [t for t in times if t > times[-1] - 4 * INTERVAL_S]
    # Two workers fetching each would make ~8 in 4 s; one per interval (+ up to 10% jitter) ~4.
    assert 3 <= len(recent) <= 5, recent
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= INTERVAL_S * 0.9, gaps


@pytest.mark.parametrize("bad", ["malformed", "empty", "mostly_removed"])
def test_bad_documents_are_rejected_and_old_prices_stay(live, cli, bad):
    envoy, server = live
    good = with_price(without_model(bundled()), "0.000001", "0.000002")
    want = expected(cli, good)
    documents = {
        "malformed": b'{"data": [{"id": "x", "pricing": {"prompt": "cheap"',
        "empty": {"data": []},
        "mostly_removed": {"data": good["data"][: len(good["data"]) // 10]},
    }
    server.put(good)
    wait_for_version(envoy, hash_of(want["pricing_version"]))
    before = envoy.stats().get(COUNTER % "rejected", 0)
    server.put(documents[bad])
    harness.wait_until(lambda: envoy.stats().get(COUNTER % "rejected", 0) > before, 10,
                       interval=0.2, what="a rejected refresh")
    for headers in calls(envoy):
        assert hash_of(headers["x-llm-pricing-version"]) == hash_of(want["pricing_version"])
        assert headers["x-llm-cost"] == want["cost_usd"]
    code = {"malformed": "malformed", "empty": "no_priced_model", "mostly_removed": "too_many_removed"}[bad]
    assert "price document rejected (%s)" % code in envoy.log_text()
    # The same good document again: accepted, nothing to change.
    server.put(good)
    harness.wait_until(lambda: envoy.stats().get(COUNTER % "unchanged", 0) > 0, 10, interval=0.2,
                       what="an unchanged refresh")


def test_with_the_source_down_from_the_start_the_bundled_table_prices(envoy_bin, upstream, collector, cli):
    closed = harness.free_port()  # nothing listens there
    with tempfile.TemporaryDirectory() as tmp:
        text = envoy_config(upstream, collector, closed, os.path.join(tmp, "access.log"))
        envoy = harness.Envoy(envoy_bin, 0, 0, config_text=text, concurrency=2)
        try:
            harness.wait_until(lambda: envoy.stats().get(COUNTER % "failed", 0) >= 2, 10, interval=0.2,
                               what="failed refreshes")
            want = cli_record(cli, JSON)
            for headers in calls(envoy):
                assert headers["x-llm-pricing-version"] == want["pricing_version"]
                assert headers["x-llm-cost"] == want["cost_usd"]
            # Table age: since the bundled snapshot's date (days, not seconds).
            assert envoy.stats().get(AGE, 0) > 86400
        finally:
            envoy.stop()
