"""Issue #19, the PostgreSQL ledger: a real Envoy with the filter delivers its records to a real
`llm-cost collect --postgres URL` writing into a real PostgreSQL server (tests/support/postgres.py).
Each call lands exactly once — across a collector killed and restarted mid-run while the filter
retries, and across the database stopped mid-run (503s) and started again.
"""

import json
import os
import select
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from support import harness
from support.calls import fixture_names, recorded, send
from support.postgres import Postgres

class LedgerCollect:
    """A running `llm-cost collect --listen 127.0.0.1:PORT --postgres URL`."""

    def __init__(self, url, port):
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="llm-cost-collect-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [harness.CLI, "collect", "--listen", "127.0.0.1:%d" % port, "--postgres", url],
            stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on http://127.0.0.1:%d/" % port):
            self.kill()
            raise RuntimeError("llm-cost collect did not start: %r\n%s" % (line, self.log_text()))

    def post(self, body):
        req = urllib.request.Request("http://127.0.0.1:%d/ingest" % self.port, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def terminate(self, timeout=10):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_text(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        self.kill()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def pg():
    server = Postgres()
    yield server
    server.close()


def count(pg):
    return int(pg.query("SELECT count(*) FROM llm_cost_records")[0][0])


def client_cost(resp):
    value = resp.header("x-llm-cost") or resp.trailers.get("x-llm-cost")
    return Decimal(value) if value is not None else Decimal(0)


def send_all(envoy, names):
    told, rids = Decimal(0), []
    for name in names:
        resp, rid = send(envoy, name)
        assert resp.status == 200 and resp.complete, name
        told += client_cost(resp)
        rids.append(rid)
    return told, rids


def assert_ledger_holds_exactly(pg, rids, told):
    rows = pg.query("SELECT request_id FROM llm_cost_records ORDER BY request_id")
    assert [r[0] for r in rows] == sorted(rids), "each call stored exactly once"
    total = pg.query("SELECT COALESCE(sum(cost_usd), 0) FROM llm_cost_records")[0][0]
    assert Decimal(total) == told
    # The typed columns say what the record says (the whole record is kept in `record`).
    mismatched = pg.query(
        "SELECT count(*) FROM llm_cost_records WHERE ts IS NULL OR model IS DISTINCT FROM record->>'model' "
        "OR cost_usd::text IS DISTINCT FROM record->>'cost_usd' "
        "OR prompt_tokens IS DISTINCT FROM (record->>'prompt_tokens')::bigint "
        "OR attributes IS DISTINCT FROM record->'attributes' OR duration_ms IS NULL")[0][0]
    assert mismatched == "0"
    daily = pg.query("SELECT sum(calls), sum(cost_usd) FROM llm_cost_daily")[0]
    assert int(daily[0]) == len(rids) and Decimal(daily[1]) == told


def test_calls_land_once_each_across_a_collector_restart(envoy_bin, upstream, cli, pg):
    names = fixture_names()
    assert len(names) > 20
    half = len(names) // 2
    port = harness.free_port()
    collect = LedgerCollect(pg.url, port)
    envoy = None
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, port)
        told1, rids1 = send_all(envoy, names[:half])
        collect.kill()  # abrupt: batches in flight are lost unanswered; the filter keeps and retries them
        collect.close()
        told2, rids2 = send_all(envoy, names[half:half + 5])  # queued in the filter meanwhile
        collect = LedgerCollect(pg.url, port)
        told3, rids3 = send_all(envoy, names[half + 5:])
        rids, told = rids1 + rids2 + rids3, told1 + told2 + told3
        harness.wait_until(lambda: count(pg) >= len(rids), 60, what="%d records in PostgreSQL" % len(rids))
        envoy.stop()  # no later batch can arrive
        envoy = None
        assert_ledger_holds_exactly(pg, rids, told)
        print("ledger: %d calls, %s USD, after a collector restart" % (len(rids), told))

        # A redelivery the restarted process has never seen (its in-memory window is empty) is dropped
        # by the database's unique (request_id, ts).
        assert collect.terminate() == 0, collect.log_text()
        collect.close()
        collect = LedgerCollect(pg.url, port)
        again = "".join(r[0] + "\n" for r in pg.query("SELECT record FROM llm_cost_records")).encode()
        status, answer = collect.post(again)
        assert status == 200 and answer["duplicates"] == len(rids) and answer["stored"] == 0, answer
        assert count(pg) == len(rids)
        applied = pg.query("SELECT version FROM llm_cost_migrations ORDER BY version")
        assert applied == [["1"], ["2"]], "migrations ran once, not again at each start"
    finally:
        if envoy is not None:
            envoy.stop()
        collect.close()


def test_database_stopped_mid_run_loses_no_record(envoy_bin, upstream, cli, pg):
    names = fixture_names()
    third = len(names) // 3
    port = harness.free_port()
    collect = LedgerCollect(pg.url, port)
    envoy = None
    try:
        envoy = harness.Envoy(envoy_bin, upstream.port, port)
        told1, rids1 = send_all(envoy, names[:third])
        harness.wait_until(lambda: count(pg) >= len(rids1), 30, what="first records in PostgreSQL")
        pg.stop()
        status, answer = collect.post(b'{"ts":"2026-01-01T00:00:00.000Z","request_id":"probe"}\n')
        assert status == 503 and "unavailable" in answer["error"], answer
        told2, rids2 = send_all(envoy, names[third:])  # their batches get 503 and stay in the filter
        harness.wait_until(lambda: collect.log_text().count("unavailable") >= 3, 30,
                           what="the filter's batches refused with 503")
        pg.start()
        rids, told = rids1 + rids2, told1 + told2
        harness.wait_until(lambda: count(pg) >= len(rids), 60, what="%d records in PostgreSQL" % len(rids))
        envoy.stop()
        envoy = None
        assert_ledger_holds_exactly(pg, rids, told)
        assert collect.terminate() == 0, collect.log_text()
        print("ledger: %d calls, %s USD, across a database stop" % (len(rids), told))
    finally:
        if envoy is not None:
            envoy.stop()
        collect.close()


def test_collector_started_before_the_database_answers_503_then_migrates_on_first_connection(cli, pg):
    pg.stop()
    port = harness.free_port()
    collect = LedgerCollect(pg.url, port)  # starts although the database is down
    try:
        probe = b'{"ts":"2026-01-01T00:00:00.000Z","request_id":"before-db","cost_usd":"0.5"}\n'
        req = urllib.request.Request("http://127.0.0.1:%d/ingest" % port, data=probe, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 503 and refused.value.headers["retry-after"] == "1"
        assert "unavailable" in json.loads(refused.value.read())["error"]
        assert "starting anyway, batches get 503 until it is reachable" in collect.log_text()

        pg.start()
        status, answer = collect.post(probe)  # the sender's retry
        assert status == 200 and answer["stored"] == 1, (answer, collect.log_text())
        assert pg.query("SELECT request_id, cost_usd FROM llm_cost_records") == [["before-db", "0.5"]]
        assert pg.query("SELECT version FROM llm_cost_migrations ORDER BY version") == [["1"], ["2"]]
        assert "reachable, 2 migration(s) applied" in collect.log_text()
        assert collect.terminate() == 0, collect.log_text()
    finally:
        collect.close()


def test_a_statement_over_the_timeout_is_answered_503_and_the_retry_stored(cli, pg):
    port = harness.free_port()
    collect = LedgerCollect(pg.url, port)
    locker = None
    try:
        # Another session holds the table: the collector's insert waits past its statement_timeout.
        locker = subprocess.Popen(
            pg.as_user + ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "postgres",
                          "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        locker.stdin.write(b"BEGIN;\nLOCK TABLE llm_cost_records IN ACCESS EXCLUSIVE MODE;\n")
        locker.stdin.flush()
        harness.wait_until(lambda: pg.query(
            "SELECT count(*) FROM pg_locks WHERE relation = 'llm_cost_records'::regclass "
            "AND mode = 'AccessExclusiveLock' AND granted")[0][0] == "1", 30, what="the table locked")
        probe = b'{"ts":"2026-01-01T00:00:00.000Z","request_id":"slow","cost_usd":"0.25"}\n'
        started = time.monotonic()
        status, answer = collect.post(probe)
        took = time.monotonic() - started
        assert status == 503 and "statement timeout" in answer["error"], answer
        assert 4 < took < 9, took  # statement_timeout is 5 s
        locker.stdin.write(b"ROLLBACK;\n\\q\n")
        locker.stdin.close()
        locker.wait(timeout=30)
        status, answer = collect.post(probe)  # the sender's retry
        assert status == 200 and answer["stored"] == 1, answer
        assert pg.query("SELECT request_id FROM llm_cost_records") == [["slow"]]
        assert collect.terminate() == 0, collect.log_text()
    finally:
        if locker is not None and locker.poll() is None:
            locker.kill()
            locker.wait(timeout=10)
        collect.close()
