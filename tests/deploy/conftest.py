"""Shared helpers of the deploy tests: paths, YAML loading, the built CLI / .wasm, an OCI layout."""

import json
import os
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
SCHEMAS = os.path.join(DEPLOY, "schemas")
WASM = os.path.join(ROOT, "dist", "llm_cost_plugin.wasm")  # scripts/build-plugin: the shipped filter
CLI = os.path.join(ROOT, "target", "debug", "llm-cost")
PACKAGE_OCI = os.path.join(ROOT, "scripts", "package-oci")

# Every manifest we ship: (path under deploy/, apiVersion, kind, schema file in deploy/schemas/).
MANIFESTS = [
    ("istio/wasmplugin.yaml", "extensions.istio.io/v1alpha1", "WasmPlugin",
     "istio-1.30.3-wasmplugin-v1alpha1.json"),
    ("istio/envoyfilter.yaml", "networking.istio.io/v1alpha3", "EnvoyFilter",
     "istio-1.30.3-envoyfilter-v1alpha3.json"),
    ("istio/collector-serviceentry.yaml", "networking.istio.io/v1", "ServiceEntry",
     "istio-1.30.3-serviceentry-v1.json"),
    ("envoy-gateway/extension-policy.yaml", "gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy",
     "envoy-gateway-1.9.0-envoyextensionpolicy-v1alpha1.json"),
    ("envoy-gateway/patch-policy.yaml", "gateway.envoyproxy.io/v1alpha1", "EnvoyPatchPolicy",
     "envoy-gateway-1.9.0-envoypatchpolicy-v1alpha1.json"),
]

PLACEHOLDER_IMAGE = "registry.example.com/llm-cost/llm-cost-plugin:0.1.0"
PLACEHOLDER_DIGEST = "0" * 64


def yaml_load(path):
    with open(path) as f:
        return YAML(typ="safe", pure=True).load(f)


def yaml_dump(doc, path):
    with open(path, "w") as f:
        YAML(typ="safe", pure=True).dump(doc, f)


def manifest(rel):
    return yaml_load(os.path.join(DEPLOY, rel))


def schema(name):
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def run_package_oci(*args, env=None):
    """Runs scripts/package-oci; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, PACKAGE_OCI, *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.fixture(scope="session")
def wasm_bytes():
    if not os.path.isfile(WASM):
        pytest.fail("%s missing: scripts/test-deploy builds it" % WASM)
    with open(WASM, "rb") as f:
        return f.read()


@pytest.fixture(scope="session")
def cli():
    if not os.path.isfile(CLI):
        pytest.fail("%s missing: scripts/test-deploy builds it" % CLI)
    return CLI


@pytest.fixture(scope="session")
def oci_layout(tmp_path_factory, wasm_bytes):
    """scripts/package-oci run on the release .wasm into a fresh directory: (dir, stdout)."""
    out = str(tmp_path_factory.mktemp("oci") / "layout")
    proc = run_package_oci("--out", out, "--tag", "9.9.9-test")
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout
