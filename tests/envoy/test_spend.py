"""Issue #25, the admin view: calls through a real Envoy reach a real `llm-cost collect`, whose
running totals (`GET /v1/spend`) and `llm-cost budgets status` show the same spend the filter
enforces (the `spent_usd` of its 429, the sum of the `X-LLM-Cost` headers)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from support import harness
from support.calls import cli_record, key_id, send
from test_collect_report import Collect

JSON = "openrouter-cache-all-settings-real-api-0"
TOKEN = "spend-token-for-tests"


@pytest.fixture
def out_dir():
    d = tempfile.mkdtemp(prefix="llm-cost-spend-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spend(port, period, token=TOKEN):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/spend?period=%s" % (port, period))
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def spent(answer, dimension, value):
    for s in answer["spend"]:
        if s["dimension"] == dimension and s["value"] == value:
            return Decimal(s["spent_usd"])
    return Decimal(0)


def test_budgets_status_shows_the_spend_the_filter_enforces(envoy_bin, upstream, cli, out_dir):
    golden = cli_record(cli, JSON)
    cost = Decimal(golden["cost_usd"])
    api_key = "sk-spend-status-1"
    kid = key_id(api_key)
    config = {
        "collector": {"flush_interval_ms": 100},
        "attribution": {"dimensions": {"team": {"from": ["header:x-team"]}}},
        "budgets": {"reserve_usd": "0.000001", "rules": [
            {"dimension": "key_id", "limits_usd": {kid: str(cost * Decimal("2.5"))}, "period": "month"},
            {"dimension": "team", "default_limit_usd": "100", "period": "day", "mode": "shadow"},
        ]},
    }
    config_path = os.path.join(out_dir, "plugin_config.json")
    collect = Collect(out_dir, extra=["--spend-token", TOKEN])
    envoy = None
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, collect.port, plugin_config=config)
        headers = {"authorization": "Bearer " + api_key, "x-team": "search"}
        told = Decimal(0)
        for _ in range(3):
            resp, _ = send(envoy, JSON, extra_headers=headers)
            assert resp.status == 200, resp.body[:300]
            told += Decimal(resp.header("x-llm-cost"))
        resp, _ = send(envoy, JSON, extra_headers=headers)
        assert resp.status == 429
        enforced = Decimal(json.loads(resp.body)["error"]["spent_usd"])
        assert enforced == told == 3 * cost

        # The 4 records (the refusal included) reach the collector's running totals.
        harness.wait_until(lambda: spend(collect.port, "month")["records"] >= 4, 15,
                           what="4 records in the collector's totals")
        month = spend(collect.port, "month")
        assert spent(month, "key_id", kid) == enforced
        assert spent(month, "team", "search") == enforced
        # The model as budget rules match it (the price-table id), and the provider.
        assert spent(month, "model", golden["priced_as"]) == enforced
        assert spent(month, "provider", golden["provider"]) == enforced
        print(json.dumps(month))
        assert spent(spend(collect.port, "day"), "team", "search") == enforced
        with pytest.raises(urllib.error.HTTPError) as refused:
            spend(collect.port, "month", token=None)
        assert refused.value.code == 401

        with open(config_path, "w") as f:
            json.dump(config, f)
        collector_url = "http://127.0.0.1:%d" % collect.port
        args = [cli, "budgets", "status", "--collector", collector_url, "--config", config_path]
        env = dict(os.environ, LLM_COST_SPEND_TOKEN=TOKEN)
        out = subprocess.run(args + ["--json"], capture_output=True, timeout=30, env=env)
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)["budgets"]
        money = ("spent_usd", "limit_usd", "remaining_usd")
        assert [{k: Decimal(v) if k in money else v for k, v in row.items()} for row in rows] == [
            {"rule": 0, "dimension": "key_id", "value": kid, "period": "month", "mode": "enforce",
             "spent_usd": enforced, "limit_usd": cost * Decimal("2.5"), "remaining_usd": 0,
             "status": "over"},
            {"rule": 1, "dimension": "team", "value": "search", "period": "day", "mode": "shadow",
             "spent_usd": enforced, "limit_usd": 100, "remaining_usd": 100 - enforced,
             "status": "under"},
        ], rows
        table = subprocess.run(args, capture_output=True, timeout=30, env=env, text=True)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["RULE", "DIMENSION", "VALUE", "PERIOD", "MODE", "SPENT_USD",
                                    "LIMIT_USD", "REMAINING_USD", "STATUS"]
        first = lines[1].split()
        assert first[:5] == ["0", "key_id", kid, "month", "enforce"] and first[-2:] == ["0", "over"]
        assert Decimal(first[5]) == enforced and Decimal(first[6]) == cost * Decimal("2.5")
        # Without the token the collector refuses, and the CLI says what is missing.
        env.pop("LLM_COST_SPEND_TOKEN")
        denied = subprocess.run(args, capture_output=True, timeout=30, env=env, text=True)
        assert denied.returncode == 2 and "spend token" in denied.stderr, denied.stderr
        print("enforced %s USD; collector and budgets status agree" % enforced)
    finally:
        if envoy is not None:
            envoy.stop()
        collect.stop()


def test_a_key_over_budget_stays_refused_after_an_envoy_restart(envoy_bin, upstream, cli, out_dir):
    """`budgets.sync_interval_s`: the filter takes the collector's totals into its ledgers, so a
    new Envoy process (its shared data empty) refuses the key as the old one did."""
    cost = Decimal(cli_record(cli, JSON)["cost_usd"])
    api_key = "sk-spend-restart-1"
    kid = key_id(api_key)
    config = {
        "collector": {"flush_interval_ms": 100},
        "budgets": {"reserve_usd": "0.000001", "sync_interval_s": 1, "rules": [
            {"dimension": "key_id", "limits_usd": {kid: str(cost * Decimal("2.5"))}, "period": "month"},
        ]},
    }
    collect = Collect(out_dir)
    envoys = []

    def start():
        e = harness.Envoy(envoy_bin, upstream.port, collect.port, plugin_config=config)
        envoys.append(e)
        return e

    def synced(e):
        found = re.search(r"^llmcost_budget_syncs_total\S* (\d+)", e.prometheus(), re.M)
        return found is not None and int(found.group(1)) > 0

    try:
        first = start()
        headers = {"authorization": "Bearer " + api_key}
        for _ in range(3):
            resp, _ = send(first, JSON, extra_headers=headers)
            assert resp.status == 200, resp.body[:300]
        resp, _ = send(first, JSON, extra_headers=headers)
        assert resp.status == 429
        refused_spent = Decimal(json.loads(resp.body)["error"]["spent_usd"])
        assert refused_spent == 3 * cost
        harness.wait_until(lambda: spend(collect.port, "month", token=None)["records"] >= 4, 15,
                           what="the 4 records in the collector")
        first.stop()

        # A new Envoy process: its ledgers start empty, the first sync fills them.
        second = start()
        harness.wait_until(lambda: synced(second), 10, what="a budget sync in the new Envoy")
        resp, _ = send(second, JSON, extra_headers=headers)
        assert resp.status == 429, resp.body[:300]
        assert Decimal(json.loads(resp.body)["error"]["spent_usd"]) == refused_spent
        # Another key is not affected.
        resp, _ = send(second, JSON, extra_headers={"authorization": "Bearer sk-spend-restart-2"})
        assert resp.status == 200
    finally:
        for e in envoys:
            e.stop()
        collect.stop()


def metric(envoy, name):
    """The sum of the Prometheus series `name` (0 when absent)."""
    found = re.findall(r"^%s(?:\{[^}]*\})? (\d+)" % re.escape(name), envoy.prometheus(), re.M)
    return sum(int(v) for v in found)


@pytest.mark.parametrize("on_unknown", ["allow", "deny"])
def test_the_collector_down_at_start_gives_the_configured_behaviour(envoy_bin, upstream, cli, out_dir,
                                                                    on_unknown):
    """`budgets.on_unknown_spend`: with the collector down, calls are admitted against the
    Envoy's own ledgers (`allow`) or refused with a `503` `budget_spend_unknown` (`deny`), counted
    and logged, never held; once the collector is up, the first sync makes budgets normal."""
    cost = Decimal(cli_record(cli, JSON)["cost_usd"])
    api_key = "sk-spend-unknown-" + on_unknown
    kid = key_id(api_key)
    port = harness.free_port()  # nothing listens there yet
    config = {
        "collector": {"flush_interval_ms": 100, "timeout_ms": 500},
        "budgets": {"reserve_usd": "0.000001", "sync_interval_s": 1, "on_unknown_spend": on_unknown,
                    "spend_token": TOKEN, "rules": [
                        {"dimension": "key_id", "limits_usd": {kid: str(cost * Decimal("2.5"))},
                         "period": "month"}]},
    }
    envoy = harness.Envoy(envoy_bin, upstream.port, port, plugin_config=config)
    collect = None
    headers = {"authorization": "Bearer " + api_key}
    try:
        harness.wait_until(lambda: metric(envoy, "llmcost_budget_sync_failures_total") > 0, 10,
                           what="a failed budget sync")
        started = time.monotonic()
        resp, _ = send(envoy, JSON, extra_headers=headers)
        assert time.monotonic() - started < 2, "a call waited for the collector"
        passed = 0
        if on_unknown == "allow":
            assert resp.status == 200, resp.body[:300]
            passed = 1
        else:
            assert resp.status == 503, resp.body[:300]
            error = json.loads(resp.body)["error"]
            assert (error["code"], error["key_id"]) == ("budget_spend_unknown", kid), error
        # Counters reach Envoy at the root's next tick.
        harness.wait_until(lambda: metric(envoy, "llmcost_budget_spend_unknown_total") == 1, 5,
                           what="the call counted as spend unknown")
        assert metric(envoy, "llmcost_budget_syncs_total") == 0
        assert "the collector's spend is unknown" in envoy.log_text()

        # The collector comes up on that port: the next sync makes the spend known.
        collect = Collect(out_dir, extra=["--spend-token", TOKEN], listen="127.0.0.1:%d" % port)
        harness.wait_until(lambda: metric(envoy, "llmcost_budget_syncs_total") > 0, 10,
                           what="a successful budget sync")
        for _ in range(3 - passed):
            resp, _ = send(envoy, JSON, extra_headers=headers)
            assert resp.status == 200, resp.body[:300]
        resp, _ = send(envoy, JSON, extra_headers=headers)
        assert resp.status == 429, resp.body[:300]
        assert Decimal(json.loads(resp.body)["error"]["spent_usd"]) == 3 * cost
        assert metric(envoy, "llmcost_budget_spend_unknown_total") == 1
        assert metric(envoy, "llmcost_budget_sync_unauthorized_total") == 0
        assert "the collector's spend is known again" in envoy.log_text()
        assert TOKEN not in envoy.log_text()
    finally:
        envoy.stop()
        if collect is not None:
            collect.stop()


def test_a_wrong_spend_token_is_counted_and_logged_without_the_token(envoy_bin, upstream, out_dir):
    """The filter sends `budgets.spend_token` as a bearer; the collector's 401 is counted
    (`llmcost_budget_sync_unauthorized_total`), logged without the token, and the spend stays
    unknown (`deny`: 503)."""
    wrong = "not-the-spend-token-4242"
    collect = Collect(out_dir, extra=["--spend-token", TOKEN])
    config = {
        "collector": {"flush_interval_ms": 100},
        "budgets": {"sync_interval_s": 1, "on_unknown_spend": "deny", "spend_token": wrong, "rules": [
            {"dimension": "key_id", "default_limit_usd": "10", "period": "day"}]},
    }
    envoy = harness.Envoy(envoy_bin, upstream.port, collect.port, plugin_config=config)
    try:
        harness.wait_until(lambda: metric(envoy, "llmcost_budget_sync_unauthorized_total") > 0, 10,
                           what="a 401 from the collector")
        resp, _ = send(envoy, JSON, extra_headers={"authorization": "Bearer sk-spend-401"})
        assert resp.status == 503, resp.body[:300]
        log = envoy.log_text()
        assert "refused the spend token (401)" in log
        assert wrong not in log and TOKEN not in log
        assert metric(envoy, "llmcost_budget_syncs_total") == 0
    finally:
        envoy.stop()
        collect.stop()


def most_in_window(times, width):
    """The most of `times` (sorted seconds) inside any window `width` seconds long."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > width:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_two_envoys_sharing_a_collector_refuse_a_key_past_its_combined_limit(envoy_bin, upstream, cli,
                                                                            out_dir):
    """Two Envoy processes (separate shared data) sync from one collector: concurrent traffic
    through both stops once their combined spend passes the limit, and the overshoot is within the
    bound docs/BUDGETS.md states: what the other Envoy admits within one window W
    (`sync_interval_s` + `flush_interval_ms` + the answers' time, here 0.5 s), plus one call per
    call in flight. Then both refuse with the spend `llm-cost budgets status` shows."""
    cost = Decimal(cli_record(cli, JSON)["cost_usd"])
    api_key = "sk-spend-two-envoys"
    kid = key_id(api_key)
    limit = cost * 20
    sync_s, flush_ms, threads_per_envoy = 1, 100, 2
    config = {
        "collector": {"flush_interval_ms": flush_ms},
        "budgets": {"reserve_usd": "0.000001", "sync_interval_s": sync_s, "spend_token": TOKEN, "rules": [
            {"dimension": "key_id", "limits_usd": {kid: str(limit)}, "period": "month"}]},
    }
    collect = Collect(out_dir, extra=["--spend-token", TOKEN])
    envoys = []
    try:
        for _ in range(2):
            envoys.append(harness.Envoy(envoy_bin, upstream.port, collect.port, plugin_config=config))
        for e in envoys:
            harness.wait_until(lambda: metric(e, "llmcost_budget_syncs_total") > 0, 10, what="a first sync")
        headers = {"authorization": "Bearer " + api_key}
        results = {0: [], 1: []}  # envoy index -> [(monotonic seconds, status)]
        lock = threading.Lock()
        deadline = time.monotonic() + 60

        def client(index):
            for _ in range(400):  # bounded in count and time
                if time.monotonic() > deadline:
                    return
                resp, _ = send(envoys[index], JSON, extra_headers=headers)
                with lock:
                    results[index].append((time.monotonic(), resp.status))
                if resp.status != 200:
                    return
                time.sleep(0.02)

        workers = [threading.Thread(target=client, args=(i,)) for i in (0, 1) for _ in range(threads_per_envoy)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(90)
        statuses = [s for r in results.values() for _, s in r]
        assert set(statuses) == {200, 429}, statuses
        admitted = {i: sorted(t for t, s in r if s == 200) for i, r in results.items()}
        assert all(admitted.values()), "both Envoys served the key before it was spent"
        harness.wait_until(lambda: spend(collect.port, "month")["records"] >= len(statuses), 15,
                           what="every record in the collector")
        total = spent(spend(collect.port, "month"), "key_id", kid)
        calls = len(admitted[0]) + len(admitted[1])
        assert total == calls * cost
        overshoot = total - limit
        window = sync_s + flush_ms / 1000 + 0.5
        others = max(most_in_window(admitted[1 - i], window) for i in (0, 1))
        in_flight = 2 * threads_per_envoy
        bound = (others + in_flight) * cost
        print("limit %s USD (%d calls); admitted %d calls (%d + %d) = %s USD; overshoot %s USD "
              "(%.1f calls); bound %s USD (the other Envoy's most calls in %.1f s: %d, + %d in flight)"
              % (limit, limit / cost, calls, len(admitted[0]), len(admitted[1]), total, overshoot,
                 overshoot / cost, bound, window, others, in_flight))
        assert total >= limit
        assert overshoot <= bound

        # After the next sync both Envoys enforce the collector's total, which budgets status shows.
        for e in envoys:
            syncs = metric(e, "llmcost_budget_syncs_total")
            harness.wait_until(lambda: metric(e, "llmcost_budget_syncs_total") > syncs, 10, what="a sync")
        enforced = []
        for e in envoys:
            resp, _ = send(e, JSON, extra_headers=headers)
            assert resp.status == 429, resp.body[:300]
            enforced.append(Decimal(json.loads(resp.body)["error"]["spent_usd"]))
        config_path = os.path.join(out_dir, "plugin_config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        out = subprocess.run([cli, "budgets", "status", "--collector", "http://127.0.0.1:%d" % collect.port,
                              "--config", config_path, "--json"], capture_output=True, timeout=30,
                             env=dict(os.environ, LLM_COST_SPEND_TOKEN=TOKEN))
        assert out.returncode == 0, out.stderr
        [row] = json.loads(out.stdout)["budgets"]
        assert (row["value"], row["status"]) == (kid, "over")
        assert enforced == [Decimal(row["spent_usd"])] * 2 == [total] * 2, (enforced, row)
    finally:
        for e in envoys:
            e.stop()
        collect.stop()
