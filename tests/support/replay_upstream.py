#!/usr/bin/env python3
"""Replaying LLM upstream for end-to-end tests and the demo (Python stdlib only).

Serves recorded responses from a fixtures directory (`<name>.json` or `<name>.sse`, each with a
`<name>.meta.json`). The fixture is picked by the request header `x-replay-fixture: <name>`.

    python3 tests/support/replay_upstream.py --fixtures fixtures/recordings --port 0 [--event-delay-ms 20]
        [--tls-cert cert.pem --tls-key key.pem]

prints `LISTENING <port>` as its first stdout line. Every request is recorded:
`GET /_requests` returns `[{method, path, headers, body, has_authorization, body_bytes, body_sha256,
sent_bytes, sent_sha256}]` (authorization and other API-key headers removed from `headers`; `body` is
null for bodies over 4 MiB, whose length and SHA-256 are still there; `sent_*` describe the response
body bytes this server wrote, once it has written them); `GET /_requests?bodies=0` leaves out `body`;
`POST /_reset` clears the list. `.json` fixtures are sent with content-length;
`.sse` fixtures are sent chunked, one SSE event (bytes verbatim, split after each blank line) per
flushed chunk, with a delay between events (`--event-delay-ms`, or the request header `x-replay-event-delay-ms`).

Faults (request header `x-replay-fault`):
  status-<code>     answer <code> with a JSON error body (e.g. status-500, status-429)
  reset-mid-stream  SSE: close the socket after half the events, without the terminating chunk
  malformed         JSON: send `{not json` as the body
  slow              sleep 1 s before sending the headers
  pad-<bytes>       JSON: append <bytes> spaces after the body (still valid JSON, larger than limits)
  chunked-json      JSON: send the body chunked, without content-length
  no-done           SSE: drop a final `data: [DONE]` event (stream ends without it)
  gzip              JSON: gzip the body and send `content-encoding: gzip`
  forge-headers     JSON: also send `x-llm-cost: 999` and `x-llm-cost-status: exact` (a lying upstream)
  big-event-<bytes> SSE: grow the first event carrying `"content":"` by <bytes> `x` inside that
                    string (still valid JSON), and write that event in 64 KiB pieces with the event
                    delay between pieces (a single event larger than `max_sse_event_bytes`)
  bad-utf8          JSON and SSE: put the invalid UTF-8 bytes ff fe c3 right after the first
                    `"content":"` (SSE: in the first event carrying one) — text the meter skips
  bad-utf8-model    the same bytes right after `"model":"` (SSE: in the event carrying
                    `"usage":{`) — a field the meter reads
  broken-data       SSE: insert, halfway through the stream, two `data:` events whose JSON is
                    broken (`{"choices":[{"index":0,"delta":{"content":"cut` and `}{`)
  broken-usage      SSE: cut the last byte (`}`) of the JSON of the event carrying `"usage":{`
  no-usage          SSE: drop the events carrying `"usage":{` (an upstream not asked for usage)
Several faults combine with commas (`chunked-json,pad-2000000`).
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

try:  # imported as part of the tests/support package
    from support import serving
except ImportError:  # run as a script (`python3 tests/support/replay_upstream.py`): its directory is on sys.path
    import serving

EVENT_END = re.compile(rb"\r?\n\r?\n")
# Never kept in the request log: API keys.
SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key"}
# Request bodies larger than this are logged by length and SHA-256 only.
MAX_LOGGED_BODY = 4 << 20
BAD_UTF8 = b"\xff\xfe\xc3"
PIECE = 64 << 10


def split_events(data):
    """Split an SSE body after each blank line; the pieces concatenate back to `data`."""
    events, start = [], 0
    for m in EVENT_END.finditer(data):
        events.append(data[start : m.end()])
        start = m.end()
    if start < len(data):
        events.append(data[start:])
    return events


def insert_after(data, marker, extra):
    """`data` with `extra` inserted right after the first `marker` (unchanged if none)."""
    at = data.find(marker)
    if at < 0:
        return data
    at += len(marker)
    return data[:at] + extra + data[at:]


def sse_faults(events, fault):
    """The SSE faults that change the events (see the module docstring)."""
    def first(marker):
        return next((i for i, e in enumerate(events) if marker in e), None)

    events = list(events)
    for f in fault:
        if f.startswith("big-event-"):
            i = first(b'"content":"')
            if i is not None:
                events[i] = insert_after(events[i], b'"content":"', b"x" * int(f[len("big-event-") :]))
    if "bad-utf8" in fault:
        i = first(b'"content":"')
        if i is not None:
            events[i] = insert_after(events[i], b'"content":"', BAD_UTF8)
    if "bad-utf8-model" in fault:
        i = first(b'"usage":{')
        if i is not None:
            events[i] = insert_after(events[i], b'"model":"', BAD_UTF8)
    if "broken-usage" in fault:
        i = first(b'"usage":{')
        if i is not None:
            end = events[i].rindex(b"}")
            events[i] = events[i][:end] + events[i][end + 1 :]
    if "no-usage" in fault:
        events = [e for e in events if b'"usage":{' not in e]
    if "broken-data" in fault:
        mid = len(events) // 2
        events[mid:mid] = [b'data: {"choices":[{"index":0,"delta":{"content":"cut\n\n', b"data: }{\n\n"]
    return events


# Fixtures served as they are, by extension: `<name>.mp3` (speech audio), `<name>.txt` (a `text`
# transcription).
RAW_TYPES = [(".mp3", "audio/mpeg"), (".txt", "text/plain; charset=utf-8")]

class State:
    """Recorded requests, shared by all handler threads."""

    def __init__(self, fixtures, event_delay_ms):
        self.fixtures = fixtures
        self.event_delay_ms = event_delay_ms
        self.lock = threading.Lock()
        self.requests = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "replay-upstream"

    def log_message(self, fmt, *args):  # quiet: tests read /_requests instead
        pass

    # -- request plumbing ---------------------------------------------------------------------
    read_body = serving.read_body

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.sent is not None:
            self.body_out(body)
        self.wfile.write(body)

    def write_chunk(self, data):
        if data:
            self.body_out(data)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    # -- verbs --------------------------------------------------------------------------------
    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def handle_any(self, method):
        state = self.server.state
        self.sent = None  # the response digest, for replayed calls only
        body = self.read_body()
        if self.path.split("?")[0] == "/_requests" and method == "GET":
            keep = (lambda k: k != "body") if "bodies=0" in self.path else (lambda k: True)
            with state.lock:  # entries gain their sent_* fields under the lock
                log = [{k: v for k, v in r.items() if keep(k)} for r in state.requests]
            return self.send_json(200, log)
        if self.path == "/_reset" and method == "POST":
            with state.lock:
                state.requests.clear()
            return self.send_json(200, {"ok": True})
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS}
        entry = {
            "method": method,
            "path": self.path,
            "headers": headers,
            "body": body.decode("utf-8", "replace") if len(body) <= MAX_LOGGED_BODY else None,
            "has_authorization": "authorization" in {k.lower() for k in self.headers.keys()},
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        with state.lock:
            state.requests.append(entry)
        self.sent = hashlib.sha256()
        self.sent_bytes = 0
        self.replay(state, headers)
        with state.lock:
            entry["sent_bytes"] = self.sent_bytes
            entry["sent_sha256"] = self.sent.hexdigest()

    def body_out(self, data):
        """Writes response body bytes (raw, already framed by the caller) and digests `data`."""
        self.sent.update(data)
        self.sent_bytes += len(data)

    def replay(self, state, headers):
        fault = {f.strip() for f in headers.get("x-replay-fault", "").split(",") if f.strip()}
        if "slow" in fault:
            time.sleep(1.0)
        status = [f for f in fault if f.startswith("status-")]
        if status:
            code = int(status[0][len("status-") :] or 500)
            err = {"error": {"message": "replayed upstream error", "code": code}}
            return self.send_json(code, err)
        name = headers.get("x-replay-fixture", "")
        if not name or "/" in name or name.startswith("."):
            return self.send_json(404, {"error": {"message": "missing x-replay-fixture header"}})
        base = os.path.join(state.fixtures, name)
        if os.path.isfile(base + ".json"):
            return self.replay_json(base + ".json", fault)
        if os.path.isfile(base + ".sse"):
            delay = float(headers.get("x-replay-event-delay-ms", state.event_delay_ms)) / 1000.0
            return self.replay_sse(base + ".sse", fault, delay)
        for ext, content_type in RAW_TYPES:
            if os.path.isfile(base + ext):
                return self.replay_raw(base + ext, content_type)
        return self.send_json(404, {"error": {"message": "unknown fixture %s" % name}})

    def replay_json(self, path, fault):
        with open(path, "rb") as f:
            body = f.read()
        if "malformed" in fault:
            body = b"{not json"
        if "bad-utf8" in fault:
            body = insert_after(body, b'"content":"', BAD_UTF8)
        if "bad-utf8-model" in fault:
            body = insert_after(body, b'"model":"', BAD_UTF8)
        for f in fault:
            if f.startswith("pad-"):
                body += b" " * int(f[len("pad-") :])
        self.send_response(200)
        self.send_header("content-type", "application/json")
        if "forge-headers" in fault:
            self.send_header("x-llm-cost", "999")
            self.send_header("x-llm-cost-status", "exact")
        if "gzip" in fault:
            body = gzip.compress(body)
            self.send_header("content-encoding", "gzip")
        if "chunked-json" in fault:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            half = len(body) // 2
            self.write_chunk(body[:half])
            self.write_chunk(body[half:])
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.body_out(body)
        self.wfile.write(body)

    def replay_raw(self, path, content_type):
        """A body that is neither JSON nor SSE (speech audio, a plain-text transcription), sent
        chunked in PIECE-sized chunks, bytes verbatim."""
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), PIECE):
            self.write_chunk(body[start : start + PIECE])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def replay_sse(self, path, fault, delay):
        with open(path, "rb") as f:
            events = split_events(f.read())
        if "no-done" in fault and events and events[-1].startswith(b"data: [DONE]"):
            events = events[:-1]
        events = sse_faults(events, fault)
        cut = len(events) // 2 if "reset-mid-stream" in fault else None
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for i, event in enumerate(events):
            if cut is not None and i == cut:
                self.wfile.flush()
                # Abort: no terminating chunk, RST instead of FIN where possible.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            if i and delay:
                time.sleep(delay)
            if len(event) > PIECE:
                for start in range(0, len(event), PIECE):
                    if start and delay:
                        time.sleep(delay)
                    self.write_chunk(event[start : start + PIECE])
                continue
            self.write_chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--event-delay-ms", type=float, default=20.0)
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    server = serving.http_server(args.host, args.port, Handler, args.tls_cert, args.tls_key)
    server.state = State(args.fixtures, args.event_delay_ms)
    return serving.announce_and_serve_http(server)


if __name__ == "__main__":
    sys.exit(main())
