"""Documented names against the code, so they cannot drift. docs/CONFIGURATION.md (the one
reference for plugin_config, the Worker and --config) documents every configuration field the core
accepts (read from the core's configuration structs, so a new field without documentation fails
here) and no other; the `models` price keys, the `pricing_version` suffix, every `x-llm-` header
named anywhere, the stream comment's fields, JSON record examples, the report's dimensions, the
Worker's vars and its sink retries are the code's. (The README's record field table, header table
and error codes are checked against the serializer in core/tests/record_schema.rs.) Needs no Envoy
and no .wasm: `scripts/test-envoy --no-build tests/envoy/test_docs.py`."""

import json
import os
import re

from support import harness


def struct_fields(source, name):
    body = re.search(r"struct %s \{(.*?)\n\}" % name, source, re.S).group(1)
    return [m.group(1) for m in re.finditer(r"^\s+(?:pub )?(\w+):", body, re.M)]


def read(*parts):
    with open(os.path.join(harness.ROOT, *parts)) as f:
        return f.read()


def code_config_fields():
    """Every configuration field the code reads, as the reference table names them."""
    source = read("core", "src", "config.rs")
    budget_source = read("core", "src", "budget.rs")
    # `collector` is the Envoy filter's own section (the core passes it through).
    collector_source = read("plugin", "src", "collector.rs")
    attribution_source = read("core", "src", "attribution.rs")
    # `pricing` is the core's live-price section (core/src/price_doc.rs).
    price_doc_source = read("core", "src", "price_doc.rs")
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
    return fields


def test_every_plugin_config_field_is_in_the_reference_table():
    doc = read("docs", "CONFIGURATION.md")
    fields = code_config_fields()
    assert len(fields) > 10
    missing = [f for f in fields if "| `%s` |" % f not in doc]
    assert missing == [], "add these configuration fields to docs/CONFIGURATION.md: %s" % missing


# ---- Names the docs use must be names the code has (issue #26: they had drifted) -------------

def doc_files():
    """README and every Markdown, YAML and TOML file a user reads (docs, configs, manifests)."""
    out = [os.path.join(harness.ROOT, "README.md"), os.path.join(harness.ROOT, "worker", "wrangler.toml")]
    for top in ("docs", "envoy", "deploy", "kong", "observability"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(harness.ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("node_modules", "_bin", "schemas"))
            out += [os.path.join(dirpath, n) for n in sorted(filenames)
                    if n.endswith((".md", ".yaml", ".yml", ".toml"))]
    return out


def reference_table_keys(doc):
    """The backticked first cells of docs/CONFIGURATION.md's reference table (the first table)."""
    lines = doc.split("| field |", 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("| `"):
            break
        rows.append(line.split("`")[1])
    return rows


def test_every_key_in_the_reference_table_is_read_by_the_code():
    """The other direction of the test above: a renamed or removed field must leave the table."""
    documented = reference_table_keys(read("docs", "CONFIGURATION.md"))
    assert len(documented) > 20
    known = code_config_fields()
    unknown = [k for k in documented if k not in known]
    assert unknown == [], "docs/CONFIGURATION.md documents fields the code does not read: %s" % unknown


def price_keys():
    source = read("pricing-data", "src", "keys.rs")
    body = re.search(r"PRICE_KEYS: \[&str; \d+\] = \[(.*?)\];", source, re.S).group(1)
    return re.findall(r'"(\w+)"', body)


def service_tier_suffixes():
    source = read("pricing-data", "src", "keys.rs")
    body = re.search(r"SERVICE_TIER_SUFFIXES: \[&str; \d+\] = \[(.*?)\];", source, re.S).group(1)
    return re.findall(r'"(\w+)"', body)


def with_tier_keys(listed):
    """The documented base keys, and for each token key (all but `request`, `web_search`,
    `audio_second` and `input_character`, which are per request, per search, per second of audio and
    per character) its service-tier keys `<key>_<tier>`, as both docs word it."""
    keys = set(listed)
    for key in listed:
        if key not in ("request", "web_search", "audio_second", "input_character"):
            keys.update("%s_%s" % (key, tier) for tier in service_tier_suffixes())
    return sorted(keys)


def test_the_documented_price_keys_of_models_are_the_code_s():
    keys = sorted(price_keys())
    assert "prompt" in keys and "completion" in keys and "prompt_flex" in keys
    row = next(l for l in read("docs", "CONFIGURATION.md").splitlines() if l.startswith("| `models` |"))
    listed = re.search(r"keys as OpenRouter's pricing \(([^)]*)\)", row).group(1)
    assert "`<key>_flex`, `<key>_priority`, `<key>_batch`" in row, row
    assert with_tier_keys(re.findall(r"`(\w+)`", listed)) == keys, row
    wrangler = read("worker", "wrangler.toml")
    listed = re.search(r"# Price keys: ([^.]*)\.", wrangler).group(1)
    assert "<key>_flex, <key>_priority, <key>_batch" in wrangler.replace("#  ", "").replace("\n# ", " ")
    assert with_tier_keys([k.strip() for k in listed.replace("#", " ").split(",")]) == keys, listed


def test_pricing_version_suffix_is_the_one_the_code_writes_everywhere():
    kinds = re.findall(r'format!\("\{version\}\+(\w+)-\{\}"', read("core", "src", "config.rs"))
    assert kinds == ["cfg"], kinds
    wrong = []
    for path in doc_files():
        text = open(path).read()
        for m in re.finditer(r"\+(\w+)-(?:<hash>|…|\.\.\.|\{)", text):
            if m.group(1) != kinds[0]:
                wrong.append("%s: %s" % (os.path.relpath(path, harness.ROOT), m.group(0)))
    assert wrong == [], "the code writes `+%s-<hash>`: %s" % (kinds[0], wrong)


def test_every_x_llm_header_named_anywhere_is_in_the_readme_table():
    """core/tests/record_schema.rs checks that the README's header table is what the code emits
    (and README, docs/, envoy/ and wrangler.toml against it); this covers every other file a user
    reads: deploy/, kong/, observability/."""
    readme = read("README.md")
    table = [l.split("`")[1].lower() for l in readme.split("| header |", 1)[1].splitlines()[2:]
             if l.startswith("| `")]
    assert "x-llm-cost" in table
    # request headers: `key_id_header: true` sends `<prefix>key-id`; `tag:` sources read x-llm-tags.
    known = set(table) | {"x-llm-key-id", "x-llm-tags"}
    unknown = []
    for path in doc_files():
        for name in re.findall(r"x-llm-[a-z0-9-]*[a-z0-9]", open(path).read().lower()):
            if name not in known:
                unknown.append("%s: %s" % (os.path.relpath(path, harness.ROOT), name))
    assert unknown == [], unknown


def test_the_stream_comment_fields_in_the_readme_are_the_serialized_ones():
    body = re.search(r"struct CommentFields<'a> \{(.*?)\n\}", read("core", "src", "record.rs"), re.S).group(1)
    fields = re.findall(r"^\s+(\w+):", body, re.M)
    comment = re.search(r'`: llm-cost \{("cost_usd".*?)\}`', read("README.md")).group(1)
    assert re.findall(r'"(\w+)":', comment) == fields


def record_fields():
    readme = read("README.md").split("## The cost record", 1)[1]
    return [l.split("`")[1] for l in readme.split("| field |", 1)[1].splitlines()[2:] if l.startswith("| `")]


def test_record_fields_the_docs_name_are_record_fields():
    """"the record's `X`" anywhere in the docs names a field of the record's table (which
    core/tests/record_schema.rs keeps equal to the serializer)."""
    fields = set(record_fields())
    assert {"cost_usd", "cost_status", "priced_as", "attributes"} <= fields
    named, wrong = 0, []
    for path in doc_files():
        for name in re.findall(r"records?'s? `([a-z_]+)", open(path).read()):
            named += 1
            if name not in fields:
                wrong.append("%s: %s" % (os.path.relpath(path, harness.ROOT), name))
    assert named > 5 and wrong == [], wrong


def test_stream_comment_examples_in_the_docs_have_the_comment_s_fields():
    body = re.search(r"struct CommentFields<'a> \{(.*?)\n\}", read("core", "src", "record.rs"), re.S).group(1)
    fields = re.findall(r"^\s+(\w+):", body, re.M)
    examples, wrong = 0, []
    for path in doc_files():
        for example in re.findall(r": llm-cost (\{[^`\n]*\})", open(path).read()):
            keys = re.findall(r'"(\w+)":', example)
            examples += bool(keys)
            # A full example has every field in order; an elided one (`...`) a subset.
            ok = keys == fields if "..." not in example and "…" not in example else set(keys) <= set(fields)
            if not ok:
                wrong.append("%s: %s" % (os.path.relpath(path, harness.ROOT), example))
    assert examples >= 3 and wrong == [], wrong


def test_report_dimensions_in_the_docs_are_the_cli_s():
    source = read("cli", "src", "grouping.rs")
    body = re.search(r"pub const BUILT_IN: \[&str; \d+\] = \[(.*?)\];", source, re.S).group(1)
    built_in = re.findall(r'"(\w+)"', body)
    assert "model" in built_in and "answered_model" in built_in
    readme = read("README.md")
    listed = re.search(r"or a built-in dimension \(([^)]*)\)", readme).group(1)
    assert re.findall(r"`(\w+)`", listed) == built_in, listed
    # Every built-in dimension has a row in docs/COLLECT.md's report section.
    collect = read("docs", "COLLECT.md")
    missing = [d for d in built_in if "| `%s` |" % d not in collect]
    assert missing == [], "add to docs/COLLECT.md's dimension table: %s" % missing


def test_worker_vars_in_wrangler_toml_are_the_ones_the_worker_reads_and_documents():
    wrangler = read("worker", "wrangler.toml")
    section = re.search(r"^\[vars\]\n(.*?)(?=^\[|\Z)", wrangler, re.S | re.M).group(1)
    shipped = sorted(re.findall(r"^([A-Z][A-Z0-9_]+) =", section, re.M))
    source = "".join(read("worker", "src", n) for n in sorted(os.listdir(os.path.join(harness.ROOT, "worker", "src")))
                     if n.endswith(".rs"))
    read_by_code = sorted(set(re.findall(r'non_empty\("([A-Z][A-Z0-9_]+)"\)', source)))
    assert shipped == read_by_code
    worker_doc = read("docs", "WORKER.md")
    assert [v for v in shipped if "`%s`" % v not in worker_doc] == []


def test_collect_and_worker_docs_give_the_worker_s_sink_attempts():
    """docs/COLLECT.md once said the Worker does not retry while docs/WORKER.md said three attempts."""
    source = read("worker", "src", "delivery.rs")  # the direct POST, without the records Queue
    delays = re.search(r"SINK_RETRY_DELAYS_MS: \[u64; (\d+)\]", source)
    assert delays, "the Worker's sink retry delays moved: update this test and the docs"
    words = {1: "two", 2: "three", 3: "four", 4: "five"}
    attempts = "%s attempts" % words[int(delays.group(1))]
    for doc in (("docs", "COLLECT.md"), ("docs", "WORKER.md")):
        text = read(*doc)
        assert attempts in text, "%s should say %s" % (doc[-1], attempts)
        assert "does not retry" not in text
