"""scripts/package-oci: the OCI image layout Istio and Envoy Gateway pull the filter from.

Both controllers (istio pkg/wasm/imagefetcher.go, envoy gateway internal/wasm/imagefetcher.go)
read an OCI manifest's LAST layer; with media type application/vnd.oci.image.layer.v1.tar+gzip
they gunzip it, untar it and take the first entry whose base name is `plugin.wasm` ("compat"
variant). `extract_like_the_controllers` below is that logic in Python.
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time

import pytest

from deploy_common import run_package_oci

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob(layout, digest):
    algo, hexd = digest.split(":")
    assert algo == "sha256"
    with open(os.path.join(layout, "blobs", "sha256", hexd), "rb") as f:
        return f.read()


def read_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def the_manifest(layout):
    index = read_json(os.path.join(layout, "index.json"))
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(index["manifests"]) == 1
    desc = index["manifests"][0]
    return desc, json.loads(blob(layout, desc["digest"]))


def extract_like_the_controllers(layout, manifest):
    layer = manifest["layers"][-1]
    assert layer["mediaType"] == LAYER
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layout, layer["digest"])))) as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                return tar.extractfile(member).read()
    raise AssertionError("plugin.wasm not found in the layer")


def test_layout_files(oci_layout):
    layout, _ = oci_layout
    assert read_json(os.path.join(layout, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    desc, _ = the_manifest(layout)
    assert desc["mediaType"] == MANIFEST
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "9.9.9-test"


def test_every_blob_is_named_by_its_digest_and_sized_as_described(oci_layout):
    layout, _ = oci_layout
    names = sorted(os.listdir(os.path.join(layout, "blobs", "sha256")))
    for name in names:
        with open(os.path.join(layout, "blobs", "sha256", name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == name
    desc, manifest = the_manifest(layout)
    described = [desc, manifest["config"], *manifest["layers"]]
    for d in described:
        assert len(blob(layout, d["digest"])) == d["size"], d
    assert sorted(d["digest"].split(":")[1] for d in described) == names  # nothing else in blobs/


def test_manifest_is_the_compat_variant(oci_layout):
    layout, _ = oci_layout
    _, manifest = the_manifest(layout)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [l["mediaType"] for l in manifest["layers"]] == [LAYER]
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    layer = blob(layout, manifest["layers"][0]["digest"])
    # diff_ids name the uncompressed layer, as the OCI image spec requires.
    assert config["rootfs"] == {"type": "layers",
                                "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]}


def test_layer_holds_exactly_the_built_wasm(oci_layout, wasm_bytes):
    layout, _ = oci_layout
    _, manifest = the_manifest(layout)
    assert extract_like_the_controllers(layout, manifest) == wasm_bytes
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layout, manifest["layers"][0]["digest"])))) as tar:
        members = tar.getmembers()
    assert [(m.name, m.isfile(), m.mode, m.uid, m.gid, m.mtime) for m in members] == \
        [("plugin.wasm", True, 0o644, 0, 0, 0)]


def test_printed_digests(oci_layout, wasm_bytes):
    layout, stdout = oci_layout
    desc, _ = the_manifest(layout)
    assert re.search(r"^wasm sha256: +%s " % hashlib.sha256(wasm_bytes).hexdigest(), stdout, re.M), stdout
    assert re.search(r"^manifest digest: %s$" % re.escape(desc["digest"]), stdout, re.M), stdout


def test_output_is_deterministic_and_follows_source_date_epoch(oci_layout, tmp_path):
    layout, _ = oci_layout
    again = tmp_path / "again"
    assert run_package_oci("--out", str(again), "--tag", "9.9.9-test").returncode == 0
    files = lambda root: sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    assert files(layout) == files(str(again))
    for rel in files(layout):
        with open(os.path.join(layout, rel), "rb") as a, open(os.path.join(str(again), rel), "rb") as b:
            assert a.read() == b.read(), rel
    dated = tmp_path / "dated"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    assert run_package_oci("--out", str(dated), "--tag", "9.9.9-test", env=env).returncode == 0
    assert the_manifest(str(dated))[0]["digest"] != the_manifest(layout)[0]["digest"]


def test_refuses_what_is_not_wasm_and_directories_it_did_not_make(tmp_path):
    not_wasm = tmp_path / "x.wasm"
    not_wasm.write_bytes(b"#!/bin/sh\n")
    proc = run_package_oci("--wasm", str(not_wasm), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "not a WebAssembly module" in proc.stderr
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    proc = run_package_oci("--out", str(precious))
    assert proc.returncode != 0 and (precious / "keep.txt").read_text() == "mine"


# -- an independent reader: skopeo (optional) ----------------------------------------------------

skopeo = shutil.which("skopeo")


@pytest.mark.skipif(not skopeo, reason="skopeo not installed (apt-get install skopeo)")
def test_skopeo_reads_the_layout_and_copies_it_unchanged(oci_layout, wasm_bytes, tmp_path):
    layout, _ = oci_layout
    desc, manifest = the_manifest(layout)
    raw = subprocess.run([skopeo, "inspect", "--raw", "oci:%s:9.9.9-test" % layout],
                         capture_output=True, timeout=60, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == desc["digest"]
    subprocess.run([skopeo, "copy", "--quiet", "oci:%s:9.9.9-test" % layout, "dir:%s" % (tmp_path / "d")],
                   capture_output=True, timeout=60, check=True)
    copied = (tmp_path / "d" / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(copied).hexdigest() == desc["digest"]
    layer_hex = manifest["layers"][0]["digest"].split(":")[1]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress((tmp_path / "d" / layer_hex).read_bytes()))) as tar:
        assert tar.extractfile("plugin.wasm").read() == wasm_bytes


registry = shutil.which("docker-registry")


@pytest.mark.skipif(not (skopeo and registry), reason="needs skopeo and docker-registry (apt-get install skopeo docker-registry)")
def test_push_to_a_local_registry_keeps_the_manifest_digest(oci_layout, tmp_path):
    """The documented push (`skopeo copy oci:DIR:TAG docker://...`) against a real registry on
    loopback: the digest the manifests pin is the digest the registry serves."""
    layout, _ = oci_layout
    desc, _ = the_manifest(layout)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "registry.yml"
    cfg.write_text("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\n"
                   "http: {addr: 127.0.0.1:%d}\n" % (tmp_path / "storage", port))
    proc = subprocess.Popen([registry, "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "registry did not start"
                time.sleep(0.1)
        ref = "docker://127.0.0.1:%d/llm-cost/llm-cost-plugin:9.9.9-test" % port
        subprocess.run([skopeo, "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:9.9.9-test" % layout, ref],
                       capture_output=True, timeout=60, check=True)
        out = subprocess.run([skopeo, "inspect", "--tls-verify=false", "--raw", ref],
                             capture_output=True, timeout=60, check=True).stdout
        assert "sha256:" + hashlib.sha256(out).hexdigest() == desc["digest"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
