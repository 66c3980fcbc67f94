"""The deploy/ manifests against the real CRD schemas of Istio 1.30.3 and Envoy Gateway 1.9.0.

Each manifest is checked three ways:
  1. check-jsonschema against the openAPIV3Schema exactly as published (deploy/schemas/);
  2. check-jsonschema against a strict form of it: apiVersion and kind pinned, metadata checked
     like the API server does (name / namespace syntax), and unknown fields refused wherever the
     CRD does not preserve them (the API server's strict field validation, `kubectl apply
     --validate=strict`; plain JSON Schema would let a misspelt field through);
  3. the CRD's CEL rules (x-kubernetes-validations) on every path the manifest uses, through
     hand-written Python equivalents (no CEL engine here): a rule without an equivalent fails.
Mutated manifests must fail (the checks can fail). The inline plugin configuration of every
manifest goes through the real config parser (`llm-cost price --config`).
"""

import copy
import json
import os
import re
import subprocess
import sys
from urllib.parse import urlparse

import pytest

from deploy_common import (CLI, DEPLOY, MANIFESTS, PLACEHOLDER_DIGEST, PLACEHOLDER_IMAGE, ROOT, SCHEMAS, WASM,
                           manifest, run_package_oci, schema, yaml_dump, yaml_load)
from support import harness

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
FIXTURE = os.path.join(ROOT, "fixtures", "recordings", "openrouter-tool-calling.json")
FIXTURE_META = os.path.join(ROOT, "fixtures", "recordings", "openrouter-tool-calling.meta.json")


# -- schema machinery ---------------------------------------------------------------------------


def strict(node):
    """The schema with `additionalProperties: false` wherever the CRD lists properties and does
    not preserve unknown fields (structural schemas only have `properties` at node level)."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def strict_document_schema(api_version, kind, crd_schema):
    spec = strict(crd_schema["properties"]["spec"])
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name", "namespace"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "maxLength": 253, "pattern": DNS1123_SUBDOMAIN},
                    "namespace": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": spec,
        },
    }


def check_jsonschema(schema_path, doc_path):
    """Runs check-jsonschema; returns (exit code, output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", schema_path, doc_path],
        capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def strict_schema_file(tmp_path, api_version, kind, schema_name):
    path = tmp_path / ("strict-" + schema_name)
    path.write_text(json.dumps(strict_document_schema(api_version, kind, schema(schema_name))))
    return str(path)


def validate_doc(tmp_path, doc, api_version, kind, schema_name):
    """Strict check-jsonschema plus the CEL equivalents of one document; returns a list of errors."""
    doc_path = tmp_path / "doc.yaml"
    yaml_dump(doc, str(doc_path))
    code, out = check_jsonschema(strict_schema_file(tmp_path, api_version, kind, schema_name), str(doc_path))
    errors = [] if code == 0 else ["check-jsonschema: " + out.strip()]
    return errors + cel_violations(schema(schema_name), doc)


# -- CEL rules --------------------------------------------------------------------------------


def _url_scheme_ok(s):
    allowed = {"", "http", "https", "oci", "file"}
    u = urlparse(s)
    if u.scheme and (u.netloc or u.path):
        return u.scheme in allowed
    return urlparse("http://" + s).netloc != ""


def _eep_targets_ok(s):
    kinds = {"Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute"}
    refs = s.get("targetRefs")
    return refs is None or all(r.get("group") == "gateway.networking.k8s.io" and r.get("kind") in kinds
                               for r in refs)


def _ports_unique(ports):
    numbers = [p["number"] for p in ports]
    return len(numbers) == len(set(numbers))


# Python equivalents of the CEL rules our manifests meet, keyed by the rule's message (the rule
# text itself is checked below, so a changed rule with the same message is noticed too).
CEL = {
    "only one of targetRefs or selector can be set": (
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        lambda s: sum(k in s for k in ("selector", "targetRef", "targetRefs")) <= 1),
    "wildcard not allowed in label key match": (
        'self.all(key, !key.contains("*"))', lambda s: all("*" not in k for k in s)),
    "key must not be empty": ("self.all(key, key.size() != 0)", lambda s: all(len(k) for k in s)),
    "wildcard not allowed in label value match": ('!self.contains("*")', lambda s: "*" not in s),
    "wildcard is not supported in selector": ('!self.contains("*")', lambda s: "*" not in s),
    "url must have schema one of [http, https, file, oci]": (
        'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) &&\n'
        'url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])', _url_scheme_ok),
    "only one of targetRefs or workloadSelector can be set": (
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        lambda s: sum(k in s for k in ("workloadSelector", "targetRefs")) <= 1),
    "only support waypointMatch when context is WAYPOINT": (
        'has(self.context) ? ((self.context == "WAYPOINT") ? has(self.waypoint) : !has(self.waypoint)) : !has(self.waypoint)',
        lambda s: (("waypoint" in s) == (s.get("context") == "WAYPOINT"))),
    "only one of WorkloadSelector or Endpoints can be set": (
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.endpoints) ? 1 : 0) <= 1",
        lambda s: sum(k in s for k in ("workloadSelector", "endpoints")) <= 1),
    "CIDR addresses are allowed only for NONE/STATIC resolution types": (
        '!((has(self.addresses) ? self.addresses : []).exists(k, k.contains("/")) && !((has(self.resolution) ? self.resolution : "NONE") in ["STATIC", "NONE"]))',
        lambda s: not (any("/" in a for a in s.get("addresses", []))
                       and s.get("resolution", "NONE") not in ("STATIC", "NONE"))),
    "NONE mode cannot set endpoints": (
        '((has(self.resolution) ? self.resolution : "NONE") == "NONE") ? !has(self.endpoints) : true',
        lambda s: s.get("resolution", "NONE") != "NONE" or "endpoints" not in s),
    "DNS_ROUND_ROBIN mode cannot have multiple endpoints": (
        '((has(self.resolution) ? self.resolution : "") == "DNS_ROUND_ROBIN") ? ((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true',
        lambda s: s.get("resolution") != "DNS_ROUND_ROBIN" or len(s.get("endpoints", [])) <= 1),
    "hostname cannot be wildcard": ('self != "*"', lambda s: s != "*"),
    "port number cannot be duplicated": (
        "self.all(l1, self.exists_one(l2, l1.number == l2.number))", _ports_unique),
    "port must be between 1-65535": ("0 < self && self <= 65535", lambda s: 0 < s <= 65535),
    "either targetRef or targetRefs must be used": (
        "(has(self.targetRef) && !has(self.targetRefs)) || (!has(self.targetRef) && has(self.targetRefs)) || (has(self.targetSelectors) && self.targetSelectors.size() > 0)",
        lambda s: ("targetRef" in s) != ("targetRefs" in s) or len(s.get("targetSelectors", [])) > 0),
    "this policy can only have a targetRef.group of gateway.networking.k8s.io": (
        "has(self.targetRef) ? self.targetRef.group == 'gateway.networking.k8s.io' : true",
        lambda s: "targetRef" not in s or s["targetRef"].get("group") == "gateway.networking.k8s.io"),
    "this policy can only have a targetRef.kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/TLSRoute": (
        None, lambda s: "targetRef" not in s or _eep_targets_ok({"targetRefs": [s["targetRef"]]})),
    "this policy can only have a targetRefs[*].group of gateway.networking.k8s.io": (
        None, lambda s: all(r.get("group") == "gateway.networking.k8s.io" for r in s.get("targetRefs", []))),
    "this policy can only have a targetRefs[*].kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/TLSRoute": (
        None, _eep_targets_ok),
    "mergeType can only be used with xRoute targets": (None, lambda s: "mergeType" not in s),
    "If type is HTTP, http field needs to be set.": (
        "self.type == 'HTTP' ? has(self.http) : !has(self.http)", lambda s: (s["type"] == "HTTP") == ("http" in s)),
    "If type is Image, image field needs to be set.": (
        "self.type == 'Image' ? has(self.image) : !has(self.image)", lambda s: (s["type"] == "Image") == ("image" in s)),
}


def cel_rules(node_schema, inst, path, out):
    """Collects (path, rule, message, value) for every CEL rule on a path present in `inst`."""
    for r in node_schema.get("x-kubernetes-validations") or []:
        out.append((path or ".", r["rule"], r.get("message"), inst))
    if isinstance(inst, dict):
        props = node_schema.get("properties", {})
        extra = node_schema.get("additionalProperties")
        for k, v in inst.items():
            if k in props:
                cel_rules(props[k], v, path + "." + k, out)
            elif isinstance(extra, dict):
                cel_rules(extra, v, path + "." + k, out)
    elif isinstance(inst, list) and isinstance(node_schema.get("items"), dict):
        for i, v in enumerate(inst):
            cel_rules(node_schema["items"], v, "%s[%d]" % (path, i), out)
    return out


def cel_violations(crd_schema, doc):
    errors = []
    for path, rule, message, value in cel_rules(crd_schema, doc, "", []):
        if message not in CEL:
            errors.append("%s: CEL rule without a Python equivalent here: %s (%s)" % (path, rule, message))
            continue
        expected_rule, check = CEL[message]
        if expected_rule is not None and " ".join(rule.split()) != " ".join(expected_rule.split()):
            errors.append("%s: CEL rule %r changed to %r" % (path, expected_rule, rule))
        elif not check(value):
            errors.append("%s: CEL rule fails: %s" % (path, message))
    return errors


# -- every manifest, as published and strictly ---------------------------------------------------


def test_every_shipped_manifest_is_validated():
    shipped = sorted(os.path.relpath(os.path.join(d, f), DEPLOY)
                     for sub in ("istio", "envoy-gateway")
                     for d, _, files in os.walk(os.path.join(DEPLOY, sub)) for f in files if f.endswith(".yaml"))
    assert shipped == sorted(m[0] for m in MANIFESTS)


@pytest.mark.parametrize("rel,api_version,kind,schema_name", MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_manifest_matches_published_schema(rel, api_version, kind, schema_name):
    code, out = check_jsonschema(os.path.join(SCHEMAS, schema_name), os.path.join(DEPLOY, rel))
    assert code == 0, out


@pytest.mark.parametrize("rel,api_version,kind,schema_name", MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_manifest_strict(tmp_path, rel, api_version, kind, schema_name):
    assert validate_doc(tmp_path, manifest(rel), api_version, kind, schema_name) == []


def test_cel_rules_are_evaluated():
    """The manifests meet CEL rules (so the CEL check is not vacuous)."""
    seen = {m for rel, _, _, s in MANIFESTS for _, _, m, _ in cel_rules(schema(s), manifest(rel), "", [])}
    assert "If type is Image, image field needs to be set." in seen
    assert "url must have schema one of [http, https, file, oci]" in seen
    assert "only one of targetRefs or selector can be set" in seen


# -- the checks can fail ---------------------------------------------------------------------------


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()

MUTATIONS = [
    # (manifest, path, new value, text expected in the errors)
    ("istio/wasmplugin.yaml", ["spec", "phase"], "LAST", "LAST"),
    ("istio/wasmplugin.yaml", ["spec", "sha256"], "sha256:abc", "sha256"),
    ("istio/wasmplugin.yaml", ["spec", "url"], _DELETE, "url"),
    ("istio/wasmplugin.yaml", ["spec", "pluginConfg"], {"a": 1}, "pluginConfg"),
    ("istio/wasmplugin.yaml", ["spec", "failStrategy"], "FAIL_OPENLY", "FAIL_OPENLY"),
    ("istio/wasmplugin.yaml", ["spec", "targetRefs"], [{"kind": "Gateway", "name": "gw"}], "only one of targetRefs"),
    ("istio/wasmplugin.yaml", ["spec", "url"], "ftp://registry.example.com/x", "url must have schema"),
    ("istio/wasmplugin.yaml", ["kind"], "WasmPlugins", "$.kind"),
    ("istio/wasmplugin.yaml", ["metadata", "name"], "LLM_Cost", "$.metadata.name"),
    ("istio/envoyfilter.yaml", ["spec", "configPatches", 0, "applyTo"], "EXTENSION", "EXTENSION"),
    ("istio/envoyfilter.yaml", ["spec", "configPatches", 1, "patch", "operation"], "PREPEND", "PREPEND"),
    ("istio/collector-serviceentry.yaml", ["spec", "resolution"], "DYNAMIC", "DYNAMIC"),
    ("istio/collector-serviceentry.yaml", ["spec", "ports", 0, "number"], 70000, "port must be between"),
    ("envoy-gateway/extension-policy.yaml", ["spec", "wasm", 0, "code", "type"], "OCI", "OCI"),
    ("envoy-gateway/extension-policy.yaml", ["spec", "wasm", 0, "code", "image"], _DELETE, "image field needs to be set"),
    ("envoy-gateway/extension-policy.yaml", ["spec", "wasm", 0, "failopen"], True, "failopen"),
    ("envoy-gateway/extension-policy.yaml", ["spec", "targetRefs"], _DELETE, "either targetRef or targetRefs"),
    ("envoy-gateway/patch-policy.yaml", ["spec", "jsonPatches", 0, "operation", "op"], "merge", "merge"),
    ("envoy-gateway/patch-policy.yaml", ["spec", "jsonPatches", 1, "type"], "type.googleapis.com/envoy.config.cluster.v3.Clusters", "Clusters"),
]


@pytest.mark.parametrize("rel,path,value,expect", MUTATIONS,
                         ids=["%s:%s" % (m[0], ".".join(map(str, m[1]))) for m in MUTATIONS])
def test_mutated_manifest_fails(tmp_path, rel, path, value, expect):
    _, api_version, kind, schema_name = next(m for m in MANIFESTS if m[0] == rel)
    doc = copy.deepcopy(manifest(rel))
    _set(doc, path, value)
    errors = validate_doc(tmp_path, doc, api_version, kind, schema_name)
    assert errors, "mutation %s=%r was accepted" % (path, value)
    assert expect in "\n".join(errors), errors


# -- the manifests agree with each other ---------------------------------------------------------


def istio_plugin_configs():
    """The plugin configuration of each Istio manifest, as the JSON text Envoy hands the filter."""
    wasmplugin = manifest("istio/wasmplugin.yaml")["spec"]["pluginConfig"]
    ef = manifest("istio/envoyfilter.yaml")["spec"]["configPatches"][0]["patch"]["value"]
    envoyfilter_text = ef["typed_config"]["config"]["configuration"]["value"]
    return {"wasmplugin": struct_json(wasmplugin), "envoyfilter": envoyfilter_text}


def struct_json(obj):
    """JSON of a google.protobuf.Struct as Istio sends it (protojson: every number is a double,
    written without exponent or `.0` below 1e21), which is how `pluginConfig` reaches the filter."""
    def conv(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            f = float(v)
            return int(f) if f.is_integer() and abs(f) < 1e21 else f
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return [conv(x) for x in v]
    return json.dumps(conv(obj))


def test_istio_wasmplugin_and_envoyfilter_carry_the_same_configuration():
    configs = istio_plugin_configs()
    assert json.loads(configs["wasmplugin"]) == json.loads(configs["envoyfilter"])


def test_istio_collector_cluster_is_the_serviceentry_cluster():
    se = manifest("istio/collector-serviceentry.yaml")["spec"]
    expected = {"outbound|%d||%s" % (p["number"], h) for h in se["hosts"] for p in se["ports"]}
    for name, text in istio_plugin_configs().items():
        assert json.loads(text)["collector"]["cluster"] in expected, name
    assert manifest("istio/collector-serviceentry.yaml")["metadata"]["namespace"] == \
        manifest("istio/wasmplugin.yaml")["metadata"]["namespace"]


def test_envoy_gateway_patch_policy_targets_the_generated_filter_and_adds_the_collector():
    eep = manifest("envoy-gateway/extension-policy.yaml")
    epp = manifest("envoy-gateway/patch-policy.yaml")
    assert eep["metadata"]["namespace"] == epp["metadata"]["namespace"]
    # Envoy Gateway 1.9 names the filter envoy.filters.http.wasm/envoyextensionpolicy/<ns>/<name>/wasm/<idx>.
    filter_name = "envoy.filters.http.wasm/envoyextensionpolicy/%s/%s/wasm/0" % (
        eep["metadata"]["namespace"], eep["metadata"]["name"])
    flag, cluster = epp["spec"]["jsonPatches"]
    assert filter_name in flag["operation"]["jsonPath"]
    assert flag["operation"]["path"] == "/allow_on_headers_stop_iteration" and flag["operation"]["value"] is True
    assert cluster["operation"]["path"] == "" and cluster["operation"]["op"] == "add"
    assert cluster["name"] == cluster["operation"]["value"]["name"] == \
        eep["spec"]["wasm"][0]["config"]["collector"]["cluster"]


def test_checked_in_manifests_carry_the_placeholders_package_oci_replaces():
    for rel in ("istio/wasmplugin.yaml", "istio/envoyfilter.yaml", "envoy-gateway/extension-policy.yaml"):
        with open(os.path.join(DEPLOY, rel)) as f:
            text = f.read()
        assert PLACEHOLDER_IMAGE in text and PLACEHOLDER_DIGEST in text, rel


def test_rendered_manifests_carry_the_image_and_its_manifest_digest(tmp_path):
    out = tmp_path / "rendered"
    proc = run_package_oci("--out", str(tmp_path / "oci"), "--image", "ghcr.io/acme/llm-cost-plugin:1.2.3",
                           "--render", str(out))
    assert proc.returncode == 0, proc.stderr
    digest = re.search(r"^manifest digest: sha256:([0-9a-f]{64})$", proc.stdout, re.M).group(1)
    assert digest != PLACEHOLDER_DIGEST
    wp = yaml_load(str(out / "istio" / "wasmplugin.yaml"))
    assert wp["spec"]["url"] == "oci://ghcr.io/acme/llm-cost-plugin:1.2.3"
    assert wp["spec"]["sha256"] == digest
    remote = yaml_load(str(out / "istio" / "envoyfilter.yaml"))["spec"]["configPatches"][0]["patch"]["value"][
        "typed_config"]["config"]["vm_config"]["code"]["remote"]
    assert remote["http_uri"]["uri"] == "oci://ghcr.io/acme/llm-cost-plugin:1.2.3" and remote["sha256"] == digest
    image = yaml_load(str(out / "envoy-gateway" / "extension-policy.yaml"))["spec"]["wasm"][0]["code"]["image"]
    assert image == {"url": "ghcr.io/acme/llm-cost-plugin:1.2.3", "sha256": digest}
    for rel, api_version, kind, schema_name in MANIFESTS:
        with open(out / rel) as f:
            text = f.read()
        assert PLACEHOLDER_IMAGE not in text and PLACEHOLDER_DIGEST not in text, rel
        assert validate_doc(tmp_path, yaml_load(str(out / rel)), api_version, kind, schema_name) == [], rel


# -- the inline plugin configuration is accepted by the real parser -----------------------------


def plugin_configs():
    configs = istio_plugin_configs()
    # Envoy Gateway hands the filter the raw JSON of `config` (apiextensionsv1.JSON).
    configs["extension-policy"] = json.dumps(manifest("envoy-gateway/extension-policy.yaml")["spec"]["wasm"][0]["config"])
    return configs


def price(cli, tmp_path, config_text):
    cfg = tmp_path / "config.json"
    cfg.write_text(config_text)
    with open(FIXTURE_META) as f:
        meta = json.load(f)
    req = tmp_path / "request.json"
    req.write_text(json.dumps(meta.get("request_body") or {}))
    return subprocess.run([cli, "price", "--config", str(cfg), "--request", str(req), FIXTURE],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("name", ["wasmplugin", "envoyfilter", "extension-policy"])
def test_inline_config_is_accepted_by_the_config_parser(cli, tmp_path, name):
    proc = price(cli, tmp_path, plugin_configs()[name])
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["provider"] == "openrouter" and record["prompt_tokens"] is not None


BROKEN = [
    (["max_request_body_bytes"], "1MiB", "max_request_body_bytes"),
    (["routes", 0, "provider"], "openrouterr", "routes"),
    (["header_prefix"], "x llm", "header_prefix"),
]


@pytest.mark.parametrize("path,value,field", BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_inline_config_is_refused(cli, tmp_path, path, value, field):
    cfg = json.loads(plugin_configs()["wasmplugin"])
    _set(cfg, path, value)
    proc = price(cli, tmp_path, json.dumps(cfg))
    assert proc.returncode == 2, proc.stdout
    assert field in proc.stderr, proc.stderr


def test_broken_collector_in_inline_config_is_refused_by_the_filter(wasm_bytes):
    """`collector` is the Envoy filter's own section (plugin/src/collector.rs): the core, and so the
    CLI, pass it through unread; the filter refuses a broken one, here in real Envoy."""
    envoy_bin = harness.find_envoy()
    if not envoy_bin:
        pytest.fail("no envoy binary: scripts/test-deploy installs it (scripts/install-envoy)")
    cfg = json.loads(plugin_configs()["wasmplugin"])
    _set(cfg, ["collector", "clustr"], "llm_cost_collector")
    code, output = harness.validate(envoy_bin, harness.render_config(WASM, 1, 2, "/dev/null", cfg))
    assert code != 0
    assert "clustr" in output, output[-2000:]


# -- provenance of the schemas -------------------------------------------------------------------


def test_sources_names_every_schema_with_its_hash():
    import hashlib
    with open(os.path.join(SCHEMAS, "SOURCES.md")) as f:
        sources = f.read()
    names = sorted(f for f in os.listdir(SCHEMAS) if f.endswith(".json"))
    assert names == sorted(m[3] for m in MANIFESTS)
    for name in names:
        with open(os.path.join(SCHEMAS, name), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        row = next((l for l in sources.splitlines() if l.startswith("| `%s`" % name)), "")
        assert digest in row, "%s: sha256 %s not in its SOURCES.md row" % (name, digest)
    for lic in ("LICENSE.istio-api", "LICENSE.envoy-gateway"):
        with open(os.path.join(SCHEMAS, lic)) as f:
            text = f.read()
        assert "Apache License" in text and "Version 2.0, January 2004" in text, lic
        assert "`%s`" % lic in sources, lic
