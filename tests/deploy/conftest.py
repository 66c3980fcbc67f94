"""Fixtures of the deploy tests: the built CLI / .wasm, an OCI layout (helpers: deploy_common.py)."""

import os

import pytest

from deploy_common import CLI, WASM, run_package_oci


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
