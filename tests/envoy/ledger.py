"""The accounting identity of docs/RELIABILITY.md read from a real Envoy's admin `/stats`:

    records_metered_total == records_delivered_total + sum(records_dropped_total by reason)
                             + records_queued (gauge)

Used by tests/envoy/test_survive.py and the soak (tests/envoy/soak.py).
"""

import time

PREFIX = "wasmcustom.llmcost."
DROPPED = PREFIX + "records_dropped_total.reason="


class Ledger:
    def __init__(self, stats):
        self.metered = stats.get(PREFIX + "records_metered_total", 0)
        self.delivered = stats.get(PREFIX + "records_delivered_total", 0)
        self.dropped = {k[len(DROPPED):]: v for k, v in stats.items() if k.startswith(DROPPED)}
        self.queued = stats.get(PREFIX + "records_queued", 0)

    @property
    def accounted(self):
        return self.delivered + sum(self.dropped.values()) + self.queued

    def holds(self):
        return self.metered == self.accounted

    def key(self):
        return (self.metered, self.delivered, tuple(sorted(self.dropped.items())), self.queued)

    def __repr__(self):
        return "metered %d = delivered %d + dropped %s + queued %d (%s)" % (
            self.metered, self.delivered, self.dropped, self.queued, "holds" if self.holds() else "BROKEN")


def read(envoy, timeout=5.0):
    """The ledger between two timer ticks: two reads 20 ms apart that agree (the counters and the
    gauge move in one VM callback, so a read can straddle it; bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    last = Ledger(envoy.stats())
    while True:
        time.sleep(0.02)
        now = Ledger(envoy.stats())
        if now.key() == last.key() or time.monotonic() > deadline:
            return now
        last = now


def wait_drained(envoy, timeout, flush_interval_s=0.1):
    """Waits (bounded) until nothing is queued; returns the ledger. Waits two flush intervals
    first: counters and gauge move on the filter's timer, so right after the last call they may
    not count it yet."""
    time.sleep(2 * flush_interval_s)
    deadline = time.monotonic() + timeout
    while True:
        ledger = read(envoy)
        if ledger.queued == 0 or time.monotonic() > deadline:
            return ledger
        time.sleep(0.1)
