"""envoy/envoy-openai-compatible.yaml as shipped, in real Envoy, with only the one upstream address
and the local ports changed: over TLS (a replaying upstream whose self-signed certificate is for
`localhost`, so SNI, certificate verification and the Host rewrite all follow the one address) and
over plain HTTP (the TLS block deleted, as the file says)."""

import tempfile

import pytest

from support import harness
from support.calls import cli_record, expected_headers, recorded, send, split_comment

JSON = "openai-model-sees-multiple-images-openai-chat-1"
STREAM = "openai-multiple-agents-1"
UPSTREAM = "address: &upstream_host api.openai.com, port_value: &upstream_port 443"


def local_config(text, host, port, collector_port, cert=None):
    text = harness.substitute(text, UPSTREAM, "address: &upstream_host %s, port_value: &upstream_port %d"
                              % (host, port))
    if cert:
        text = harness.substitute(text, "/etc/ssl/certs/ca-certificates.crt", cert)
    else:
        start, end = text.index("    # BEGIN TLS"), text.index("    # END TLS\n") + len("    # END TLS\n")
        text = text[:start] + text[end:]
    text = harness.substitute(text, "port_value: 9901", "port_value: 0")
    text = harness.substitute(text, "port_value: 10000", "port_value: 0")
    text = harness.substitute(text, "port_value: 9411", "port_value: %d" % collector_port)
    return harness.substitute(text, "dist/llm_cost_plugin.wasm", harness.WASM)


@pytest.fixture(scope="module", params=["tls", "plain"])
def compatible_envoy(request, envoy_bin, collector):
    with tempfile.TemporaryDirectory() as tmp:
        shipped = harness.shipped_config("envoy-openai-compatible.yaml")
        if request.param == "tls":
            cert, key = harness.server_cert(tmp, "localhost")
            upstream = harness.Upstream(tls=(cert, key))
            text = local_config(shipped, "localhost", upstream.port, collector.port, cert)
            host = "localhost"
        else:
            upstream = harness.Upstream()
            text = local_config(shipped, "127.0.0.1", upstream.port, collector.port)
            host = "127.0.0.1"
        envoy = harness.Envoy(envoy_bin, 0, 0, config_text=text)
        try:
            yield envoy, upstream, host
        finally:
            envoy.stop()
            upstream.stop()


def test_json_call_gets_its_cost_and_the_upstream_its_own_host(compatible_envoy, collector, cli):
    envoy, upstream, host = compatible_envoy
    resp, rid = send(envoy, JSON, extra_headers={"host": "127.0.0.1:10000", "accept-encoding": "gzip"})
    assert resp.status == 200 and resp.body == recorded(JSON).response
    golden = cli_record(cli, JSON)
    assert golden["cost_status"] == "exact"
    assert resp.llm_headers() == expected_headers(golden)
    [seen] = [r for r in upstream.requests() if r["headers"].get("x-request-id") == rid]
    assert seen["headers"]["host"] == host  # host_rewrite_literal: *upstream_host
    assert seen["has_authorization"]  # the client's API key passes through
    assert "accept-encoding" not in seen["headers"]
    [record] = collector.records_for(rid, timeout=5)
    assert record["provider"] == "openai" and record["cost_usd"] == golden["cost_usd"]


def test_stream_gets_comment_and_trailers(compatible_envoy, cli):
    envoy, _, _ = compatible_envoy
    resp, _ = send(envoy, STREAM, extra_headers={"host": "127.0.0.1:10000"})
    body, comment = split_comment(resp.body)
    assert body == recorded(STREAM).response
    golden = cli_record(cli, STREAM)
    assert comment["cost_usd"] == golden["cost_usd"]
    assert resp.llm_trailers() == expected_headers(golden)


def test_shipped_file_validates_as_is(envoy_bin):
    """Unedited (api.openai.com over TLS, relative .wasm path: run from the repository root)."""
    code, output = harness.validate_file(envoy_bin, "envoy/envoy-openai-compatible.yaml", cwd=harness.ROOT)
    assert code == 0, output[-2000:]
