"""observability/ against the real thing: `promtool` checks the alert rules and runs their unit tests
(observability/tests/), lints the filter's exposition, and a real Prometheus (Debian's 2.42) scrapes the
real Envoy's /stats/prometheus every second while metered calls run; every Grafana panel query and every
alert expression is then evaluated through Prometheus' HTTP API.

promtool or prometheus missing is a failure, never a skip: `.ci/run` installs Debian's `prometheus`
(as root); elsewhere `apt-get install prometheus`, or set $PROMTOOL / $PROMETHEUS.
"""

import calendar
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from support import harness
from support.calls import send

ASSETS = os.path.join(harness.ROOT, "observability")
RULES = os.path.join(ASSETS, "prometheus-alerts.yml")
RULE_TESTS = os.path.join(ASSETS, "tests")
DASHBOARD = os.path.join(ASSETS, "grafana-dashboard.json")
CALLS = ["openrouter-cache-all-settings-real-api-0", "openrouter-stream-with-reasoning",
         "openrouter-cache-all-settings-real-api-1", "openrouter-thinking-true-emits-effort-medium"]


def tool(name):
    path = os.environ.get(name.upper()) or shutil.which(name)
    if not path:
        pytest.fail("%s not found: apt-get install prometheus (Debian), or set $%s" % (name, name.upper()))
    return path


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def alert_names():
    with open(RULES) as f:
        return re.findall(r"^\s*- alert: (\w+)\s*$", f.read(), re.M)


def test_alert_rules_pass_promtool_check():
    out = run([tool("promtool"), "check", "rules", RULES])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: %d rules found" % len(alert_names()) in out.stdout


def test_every_alert_has_promtool_unit_tests_and_they_pass():
    tests = sorted(os.path.join(RULE_TESTS, n) for n in os.listdir(RULE_TESTS) if n.endswith(".test.yml"))
    text = ""
    for path in tests:
        with open(path) as f:
            text += f.read()
    for name in alert_names():
        # Fires past its threshold (an expected alert), and silent (no alert) in at least two cases:
        # below the threshold and a flat counter.
        fires = re.findall(r"alertname: %s\n\s+exp_alerts:\n\s+- exp_labels" % name, text)
        silent = re.findall(r"alertname: %s, exp_alerts: \[\]" % name, text)
        assert fires and len(silent) >= 2, "%s: promtool tests must show it firing, below threshold and flat" % name
    out = run([tool("promtool"), "test", "rules", *tests], cwd=RULE_TESTS)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def exposition(envoy, wait_for):
    """The llmcost_ families of `envoy`'s /stats/prometheus, once `wait_for` shows."""
    text = harness.wait_until(
        lambda: (lambda t: t if wait_for in t else None)(envoy.prometheus()), 10, what=wait_for)
    return "".join(block for block in re.split(r"(?m)^(?=# TYPE )", text) if "llmcost_" in block.split("\n", 1)[0])


def test_filter_exposition_passes_promtool_check_metrics(metered, undelivered):
    # Every counter shows: priced, cached and reasoning calls, a metering error, delivered records
    # (session Envoy), failed deliveries and dropped records (the second Envoy).
    for name in CALLS:
        send(metered, name, extra_headers={"x-team": TEAMS[0]})
        send(undelivered, name)
    send(metered, CALLS[0], fault="malformed")
    texts = [exposition(metered, 'llmcost_errors_total{reason="malformed_json"}'),
             exposition(undelivered, "llmcost_collector_dropped_records_total"),
             exposition(undelivered, 'llmcost_budget_threshold_total{threshold="100"')]
    with open(DASHBOARD) as f, open(RULES) as g:
        queried = set(re.findall(r"\bllmcost_[a-z_]+", f.read() + g.read()))
    linted = set(re.findall(r"(?m)^# TYPE (llmcost_[a-z_]+) ", "".join(texts)))
    assert queried <= linted, "not linted: %s" % sorted(queried - linted)
    # Only the llmcost_ families are checked: Envoy's own stats (e.g. its histograms) are not ours to
    # name. Counters end in `_total` (Envoy 1.40 exports a stat as it is named, adding no suffix, so
    # the filter names them so). One finding stays: no help text, which Envoy's /stats/prometheus never
    # prints for any stat (no HELP lines at all). Anything else fails.
    for text in texts:
        assert "# HELP" not in text, "Envoy prints help text now: drop the allowance below"
        families = re.findall(r"(?m)^# TYPE (llmcost_[a-z_]+) (\w+)$", text)
        assert families and all(n.endswith("_total") for n, kind in families if kind == "counter"), families
        out = run([tool("promtool"), "check", "metrics"], input=text)
        problems = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
        unexpected = [line for line in problems if not line.endswith("no help text")]
        assert not unexpected, "\n".join(problems)
        # promtool names each family it has a finding for: every one of ours, for help text only.
        assert {line.split()[0] for line in problems} == {n for n, _ in families}, problems


# -- a real Prometheus scraping real Envoys --------------------------------------------------


class Prometheus:
    def __init__(self, *targets):
        self.dir = tempfile.mkdtemp(prefix="llm-cost-prometheus-")
        self.port = harness.free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "rule_files: [%s]\n"
                    "scrape_configs:\n"
                    "  - job_name: envoy\n"
                    "    metrics_path: /stats/prometheus\n"
                    "    static_configs: [{targets: %s}]\n" % (json.dumps(RULES), json.dumps(list(targets))))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [tool("prometheus"), "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            harness.wait_until(self.ready, 30, interval=0.2, what="prometheus /-/ready")
        except BaseException:
            self.stop()
            raise

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("prometheus exited %s" % self.proc.returncode)
        try:
            return harness.http_text("http://127.0.0.1:%d/-/ready" % self.port, timeout=1)
        except OSError:
            return None

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        body = harness.http_json(url)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr, at=None):
        data = self.api("query", query=expr, **({"time": "%.3f" % at} if at else {}))
        assert data["resultType"] == "vector", (expr, data)
        return {json.dumps(s["metric"], sort_keys=True): float(s["value"][1]) for s in data["result"]}

    def stop(self):
        harness.stop_process(self.proc, timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# The attribution docs/CONFIGURATION.md shows: a `team` label on the spend, call and token counters
# (envoy/demo.yaml, the tests' template, carries its stats tag). Calls without x-team count as `none`.
ATTRIBUTION = {"dimensions": {"team": {"from": ["header:x-team"]}}, "metric_labels": ["team"]}
TEAMS = ["search", "ads"]
# A model the bundled price table does not know: an `unpriced` record with error `unknown_model`.
UNPRICED = "openrouter-tool-calling"


@pytest.fixture(scope="module")
def metered(envoy_bin, upstream, collector):
    """An Envoy delivering to the session collector, with the `team` label the dashboard filters on."""
    e = harness.Envoy(envoy_bin, upstream.port, collector.port,
                      plugin_config={"collector": {"flush_interval_ms": 100}, "attribution": ATTRIBUTION})
    yield e
    e.stop()


@pytest.fixture(scope="module")
def undelivered(envoy_bin, upstream):
    """A second Envoy whose collector is a closed port and whose queue holds one record: its
    delivery failures and dropped records feed the collector panels and alerts."""
    # Its live prices come from a cluster that does not exist: failed refreshes, and the table-age
    # gauge is the bundled table's (days), which makes LlmPricesStale true.
    source = {"cluster": "no_such_cluster", "authority": "a", "path": "/p", "format": "openrouter",
              "refresh_interval_s": 1}
    # A shadow budget of (almost) nothing per key: its first priced call crosses 50, 80 and 100 % at
    # once (llmcost_budget_threshold_total, LlmBudgetThresholdReached) and no call is refused.
    budgets = {"rules": [{"dimension": "key_id", "default_limit_usd": "0.000000001", "period": "month",
                          "mode": "shadow"}]}
    e = harness.Envoy(envoy_bin, upstream.port, 1, plugin_config={
        "collector": {"flush_interval_ms": 100, "max_queue_records": 1}, "attribution": ATTRIBUTION,
        "pricing": {"source": source}, "budgets": budgets})
    yield e
    e.stop()


@pytest.fixture(scope="module")
def prometheus(metered, undelivered):
    p = Prometheus(metered.admin, undelivered.admin)
    yield p
    p.stop()


def panel_range_s(panel, dashboard, at):
    """The seconds Grafana's `$__range` spans for `panel` when `now` is `at`: its relative time
    (`now/d`: since 00:00, `now/M`: since the 1st, in the dashboard's time zone, UTC) or the
    dashboard's `now-<n>h`."""
    assert dashboard.get("timezone") == "utc", "day and month panels start at 00:00 UTC, as PromQL's day_of_month()"
    now = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    relative = panel.get("timeFrom") or dashboard["time"]["from"]
    if relative == "now/d":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elif relative == "now/M":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        m = re.fullmatch(r"now-(\d+)h", relative)
        assert m, "panel %r: time range %r" % (panel["title"], relative)
        return int(m.group(1)) * 3600
    return max(1, int(at - start.timestamp()))  # Prometheus refuses an empty range


def month_elapsed(at):
    """The share of the month (UTC) past at `at`, as the projection panel computes it in PromQL."""
    now = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    days = calendar.monthrange(now.year, now.month)[1]
    return (now.day - 1 + (at % 86400) / 86400) / days


def grafana_substitute(expr, dashboard, chosen=None, range_s=3600):
    """`expr` with the dashboard's template variables replaced as Grafana does: a variable in
    `chosen` takes those values (one as is, several as a regex alternation), one set to All its
    allValue (`.*` when it has none: a regex matching every value), others their current value;
    Grafana's own interval variables take what a 1 s scrape interval gives, `$__range` the panel's
    time range in seconds (as Grafana's Prometheus data source writes it)."""
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "datasource":
            continue
        current = (chosen or {}).get(var["name"], (var.get("current") or {}).get("value"))
        if var.get("includeAll") and (current in (None, "$__all", ["$__all"])):
            value = var.get("allValue") or ".*"
        elif isinstance(current, list):
            value = current[0] if len(current) == 1 else "(" + "|".join(re.escape(v) for v in current) + ")"
        else:
            value = current if current is not None else ".*"
        expr = re.sub(r"\$\{%s(:[a-z]+)?\}|\$%s\b" % (var["name"], var["name"]), lambda _: value, expr)
    for name, value in [("__rate_interval", "4s"), ("__interval", "1s"), ("__range", "%ds" % range_s)]:
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    assert "$" not in expr, "unsubstituted variable in %r" % expr
    return expr


def seconds(window):
    m = re.fullmatch(r"(\d+)([smhd])", window)
    assert m, window
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def held(prometheus, at, series, window, by):
    """What Prometheus holds of counter selector `series` over `window` ending at `at`, per value
    of label `by` (None: all): (raw increase, the most rate()/increase() may extrapolate it to —
    Prometheus' documented rule: up to 1.1 scrape intervals past each edge)."""
    out = {}
    for s in prometheus.api("query", query="%s[%s]" % (series, window), time="%.3f" % at)["result"]:
        ts = [float(t) for t, _ in s["values"]]
        vs = [float(v) for _, v in s["values"]]
        assert vs == sorted(vs), "a counter never goes down: %s" % s["metric"]
        key = s["metric"].get(by) if by else None
        low, high = out.get(key, (0.0, 0.0))
        factor = 1 + 2 * 1.1 / (len(ts) - 1) if len(ts) > 1 else 1
        out[key] = (low + vs[-1] - vs[0], high + (vs[-1] - vs[0]) * factor)
    return out


# `rate(` / `increase(` of one llmcost_ counter selector over a window, in a panel query.
COUNTER = re.compile(r"\b(rate|increase)\((llmcost_\w+(?:\{[^}]*\})?)\[(\w+)\]\)")


def check_panels(prometheus, dashboard, at, expected, chosen, measured_since):
    """Evaluates every panel query with the template variables `chosen`, as Grafana would at `at`.
    A query over one counter is compared with what Prometheus holds of it (within Prometheus'
    extrapolation, in the panel's units) and with the measured calls' records (`expected`: per label
    value, cost in micro-USD, calls by error reason, unpriced calls, cached and prompt tokens),
    which it must at least show whenever its window covers them (they started at `measured_since`)."""
    for panel in dashboard["panels"]:
        range_s = panel_range_s(panel, dashboard, at)
        for target in panel["targets"]:
            expr = grafana_substitute(target["expr"], dashboard, chosen, range_s)
            title = "%s [%s]" % (panel["title"], chosen or "defaults")
            result = prometheus.query(expr, at)
            for v in result.values():
                assert v == v and v >= 0, (title, expr, result)  # no NaN, no negative
            by = re.search(r"\bby \(([a-z_, ]+)\)", expr)
            label = by.group(1) if by else None
            assert label is None or "," not in label, "one grouping label per panel: %s" % expr
            values = {json.loads(k)[label] if label else None: v for k, v in result.items()}
            counters = COUNTER.findall(expr)
            assert counters, (title, expr)
            window = counters[0][2]
            covers = seconds(window) >= at - measured_since
            # A window that began after the measured calls (a day or month a few seconds old) may hold
            # nothing yet; any other panel shows its series.
            assert result or not covers, "panel %r: %s returned no series" % (title, expr)
            keys = {tuple(sorted(json.loads(k))) for k in result}
            assert keys <= ({(label,)} if label else {()}), (title, expr, keys)
            if len(counters) == 1:
                kind, series, window = counters[0]
                # The panel's units: USD (micro-USD / 1e6), per hour (* 3600), per second (rate), and
                # the projection divides by the share of the month elapsed.
                scale = (1e6 if "/ 1e6" in expr else 1) / (3600 if "* 3600" in expr else 1)
                scale *= seconds(window) if kind == "rate" else 1
                if "days_in_month()" in expr:
                    scale *= month_elapsed(round(at, 3))
                got = {k: v * scale for k, v in values.items()}
                bounds = held(prometheus, at, series, window, label)
                if "or vector(0)" in expr and not bounds:
                    bounds = {None: (0.0, 0.0)}
                assert set(got) == set(bounds), (title, got, bounds)
                for key, value in got.items():
                    low, high = bounds[key]
                    assert low * 0.999999 - 1e-9 <= value <= high * 1.000001 + 1e-9, (title, key, value, bounds[key])
                metric = series.split("{")[0]
                mine = {}
                if metric == "llmcost_cost_micros_total":
                    mine = expected.get(label, {}) if label else {None: sum(expected["model"].values())}
                elif metric == "llmcost_errors_total" and label == "reason":
                    mine = expected["reason"]
                elif 'cost_status="unpriced"' in series:
                    mine = {None: expected["unpriced"]}
                for key, want in (mine.items() if covers else ()):
                    assert got.get(key, 0) >= want * 0.999999, (title, key, got, want)
            else:
                # A share: cached over prompt tokens, within what the two counters Prometheus holds
                # allow (the counters carry the records' tokens exactly: checked before), shown for
                # every model whose records have cached tokens.
                assert [c[1].split("{")[0] for c in counters] == [
                    "llmcost_cached_tokens_total", "llmcost_prompt_tokens_total"], (title, expr)
                (_, cached, window), (_, prompt, _) = counters
                cached = held(prometheus, at, cached, window, label)
                prompt = held(prometheus, at, prompt, window, label)
                assert set(values) == set(cached), (title, values, cached)
                for key, value in values.items():
                    (cl, ch), (pl, ph) = cached[key], prompt[key]
                    assert 0 < value <= 1 and cl / ph * 0.999999 <= value <= ch / pl * 1.000001, (title, key, value)
                if label == "model" and covers:
                    assert {m for m, (c, _) in expected["tokens"].items() if c} <= set(values), (title, values)
            if label in ("model", "team") and covers and len(counters) == 1:
                assert set(expected[label]) <= set(values), (title, values, expected[label])
            if label == "cost_status":
                assert values.get("exact", 0) > 0 and values.get("error", 0) > 0, (title, values)
            if label == "reason":
                assert values.get("malformed_json", 0) > 0, (title, values)
            if "llmcost_collector_" in expr or re.match(r"sum\(rate\(llmcost_\w+(\{[^}]*\})?\[5m\]\)\)$", expr):
                # A counter panel of one series: the second Envoy failed and dropped, the first delivered.
                assert values[None] > 0, (title, expr, values)


def test_real_prometheus_answers_every_panel_and_alert_from_the_real_envoy(metered, undelivered, collector,
                                                                          prometheus):
    harness.wait_until(lambda: list(prometheus.query('up{job="envoy"}').values()) == [1.0, 1.0], 15,
                       interval=0.2, what="prometheus scraping both envoys")
    # A first call per fixture and team makes every series exist before the measured calls (a counter
    # Prometheus first sees already at its value has no increase to show); then a quiet baseline.
    for name in CALLS:
        for team in TEAMS:
            send(metered, name, extra_headers={"x-team": team})
        send(undelivered, name)
    send(metered, CALLS[0], fault="malformed")
    send(metered, UNPRICED, extra_headers={"x-team": TEAMS[0]})
    time.sleep(2.5)
    measured_since = time.time()
    # On the second Envoy, failed deliveries and dropped records; and a key its shadow budget has not
    # seen: its first call crosses 50, 80 and 100 % (counters at 0 since configure, so increase() sees it).
    for name in CALLS:
        send(undelivered, name)
    send(undelivered, CALLS[0], extra_headers={"authorization": "Bearer sk-first-seen-by-the-shadow-budget"})
    scraped = {m: 'sum by (model, team) (llmcost_%s_total{instance="%s"})' % (m, metered.admin)
               for m in ("cost_micros", "cached_tokens", "prompt_tokens")}
    before = {m: prometheus.query(q) for m, q in scraped.items()}
    records = []
    for name in CALLS:
        for team in TEAMS:
            _, rid = send(metered, name, extra_headers={"x-team": team})
            records += collector.records_for(rid)
    expected = {"model": {}, "team": {}, "model, team": {}}
    for r in records:
        assert r["cost_status"] == "exact" and r["attributes"]["team"] in TEAMS, r
        for label, key in (("model", r["priced_as"]), ("team", r["attributes"]["team"]),
                           ("model, team", (r["priced_as"], r["attributes"]["team"]))):
            expected[label][key] = expected[label].get(key, 0) + int(r["cost_micros"])

    def tokens(team=None):
        out = {}
        for r in records:
            if team in (None, r["attributes"]["team"]):
                c, p = out.get(r["priced_as"], (0, 0))
                out[r["priced_as"]] = (c + (r.get("cached_tokens") or 0), p + (r.get("prompt_tokens") or 0))
        return out
    expected["tokens"] = tokens()

    def delta():
        out = {}
        for m, q in scraped.items():
            now = prometheus.query(q)
            out[m] = {(json.loads(k)["model"], json.loads(k)["team"]): v - before[m].get(k, 0)
                      for k, v in now.items() if v != before[m].get(k, 0)}
        return out
    # The scraped counters carry exactly the records' cost and tokens, per model and team (integers
    # below 2^53).
    want = {m: {} for m in scraped}
    for r in records:
        key = (r["priced_as"], r["attributes"]["team"])
        for m in scraped:
            n = int(r.get(m) or 0)
            if n:
                want[m][key] = want[m].get(key, 0.0) + n
    assert {k: int(v) for k, v in want["cost_micros"].items()} == expected["model, team"]
    harness.wait_until(lambda: delta() == want, 15, interval=0.2,
                       what="scraped spend and tokens %s equal to the records' %s" % (delta(), want))
    # Then metering errors: a malformed body and models the price table does not know (after the
    # priced calls: their tokens count under model `other`). Their counters have no team label.
    errors = 'sum by (reason) (llmcost_errors_total{instance="%s"})' % metered.admin
    errors_before = prometheus.query(errors)
    failed = []
    for name, fault in [(CALLS[0], "malformed"), (UNPRICED, None), (UNPRICED, None)]:
        _, rid = send(metered, name, fault=fault, extra_headers={"x-team": TEAMS[0]})
        failed += collector.records_for(rid)
    assert sorted(r["error"] for r in failed) == ["malformed_json", "unknown_model", "unknown_model"], failed
    assert [r["cost_status"] for r in failed].count("unpriced") == 2, failed
    expected["reason"] = {"malformed_json": 1, "unknown_model": 2}
    expected["unpriced"] = 2

    def errors_delta():
        return {json.loads(k)["reason"]: v - errors_before.get(k, 0) for k, v in prometheus.query(errors).items()
                if v != errors_before.get(k, 0)}
    harness.wait_until(lambda: errors_delta() == expected["reason"], 15, interval=0.2,
                       what="scraped errors by reason equal to the records' %s" % expected["reason"])
    time.sleep(2.5)  # a flat tail: the window of every rate() ends after the last increase
    at = time.time()

    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    variables = [v["name"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") != "datasource"]
    # The defaults (team: All), then one team chosen, as a user picks it in the drop-down.
    check_panels(prometheus, dashboard, at, expected, None, measured_since)
    if "team" in variables:
        team = TEAMS[0]
        mine = {"model": {m: c for (m, t), c in expected["model, team"].items() if t == team},
                "team": {team: expected["team"][team]}, "reason": expected["reason"],
                "unpriced": expected["unpriced"], "tokens": tokens(team)}
        check_panels(prometheus, dashboard, at, mine, {"team": [team]}, measured_since)

    # Every alert expression evaluates cleanly. A few test calls are far below the spend thresholds;
    # the second Envoy's failed deliveries make the collector alerts' expressions true: the dropped-records
    # alert (no `for:`) fires at once, the failing-collector one waits out its `for: 10m`, pending.
    quiet = {"LlmSpendRateHigh", "LlmSpendRateHighByModel"}
    # Its bundled-only prices make LlmPricesStale true, pending for its `for: 15m`.
    # The unpriced calls (a model the bundled table does not know) fire LlmUnpricedCalls at once.
    # Its shadow budget's 100 % event fires LlmBudgetThresholdReached at once.
    true_now = {"LlmCostCollectorFailing": "pending", "LlmCostRecordsDropped": "firing", "LlmPricesStale": "pending",
                "LlmUnpricedCalls": "firing", "LlmBudgetThresholdReached": "firing"}
    harness.wait_until(lambda: {a["labels"]["alertname"]: a["state"] for a in prometheus.api("alerts")["alerts"]
                                if a["labels"]["alertname"] in true_now} == true_now, 10, interval=0.2,
                       what="collector alerts %s (alerts: %s)" % (true_now, prometheus.api("alerts")))
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(alert_names())
    for rule in rules:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
        result = prometheus.query(rule["query"], at)
        if rule["name"] in quiet:
            assert result == {} and rule["state"] == "inactive", (rule["name"], result)
        if rule["name"] in true_now:
            assert result, (rule["name"], rule["query"])
        # The expression without its comparison answers too (the value the alert compares).
        lhs = re.split(r"\s>\s", rule["query"])[0]
        assert prometheus.query(lhs, at), (rule["name"], lhs)
