"""Issue #19: `llm-cost report --html FILE` in a real browser (Debian's `chromium`, headless; `.ci/run`
installs it). The page is opened from file:// with networking off; it must render without a
single console message (errors, CSP violations, uncaught exceptions all land there), its script must
run to the end, and every number it shows — read back from the DOM Chromium dumps — must equal
`llm-cost report --json` on the same NDJSON: totals, month-end projection, each day's bar, the
tables by model, provider and each attribute, the top keys, upstream-vs-computed drift and the
malformed lines. Attribute values full of HTML come back as text, never as markup.
"""

import html.parser
import json
import os
import shutil
import subprocess
import tempfile
from decimal import Decimal

import pytest

from support import harness

EVIL_TEAM = "<img src=x onerror=alert(1)><script>alert(2)</script>"
EVIL_FEATURE = "\"' onmouseover=alert(3) x=\"&amp;"
MODELS = [("openai", "openai/gpt-4o"), ("openai", "openai/gpt-4.1-mini"),
          ("openrouter", "anthropic/claude-sonnet-4.6"), ("anthropic", "anthropic/claude-haiku-4.5")]
TEAMS = ["search", "ads", EVIL_TEAM, None]
FEATURES = ["chat", EVIL_FEATURE, "summary"]


def records():
    """40 calls over three weeks of November, some with an upstream-reported cost."""
    out = []
    for i in range(40):
        provider, model = MODELS[i % len(MODELS)]
        r = {"ts": "2026-11-%02dT%02d:%02d:00.000Z" % (1 + (i * 7) % 20, i % 24, i % 60),
             "request_id": "r-%d" % i, "provider": provider, "model": model, "priced_as": model,
             "key_id": "key-%d" % (i % 5), "prompt_tokens": 100 + 37 * i, "completion_tokens": 10 + 3 * i,
             "cost_usd": "0.%06d%03d" % (1234 * (i + 1), i), "cost_status": "ok", "attributes": {}}
        if TEAMS[i % len(TEAMS)]:
            r["attributes"]["team"] = TEAMS[i % len(TEAMS)]
        r["attributes"]["feature"] = FEATURES[i % len(FEATURES)]
        if provider == "openrouter":
            r["upstream_cost_usd"] = "0.%06d" % (1250 * (i + 1))
        out.append(r)
    return out


def chromium_bin():
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not installed: .ci/run installs it (apt-get install chromium)")
    return path


def chromium(*args):
    """Headless Chromium with a fresh profile and no background networking: (stdout, stderr)."""
    profile = tempfile.mkdtemp(prefix="llm-cost-chromium-")
    try:
        out = subprocess.run([chromium_bin(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-extensions",
                              "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0", *args],
                             capture_output=True, timeout=120)
        assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
        return out.stdout.decode(), out.stderr.decode(errors="replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def console_messages(stderr):
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class Page(html.parser.HTMLParser):
    """What the dumped DOM shows: numbers by (table, row value, field), the cards, the bars."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tables, self.cards, self.bars, self.tags = {}, {}, {}, []
        self.table = self.row = self.field = None
        self.section = None
        self.body = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "body":
            self.body = a
        if tag == "section":
            self.section = a.get("id")
        if tag == "table":
            self.table = a.get("data-dimension")
            self.tables[self.table] = {}
        if tag == "tr" and "data-value" in a:
            self.row = a["data-value"]
            self.tables[self.table][self.row] = {}
        if tag == "rect" and "data-day" in a:
            self.bars[a["data-day"]] = a["data-cost"]
        if "data-field" in a:
            self.field, self.text = a["data-field"], ""

    def handle_data(self, data):
        if self.field is not None:
            self.text += data

    def handle_endtag(self, tag):
        if self.field is not None and tag in ("td", "dd", "span"):
            if self.row is not None and self.table is not None:
                self.tables[self.table][self.row][self.field] = self.text
            else:
                self.cards[self.field] = self.text
            self.field = None
        if tag == "tr":
            self.row = None
        if tag == "table":
            self.table = None


@pytest.fixture
def sample(cli):
    tmp = tempfile.mkdtemp(prefix="llm-cost-report-html-")
    path = os.path.join(tmp, "calls.ndjson")
    with open(path, "w") as f:
        for r in records():
            f.write(json.dumps(r) + "\n")
        f.write('{"ts": "2026-11-05T00:00:00.000Z", "cost_usd": 12}\n')  # malformed: a number, not a string
        f.write("not json\n")
    yield tmp, path
    shutil.rmtree(tmp, ignore_errors=True)


def report(*args):
    out = subprocess.run([harness.CLI, "report", *args], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode()


def render(tmp, path, *args):
    page = os.path.join(tmp, "report.html")
    report("--html", page, *args, path)
    dom, stderr = chromium("--dump-dom", "file://" + page)
    assert console_messages(stderr) == [], "the page logged to the console"
    return Page(dom)


def test_console_messages_are_seen_when_a_page_has_them(tmp_path):
    """The check below is not vacuous: Chromium reports a page's console output and uncaught errors."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><body><script>console.error('seen'); throw new Error('thrown');</script>")
    _, stderr = chromium("--dump-dom", "file://%s" % page)
    messages = console_messages(stderr)
    assert any("seen" in m for m in messages) and any("Uncaught Error: thrown" in m for m in messages), stderr


def test_the_page_shows_the_numbers_of_report_json(sample):
    tmp, path = sample
    page = render(tmp, path)
    doc = json.loads(report("--json", path))
    assert page.body.get("data-ready") == "1", "the page's script ran to its end"

    total = doc["total"]
    for field in ("cost_usd", "upstream_cost_usd"):
        assert page.cards[field] == total[field]
    for field in ("calls", "prompt_tokens", "completion_tokens"):
        assert page.cards[field] == str(total[field])
    assert page.cards["to_date_usd"] == doc["projection"]["to_date_usd"]
    assert page.cards["projected_usd"] == doc["projection"]["projected_usd"]
    assert page.cards["malformed_lines"] == str(doc["malformed_lines"]) == "2"
    assert page.cards["lines"] == str(doc["lines"])

    assert page.bars == {day: t["cost_usd"] for day, t in doc["by"]["day"].items()}
    assert len(page.bars) == 20

    by_attribute = json.loads(report("--json", "--by", "team", "--by", "feature", path))["by"]
    for dimension, groups in [("model", doc["by"]["model"]), ("provider", doc["by"]["provider"]),
                              ("team", by_attribute["team"]), ("feature", by_attribute["feature"])]:
        shown = page.tables[dimension]
        assert set(shown) == set(groups), dimension
        for value, t in groups.items():
            row = shown[value]
            assert row["cost_usd"] == t["cost_usd"], (dimension, value)
            assert row["upstream_cost_usd"] == (t["upstream_cost_usd"] or "n/a"), (dimension, value)
            for field in ("calls", "prompt_tokens", "completion_tokens"):
                assert row[field] == str(t[field]), (dimension, value, field)
    assert EVIL_TEAM in page.tables["team"] and EVIL_FEATURE in page.tables["feature"]

    assert [(k, r["calls"], r["cost_usd"]) for k, r in page.tables["top_keys"].items()] == \
        [(k["key_id"], str(k["calls"]), k["cost_usd"]) for k in doc["top_keys"]]

    # Drift: over the calls that reported an upstream cost (here every openrouter one).
    computed = {}
    for r in records():
        if "upstream_cost_usd" in r:
            computed[r["priced_as"]] = computed.get(r["priced_as"], Decimal(0)) + Decimal(r["cost_usd"])
    assert set(page.tables["drift"]) == set(computed)
    for model, row in page.tables["drift"].items():
        t = doc["by"]["model"][model]
        assert row["upstream_reported_calls"] == str(t["upstream_reported_calls"])
        assert row["upstream_cost_usd"] == t["upstream_cost_usd"]
        assert Decimal(row["computed_usd"]) == computed[model]
        assert Decimal(row["drift_usd"]) == Decimal(t["upstream_cost_usd"]) - computed[model]

    # The attribute values are text: the page's one script, no image, nothing else.
    assert page.tags.count("script") == 1 and "img" not in page.tags


def test_by_dimensions_show_their_month_end_projection(sample):
    tmp, path = sample
    page = render(tmp, path, "--by", "team")
    doc = json.loads(report("--json", "--by", "team", path))
    for value, t in doc["by"]["team"].items():
        assert page.tables["team"][value]["projected_usd"] == (t["projected_usd"] or "-"), value


def test_a_screenshot_of_the_page(sample):
    tmp, path = sample
    page = os.path.join(tmp, "report.html")
    report("--html", page, path)
    png = os.path.join(tmp, "report.png")
    _, stderr = chromium("--screenshot=" + png, "--window-size=1100,1500", "--hide-scrollbars", "file://" + page)
    assert console_messages(stderr) == []
    with open(png, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10_000
