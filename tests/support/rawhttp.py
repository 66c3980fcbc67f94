"""A minimal HTTP/1.1 client over a raw socket: exact body bytes, chunk arrival times, trailers.

The stdlib client discards trailers and hides when bytes arrived; the tests need both.
"""

import socket
import time


class Response:
    def __init__(self):
        self.status = 0
        self.headers = {}  # lower-case name -> value (last wins)
        self.trailers = {}
        self.body = b""
        self.chunks = []  # (seconds since request sent, bytes) per chunk as framed by Envoy
        self.complete = False  # the body ended properly (final chunk or full content-length)
        self.error = None
        self.sent_at = 0.0
        self.headers_at = None
        self.first_byte_at = None  # first body byte, relative to sent_at
        self.done_at = None

    def header(self, name):
        return self.headers.get(name.lower())

    def llm_headers(self, prefix="x-llm-"):
        return {k: v for k, v in self.headers.items() if k.startswith(prefix)}

    def llm_trailers(self, prefix="x-llm-"):
        return {k: v for k, v in self.trailers.items() if k.startswith(prefix)}


def _read_header_block(f):
    fields = {}
    while True:
        line = f.readline(65536)
        if not line:
            raise ConnectionError("connection closed in a header block")
        line = line.rstrip(b"\r\n")
        if not line:
            return fields
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()


def request(port, method, path, headers=None, body=b"", timeout=30, abort_after_bytes=None):
    """Sends one request and reads the whole response (or until `abort_after_bytes` body bytes,
    then closes the connection: a client abort)."""
    resp = Response()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        head = ["%s %s HTTP/1.1" % (method, path), "host: %s" % (headers or {}).get("host", "127.0.0.1")]
        for k, v in (headers or {}).items():
            if k.lower() != "host":
                head.append("%s: %s" % (k, v))
        if body or method == "POST":
            head.append("content-length: %d" % len(body))
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        resp.sent_at = time.monotonic()
        sock.sendall(data)
        f = sock.makefile("rb", buffering=0)
        status_line = f.readline(65536)
        if not status_line:
            raise ConnectionError("no response")
        resp.status = int(status_line.split()[1])
        resp.headers = _read_header_block(f)
        resp.headers_at = time.monotonic() - resp.sent_at

        def got(chunk):
            now = time.monotonic() - resp.sent_at
            if resp.first_byte_at is None and chunk:
                resp.first_byte_at = now
            resp.chunks.append((now, chunk))
            resp.body += chunk
            return abort_after_bytes is not None and len(resp.body) >= abort_after_bytes

        try:
            if "chunked" in resp.headers.get("transfer-encoding", "").lower():
                while True:
                    size_line = f.readline(65536)
                    if not size_line:
                        raise ConnectionError("closed before the final chunk")
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        resp.trailers = _read_header_block(f)
                        resp.complete = True
                        break
                    chunk = b""
                    while len(chunk) < size:
                        part = f.read(size - len(chunk))
                        if not part:
                            raise ConnectionError("closed inside a chunk")
                        chunk += part
                    f.readline(65536)
                    if got(chunk):
                        return resp
            elif "content-length" in resp.headers:
                remaining = int(resp.headers["content-length"])
                while remaining:
                    part = f.read(min(remaining, 65536))
                    if not part:
                        raise ConnectionError("closed before content-length")
                    remaining -= len(part)
                    if got(part):
                        return resp
                resp.complete = True
            else:
                while True:
                    part = f.read(65536)
                    if not part:
                        break
                    if got(part):
                        return resp
                resp.complete = True
        except (ConnectionError, OSError) as e:
            resp.error = e
        resp.done_at = time.monotonic() - resp.sent_at
        return resp
    finally:
        sock.close()
