"""envoy/demo as a user runs it (the .wasm as last built): Envoy with the filter, `llm-cost collect`
storing the records, and `llm-cost report` over the stored files at the end, totalling exactly what
the CLI prices for the demo's two recorded calls."""

import os
import re
import subprocess
from decimal import Decimal

from support import harness
from support.calls import cli_record

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"


def test_demo_collects_with_llm_cost_collect_and_ends_with_the_report(envoy_bin, cli):
    env = dict(os.environ, LLM_COST_SKIP_BUILD="1", JSON_FIXTURE=JSON, STREAM_FIXTURE=STREAM)
    proc = subprocess.run([os.path.join(harness.ROOT, "envoy", "demo")], cwd=harness.ROOT, env=env,
                          capture_output=True, timeout=300)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout.decode(errors="replace"))
    assert proc.returncode == 0, out[-3000:] + proc.stderr.decode(errors="replace")[-3000:]
    assert "Cost records stored by llm-cost collect" in out
    assert re.search(r"^llm-cost-\d{4}-\d{2}-\d{2}\.ndjson$", out, re.M), out[-3000:]
    report = out.split("== 6. Spend report", 1)[1]
    total = sum(Decimal(cli_record(cli, name)["cost_usd"]) for name in (JSON, STREAM))
    assert "2 calls, " in report and "cost %s USD" % total in report, report
    # `by model` names the price-table id (the Prometheus label), not the dated answering name.
    for name in (JSON, STREAM):
        assert "\n  %s " % cli_record(cli, name)["priced_as"] in report, report
