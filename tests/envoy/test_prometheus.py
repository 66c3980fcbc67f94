"""observability/ against the real thing: `promtool` checks the alert rules and runs their unit tests
(observability/tests/), lints the filter's exposition, and a real Prometheus (Debian's 2.42) scrapes the
real Envoy's /stats/prometheus every second while metered calls run; every Grafana panel query and every
alert expression is then evaluated through Prometheus' HTTP API.

promtool or prometheus missing is a failure, never a skip: `.ci/run` installs Debian's `prometheus`
(as root); elsewhere `apt-get install prometheus`, or set $PROMTOOL / $PROMETHEUS.
"""

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
             exposition(undelivered, "llmcost_collector_dropped_records_total")]
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
    e = harness.Envoy(envoy_bin, upstream.port, 1, plugin_config={
        "collector": {"flush_interval_ms": 100, "max_queue_records": 1}, "attribution": ATTRIBUTION,
        "pricing": {"source": source}})
    yield e
    e.stop()


@pytest.fixture(scope="module")
def prometheus(metered, undelivered):
    p = Prometheus(metered.admin, undelivered.admin)
    yield p
    p.stop()


def grafana_substitute(expr, dashboard, chosen=None):
    """`expr` with the dashboard's template variables replaced as Grafana does: a variable in
    `chosen` takes those values (one as is, several as a regex alternation), one set to All its
    allValue (`.*` when it has none: a regex matching every value), others their current value;
    Grafana's own interval variables take what a 1 s scrape interval gives."""
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
    for name, value in [("__rate_interval", "4s"), ("__interval", "1s"), ("__range", "1h")]:
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    assert "$" not in expr, "unsubstituted variable in %r" % expr
    return expr


def held(prometheus, at, selector, by):
    """What Prometheus holds of llmcost_cost_micros_total{selector} over the panels' windows (every sample is
    younger than 5m), per value of label `by` (None: all): (raw increase, the most rate()/increase()
    may extrapolate it to — Prometheus' documented rule: up to 1.1 scrape intervals past each edge)."""
    out = {}
    query = "llmcost_cost_micros_total{%s}[5m]" % selector
    for series in prometheus.api("query", query=query, time="%.3f" % at)["result"]:
        ts = [float(t) for t, _ in series["values"]]
        vs = [float(v) for _, v in series["values"]]
        assert vs == sorted(vs), "a counter never goes down: %s" % series["metric"]
        key = series["metric"][by] if by else None
        low, high = out.get(key, (0.0, 0.0))
        factor = 1 + 2 * 1.1 / (len(ts) - 1) if len(ts) > 1 else 1
        out[key] = (low + vs[-1] - vs[0], high + (vs[-1] - vs[0]) * factor)
    return out


def check_panels(prometheus, dashboard, at, expected, chosen, selector):
    """Evaluates every panel query with the template variables `chosen`; `expected` holds the
    measured calls' cost per label value; `selector` is the series the choice keeps."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = grafana_substitute(target["expr"], dashboard, chosen)
            title = "%s [%s]" % (panel["title"], chosen or "defaults")
            result = prometheus.query(expr, at)
            assert result, "panel %r: %s returned no series" % (title, expr)
            for v in result.values():
                assert v == v and v >= 0, (title, expr, result)  # no NaN, no negative
            by = re.search(r"\bby \(([a-z_, ]+)\)", expr)
            label = by.group(1) if by else None
            assert label is None or "," not in label, "one grouping label per panel: %s" % expr
            keys = {tuple(sorted(json.loads(k))) for k in result}
            assert keys == ({(label,)} if label else {()}), (title, expr, keys)
            values = {json.loads(k)[label] if label else None: v for k, v in result.items()}
            if "llmcost_cost_micros_total" in expr:
                # Spend: the panel's units (USD, USD/hour) over what Prometheus holds, and at least the
                # measured calls' cost from their records.
                scale = 1e6 / 3600 * 300 if "rate(" in expr else 1e6
                micros = {k: v * scale for k, v in values.items()}
                bounds = held(prometheus, at, selector, label)
                assert set(micros) == set(bounds), (title, micros, bounds)
                for key, value in micros.items():
                    low, high = bounds[key]
                    assert low * 0.999999 <= value <= high * 1.000001, (title, key, value, bounds[key])
                mine = expected.get(label, {}) if label else {None: sum(expected["model"].values())}
                for key, cost in mine.items():
                    assert micros.get(key, 0) >= cost * 0.999999, (title, key, micros, cost)
            if label in ("model", "team"):
                assert set(expected[label]) <= set(values), (title, values, expected[label])
            if label == "cost_status":
                assert values.get("exact", 0) > 0 and values.get("error", 0) > 0, (title, values)
            if label == "reason":
                assert values.get("malformed_json", 0) > 0, (title, values)
            if "llmcost_collector_" in expr or re.match(r"sum\(rate\(llmcost_\w+(\{[^}]*\})?\[5m\]\)\)$", expr):
                # A counter panel of one series: the second Envoy failed and dropped, the first delivered.
                assert values[None] > 0, (title, expr, values)
            if "/ sum(" in expr and "llmcost_cached_tokens_total" in expr:
                assert 0 < values[None] <= 1, (title, values)  # a share


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
    time.sleep(2.5)
    # Metering errors (a malformed body) and, on the second Envoy, failed deliveries and dropped records.
    send(metered, CALLS[0], fault="malformed")
    for name in CALLS:
        send(undelivered, name)
    scraped = 'sum by (model, team) (llmcost_cost_micros_total{instance="%s"})' % metered.admin
    before = prometheus.query(scraped)
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

    def delta():
        now = prometheus.query(scraped)
        return {(json.loads(k)["model"], json.loads(k)["team"]): v - before.get(k, 0)
                for k, v in now.items() if v != before.get(k, 0)}
    # The scraped counters carry exactly the records' cost, per model and team (integers below 2^53).
    want = {k: float(c) for k, c in expected["model, team"].items()}
    harness.wait_until(lambda: delta() == want, 15, interval=0.2,
                       what="scraped spend %s equal to the records' %s" % (delta(), want))
    time.sleep(2.5)  # a flat tail: the window of every rate() ends after the last increase
    at = time.time()

    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    variables = [v["name"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") != "datasource"]
    # The defaults (team: All), then one team chosen, as a user picks it in the drop-down.
    check_panels(prometheus, dashboard, at, expected, None, "")
    if "team" in variables:
        team = TEAMS[0]
        mine = {"model": {m: c for (m, t), c in expected["model, team"].items() if t == team},
                "team": {team: expected["team"][team]}}
        check_panels(prometheus, dashboard, at, mine, {"team": [team]}, 'team=~"%s"' % team)

    # Every alert expression evaluates cleanly. A few test calls are far below the spend thresholds;
    # the second Envoy's failed deliveries make the collector alerts' expressions true: the dropped-records
    # alert (no `for:`) fires at once, the failing-collector one waits out its `for: 10m`, pending.
    quiet = {"LlmSpendRateHigh", "LlmSpendRateHighByModel"}
    # Its bundled-only prices make LlmPricesStale true, pending for its `for: 15m`.
    true_now = {"LlmCostCollectorFailing": "pending", "LlmCostRecordsDropped": "firing", "LlmPricesStale": "pending"}
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
