#!/usr/bin/env python3
"""The soak (issue 22): mixed JSON and streamed calls, some clients aborting, through a real Envoy
with the built filter, while the collector (`llm-cost collect`, writing to files, so restarts
keep what it stored) flaps: up, down (stopped: connection refused), up, slow (SIGSTOP for 1.5 s
at a time: answers late, within `timeout_ms`), up, stalled (SIGSTOP 4 s once: answers after the
timeout; the batch is resent and stored twice, which de-duplication by request_id removes), ... a phase every `--phase-s` seconds.

At the end (collector up, queue drained, bounded wait) it checks, exactly:
  * Envoy's ledger: metered == delivered + dropped (by reason) + queued, metered == calls made;
  * the collector's distinct request_ids + counted drops == calls made;
and measures the slopes of Envoy's RSS and of the filter VMs' linear memory (the
`llmcost_vm_memory_bytes` gauge; least-squares fits over samples after a warm-up) and the
p99 latency of the un-faulted calls (JSON and streams read to the end).

Short version: tests/envoy/test_survive.py::test_short_soak (in scripts/test-envoy, so CI).
Long version:  scripts/soak [--minutes 10] [--rate 50]  (figures in docs/RELIABILITY.md).
"""

import argparse
import glob
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ledger  # noqa: E402
from support import harness, rawhttp  # noqa: E402
from support.calls import send  # noqa: E402

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-cache-streaming-e2e"  # 7 events
LONG_STREAM = "openrouter-stream-with-reasoning"  # 110 events, 5 ms apart here: the aborted calls
PLUGIN_CONFIG = {"collector": {"flush_interval_ms": 200, "timeout_ms": 2000, "max_queue_records": 400,
                               "max_batch_records": 200}}
PHASES = ["up", "down", "up", "slow", "up", "stalled"]
# The filter's VMs' linear memory, summed (a gauge; Wasm memory never shrinks, so a leak is a rise).
VM_MEMORY = "wasmcustom.llmcost.vm_memory_bytes"


class Collect:
    """`llm-cost collect` on a fixed port and directory: stop() and start() again to flap it."""

    def __init__(self, out_dir, port=0):
        self.dir, self.port, self.proc = out_dir, port, None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [harness.CLI, "collect", "--listen", "127.0.0.1:%d" % self.port, "--out", self.dir,
             "--shutdown-grace", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on http://127.0.0.1:"):
            self.kill()
            raise RuntimeError("llm-cost collect did not start: %r" % line)
        self.port = int(line.split("127.0.0.1:")[1].split("/")[0])

    def stop(self):
        """SIGTERM: requests under way finish (and are answered), later connections are refused."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self, seconds):
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.proc.send_signal(signal.SIGCONT)

    def request_ids(self):
        ids = set()
        for path in glob.glob(os.path.join(self.dir, "llm-cost-*.ndjson")):
            with open(path) as f:
                for line in f:
                    if line.strip():
                        ids.add(json.loads(line).get("request_id"))
        return ids


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def slope_per_minute(samples):
    """Least-squares slope of [(t_seconds, value)] in value units per minute."""
    n = len(samples)
    if n < 3:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 60.0 * sum((t - mt) * (v - mv) for t, v in samples) / den if den else 0.0


def percentile(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def one_call(envoy, rng):
    """One call; returns (kind, latency seconds or None when aborted, request id)."""
    r = rng.random()
    t0 = time.monotonic()
    if r < 0.15:
        _, rid = send(envoy, LONG_STREAM, extra_headers={"x-replay-event-delay-ms": "5"},
                      abort_after_bytes=300, timeout=30)
        return "aborted", None, rid
    name = JSON if r < 0.6 else STREAM
    resp, rid = send(envoy, name, timeout=30)
    if resp.status != 200 or not resp.complete:
        raise AssertionError("%s: %s %s" % (name, resp.status, resp.error))
    return ("json" if name == JSON else "stream"), time.monotonic() - t0, rid


def run(envoy_bin, duration_s, rate, phase_s, workers=6, seed=22, log=print):
    """Runs the soak; returns a dict of figures. Every loop is bounded by `duration_s` plus fixed
    drain waits."""
    tmp = tempfile.mkdtemp(prefix="llm-cost-soak-")
    up = harness.Upstream(event_delay_ms=1)
    col = Collect(tmp)
    env = None
    try:
        env = harness.Envoy(envoy_bin, up.port, col.port, plugin_config=PLUGIN_CONFIG)
        lock = threading.Lock()
        made, latencies, kinds, errors = [], [], {}, []
        end = time.monotonic() + duration_s
        interval = workers / float(rate)

        def worker(i):
            rng = random.Random(seed * 100 + i)
            next_at = time.monotonic()
            while time.monotonic() < end:
                try:
                    kind, latency, rid = one_call(env, rng)
                except Exception as e:  # a broken call is a finding: recorded, reported
                    with lock:
                        errors.append(repr(e))
                    continue
                with lock:
                    made.append(rid)
                    kinds[kind] = kinds.get(kind, 0) + 1
                    if latency is not None:
                        latencies.append(latency)
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        rss, vm_memory, checks, phase_log = [], [], [], []
        phase_at, phase_i, stalled = t_start, 0, None
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= phase_at + phase_s:
                phase_i += 1
                phase_at = now
                phase = PHASES[phase_i % len(PHASES)]
                if phase == "down":
                    col.stop()
                elif PHASES[(phase_i - 1) % len(PHASES)] == "down":
                    col.start()
                phase_log.append((round(now - t_start, 1), phase))
            phase = PHASES[phase_i % len(PHASES)]
            if phase == "slow":
                col.pause(1.5)  # answers up to 1.5 s late: within timeout_ms
            elif phase == "stalled" and stalled != phase_i:
                stalled = phase_i
                col.pause(4.0)  # once per phase: batches time out, are resent, stored twice
            rss.append((time.monotonic() - t_start, rss_bytes(env.proc.pid)))
            stats = env.stats()
            checks.append(ledger.Ledger(stats).holds())
            vm_memory.append((time.monotonic() - t_start, stats.get(VM_MEMORY, 0)))
            time.sleep(1.0 if phase in ("slow", "stalled") else 2.0)
        for t in threads:
            t.join(timeout=60)
        if col.proc.poll() is not None:
            col.start()
        final = ledger.wait_drained(env, 90, flush_interval_s=0.2)
        col.stop()  # graceful: everything answered is in the files
        stored = col.request_ids()
        calls = len(made)
        dropped = sum(final.dropped.values())
        warm = [s for s in rss if s[0] >= 0.25 * duration_s]
        warm_vm = [s for s in vm_memory if s[0] >= 0.25 * duration_s]
        figures = {
            "duration_s": round(time.monotonic() - t_start, 1),
            "calls": calls,
            "calls_per_minute": round(60.0 * calls / duration_s),
            "kinds": kinds,
            "client_errors": errors[:5],
            "client_error_count": len(errors),
            "phases": phase_log,
            "ledger": repr(final),
            "ledger_holds": final.holds(),
            "ledger_checks_during_load": "%d of %d held" % (sum(checks), len(checks)),
            "metered": final.metered,
            "dropped": final.dropped,
            "queued": final.queued,
            "collector_distinct": len(stored & set(made)),
            "collector_strangers": len(stored - set(made)),
            "collector_plus_dropped": len(stored & set(made)) + dropped,
            "rss_mib_first_last": (round(rss[0][1] / 1048576.0, 1), round(rss[-1][1] / 1048576.0, 1)),
            "rss_slope_mib_per_min": round(slope_per_minute(warm) / 1048576.0, 3),
            "rss_samples": len(warm),
            # first sample after the warm-up (the gauge is 0 until the VMs' first timer tick)
            "vm_memory_mib_first_last": (round(warm_vm[0][1] / 1048576.0, 2) if warm_vm else 0.0,
                                         round(vm_memory[-1][1] / 1048576.0, 2)),
            "vm_memory_slope_mib_per_min": round(slope_per_minute(warm_vm) / 1048576.0, 3),
            "p50_ms": round(1000 * percentile(latencies, 50), 1),
            "p99_ms": round(1000 * percentile(latencies, 99), 1),
            "max_ms": round(1000 * max(latencies or [0]), 1),
        }
        log(json.dumps(figures, indent=1))
        return figures
    finally:
        if env:
            env.stop()
        col.kill()
        up.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=50.0, help="calls per second (all workers)")
    ap.add_argument("--phase-s", type=float, default=30.0, help="seconds per collector phase")
    args = ap.parse_args()
    envoy = harness.find_envoy()
    f = run(envoy, args.minutes * 60.0, args.rate, args.phase_s)
    ok = (f["ledger_holds"] and f["metered"] == f["calls"] and f["collector_plus_dropped"] == f["calls"]
          and f["client_error_count"] == 0)
    print("soak: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
