"""docs/CONFIGURATION.md (the one reference for plugin_config, the Worker and --config) documents
every configuration field the core accepts (read from the core's
configuration structs, so a new field without documentation fails here). Needs no Envoy and no
.wasm: `scripts/test-envoy --no-build tests/envoy/test_docs.py`."""

import os
import re

from support import harness


def struct_fields(source, name):
    body = re.search(r"struct %s \{(.*?)\n\}" % name, source, re.S).group(1)
    return [m.group(1) for m in re.finditer(r"^\s+(?:pub )?(\w+):", body, re.M)]


def test_every_plugin_config_field_is_in_the_reference_table():
    with open(os.path.join(harness.ROOT, "core", "src", "config.rs")) as f:
        source = f.read()
    with open(os.path.join(harness.ROOT, "docs", "CONFIGURATION.md")) as f:
        doc = f.read()
    with open(os.path.join(harness.ROOT, "core", "src", "budget.rs")) as f:
        budget_source = f.read()
    # `collector` is the Envoy filter's own section (the core passes it through).
    with open(os.path.join(harness.ROOT, "plugin", "src", "collector.rs")) as f:
        collector_source = f.read()
    with open(os.path.join(harness.ROOT, "core", "src", "attribution.rs")) as f:
        attribution_source = f.read()
    # `pricing` is the core's live-price section (core/src/price_doc.rs).
    with open(os.path.join(harness.ROOT, "core", "src", "price_doc.rs")) as f:
        price_doc_source = f.read()
    fields = [
        f
        for f in struct_fields(source, "ConfigFile")
        if f not in ("collector", "budgets", "attribution", "pricing")
    ]
    fields += ["attribution." + f for f in struct_fields(attribution_source, "AttributionFile")]
    fields += [
        "attribution.dimensions.<name>." + f
        for f in struct_fields(attribution_source, "DimensionFile")
    ]
    fields += ["pricing." + f for f in struct_fields(price_doc_source, "LivePricing") if f != "source"]
    fields += ["pricing.source." + f for f in struct_fields(price_doc_source, "PriceSource")]
    fields += ["collector." + f for f in struct_fields(collector_source, "CollectorConfig")]
    fields += ["budgets." + f for f in struct_fields(budget_source, "BudgetsFile")]
    fields += ["budgets.rules[]." + f for f in struct_fields(budget_source, "RuleFile")]
    assert len(fields) > 10
    missing = [f for f in fields if "| `%s` |" % f not in doc]
    assert missing == [], "add these configuration fields to docs/CONFIGURATION.md: %s" % missing
