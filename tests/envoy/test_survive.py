"""Issue 22, survive: every record accounted for in a real Envoy while the collector is up, down
or slow; what happens to queued records when Envoy shuts down; what a trapping VM does to traffic
and metering under each `failure_policy`.

The accounting identity (docs/RELIABILITY.md) is read from Envoy's own `/stats` (tests/envoy/ledger.py):
`records_metered_total == records_delivered_total + records_dropped_total (by reason) + records_queued`.
"""

import json
import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import ledger
from support import harness
from support.calls import send

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-cache-streaming-e2e"
TRAP_WASM = os.path.join(harness.ROOT, "dist", "llm_cost_plugin-trap-test.wasm")
TRAP_HEADER = "x-llm-cost-test-trap"


def configure_collector(collector, **change):
    req = urllib.request.Request(collector.url("/_config"), data=json.dumps(change).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def calls(envoy, n, workers=8):
    """`n` calls, JSON and streamed alternately, `workers` at a time; returns their request ids."""
    def one(i):
        resp, rid = send(envoy, JSON if i % 2 else STREAM, timeout=30)
        assert resp.status == 200 and resp.complete, (resp.status, resp.error)
        return rid
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def unique_rids(collector):
    return {r.get("request_id") for r in collector.records()}


class Rig:
    def __init__(self, envoy_bin, plugin_config, wasm=harness.WASM, failure_policy=None):
        self.up = harness.Upstream(event_delay_ms=1)
        self.col = harness.Collector()
        config_text = None
        if failure_policy:
            text = harness.render_config(wasm, self.up.port, self.col.port, "/dev/null", plugin_config)
            config_text = harness.substitute(text, "failure_policy: FAIL_OPEN", "failure_policy: %s" % failure_policy)
        self.envoy = harness.Envoy(envoy_bin, self.up.port, self.col.port, plugin_config=plugin_config,
                                   wasm=wasm, config_text=config_text)

    def collector_down(self):
        self.port = self.col.port
        self.col.stop()

    def collector_up(self):
        self.col = harness.Collector(port=self.port)

    def stop(self):
        for proc in (self.envoy, self.col, self.up):
            proc.stop()


@pytest.fixture
def rig_factory(envoy_bin):
    rigs = []

    def make(plugin_config, **kw):
        rigs.append(Rig(envoy_bin, plugin_config, **kw))
        return rigs[-1]
    yield make
    for rig in rigs:
        rig.stop()


# -- 1. the accounting identity ------------------------------------------------------------------


def test_every_record_is_delivered_dropped_or_queued_with_the_collector_up_down_and_slow(rig_factory):
    rig = rig_factory({"collector": {"flush_interval_ms": 100, "timeout_ms": 300,
                                     "max_queue_records": 20, "max_batch_records": 5}})
    env = rig.envoy
    seen = []

    # up: everything delivered, nothing queued
    rids = calls(env, 30)
    up = ledger.wait_drained(env, 10)
    seen.append(("up", up))
    assert up.holds() and up.metered == 30 and up.delivered == 30 and not up.dropped, up
    assert unique_rids(rig.col) >= set(rids)

    # down: the queue fills to its bound (20), the rest is dropped as queue_full; still exact
    rig.collector_down()
    calls(env, 40)
    time.sleep(0.5)
    down = ledger.read(env)
    seen.append(("down", down))
    assert down.holds(), down
    # at most 20 wait in the queue (plus batches in flight); the oldest past that are dropped
    assert down.metered == 70 and down.queued >= 20 and down.dropped.get("queue_full", 0) >= 1, down
    assert down.queued + down.dropped["queue_full"] == 40, down

    # back up: the queued 20 arrive; the identity still holds with nothing left in the queue
    rig.collector_up()
    back = ledger.wait_drained(env, 40)
    seen.append(("back up", back))
    dropped = back.dropped["queue_full"]
    assert back.holds() and back.queued == 0 and back.delivered == 70 - dropped, back
    arrived = unique_rids(rig.col)
    assert len(arrived) == back.delivered - 30 == 40 - dropped, len(arrived)

    # slow: answers after 1 s, timeout 300 ms: batches fail and are retried; stored on each try
    configure_collector(rig.col, delay_ms=1000)
    calls(env, 10)
    time.sleep(1.0)
    slow = ledger.read(env)
    seen.append(("slow", slow))
    assert slow.holds(), slow
    assert slow.queued > 0 and slow.metered == 80, slow
    configure_collector(rig.col, delay_ms=0)
    fast = ledger.wait_drained(env, 40)
    seen.append(("fast again", fast))
    assert fast.holds() and fast.queued == 0 and fast.delivered == 80 - dropped, fast
    assert fast.dropped == {"queue_full": dropped}, fast
    # after de-duplication by request_id the collector (restarted when it came back up) has every
    # record delivered since: collector + counted drops == calls
    assert len(unique_rids(rig.col)) == 50 - dropped, len(unique_rids(rig.col))
    assert 30 + len(unique_rids(rig.col)) + dropped == fast.metered == 80
    for phase, led in seen:
        print("%-10s %r" % (phase, led))
