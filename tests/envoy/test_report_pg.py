"""Issue #19: `llm-cost report --postgres URL` sums the ledger in SQL and says exactly what
`llm-cost report` says over the NDJSON files of the same run.

Calls go through a real Envoy with the filter (attribution on: `team` from a header, `feature` from
a tag) to a real `llm-cost collect --out DIR`; a few hand-written records on other days and months
(an upstream-reported cost, an attribute value full of HTML, one unusable `cost_usd`) join them in
DIR. Every line of DIR is then delivered to a real `llm-cost collect --postgres URL` writing into a
real PostgreSQL server (tests/support/postgres.py). For a set of `--by` / `--where` / `--since` /
`--until` combinations, `report DIR/*.ndjson --json` and `report --postgres URL --json` must be the
same document, the table and the CSV the same text, and the HTML pages the same page — except where
a malformed record is named: a line of a file in one, a row id of `llm_cost_records` in the other.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from support import harness
from support.calls import fixture_names, send
from support.postgres import Postgres
from test_collect_report import Collect
from test_ledger import LedgerCollect

ATTRIBUTION = {
    "tags_header": "x-llm-tags",
    "dimensions": {"team": {"from": ["header:x-team"]}, "feature": {"from": ["tag:feature"]}},
}
TEAMS = ["search", "ads", "infra", None]
FEATURES = ["chat", "summary", "chat"]

EXTRA = [
    {"ts": "2026-10-30T08:00:00.000Z", "request_id": "x-1", "provider": "openai", "model": "openai/gpt-4o",
     "priced_as": "openai/gpt-4o", "key_id": "k-extra", "prompt_tokens": 1000, "completion_tokens": 10,
     "cost_usd": "0.0026", "cost_status": "ok", "attributes": {"team": "search"}},
    {"ts": "2026-11-03T23:59:59.999Z", "request_id": "x-2", "provider": "openrouter",
     "model": "anthropic/claude-4.6-sonnet-20260217", "priced_as": "anthropic/claude-sonnet-4.6",
     "prompt_tokens": 10, "completion_tokens": 20, "cost_usd": "0.00033", "upstream_cost_usd": "0.000341",
     "cost_status": "ok", "attributes": {"team": "<script>alert('t')</script>", "feature": "a&b\"c"}},
    {"ts": "2026-11-14T12:00:00.000Z", "request_id": "x-3", "provider": "openrouter", "model": "acme/private",
     "priced_as": None, "prompt_tokens": 5, "completion_tokens": 5, "cost_status": "unpriced",
     "upstream_cost_usd": "0", "attributes": {"team": "ads", "feature": ""}},
    {"ts": "2026-11-15T00:00:00.000Z", "request_id": "x-4", "provider": "openai",
     "model_requested": "openai/gpt-4o", "cost_status": "no_usage", "error": "budget_exceeded",
     "key_id": "k-extra"},
    {"ts": "2026-11-20T10:00:00.000Z", "request_id": "x-bad", "model": "openai/gpt-4o", "cost_usd": "1e5"},
]

COMBINATIONS = [
    [],
    ["--by", "team", "--by", "feature"],
    ["--by", "model", "--by", "day", "--where", "team=search"],
    ["--where", "team=search", "--where", "team=ads", "--by", "provider", "--by", "status"],
    ["--since", "2026-11-01", "--until", "2026-11-15"],
    ["--since", "2026-11-03T23:59:59.999Z", "--by", "key_id", "--by", "team", "--where", "provider=openrouter"],
    ["--by", "month", "--by", "answered_model", "--by", "host", "--by", "endpoint", "--top", "3"],
    ["--where", "status=refused", "--by", "model"],
    ["--where", "team=none", "--by", "feature", "--until", "2026-12-01"],
]


def report(*args):
    out = subprocess.run([harness.CLI, "report", *args], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode()


def without_malformed_names(doc):
    """The report minus where its malformed records are (file:line here, row id there)."""
    doc = dict(doc)
    doc.pop("malformed_at")
    return doc


@pytest.fixture(scope="module")
def run(envoy_bin, upstream, cli):
    """One run's NDJSON files and the same records in PostgreSQL: (files, postgres URL)."""
    out_dir = tempfile.mkdtemp(prefix="llm-cost-report-pg-")
    pg = Postgres()
    files_collect = Collect(out_dir)
    envoy = None
    ledger = None
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, files_collect.port,
                              plugin_config={"collector": {"flush_interval_ms": 100}, "attribution": ATTRIBUTION})
        names = fixture_names()
        for i, name in enumerate(names):
            headers = {"x-llm-tags": "feature=%s" % FEATURES[i % len(FEATURES)]}
            if TEAMS[i % len(TEAMS)]:
                headers["x-team"] = TEAMS[i % len(TEAMS)]
            resp, _ = send(envoy, name, extra_headers=headers)
            assert resp.status == 200 and resp.complete, name
        harness.wait_until(lambda: len(files_collect.records()) >= len(names), 60,
                           what="%d records in the collector's files" % len(names))
        envoy.stop()
        envoy = None
        assert files_collect.terminate() == 0, files_collect.log_text()
        with open(os.path.join(out_dir, "llm-cost-extra.ndjson"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in EXTRA))
        files = sorted(glob.glob(os.path.join(out_dir, "llm-cost-*.ndjson")))
        lines = [line for path in files for line in open(path) if line.strip()]
        assert len(lines) == len(names) + len(EXTRA)

        ledger = LedgerCollect(pg.url, harness.free_port())
        status, answer = ledger.post("".join(lines).encode())
        assert status == 200 and answer["stored"] == len(lines), answer
        assert ledger.terminate() == 0, ledger.log_text()
        yield files, pg.url
    finally:
        if envoy is not None:
            envoy.stop()
        files_collect.stop()
        if ledger is not None:
            ledger.close()
        pg.close()
        shutil.rmtree(out_dir, ignore_errors=True)


@pytest.mark.parametrize("args", COMBINATIONS, ids=lambda a: " ".join(a) or "default")
def test_postgres_report_equals_the_file_report(run, args):
    files, url = run
    from_files = json.loads(report("--json", *args, *files))
    from_pg = json.loads(report("--json", "--postgres", url, *args))
    assert without_malformed_names(from_pg) == without_malformed_names(from_files)
    assert from_files["total"]["calls"] > 0 or args, "the default report sees calls"
    # The one unusable record: a line of a file there, a row of the table here.
    assert from_files["malformed_lines"] == from_pg["malformed_lines"] == 1
    assert re.fullmatch(r".*llm-cost-extra\.ndjson:5", from_files["malformed_at"][0])
    assert re.fullmatch(r"llm_cost_records id:\d+", from_pg["malformed_at"][0]), from_pg["malformed_at"]
    assert report(*args, *files) == report("--postgres", url, *args), "the table"
    assert report("--csv", *args, *files) == report("--csv", "--postgres", url, *args), "the CSV"


def test_the_default_report_sees_every_call_and_team(run):
    files, url = run
    doc = json.loads(report("--json", "--postgres", url, "--by", "team"))
    assert doc["lines"] == len(fixture_names()) + len(EXTRA)
    assert set(doc["by"]["team"]) >= {"search", "ads", "infra", "none", "<script>alert('t')</script>"}
    assert doc["projection"] is not None and doc["total"]["upstream_cost_usd"] is not None


def test_postgres_html_page_is_the_file_page(run):
    files, url = run
    tmp = tempfile.mkdtemp(prefix="llm-cost-report-html-")
    try:
        pages = []
        for source in (list(files), ["--postgres", url]):
            path = os.path.join(tmp, "%d.html" % len(pages))
            report("--html", path, "--by", "model", *source)
            with open(path) as f:
                pages.append(f.read())
        strip = lambda page: re.sub(r" First: [^<]*\.</p>", "</p>", page)
        assert strip(pages[0]) == strip(pages[1])
        assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in pages[1]
        assert "<script>alert" not in pages[1]
        assert 'data-dimension="feature"' in pages[1], "every attribute gets its table"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
