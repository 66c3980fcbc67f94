"""Concurrency: many calls at once still give exactly one record each, delivered in batches, and
no call fails. Bounded: 240 calls, 8 client threads, 60 s at most."""

import time
from concurrent.futures import ThreadPoolExecutor

from support import harness
from support.calls import send

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-cache-streaming-e2e"
CALLS = 240


def test_concurrent_calls_each_get_one_record_in_few_batches(envoy, collector):
    before = harness.http_json(collector.url("/_posts"))["posts"]
    names = [JSON, JSON, STREAM] * (CALLS // 3)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda name: send(envoy, name, timeout=30), names))
    elapsed = time.monotonic() - started
    assert time.monotonic() - started < 60
    assert all(resp.status == 200 and resp.complete for resp, _ in results)
    assert all(resp.header("x-llm-cost-status") == "exact" for (resp, _), n in zip(results, names) if n == JSON)
    rids = {rid for _, rid in results}
    harness.wait_until(
        lambda: rids <= {r.get("request_id") for r in collector.records()}, 10, what="all records"
    )
    time.sleep(0.3)
    mine = [r for r in collector.records() if r.get("request_id") in rids]
    assert len(mine) == CALLS
    posts = harness.http_json(collector.url("/_posts"))["posts"] - before
    print("%d calls in %.2f s (%.0f/s through Envoy + Python upstream), %d collector POSTs"
          % (CALLS, elapsed, CALLS / elapsed, posts))
    assert posts < CALLS / 4
