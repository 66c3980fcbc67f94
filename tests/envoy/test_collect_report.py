"""Issue #8's "done when": a real Envoy with the filter delivers its records to a real
`llm-cost collect`, and `llm-cost report` over the collector's files totals exactly what the clients
were told (`X-LLM-Cost` header on JSON, trailer and `: llm-cost` comment on streams), call for call.
Issue #26: the report's `model` is the same id as the same Envoy's Prometheus `model` label, and a
call refused for its budget is reported as `refused`, with the model the client asked for.
"""

import collections
import glob
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
from decimal import Decimal

import pytest

from support import harness
from support.calls import fixture_names, key_id, recorded, send, split_comment


class Collect:
    """A running `llm-cost collect --listen 127.0.0.1:0 --out DIR [extra]`; killed by `stop` if still up."""

    def __init__(self, out_dir, extra=(), listen="127.0.0.1:0"):
        self.dir = out_dir
        self.log_path = os.path.join(out_dir, ".collect.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [harness.CLI, "collect", "--listen", listen, "--out", out_dir, *extra],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        # `listening on http://127.0.0.1:PORT/ingest`
        if not line.startswith("listening on http://127.0.0.1:"):
            self.stop()
            raise RuntimeError("llm-cost collect did not start: %r" % line)
        self.port = int(line.split("127.0.0.1:")[1].split("/")[0])

    def files(self):
        return sorted(glob.glob(os.path.join(self.dir, "llm-cost-*.ndjson")))

    def report(self, *args):
        files = self.files()
        if not files:
            return {"total": {"calls": 0, "cost_usd": "0"}, "malformed_lines": 0}
        out = subprocess.run([harness.CLI, "report", "--json", *args, *files], capture_output=True, timeout=30,
                             check=True)
        return json.loads(out.stdout)

    def records(self):
        return [json.loads(line) for path in self.files() for line in open(path)]

    def terminate(self, timeout=10):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


def client_cost(resp, gemini=False):
    """The cost the client was told: JSON header; on streams the trailer, which must agree with the
    `: llm-cost` comment (Gemini streams carry no comment by default: `stream_cost_comment`).
    Zero when nothing was priced (no header: never a made-up 0)."""
    header = resp.header("x-llm-cost")
    trailer = resp.trailers.get("x-llm-cost")
    _, comment = split_comment(resp.body)
    if trailer is not None or comment is not None or resp.trailers:
        assert header is None
        if not gemini:
            assert comment is not None and trailer == comment.get("cost_usd"), (trailer, comment)
        else:
            assert comment is None and resp.trailers.get("x-llm-cost-status"), resp.trailers
        return Decimal(trailer) if trailer is not None else Decimal(0)
    return Decimal(header) if header is not None else Decimal(0)


@pytest.fixture
def out_dir():
    d = tempfile.mkdtemp(prefix="llm-cost-collect-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_report_over_collected_files_equals_what_clients_were_told(envoy_bin, upstream, cli, out_dir):
    collect = Collect(out_dir)
    envoy = None
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, collect.port)
        names = fixture_names()
        assert len(fixture_names("json")) > 10 and len(fixture_names("sse")) > 10
        told, request_ids, priced = Decimal(0), set(), 0
        for name in names * 2:
            resp, rid = send(envoy, name)
            assert resp.status == 200 and resp.complete, name
            cost = client_cost(resp, gemini=recorded(name).provider == "gemini")
            priced += cost > 0
            told += cost
            request_ids.add(rid)
        calls = len(request_ids)
        assert calls == 2 * len(names) and priced > calls // 2

        harness.wait_until(lambda: collect.report()["total"]["calls"] >= calls, 30,
                           what="%d records in the collector's files" % calls)
        envoy.stop()  # no later batch can arrive: what is in the files now is final
        envoy = None
        assert collect.terminate() == 0, collect.log_text()

        report = collect.report()
        assert report["malformed_lines"] == 0
        assert report["total"]["calls"] == calls
        assert Decimal(report["total"]["cost_usd"]) == told
        print("collected %d calls (%d priced), %s USD, in %d file(s)" % (calls, priced, told, len(collect.files())))
        stored = [json.loads(line) for path in collect.files() for line in open(path)]
        assert sorted(r["request_id"] for r in stored) == sorted(request_ids), "each call stored exactly once"
        for path in collect.files():
            day = os.path.basename(path)[len("llm-cost-"):-len(".ndjson")]
            assert all(json.loads(line)["ts"].startswith(day) for line in open(path)), path
    finally:
        if envoy is not None:
            envoy.stop()
        collect.stop()


def prometheus_calls_by_model(envoy):
    """`model` label → calls, from the filter's per-model request counter in /stats/prometheus."""
    out = {}
    for line in envoy.prometheus().splitlines():
        m = re.match(r"^llmcost_requests(?:_total)?\{(.*)\} (\d+)$", line)
        if m:
            model = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))["model"]
            out[model] = out.get(model, 0) + int(m.group(2))
    return out


def test_report_models_are_the_prometheus_labels_and_budget_refusals_are_refused(envoy_bin, upstream, cli,
                                                                                  out_dir):
    collect = Collect(out_dir)
    envoy = None
    limited = "sk-report-refused-1"
    refused_calls = ["openrouter-cache-all-settings-real-api-0", "openrouter-stream-with-reasoning"]
    config = {"collector": {"flush_interval_ms": 100}, "budgets": {"limits_usd": {key_id(limited): "0"}}}
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, collect.port, plugin_config=config)
        names = fixture_names()
        for name in names:
            resp, _ = send(envoy, name)
            assert resp.status == 200 and resp.complete, name
        refused_ids = {}
        for name in refused_calls:
            resp, rid = send(envoy, name, extra_headers={"authorization": "Bearer " + limited})
            assert resp.status == 429, resp.body[:300]
            refused_ids[rid] = recorded(name).request_body["model"]
        calls = len(names) + len(refused_calls)
        prometheus = harness.wait_until(
            lambda: (lambda p: p if sum(p.values()) == calls else None)(prometheus_calls_by_model(envoy)), 10,
            what="%d calls counted in /stats/prometheus" % calls)
        harness.wait_until(lambda: collect.report()["total"]["calls"] >= calls, 30,
                           what="%d records in the collector's files" % calls)
        envoy.stop()
        envoy = None
        assert collect.terminate() == 0, collect.log_text()

        report = collect.report("--by", "model", "--by", "answered_model", "--by", "status")
        assert report["total"]["calls"] == calls and report["malformed_lines"] == 0
        by_model = report["by"]["model"]
        stored = collect.records()
        # One convention: every model label is a report model, the table entry that priced (or, for
        # a component without a price, named) the call; the calls Prometheus counts as `other` are
        # the ones no table entry matched (here the refused ones among them), which the report names
        # by their own model.
        unmatched = collections.Counter(r["model"] or r["model_requested"] for r in stored if r["priced_as"] is None)
        labelled = {m: n for m, n in prometheus.items() if m != "other"}
        assert len(labelled) > 5, prometheus
        assert labelled == collections.Counter(r["priced_as"] for r in stored if r["priced_as"]), prometheus
        matched_calls = {m: by_model[m]["calls"] - unmatched.get(m, 0) for m in labelled}
        assert matched_calls == labelled, (prometheus, by_model)
        assert prometheus.get("other", 0) == sum(r["priced_as"] is None for r in stored)
        # ... while answered_model keeps the names the upstreams answered with.
        answered = {r["model"] for r in stored if r["model"]}
        assert answered <= set(report["by"]["answered_model"]) and answered != set(labelled)

        # Refusals: their own status, the requested model (the filter read the held body first).
        assert report["by"]["status"]["refused"]["calls"] == len(refused_calls)
        for rid, model in refused_ids.items():
            [record] = [r for r in stored if r["request_id"] == rid]
            assert record["error"] == "budget_exceeded" and record["model_requested"] == model, record
        refused = collect.report("--where", "status=refused")
        assert refused["total"]["calls"] == len(refused_calls)
        assert sorted(refused["by"]["model"]) == sorted(set(refused_ids.values()))
        assert "unknown" not in refused["by"]["model"]
        # No OpenAI-style call reported an upstream cost, so those say n/a, not 0.
        openai = collect.report("--where", "provider=openai")
        assert openai["total"]["calls"] > 0 and openai["total"]["upstream_cost_usd"] is None, openai["total"]
    finally:
        if envoy is not None:
            envoy.stop()
        collect.stop()
