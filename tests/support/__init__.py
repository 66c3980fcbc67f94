"""Shared helpers of the end-to-end suites (tests/envoy, tests/deploy, tests/worker's servers).

A package: every suite imports it as `support` (`from support import harness`), made importable
by the one root tests/conftest.py. The servers here (replay_upstream, collector, otlp_receiver,
ratelimit_service) also run as scripts: `python3 tests/support/collector.py --port 0`.
"""
