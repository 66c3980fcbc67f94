"""The Wasm filter configuration each controller would hand Envoy, run in the real Envoy (1.40).

No Kubernetes, istiod, istio-agent or Envoy Gateway runs here. What runs is the filter config
those controllers generate, rebuilt from our manifests the way their source does it:
  - Istio WasmPlugin: pilot/pkg/model/extensions.go buildWasmConfig (name <ns>.<name>, root_id =
    pluginName, configuration = JSON of pluginConfig, failure_policy), with the remote oci:// code
    replaced by the local file as istio-agent does (pkg/wasm/convert.go);
  - Istio EnvoyFilter: the EXTENSION_CONFIG value as written, same code replacement;
  - Envoy Gateway EnvoyExtensionPolicy: internal/xds/translator/wasm.go wasmConfig (name, vm_id,
    root_id, raw JSON config, fail_open), then the EnvoyPatchPolicy's flag patch and cluster.
It shows what the missing `allow_on_headers_stop_iteration` does (metered calls hang) and that the
shipped EnvoyFilter / EnvoyPatchPolicy configs meter and reach their collector cluster.
"""

import copy
import json
import os
import re

import pytest

from deploy_common import ROOT, WASM, manifest
from support import calls, harness

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
STRING_TYPE = "type.googleapis.com/google.protobuf.StringValue"
LOCAL_CODE = {"local": {"filename": WASM}}
METERED = "openrouter-tool-calling"
HANG_WAIT_S = 3


@pytest.fixture(scope="module")
def envoy_bin():
    path = harness.find_envoy()
    if not path:
        pytest.fail("no envoy binary: scripts/test-deploy installs it (scripts/install-envoy)")
    return path


@pytest.fixture(scope="module")
def upstream():
    u = harness.Upstream()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def collector():
    c = harness.Collector()
    yield c
    c.stop()


def struct_json(obj):
    from test_manifests import struct_json as sj
    return sj(obj)


# -- the filter each controller generates ----------------------------------------------------------


def istio_wasmplugin_filter():
    wp = manifest("istio/wasmplugin.yaml")
    name = "%s.%s" % (wp["metadata"]["namespace"], wp["metadata"]["name"])
    spec = wp["spec"]
    config = {
        "name": name,
        "root_id": spec["pluginName"],
        "configuration": {"@type": STRING_TYPE, "value": struct_json(spec["pluginConfig"])},
        "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": LOCAL_CODE},
        "failure_policy": {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED"}[spec["failStrategy"]],
    }
    return {"name": name, "typed_config": {"@type": WASM_TYPE, "config": config}}, \
        json.loads(config["configuration"]["value"])["collector"]["cluster"]


def istio_envoyfilter_filter():
    value = copy.deepcopy(manifest("istio/envoyfilter.yaml")["spec"]["configPatches"][0]["patch"]["value"])
    assert "remote" in value["typed_config"]["config"]["vm_config"]["code"]
    value["typed_config"]["config"]["vm_config"]["code"] = LOCAL_CODE
    cluster = json.loads(value["typed_config"]["config"]["configuration"]["value"])["collector"]["cluster"]
    return {"name": value["name"], "typed_config": value["typed_config"]}, cluster


def envoy_gateway_filter(with_patch):
    eep = manifest("envoy-gateway/extension-policy.yaml")
    wasm = eep["spec"]["wasm"][0]
    ir_name = "envoyextensionpolicy/%s/%s/wasm/0" % (eep["metadata"]["namespace"], eep["metadata"]["name"])
    config = {
        "name": wasm.get("name", ir_name),
        "root_id": wasm["rootID"],
        "vm_config": {"vm_id": ir_name, "runtime": "envoy.wasm.runtime.v8", "code": LOCAL_CODE},
        "configuration": {"@type": STRING_TYPE, "value": json.dumps(wasm["config"])},
        "fail_open": wasm["failOpen"],
    }
    filt = {"name": "envoy.filters.http.wasm/" + ir_name, "typed_config": {"@type": WASM_TYPE, "config": config}}
    cluster = None
    if with_patch:
        flag, add_cluster = manifest("envoy-gateway/patch-policy.yaml")["spec"]["jsonPatches"]
        op = flag["operation"]
        # The JSONPath selects the http filter by name, then `.typed_config.config`; `path` is the field.
        target = re.search(r"@\.name=='([^']+)'\)\]\.typed_config\.config$", op["jsonPath"]).group(1)
        assert target == filt["name"], "the patch would not find the generated filter"
        assert op["op"] == "add"
        config[op["path"].lstrip("/")] = op["value"]
        cluster = add_cluster["operation"]["value"]
    return filt, cluster


# -- an Envoy with that filter ---------------------------------------------------------------------


def envoy_config(upstream, collector, http_filter, collector_cluster_name=None, collector_cluster=None):
    text = harness.render_config(WASM, upstream.port, collector.port, "/dev/null", {})
    start, end = text.index("          # BEGIN llm-cost filter"), text.index("          # END llm-cost filter")
    text = text[:start] + "          - " + json.dumps(http_filter) + "\n" + text[end:]
    if collector_cluster is not None:
        c = copy.deepcopy(collector_cluster)
        sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["address"], sa["port_value"] = "127.0.0.1", collector.port
        text = text[: text.index("  - name: llm_cost_collector")] + "  - " + json.dumps(c) + "\n"
    elif collector_cluster_name is not None:
        text = text.replace("llm_cost_collector", collector_cluster_name)
    return text


def start(envoy_bin, upstream, collector, text):
    return harness.Envoy(envoy_bin, upstream.port, collector.port, config_text=text)


def assert_metered(envoy, upstream, collector):
    resp, rid = calls.send(envoy, METERED, timeout=10)
    assert resp.status == 200
    assert resp.headers.get("x-llm-cost-status"), resp.headers
    seen = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert len(seen) == 1 and '"usage":{"include":true}' in seen[0]["body"], seen
    (record,) = collector.records_for(rid)
    assert record["model"] == resp.headers.get("x-llm-model")


def assert_hangs(envoy, upstream):
    rid = "hang-%s" % os.urandom(4).hex()
    with pytest.raises(OSError):  # socket timeout: no response at all
        calls.send(envoy, METERED, request_id=rid, timeout=HANG_WAIT_S)
    assert [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid] == []


def test_istio_wasmplugin_config_hangs_metered_calls(envoy_bin, upstream, collector):
    filt, cluster = istio_wasmplugin_filter()
    assert "allow_on_headers_stop_iteration" not in filt["typed_config"]["config"]
    envoy = start(envoy_bin, upstream, collector, envoy_config(upstream, collector, filt, cluster))
    try:
        assert_hangs(envoy, upstream)
    finally:
        envoy.stop()


def test_istio_envoyfilter_config_meters_and_reaches_the_serviceentry_cluster(envoy_bin, upstream, collector):
    filt, cluster = istio_envoyfilter_filter()
    assert cluster.startswith("outbound|")
    envoy = start(envoy_bin, upstream, collector, envoy_config(upstream, collector, filt, cluster))
    try:
        assert_metered(envoy, upstream, collector)
    finally:
        envoy.stop()


def test_envoy_gateway_policy_alone_hangs_metered_calls(envoy_bin, upstream, collector):
    filt, _ = envoy_gateway_filter(with_patch=False)
    envoy = start(envoy_bin, upstream, collector, envoy_config(upstream, collector, filt))
    try:
        assert_hangs(envoy, upstream)
    finally:
        envoy.stop()


def test_envoy_gateway_policy_with_patch_meters_and_reaches_the_added_cluster(envoy_bin, upstream, collector):
    filt, cluster = envoy_gateway_filter(with_patch=True)
    envoy = start(envoy_bin, upstream, collector,
                  envoy_config(upstream, collector, filt, collector_cluster=cluster))
    try:
        assert_metered(envoy, upstream, collector)
    finally:
        envoy.stop()


def test_istio_wasmplugin_config_with_hold_headers_off_meters_without_the_flag(envoy_bin, upstream, collector):
    """`"hold_headers": false` (docs/CONFIGURATION.md) makes the plain WasmPlugin usable: nothing is
    held, the call reaches the upstream unchanged and the record carries the cost; JSON responses
    get no cost headers (they left before the body was read)."""
    filt, cluster = istio_wasmplugin_filter()
    config = filt["typed_config"]["config"]
    assert "allow_on_headers_stop_iteration" not in config
    plugin_config = json.loads(config["configuration"]["value"])
    plugin_config["hold_headers"] = False
    config["configuration"]["value"] = json.dumps(plugin_config)
    envoy = start(envoy_bin, upstream, collector, envoy_config(upstream, collector, filt, cluster))
    try:
        resp, rid = calls.send(envoy, METERED, timeout=10)
        assert resp.status == 200 and resp.body == calls.recorded(METERED).response
        assert resp.llm_headers() == {}
        seen = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
        assert len(seen) == 1 and seen[0]["body"] == calls.recorded(METERED).body_bytes().decode()
        (record,) = collector.records_for(rid)
        # Request read as it passed (model learned), response read whole (usage found).
        assert record["model_requested"] == calls.recorded(METERED).request_body["model"], record
        assert record["prompt_tokens"] and record["completion_tokens"], record
        assert record["cost_status"] in ("exact", "unpriced") and record["error"] in (None, "unknown_model"), record
    finally:
        envoy.stop()
