"""Every metering fault leaves the traffic as the upstream sent it and still yields one record
whose status says what happened."""

import gzip
import socket
import time

import pytest

from support import harness
from support import rawhttp
from support.calls import recorded, send, split_comment

JSON = "openrouter-cache-all-settings-real-api-0"
STREAM = "openrouter-stream-with-reasoning"


def one_record(collector, rid):
    [record] = collector.records_for(rid)
    return record


def test_upstream_500_passes_through_with_an_error_record(envoy, collector):
    resp, rid = send(envoy, JSON, fault="status-500")
    assert resp.status == 500
    assert b"replayed upstream error" in resp.body
    assert resp.llm_headers() == {}
    record = one_record(collector, rid)
    assert record["status_code"] == 500
    assert (record["cost_status"], record["error"]) == ("error", "upstream_status")


def test_upstream_429_passes_through(envoy, collector):
    resp, rid = send(envoy, STREAM, fault="status-429")
    assert resp.status == 429
    assert one_record(collector, rid)["error"] == "upstream_status"


def test_malformed_json_passes_unchanged(envoy, collector):
    resp, rid = send(envoy, JSON, fault="malformed")
    assert resp.status == 200 and resp.body == b"{not json"
    assert resp.header("x-llm-cost-status") == "error"
    assert resp.header("x-llm-cost-error") == "malformed_json"
    assert "x-llm-cost" not in resp.headers  # never a made-up cost
    record = one_record(collector, rid)
    assert (record["cost_status"], record["error"]) == ("error", "malformed_json")


@pytest.mark.parametrize("fault", ["pad-2000000", "chunked-json,pad-2000000"])
def test_json_over_the_hold_limit_is_passed_through_not_failed(envoy, collector, fault):
    """2 MB > max_response_body_bytes (1 MiB): the filter must stop holding (Envoy would answer
    500 past its buffer limit), with and without a content-length to decide from."""
    resp, rid = send(envoy, JSON, fault=fault)
    assert resp.status == 200 and resp.complete
    assert resp.body == recorded(JSON).response + b" " * 2000000
    assert "x-llm-cost" not in resp.headers
    record = one_record(collector, rid)
    assert (record["cost_status"], record["error"]) == ("error", "response_too_large")


def test_chunked_json_without_content_length_is_metered(envoy, collector):
    resp, rid = send(envoy, JSON, fault="chunked-json")
    assert resp.status == 200 and resp.body == recorded(JSON).response
    assert resp.header("x-llm-cost-status") == "exact"
    assert one_record(collector, rid)["cost_status"] == "exact"


def test_slow_upstream_is_metered(envoy, collector):
    resp, rid = send(envoy, JSON, fault="slow")
    assert resp.status == 200 and resp.header("x-llm-cost-status") == "exact"
    assert one_record(collector, rid)["cost_status"] == "exact"


def test_upstream_reset_mid_stream_gives_the_client_what_was_sent(envoy, collector):
    rec = recorded(STREAM)
    resp, rid = send(envoy, STREAM, fault="reset-mid-stream")
    assert resp.status == 200
    assert not resp.complete  # the client sees the stream break, as it would without us
    assert len(resp.body) > 0 and rec.response.startswith(resp.body)
    record = one_record(collector, rid)
    assert record["cost_status"] == "error"
    assert record["error"] in ("aborted", "truncated_stream")


def test_stream_without_done_still_metered(envoy, collector):
    rec = recorded(STREAM)
    resp, rid = send(envoy, STREAM, fault="no-done")
    body, comment = split_comment(resp.body)
    assert body == rec.response[: -len(b"data: [DONE]\n\n")]
    assert comment["cost_status"] == "exact"  # usage arrived before the end
    assert one_record(collector, rid)["cost_status"] == "exact"


def test_client_abort_mid_stream_yields_an_aborted_record(envoy, collector):
    resp, rid = send(envoy, STREAM, abort_after_bytes=2000,
                     extra_headers={"x-replay-event-delay-ms": "20"})
    assert resp.status == 200 and len(resp.body) >= 2000
    record = one_record(collector, rid)
    assert (record["cost_status"], record["error"]) == ("error", "aborted")
    # Envoy and the filter keep serving.
    again, _ = send(envoy, JSON)
    assert again.status == 200 and again.header("x-llm-cost-status") == "exact"


def test_oversize_request_body_passes_unchanged(envoy, upstream, collector):
    rec = recorded(STREAM)
    body = dict(rec.request_body)
    body.pop("stream_options")
    body["padding"] = "x" * (1 << 20)  # > max_request_body_bytes: no rewrite
    resp, rid = send(envoy, STREAM, body=body)
    assert resp.status == 200 and resp.complete
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert seen["body"].encode() == rec.body_bytes(body)
    _, comment = split_comment(resp.body)
    assert comment is not None  # the stream is still metered from its own usage chunk
    one_record(collector, rid)


def test_unmetered_paths_pass_without_a_record(envoy, collector):
    rid = "unmetered-health-check"
    resp = rawhttp.request(envoy.port, "GET", "/api/v1/models",
                           {"host": "openrouter.ai", "x-request-id": rid, "x-replay-fixture": "nope"})
    assert resp.status == 404  # the replay upstream's answer, passed through
    time.sleep(0.4)
    assert [r for r in collector.records() if r.get("request_id") == rid] == []


def test_collector_down_costs_the_client_nothing_and_records_wait(envoy_bin, upstream):
    """The collector port is closed: responses are unaffected, failures are counted, and the
    records are delivered once the collector comes up (bounded retry queue)."""
    port = harness.free_port()
    e = harness.Envoy(envoy_bin, upstream.port, port)
    started = None
    try:
        rids = []
        for name in (JSON, STREAM):
            resp, rid = send(e, name)
            assert resp.status == 200 and resp.complete
            rids.append(rid)
        harness.wait_until(lambda: e.stats().get("wasmcustom.llmcost.collector.failures_total", 0) > 0,
                           10, what="a counted collector failure")
        started = harness.Collector(port=port)
        for rid in rids:
            [record] = started.records_for(rid, timeout=10)
            assert record["cost_status"] == "exact"
        assert e.stats().get("wasmcustom.llmcost.collector.sent_records_total", 0) >= 2
    finally:
        if started:
            started.stop()
        e.stop()


def test_client_abort_before_a_json_response_yields_an_aborted_record(envoy, collector):
    rec = recorded(JSON)
    rid = "abort-json-" + str(time.time())
    body = rec.body_bytes()
    head = ("POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\nx-request-id: %s\r\n"
            "x-replay-fixture: %s\r\nx-replay-fault: slow\r\ncontent-length: %d\r\n\r\n"
            % (rec.path, rec.host, rid, JSON, len(body)))
    with socket.create_connection(("127.0.0.1", envoy.port), timeout=5) as s:
        s.sendall(head.encode() + body)
        time.sleep(0.3)  # the upstream answers after 1 s: leave before that
    record = one_record(collector, rid)
    assert (record["cost_status"], record["error"]) == ("error", "aborted")


def test_upstream_down_gives_the_client_envoys_503_and_a_record(envoy_bin, collector):
    e = harness.Envoy(envoy_bin, harness.free_port(), collector.port)
    try:
        resp, rid = send(e, JSON)
        assert resp.status == 503
        record = one_record(collector, rid)
        assert (record["status_code"], record["error"]) == (503, "upstream_status")
    finally:
        e.stop()


def test_compressed_json_passes_through_unmetered(envoy, collector):
    resp, rid = send(envoy, JSON, fault="gzip")
    assert resp.status == 200 and resp.header("content-encoding") == "gzip"
    assert gzip.decompress(resp.body) == recorded(JSON).response
    assert resp.llm_headers() == {}
    record = one_record(collector, rid)
    assert (record["cost_status"], record["error"]) == ("error", "compressed_response")


def test_nobody_can_forge_the_cost_headers(envoy, upstream, collector):
    # A client's x-llm-* request headers never reach the upstream, and an upstream's x-llm-*
    # response headers never reach the client — even when the filter has no cost to set, as for
    # a malformed body, where a forged `x-llm-cost` would otherwise pass as ours.
    resp, rid = send(envoy, JSON, fault="malformed,forge-headers",
                     extra_headers={"x-llm-cost": "0", "X-LLM-Model": "forged"})
    assert resp.status == 200 and resp.body == b"{not json"
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert not [h for h in seen["headers"] if h.lower().startswith("x-llm-")]
    assert resp.header("x-llm-cost") is None
    assert resp.header("x-llm-cost-status") == "error"
    assert one_record(collector, rid)["error"] == "malformed_json"
