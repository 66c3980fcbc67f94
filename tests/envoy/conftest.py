"""Fixtures for the Envoy end-to-end tests: one real Envoy with the built .wasm, a replaying
upstream and a collector, shared by the session; helpers to send a recorded call through it.
(`envoy_bin` and `collector` come from tests/conftest.py, shared with tests/sdk.)

Envoy missing is a failure, never a skip: run `scripts/test-envoy` (installs it) or set $ENVOY.
"""

import os
import subprocess

import pytest

from support import harness

FAST_EVENT_DELAY_MS = 2


@pytest.fixture(scope="session")
def upstream():
    up = harness.Upstream(event_delay_ms=FAST_EVENT_DELAY_MS)
    yield up
    up.stop()


@pytest.fixture(scope="session")
def envoy(envoy_bin, upstream, collector):
    e = harness.Envoy(envoy_bin, upstream.port, collector.port)
    yield e
    e.stop()


@pytest.fixture(scope="session")
def cli():
    """The lead's `llm-cost` CLI (built once): the golden values the filter must match."""
    if not os.path.isfile(harness.CLI):
        subprocess.run(["cargo", "build", "-q", "-p", "llm-cost-cli"], cwd=harness.ROOT, check=True, timeout=600)
    return harness.CLI
