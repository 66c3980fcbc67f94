"""The one root conftest of the Python suites (tests/envoy, tests/deploy; the servers in
tests/support are shared with tests/worker).

pytest (its default `prepend` import mode) puts this file's directory, tests/, on `sys.path`, so
every suite imports the shared helpers as the `support` package (`from support import harness`)
without editing `sys.path` itself. tests/pytest.ini makes tests/ the rootdir, so this file is
loaded whichever suite or single test is run (`scripts/test-envoy -k name`, or pytest on a path).

It also holds the session fixtures tests/envoy and tests/sdk share (a suite or a module may
override them, as tests/deploy does with its module-scoped ones).
"""

import os

import pytest

from support import harness


@pytest.fixture(scope="session")
def envoy_bin():
    """The Envoy binary, with the built .wasm next to it: either missing is a failure, never a skip."""
    path = harness.find_envoy()
    if not path or not os.path.isfile(path):
        pytest.fail("Envoy not found: run scripts/install-envoy (scripts/test-envoy and scripts/test-sdk install it), "
                    "or set $ENVOY")
    if not os.path.isfile(harness.WASM):
        pytest.fail("%s missing: run scripts/build-plugin" % harness.WASM)
    return path


@pytest.fixture(scope="session")
def collector():
    """The collector the session's Envoy (and Worker) deliver records to."""
    c = harness.Collector()
    yield c
    c.stop()
