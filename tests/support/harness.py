"""Runs the real Envoy with the built llm-cost .wasm between a replaying upstream and a collector.

Everything binds 127.0.0.1 on free ports (port 0; Envoy's bound ports are read back from its
admin endpoint). Every wait is bounded. Used by tests/envoy/conftest.py.
"""

import functools
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

from support.paths import CLI, FIXTURES, ROOT, SUPPORT, TARGET, WASM, WASM_ESTIMATE  # noqa: F401 (re-exported)

TEMPLATE = os.path.join(ROOT, "envoy", "demo.yaml")



@functools.lru_cache(maxsize=None)
def provider_host(provider):
    """The public API host of `provider` (`openai` -> `api.openai.com`), asked of the CLI, which
    reads the core's one table (`Provider::KNOWN_HOSTS`): no copy of it here."""
    out = subprocess.run([CLI, "price", "--provider", provider, "-"], input=b"{}",
                         capture_output=True, timeout=30, check=True)
    return json.loads(out.stdout)["host"]


def find_envoy():
    """The Envoy binary: $ENVOY, else the one scripts/install-envoy put in the tools venv."""
    explicit = os.environ.get("ENVOY")
    if explicit:
        return explicit
    tools = os.environ.get("LLM_COST_TOOLS", os.path.expanduser("~/.cache/llm-cost-tools"))
    venv = os.path.join(tools, "venv", "lib")
    if os.path.isdir(venv):
        for pyver in sorted(os.listdir(venv)):
            path = os.path.join(venv, pyver, "site-packages", "envoy", "_bin", "envoy")
            if os.path.isfile(path):
                return path
    return shutil.which("envoy")


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def http_json(url, method="GET", timeout=5):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    insecure = ssl._create_unverified_context() if url.startswith("https:") else None  # test-only self-signed upstream
    with urllib.request.urlopen(req, timeout=timeout, context=insecure) as resp:
        return json.loads(resp.read() or b"null")


def http_text(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def stop_process(proc, timeout):
    """Stop a child we started: SIGTERM, wait `timeout` seconds, then SIGKILL (and reap it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Helper:
    """A tests/support server that prints `LISTENING <port>` first."""

    def __init__(self, script, *args, port=0):
        self.proc = subprocess.Popen(
            ["python3", os.path.join(SUPPORT, script), "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError("%s did not start: %r" % (script, line))
        self.port = int(line.split()[1])

    scheme = "http"

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def stop(self):
        stop_process(self.proc, timeout=5)


class Upstream(Helper):
    def __init__(self, event_delay_ms=2, tls=None, fixtures=FIXTURES):
        extra = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
        super().__init__("replay_upstream.py", "--fixtures", fixtures, "--event-delay-ms", str(event_delay_ms), *extra)
        self.scheme = "https" if tls else "http"

    def requests(self):
        return http_json(self.url("/_requests"))


class Collector(Helper):
    def __init__(self, *args, port=0):
        super().__init__("collector.py", *args, port=port)

    def records(self):
        return http_json(self.url("/_records"))

    def records_for(self, request_id, n=1, timeout=5):
        """Waits until `n` records carry `request_id`, then a little longer to catch extras."""
        pick = lambda: [r for r in self.records() if r.get("request_id") == request_id]
        wait_until(lambda: len(pick()) >= n, timeout, what="%d record(s) for %s" % (n, request_id))
        time.sleep(0.25)  # two flush intervals: a duplicate would show up by now
        return pick()


def render_config(wasm, upstream_port, collector_port, access_log, plugin_config, with_filter=True):
    with open(TEMPLATE) as f:
        text = f.read()
    if not with_filter:
        start, end = text.index("# BEGIN llm-cost filter"), text.index("# END llm-cost filter")
        text = text[:start] + text[end:]
    for key, value in {
        "WASM": wasm,
        "UPSTREAM_PORT": str(upstream_port),
        "COLLECTOR_PORT": str(collector_port),
        "ACCESS_LOG": access_log,
        "PLUGIN_CONFIG": json.dumps(plugin_config, separators=(",", ":")),
    }.items():
        text = text.replace("{{%s}}" % key, value)
    return text


def validate(envoy, config_text):
    """Runs `envoy --mode validate` on `config_text`; returns (exit code, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "envoy.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        return validate_file(envoy, path)


def validate_file(envoy, path, cwd=None):
    """Runs `envoy --mode validate -c path` (relative paths in it resolve against `cwd`);
    returns (exit code, output)."""
    proc = subprocess.run(
        [envoy, "--mode", "validate", "-c", path, "-l", "error", "--use-dynamic-base-id"],
        cwd=cwd,
        capture_output=True,
        timeout=60,
    )
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


class Envoy:
    """A running Envoy rendered from envoy/demo.yaml."""

    def __init__(self, envoy, upstream_port, collector_port, plugin_config=None, with_filter=True,
                 config_text=None, wasm=WASM, concurrency=1, extra_args=(), files=None):
        self.dir = tempfile.mkdtemp(prefix="llm-cost-envoy-")
        self.access_log = os.path.join(self.dir, "access.log")
        config = plugin_config if plugin_config is not None else {"collector": {"flush_interval_ms": 100}}
        if config_text is None:
            config_text = render_config(wasm, upstream_port, collector_port, self.access_log, config, with_filter)
        path = os.path.join(self.dir, "envoy.yaml")
        with open(path, "w") as f:
            f.write(config_text.replace("{{DIR}}", self.dir))
        for name, text in (files or {}).items():  # more files next to envoy.yaml (e.g. an LDS file)
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text.replace("{{DIR}}", self.dir))
        admin_path = os.path.join(self.dir, "admin")
        self.log_path = os.path.join(self.dir, "envoy.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [envoy, "-c", path, "--admin-address-path", admin_path, "--use-dynamic-base-id",
             "--concurrency", str(concurrency), "--file-flush-interval-msec", "100", "-l", "warning",
             *extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("envoy exited %s:\n%s" % (self.proc.returncode, self.log_text()[-3000:]))
            try:
                with open(admin_path) as f:
                    admin = f.read().strip()
                urllib.request.urlopen("http://%s/ready" % admin, timeout=1).read()
                return admin
            except (OSError, ValueError):
                return None

        try:
            self.admin = wait_until(ready, 30, what="envoy /ready")
            listeners = http_json("http://%s/listeners?format=json" % self.admin)
            self.port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
        except BaseException:
            self.stop()
            raise

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stats(self):
        """`/stats` as {name: value} (counters and gauges)."""
        out = {}
        for line in http_text("http://%s/stats" % self.admin).splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    def prometheus(self):
        return http_text("http://%s/stats/prometheus" % self.admin)

    def access_log_lines(self):
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        stop_process(self.proc, timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the shipped envoy/*.yaml configs in front of openrouter.ai, pointed at local stand-ins -------


def substitute(text, old, new):
    """`text` with `old` replaced; fails loudly when a shipped config no longer contains `old`."""
    assert old in text, "the shipped config no longer contains %r" % old
    return text.replace(old, new)


def server_cert(tmp, name):
    """A self-signed certificate for DNS name `name` (so SNI and verification are exercised)."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=%s" % name, "-addext", "subjectAltName=DNS:%s" % name],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def openrouter_cert(tmp):
    """A self-signed certificate for `openrouter.ai`."""
    return server_cert(tmp, "openrouter.ai")


def shipped_config(name):
    """The text of envoy/<name>."""
    with open(os.path.join(ROOT, "envoy", name)) as f:
        return f.read()


def local_openrouter_config(text, cert, upstream_port, collector_port):
    """A shipped config's text with only its addresses changed: free admin and listener ports, the
    TLS replay upstream for openrouter.ai (trusting `cert`), the test collector, the built .wasm."""
    text = substitute(text, "port_value: 9901", "port_value: 0")
    text = substitute(text, "port_value: 10000", "port_value: 0")
    text = substitute(text, "address: openrouter.ai, port_value: 443",
                      "address: 127.0.0.1, port_value: %d" % upstream_port)
    text = substitute(text, "/etc/ssl/certs/ca-certificates.crt", cert)
    text = substitute(text, "port_value: 9411", "port_value: %d" % collector_port)
    return substitute(text, "dist/llm_cost_plugin.wasm", WASM)
