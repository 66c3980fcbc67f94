"""`llm-cost pricing fetch URL` over HTTPS against a local pricing server whose certificate is
signed by a test CA made here (Python `cryptography`), and `llm-cost price --pricing URL`."""

import datetime
import json
import os
import subprocess
import tempfile
import shutil
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support import harness
from support.calls import recorded

JSON = "openrouter-cache-all-settings-real-api-0"


def write_test_ca(tmp):
    """(ca.pem, server cert.pem, server key.pem): a CA and a `localhost` certificate it signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-cost test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(tmp, n) for n in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def tls_server():
    with tempfile.TemporaryDirectory() as tmp:
        ca, cert, key = write_test_ca(tmp)
        doc = os.path.join(harness.ROOT, "pricing-data", "bundled.json")
        server = harness.Helper("pricing_server.py", "--tls-cert", cert, "--tls-key", key, "--document", doc)
        try:
            yield server, ca, tmp
        finally:
            server.stop()


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, timeout=120)


def test_pricing_fetch_downloads_over_https_with_a_test_ca_and_writes_the_snapshot(tls_server, cli):
    server, ca, tmp = tls_server
    url = "https://localhost:%d/api/v1/models" % server.port
    out = os.path.join(tmp, "fetched.json")
    proc = run(cli, "pricing", "fetch", url, "--format", "openrouter", "--ca-cert", ca, "--out", out)
    assert proc.returncode == 0, proc.stderr.decode()
    with open(out) as f:
        fetched = json.load(f)
    assert fetched["source"] == url
    # The same table as importing the file itself: nothing lost on the way.
    imported = os.path.join(tmp, "imported.json")
    doc = os.path.join(harness.ROOT, "pricing-data", "bundled.json")
    assert run(cli, "pricing", "import", doc, "--out", imported).returncode == 0
    diff = run(cli, "pricing", "diff", imported, out)
    assert diff.stdout.decode().strip().splitlines()[-1] == "0 added, 0 removed, 0 re-priced"


def test_pricing_fetch_refuses_an_unknown_ca_and_a_wrong_format(tls_server, cli):
    server, ca, tmp = tls_server
    url = "https://localhost:%d/api/v1/models" % server.port
    untrusted = run(cli, "pricing", "fetch", url)  # public roots only: the test CA is unknown
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr.decode().lower() or "issuer" in untrusted.stderr.decode().lower()
    wrong = run(cli, "pricing", "fetch", url, "--format", "litellm", "--ca-cert", ca)
    assert wrong.returncode != 0 and "expected the `litellm` format" in wrong.stderr.decode()


def test_price_accepts_a_url_for_pricing(cli):
    server = harness.Helper("pricing_server.py")
    try:
        doc = {"data": [{"id": "anthropic/claude-sonnet-4.6", "canonical_slug": "anthropic/claude-4.6-sonnet-20260217",
                         "pricing": {"prompt": "0.00001", "completion": "0.00002", "input_cache_read": "0.000001",
                                     "input_cache_write": "0.0000125"}}]}
        urllib.request.urlopen(urllib.request.Request(server.url("/_document"), data=json.dumps(doc).encode(),
                                                      method="PUT"), timeout=5).read()
        rec = recorded(JSON)
        proc = run(cli, "price", "--pricing", server.url("/api/v1/models"), "--provider", rec.provider,
                   rec.file(rec.kind))
        assert proc.returncode == 0, proc.stderr.decode()
        record = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        assert record["priced_as"] == "anthropic/claude-sonnet-4.6"
        assert record["breakdown"]["completion"] == "0.00126"  # 63 completion tokens at 0.00002
        assert record["breakdown"]["cache_write"] == "0.0321125"  # 2,569 cache-write tokens at 0.0000125
    finally:
        server.stop()


def test_refresh_pricing_refreshes_a_copy_of_pricing_data_with_provenance(tls_server):
    server, ca, tmp = tls_server
    copy = os.path.join(tmp, "pricing-data")
    shutil.copytree(os.path.join(harness.ROOT, "pricing-data", "snapshots"), os.path.join(copy, "snapshots"))
    # An older table as the bundled one, so the diff has something to say.
    shutil.copy(os.path.join(copy, "snapshots", "openrouter-models-2026-05-01.json"), os.path.join(copy, "bundled.json"))
    url = "https://localhost:%d/api/v1/models" % server.port
    proc = subprocess.run([os.path.join(harness.ROOT, "scripts", "refresh-pricing"), url, "--ca-cert", ca],
                          env={**os.environ, "LLM_COST_PRICING_DIR": copy}, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    snapshot = os.path.join(copy, "snapshots", "openrouter-models-%s.json" % today)
    with open(snapshot) as f, open(os.path.join(copy, "bundled.json")) as g:
        assert f.read() == g.read()
    with open(os.path.join(copy, "snapshots", "SOURCES.md")) as f:
        sources = f.read()
    assert "| openrouter-models-%s.json | `llm-cost pricing fetch %s`" % (today, url) in sources
    assert " added, " in proc.stdout.decode()
