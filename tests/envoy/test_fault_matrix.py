"""Issue 7, the fault matrix against the real Envoy: each fault must leave the client with the bytes
the upstream sent (plus our documented additions: cost headers, the stream's `: llm-cost` comment,
trailers), Envoy up (admin /ready answers), one record with an honest status at the collector, and
Envoy's memory bounded.

"The bytes the upstream sent" is checked against the replaying upstream's own account of what it
wrote (`sent_bytes`/`sent_sha256` in its request log), not against a copy the test computes.
Memory is Envoy's admin `/memory` (`allocated`, `heap_size`: tcmalloc) and the process RSS
(`/proc/<pid>/status`, which also covers the V8 Wasm linear memory tcmalloc does not see).
"""

import hashlib
import json
import os
import re
import shutil
import socket
import socketserver
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import harness
from support import rawhttp
from support.calls import cli_record, expected_headers, recorded, send, split_comment

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-cache-streaming-e2e"  # 7 events, the client asked for usage
LONG_STREAM = "openrouter-stream-with-reasoning"  # 110 events
MB = 1000 * 1000


# -- the rig: one Envoy, upstream and collector for this module ----------------------------------


class Rig:
    def __init__(self, envoy, upstream, collector):
        self.envoy, self.upstream, self.collector = envoy, upstream, collector

    def memory(self):
        """Envoy's tcmalloc figures and the process RSS, in bytes."""
        mem = {k: int(v) for k, v in harness.http_json("http://%s/memory" % self.envoy.admin).items()}
        mem["rss"] = rss(self.envoy.proc.pid)
        return mem

    def upstream_saw(self, rid):
        """The upstream's log entry for `rid` once its response is fully written."""
        def entry():
            seen = [r for r in harness.http_json(self.upstream.url("/_requests?bodies=0"))
                    if r["headers"].get("x-request-id") == rid]
            return seen if seen and "sent_sha256" in seen[0] else None
        [seen] = harness.wait_until(entry, 10, what="upstream log entry of %s" % rid)
        return seen

    def one_record(self, rid):
        [record] = self.collector.records_for(rid)
        return record


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def envoy_is_up(envoy):
    with urllib.request.urlopen("http://%s/ready" % envoy.admin, timeout=5) as resp:
        return resp.status == 200 and resp.read().strip() == b"LIVE"


def mib(n):
    return "%.1f MiB" % (n / 1048576.0)


@pytest.fixture(scope="module")
def rig(envoy_bin):
    up = col = env = None
    try:
        up = harness.Upstream(event_delay_ms=1)
        col = harness.Collector()
        env = harness.Envoy(envoy_bin, up.port, col.port)
        yield Rig(env, up, col)
    finally:
        for proc in (env, col, up):
            if proc:
                proc.stop()


def passed_through(rig, resp, rid, stream):
    """Asserts the client got exactly the bytes the upstream wrote (streams: plus the comment)
    and that Envoy is still up; returns the stream's comment (None for JSON)."""
    assert resp.status == 200 and resp.complete, (resp.status, resp.error)
    seen = rig.upstream_saw(rid)
    body, comment = split_comment(resp.body) if stream else (resp.body, None)
    assert len(body) == seen["sent_bytes"]
    assert hashlib.sha256(body).hexdigest() == seen["sent_sha256"]
    if stream:
        assert comment is not None, "the stream must end with the `: llm-cost` comment"
    assert envoy_is_up(rig.envoy)
    return comment


# -- 1. 10 MB JSON responses ---------------------------------------------------------------------


def test_10mb_json_responses_pass_byte_identical_with_memory_flat(rig):
    """10 MB > max_response_body_bytes (1 MiB): never held past the limit, so Envoy does not keep
    10 MB per call. With content-length (decided from the headers) and chunked (decided when the
    held body outgrows the limit)."""
    faults = ["pad-10000000", "chunked-json,pad-10000000"]
    for fault in faults:  # warm-up: buffers and thread caches reach their working size
        send(rig.envoy, JSON, fault=fault)
    before = rig.memory()
    rids = []
    for _ in range(3):
        for fault in faults:
            resp, rid = send(rig.envoy, JSON, fault=fault, timeout=60)
            passed_through(rig, resp, rid, stream=False)
            assert len(resp.body) > 10 * MB
            assert resp.llm_headers() == {}  # no cost could be computed: no headers at all
            assert ("content-length" in resp.headers) == ("chunked-json" not in fault)
            rids.append(rid)
    after = rig.memory()
    for rid in rids:
        record = rig.one_record(rid)
        assert (record["cost_status"], record["error"]) == ("error", "response_too_large")
        assert record["status_code"] == 200 and record["cost_usd"] is None
    grew = {k: after[k] - before[k] for k in ("allocated", "heap_size", "rss")}
    print("10 MB JSON x6: allocated %s -> %s, heap %s -> %s, rss %s -> %s" % (
        mib(before["allocated"]), mib(after["allocated"]), mib(before["heap_size"]),
        mib(after["heap_size"]), mib(before["rss"]), mib(after["rss"])))
    # 6 calls x 10 MB = 60 MB if any copy were kept; allow a few MiB of noise.
    assert grew["allocated"] < 4 << 20, grew
    assert grew["heap_size"] < 16 << 20, grew
    assert grew["rss"] < 16 << 20, grew


# -- 2. 10 MB request bodies ---------------------------------------------------------------------


def big_request(name, size):
    body = dict(recorded(name).request_body)
    body["padding"] = "x" * size
    return body


def test_10mb_request_with_content_length_reaches_the_upstream_byte_identical(rig):
    """content-length > max_request_body_bytes: the filter decides at the headers and never holds.
    The JSON response still carries usage, so the call is metered (`exact`); the record cannot
    know the requested model (the body was not read)."""
    body = big_request(JSON, 10 * MB)
    resp, rid = send(rig.envoy, JSON, body=body, timeout=60)
    passed_through(rig, resp, rid, stream=False)
    seen = rig.upstream_saw(rid)
    sent = recorded(JSON).body_bytes(body)
    assert (seen["body_bytes"], seen["body_sha256"]) == (len(sent), hashlib.sha256(sent).hexdigest())
    assert resp.header("x-llm-cost-status") == "exact"
    record = rig.one_record(rid)
    assert record["cost_status"] == "exact" and record["model_requested"] is None


def test_10mb_request_without_usage_in_the_answer_is_recorded_as_request_too_large(rig):
    """The same for a stream whose upstream, not asked for usage (no rewrite), sends none: the
    record says why (`request_too_large`), the comment too."""
    body = big_request(STREAM, 10 * MB)
    resp, rid = send(rig.envoy, STREAM, body=body, fault="no-usage", timeout=60)
    comment = passed_through(rig, resp, rid, stream=True)
    seen = rig.upstream_saw(rid)
    sent = recorded(STREAM).body_bytes(body)
    assert (seen["body_bytes"], seen["body_sha256"]) == (len(sent), hashlib.sha256(sent).hexdigest())
    assert comment["cost_status"] == "error"
    record = rig.one_record(rid)
    assert (record["cost_status"], record["error"]) == ("error", "request_too_large")


def test_10mb_chunked_request_is_held_only_up_to_the_limit(rig):
    """No content-length (chunked upload): the filter starts holding for the rewrite and must let
    go at max_request_body_bytes, well before the listener's 8 MiB buffer limit (Envoy's 413)."""
    curl = shutil.which("curl")
    assert curl, "curl is required"
    rec = recorded(JSON)
    sent = rec.body_bytes(big_request(JSON, 10 * MB))
    rid = "chunked-upload-%d" % time.time_ns()
    with tempfile.TemporaryDirectory() as tmp:
        req, out = os.path.join(tmp, "req"), os.path.join(tmp, "out")
        with open(req, "wb") as f:
            f.write(sent)
        head = subprocess.run(
            [curl, "-sS", "--http1.1", "-D", "-", "-o", out, "-H", "host: " + rec.host, "-H", "expect:",
             "-H", "content-type: application/json", "-H", "transfer-encoding: chunked",
             "-H", "x-replay-fixture: " + JSON, "-H", "x-request-id: " + rid,
             "--data-binary", "@" + req, "http://127.0.0.1:%d%s" % (rig.envoy.port, rec.path)],
            capture_output=True, timeout=60, check=True,
        ).stdout.decode()
        with open(out, "rb") as f:
            got = f.read()
    assert head.startswith("HTTP/1.1 200"), head
    seen = rig.upstream_saw(rid)
    assert "content-length" not in seen["headers"]  # it really went up chunked
    assert (seen["body_bytes"], seen["body_sha256"]) == (len(sent), hashlib.sha256(sent).hexdigest())
    assert hashlib.sha256(got).hexdigest() == seen["sent_sha256"]
    assert "x-llm-cost-status: exact" in head.lower()
    assert rig.one_record(rid)["cost_status"] == "exact"
    assert envoy_is_up(rig.envoy)


# -- 3. one 2 MB SSE event -----------------------------------------------------------------------


def test_a_2mb_sse_event_streams_through_and_is_counted(rig):
    """One event of 2 MB (> max_sse_event_bytes, 1 MiB), written in 64 KiB pieces 15 ms apart:
    the client gets every byte in order, the pieces of the big event as they come (not held until
    the event is complete), and the record counts the event and still prices the usage."""
    resp, rid = send(rig.envoy, STREAM, fault="big-event-2000000",
                     extra_headers={"x-replay-event-delay-ms": "15"}, timeout=60)
    comment = passed_through(rig, resp, rid, stream=True)
    start = resp.body.index(b'"content":"xxxx') + len(b'"content":"')
    end = start + 2 * MB
    assert resp.body[start:end] == b"x" * (2 * MB)
    arrived, first, last = 0, None, None
    for t, chunk in resp.chunks:
        arrived += len(chunk)
        if first is None and arrived > start:
            first = t
        if last is None and arrived >= end:
            last = t
    print("2 MB event: first byte at %.0f ms, last at %.0f ms, %d client chunks"
          % (first * 1e3, last * 1e3, len(resp.chunks)))
    # The upstream spends ~31 x 15 ms = ~465 ms writing the event; held, it would arrive at once.
    assert last - first > 0.25
    assert comment["cost_status"] == "exact"
    record = rig.one_record(rid)
    assert record["oversize_events"] == 1
    assert (record["cost_status"], record["error"]) == ("exact", None)
    assert record["completion_tokens"] == recorded_usage(STREAM)


def recorded_usage(name):
    """completion_tokens of the last usage in a recorded stream."""
    usage = None
    for line in recorded(name).response.splitlines():
        if line.startswith(b"data: {") and b'"usage":{' in line:
            usage = json.loads(line[6:])["usage"]
    return usage["completion_tokens"]


# -- 4. invalid UTF-8 ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault, status, error", [
    # in `content`, which the meter skips without decoding: the usage is intact and exact
    ("bad-utf8", "exact", None),
    # in `model`, which the meter reads: the document cannot be parsed
    ("bad-utf8-model", "error", "malformed_json"),
])
def test_invalid_utf8_in_a_json_body_passes_unchanged(rig, fault, status, error):
    resp, rid = send(rig.envoy, JSON, fault=fault)
    passed_through(rig, resp, rid, stream=False)
    assert b"\xff\xfe\xc3" in resp.body
    assert resp.header("x-llm-cost-status") == status
    assert ("x-llm-cost" in resp.headers) == (status == "exact")  # never a made-up cost
    record = rig.one_record(rid)
    assert (record["cost_status"], record["error"]) == (status, error)
    again, rid2 = send(rig.envoy, JSON)  # the VM survived: the next call is metered
    assert again.header("x-llm-cost-status") == "exact"
    assert rig.one_record(rid2)["cost_status"] == "exact"


@pytest.mark.parametrize("fault, status, error", [
    ("bad-utf8", "exact", None),  # in a content delta: skipped text, the usage chunk is intact
    ("bad-utf8-model", "error", "malformed_stream"),  # in the usage chunk's `model`: usage lost
])
def test_invalid_utf8_in_sse_data_passes_unchanged(rig, fault, status, error):
    resp, rid = send(rig.envoy, STREAM, fault=fault)
    comment = passed_through(rig, resp, rid, stream=True)
    assert b"\xff\xfe\xc3" in resp.body
    assert comment["cost_status"] == status
    record = rig.one_record(rid)
    assert (record["cost_status"], record["error"]) == (status, error)
    again, rid2 = send(rig.envoy, STREAM)
    assert split_comment(again.body)[1]["cost_status"] == "exact"
    assert rig.one_record(rid2)["cost_status"] == "exact"


# -- 5. broken JSON in data lines ----------------------------------------------------------------


@pytest.mark.parametrize("fault, status, error", [
    ("broken-data", "exact", None),  # two broken events mid-stream; the usage chunk is intact
    ("broken-usage", "error", "malformed_stream"),  # the usage chunk's JSON is cut
])
def test_broken_json_in_data_lines_passes_and_is_honest(rig, fault, status, error):
    resp, rid = send(rig.envoy, STREAM, fault=fault)
    comment = passed_through(rig, resp, rid, stream=True)
    assert comment["cost_status"] == status
    record = rig.one_record(rid)
    assert (record["cost_status"], record["error"]) == (status, error)
    if status == "exact":
        assert record["completion_tokens"] == recorded_usage(STREAM)
    else:
        assert record["cost_usd"] is None and record["prompt_tokens"] is None


# -- 6. a collector slower than collector.timeout_ms ---------------------------------------------


def configure_collector(collector, **change):
    req = urllib.request.Request(collector.url("/_config"), data=json.dumps(change).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def counter(envoy, name):
    """A counter from /stats/prometheus (0 while it does not exist: Envoy creates it at first use)."""
    m = re.search(r"^%s(?:\{[^}]*\})? (\d+)$" % re.escape(name), envoy.prometheus(), re.M)
    return int(m.group(1)) if m else 0


def timed_calls(envoy, n):
    """n sequential JSON calls; returns (request ids, client latencies in seconds)."""
    rids, latencies = [], []
    for _ in range(n):
        resp, rid = send(envoy, JSON)
        assert resp.status == 200 and resp.complete and resp.header("x-llm-cost-status") == "exact"
        rids.append(rid)
        latencies.append(resp.done_at)
    return rids, latencies


def settled_records(collector, rids, timeout=10):
    """Waits until every rid has a record and no new record has come for 0.6 s (six flush
    intervals); returns {rid: number of records}."""
    wanted = set(rids)
    pick = lambda: [r["request_id"] for r in collector.records() if r.get("request_id") in wanted]
    harness.wait_until(lambda: set(pick()) == wanted, timeout, what="records of %d calls" % len(rids))
    last, deadline = len(pick()), time.monotonic() + timeout
    while True:
        time.sleep(0.6)
        now = len(pick())
        if now == last:
            break
        assert time.monotonic() < deadline, "records kept arriving: retries did not stop"
        last = now
    got = pick()
    return {rid: got.count(rid) for rid in rids}


SLOW_COLLECTOR_MS = 1000
COLLECTOR_TIMEOUT_MS = 300


def test_slow_collector_costs_clients_nothing_and_records_arrive_when_it_recovers(envoy_bin):
    """The collector answers after 1 s, the filter gives up after collector.timeout_ms = 300 ms.
    Phase 1: the slow collector drops what it receives (gave up before storing): every record
    must arrive exactly once after it recovers. Phase 2: it stores, then answers too late: every
    record arrives at least once (documented at-least-once delivery; duplicates counted)."""
    up = col = env = None
    try:
        up = harness.Upstream(event_delay_ms=1)
        col = harness.Collector()
        config = {"collector": {"flush_interval_ms": 100, "timeout_ms": COLLECTOR_TIMEOUT_MS}}
        env = harness.Envoy(envoy_bin, up.port, col.port, plugin_config=config)
        fast_rids, fast = timed_calls(env, 8)
        assert set(settled_records(col, fast_rids).values()) == {1}
        assert counter(env, "llmcost_collector_failures_total") == 0
        report = []
        for store in (False, True):
            failures_before = counter(env, "llmcost_collector_failures_total")
            configure_collector(col, delay_ms=SLOW_COLLECTOR_MS, store=store)
            slow_rids, slow = timed_calls(env, 8)
            harness.wait_until(lambda: counter(env, "llmcost_collector_failures_total") >= failures_before + 2,
                               10, what="counted collector failures")
            time.sleep(SLOW_COLLECTOR_MS / 1000.0 + 0.2)  # the slow collector finishes what it got
            configure_collector(col, delay_ms=0, store=True)
            counts = settled_records(col, slow_rids)
            failures = counter(env, "llmcost_collector_failures_total") - failures_before
            report.append((store, statistics.median(fast), max(fast), statistics.median(slow), max(slow),
                           failures, sum(counts.values()) - len(counts)))
            print("collector %d ms (store=%s): client latency median/max %.1f/%.1f ms (fast collector "
                  "%.1f/%.1f ms); %d failures counted; %d duplicate records of %d"
                  % (SLOW_COLLECTOR_MS, store, report[-1][3] * 1e3, report[-1][4] * 1e3,
                     report[-1][1] * 1e3, report[-1][2] * 1e3, failures, report[-1][6], len(counts)))
            # The client never waits on the collector: a call that did would take >= 300 ms.
            assert max(slow) < COLLECTOR_TIMEOUT_MS / 1000.0
            assert statistics.median(slow) < statistics.median(fast) + 0.05
            if not store:
                assert set(counts.values()) == {1}, counts  # exactly once: nothing lost, no retry twice
            assert counter(env, "llmcost_collector_dropped_records_total") == 0
        assert envoy_is_up(env)
    finally:
        for proc in (env, col, up):
            if proc:
                proc.stop()


class SlowAnswers:
    """A TCP relay in front of `llm-cost collect` that forwards each request at once (so the lines
    are stored) but holds the answer for `delay_s`: a collector that stores, then answers later
    than `collector.timeout_ms` (a slow fsync, a slow network). Bounded: one thread per connection,
    each done after one request."""

    def __init__(self, target_port, delay_s):
        self.target_port, self.delay_s = target_port, delay_s
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self.handler(), bind_and_activate=True)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handler(self):
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < length:
                    body += self.request.recv(65536)
                head = re.sub(rb"(?i)\r\nconnection:[^\r]*", b"", head) + b"\r\nconnection: close"
                with socket.create_connection(("127.0.0.1", relay.target_port), timeout=10) as up:
                    up.sendall(head + b"\r\n\r\n" + body)
                    answer = b""
                    while True:
                        chunk = up.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
                time.sleep(relay.delay_s)
                try:
                    self.request.sendall(answer)
                except OSError:
                    pass  # Envoy gave up waiting (the point of this relay)

        return Handler

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_collector_that_stores_but_answers_late_keeps_each_record_once(envoy_bin, tmp_path):
    """At-least-once delivery meets a sink that drops retried copies: the filter resends batches
    whose answers time out (with backoff), `llm-cost collect` stores each record line once."""
    from test_collect_report import Collect

    up = col = relay = env = None
    try:
        up = harness.Upstream(event_delay_ms=1)
        col = Collect(str(tmp_path))
        relay = SlowAnswers(col.port, SLOW_COLLECTOR_MS / 1000.0)
        config = {"collector": {"flush_interval_ms": 100, "timeout_ms": COLLECTOR_TIMEOUT_MS}}
        env = harness.Envoy(envoy_bin, up.port, relay.port, plugin_config=config)
        rids, _ = timed_calls(env, 8)
        harness.wait_until(lambda: counter(env, "llmcost_collector_failures_total") >= 2, 10,
                           what="counted collector failures")
        relay.delay_s = 0
        harness.wait_until(lambda: counter(env, "llmcost_collector_sent_records_total") >= 8, 15,
                           what="a batch acknowledged after the collector got fast")
        stored = [json.loads(line)["request_id"] for f in col.files() for line in open(f)]
        assert sorted(stored) == sorted(rids), "each record exactly once: %s" % stored
        failures = counter(env, "llmcost_collector_failures_total")
        print("collector answering 1 s late: %d failed sends, records stored once each" % failures)
        assert "retried copies dropped" in (col.terminate() == 0 and col.log_text())
    finally:
        for proc in (env, relay, col, up):
            if proc:
                proc.stop()


def test_slow_collector_with_a_full_queue_drops_the_oldest_and_counts_them(envoy_bin):
    """collector.max_queue_records = 2 while the collector is too slow: records past the bound
    are dropped and counted; arrived + dropped = calls, none twice."""
    up = col = env = None
    try:
        up = harness.Upstream(event_delay_ms=1)
        col = harness.Collector()
        config = {"collector": {"flush_interval_ms": 100, "timeout_ms": COLLECTOR_TIMEOUT_MS,
                                "max_queue_records": 2}}
        env = harness.Envoy(envoy_bin, up.port, col.port, plugin_config=config)
        configure_collector(col, delay_ms=SLOW_COLLECTOR_MS, store=False)
        rids, _ = timed_calls(env, 8)
        harness.wait_until(lambda: counter(env, "llmcost_collector_dropped_records_total") > 0, 10,
                           what="dropped records counted")
        time.sleep(SLOW_COLLECTOR_MS / 1000.0 + 0.2)
        configure_collector(col, delay_ms=0, store=True)
        harness.wait_until(lambda: len({r["request_id"] for r in col.records()}) > 0, 10, what="records")
        time.sleep(0.6)
        got = [r["request_id"] for r in col.records()]
        dropped = counter(env, "llmcost_collector_dropped_records_total")
        print("queue bound 2, 8 calls: %d arrived, %d dropped (counted), %d failures"
              % (len(got), dropped, counter(env, "llmcost_collector_failures_total")))
        assert len(got) == len(set(got)) and set(got) <= set(rids)
        assert len(got) + dropped == len(rids)
        # Up to 2 queued plus up to 4 batches in flight (root.rs MAX_IN_FLIGHT) survive, so any
        # split is possible; what matters is that every record is accounted for exactly once.
        assert len(got) >= 1 and dropped >= 1
        assert envoy_is_up(env)
    finally:
        for proc in (env, col, up):
            if proc:
                proc.stop()


# -- 7. HTTP/2 (h2c) and HTTP/1.1 clients --------------------------------------------------------


def curl_h2(envoy, name, rid):
    """The call over h2c with prior knowledge; returns (status line, headers, trailers, body)."""
    curl = shutil.which("curl")
    assert curl, "curl is required"
    rec = recorded(name)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "body")
        head = subprocess.run(
            [curl, "-sS", "--http2-prior-knowledge", "-D", "-", "-o", out,
             "-H", "host: " + rec.host, "-H", "content-type: application/json",
             "-H", "authorization: Bearer sk-test-not-a-real-key", "-H", "x-replay-fixture: " + name,
             "-H", "x-request-id: " + rid, "--data-binary", rec.body_bytes().decode(),
             "http://127.0.0.1:%d%s" % (envoy.port, rec.path)],
            capture_output=True, timeout=60, check=True,
        ).stdout.decode()
        with open(out, "rb") as f:
            body = f.read()
    blocks = head.replace("\r\n", "\n").split("\n\n")
    lines = blocks[0].split("\n")

    def fields(block_lines):
        out = {}
        for line in block_lines:
            k, sep, v = line.partition(":")
            if sep and k.lower().startswith("x-llm-"):
                out[k.lower()] = v.strip()
        return out

    trailers = fields("\n".join(blocks[1:]).split("\n"))  # curl prints trailers after the headers
    return lines[0], fields(lines[1:]), trailers, body


@pytest.mark.parametrize("name", [JSON, LONG_STREAM])
def test_http2_and_http11_clients_get_the_same_cost(rig, cli, name):
    rec = recorded(name)
    h1, rid1 = send(rig.envoy, name)
    rid2 = "h2c-%d" % time.time_ns()
    status2, headers2, trailers2, body2 = curl_h2(rig.envoy, name, rid2)
    assert status2.startswith("HTTP/2 200"), status2
    expected = expected_headers(cli_record(cli, name))
    if rec.kind == "json":
        passed_through(rig, h1, rid1, stream=False)
        assert body2 == h1.body
        assert h1.llm_headers() == headers2 == expected
        assert trailers2 == {}
    else:
        c1 = passed_through(rig, h1, rid1, stream=True)
        b2, c2 = split_comment(body2)
        assert hashlib.sha256(b2).hexdigest() == rig.upstream_saw(rid2)["sent_sha256"]
        assert c1 == c2 and c1["cost_usd"] == expected["x-llm-cost"]
        assert h1.llm_trailers() == trailers2 == expected  # HTTP/1.1 with `TE: trailers`
        assert h1.llm_headers() == headers2 == {}  # a stream's headers leave before its usage
    r1, r2 = rig.one_record(rid1), rig.one_record(rid2)
    drop = {"ts", "request_id", "duration_ms"}
    assert {k: v for k, v in r1.items() if k not in drop} == {k: v for k, v in r2.items() if k not in drop}
    assert r1["cost_status"] == "exact"


# -- 8. 100 concurrent streams -------------------------------------------------------------------


def test_100_concurrent_streams(rig):
    rec = recorded(STREAM)
    n, delay_ms = 100, 30

    def one(_):
        start = time.monotonic()
        resp, rid = send(rig.envoy, STREAM, extra_headers={"x-replay-event-delay-ms": str(delay_ms)}, timeout=60)
        return start, time.monotonic(), resp, rid

    with ThreadPoolExecutor(max_workers=20) as pool:  # warm-up: connections, buffers, caches
        list(pool.map(one, range(20)))
    time.sleep(0.5)
    before = rig.memory()
    peak = dict(before)
    sampling = [True]

    def sample():
        deadline = time.monotonic() + 60
        while sampling[0] and time.monotonic() < deadline:
            for k, v in rig.memory().items():
                peak[k] = max(peak[k], v)
            time.sleep(0.02)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=n + 1) as pool:
        sampler = pool.submit(sample)
        results = list(pool.map(one, range(n)))
        sampling[0] = False
        sampler.result(timeout=10)
    took = time.monotonic() - began
    # They really ran at the same time: the largest number of streams open at one moment.
    edges = sorted([(s, 1) for s, _, _, _ in results] + [(e, -1) for _, e, _, _ in results])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    rids = [rid for _, _, _, rid in results]
    log = {r["headers"].get("x-request-id"): r for r in harness.http_json(rig.upstream.url("/_requests?bodies=0"))}
    for _, _, resp, rid in results:
        assert resp.status == 200 and resp.complete, (resp.status, resp.error)
        body, comment = split_comment(resp.body)
        assert body == rec.response
        assert hashlib.sha256(body).hexdigest() == log[rid]["sent_sha256"]
        assert comment["cost_status"] == "exact"
        assert resp.llm_trailers()["x-llm-cost"] == comment["cost_usd"]
    wanted = set(rids)
    harness.wait_until(lambda: len([r for r in rig.collector.records() if r.get("request_id") in wanted]) >= n,
                       15, what="%d records" % n)
    time.sleep(0.3)
    records = [r for r in rig.collector.records() if r.get("request_id") in wanted]
    assert len(records) == n and {r["request_id"] for r in records} == wanted
    assert {r["cost_status"] for r in records} == {"exact"}

    def settled():
        m = rig.memory()
        return m if m["allocated"] - before["allocated"] < 2 << 20 else None

    try:
        after = harness.wait_until(settled, 5, interval=0.25, what="allocated back near the baseline")
    finally:
        last = rig.memory()
        print("%d streams in %.2f s, at most %d open at once; allocated %s -> peak %s -> %s, "
              "heap %s -> %s, rss %s -> peak %s -> %s"
              % (n, took, most, mib(before["allocated"]), mib(peak["allocated"]), mib(last["allocated"]),
                 mib(before["heap_size"]), mib(last["heap_size"]), mib(before["rss"]), mib(peak["rss"]),
                 mib(last["rss"])))
    assert most >= n // 2
    assert after["rss"] - before["rss"] < 32 << 20
    assert envoy_is_up(rig.envoy)
