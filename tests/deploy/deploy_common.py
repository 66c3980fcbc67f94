"""Shared helpers of the deploy tests: paths, the shipped manifests, YAML loading, package-oci.

Imported by name (`from deploy_common import …`), not from conftest.py: with one root
tests/conftest.py, `import conftest` would be ambiguous."""

import json
import os
import subprocess
import sys

from ruamel.yaml import YAML

from support.paths import CLI, ROOT, WASM  # noqa: F401 (re-exported to the deploy tests)

DEPLOY = os.path.join(ROOT, "deploy")
SCHEMAS = os.path.join(DEPLOY, "schemas")
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
