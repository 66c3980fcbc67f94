"""observability/: the Grafana dashboard and the Prometheus alert rules are well-formed and query only
metrics the filter really exports (read from a real Envoy's /stats/prometheus)."""

import json
import os
import re

from support import harness
from support.calls import send

ASSETS = os.path.join(harness.ROOT, "observability")


def referenced_metrics():
    names = set()
    for name in ("grafana-dashboard.json", "prometheus-alerts.yml"):
        with open(os.path.join(ASSETS, name)) as f:
            names |= set(re.findall(r"\bllmcost_[a-z_]+", f.read()))
    return names


def test_dashboard_is_valid_grafana_json():
    with open(os.path.join(ASSETS, "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    assert dashboard["uid"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_has_a_team_variable_that_filters_the_spend_panels():
    with open(os.path.join(ASSETS, "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    [team] = [v for v in dashboard["templating"]["list"] if v["name"] == "team"]
    assert team["query"]["query"] == "label_values(llmcost_cost_micros_total, team)"
    # "All" is `.*`, which also matches series without a team label (attribution not configured).
    assert team["includeAll"] and team["allValue"] == ".*"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    per_call = [e for e in exprs if re.search(r"llmcost_(cost_micros|requests|[a-z]+_tokens)_total\b", e)]
    assert per_call and all('{team=~"$team"}' in e for e in per_call), per_call
    assert any(e.startswith("sum by (team)") for e in exprs)


def test_alert_rules_have_the_prometheus_shape():
    with open(os.path.join(ASSETS, "prometheus-alerts.yml")) as f:
        text = f.read()
    assert text.startswith("#") and "\ngroups:\n" in text
    assert len(re.findall(r"^      - alert: \w+$", text, re.M)) == len(re.findall(r"^        expr:", text, re.M)) == 10


def exported_after_calls(envoy_bin, upstream, collector_port, wait_for, pricing=None, budgets=None):
    """Metric names a real Envoy exports after calls that exercise every counter (a cached call, a
    reasoning call, a failing call)."""
    config = {"collector": {"flush_interval_ms": 100, "max_queue_records": 1}}
    if pricing:
        config["pricing"] = pricing
    if budgets:
        config["budgets"] = budgets
    e = harness.Envoy(envoy_bin, upstream.port, collector_port, plugin_config=config)
    try:
        for name, fault in [("openrouter-cache-all-settings-real-api-1", None),
                            ("openrouter-stream-error", None),
                            ("openrouter-cache-all-settings-real-api-0", "malformed"),
                            ("openrouter-cache-all-settings-real-api-0", None)]:
            send(e, name, fault=fault)
        harness.wait_until(lambda: all(name in e.prometheus() for name in wait_for), 10, what=str(wait_for))
        return set(re.findall(r"^(llmcost_[a-z_]+)", e.prometheus(), re.M))
    finally:
        e.stop()


def test_assets_query_only_metrics_the_filter_exports(envoy_bin, upstream, collector):
    # Delivering to the collector, then to a closed port (failures, a full queue dropping records).
    exported = exported_after_calls(envoy_bin, upstream, collector.port, ["llmcost_collector_sent_records_total"])
    exported |= exported_after_calls(
        envoy_bin, upstream, 1, ["llmcost_collector_dropped_records_total", "llmcost_collector_failures_total"])
    # Live prices from a cluster that does not exist: refreshes fail, the age gauge is the bundled table's.
    source = {"cluster": "no_such_cluster", "authority": "a", "path": "/p", "format": "openrouter",
              "refresh_interval_s": 1}
    exported |= exported_after_calls(envoy_bin, upstream, collector.port,
                                     ["llmcost_pricing_table_age_seconds", "llmcost_pricing_refreshes_total"],
                                     pricing={"source": source})
    # A budget of (almost) nothing per key: the first priced call crosses 50, 80 and 100 % at once.
    exported |= exported_after_calls(envoy_bin, upstream, collector.port, ["llmcost_budget_threshold_total"],
                                     budgets={"rules": [{"dimension": "key_id", "default_limit_usd": "0.000001",
                                                         "period": "month"}]})
    missing = referenced_metrics() - exported
    assert not missing, "dashboard/alerts query metrics the filter does not export: %s" % sorted(missing)


def test_sink_configs_receive_the_filters_ndjson_and_say_they_are_untested():
    # Neither otelcol nor vector installs from the registries reachable here: the files must say so.
    with open(os.path.join(ASSETS, "README.md")) as f:
        readme = f.read()
    for name, splits_lines in [("otelcol-llm-cost.yaml", "split_logs_at_newline: true"),
                               ("vector-llm-cost.yaml", "method: newline_delimited")]:
        with open(os.path.join(ASSETS, name)) as f:
            text = f.read()
        header = text.split("\n\n")[0]
        assert header.startswith("#") and "UNTESTED HERE" in header, name
        assert "path: /ingest" in text and splits_lines in text, name
        assert "\t" not in text, name  # YAML forbids tabs in indentation
        assert name in readme
