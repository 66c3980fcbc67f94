#!/usr/bin/env python3
"""Minimal NDJSON cost-record collector for end-to-end tests and the demo (Python stdlib only).

    python3 tests/support/collector.py --port 0 [--status 204] [--delay-ms 0]

prints `LISTENING <port>` as its first stdout line. Every POST body (other than the control paths)
is split into NDJSON lines; each line is parsed and stored (a line that is not JSON is stored as
`{"_unparsed": "<line>"}` so tests can see it). `GET /_records` returns the list, `GET /_posts`
the number of POSTs received (batches), `POST /_reset` clears both. Every ingest POST is answered
with `--status` after `--delay-ms`. `POST /_config` with a JSON object changes these while running:
`{"delay_ms": 1500, "status": 204, "store": false, "fail_next": 2}` (`store: false`: ingest POSTs
are answered but their records are not kept — a collector that times out before it stores
anything; `fail_next: N`: the next N ingest POSTs get 503 and are not stored, then it recovers);
an ingest POST uses the settings in force when it arrived.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

try:  # imported as part of the tests/support package
    from support import serving
except ImportError:  # run as a script (`python3 tests/support/collector.py`): its directory is on sys.path
    import serving


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "collector"

    def log_message(self, fmt, *args):
        pass

    read_body = serving.read_body

    def reply(self, status, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        if status not in (204, 304):
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        if status not in (204, 304):
            self.wfile.write(body)

    def do_GET(self):
        st = self.server.st
        with st["lock"]:
            if self.path == "/_records":
                return self.reply(200, list(st["records"]))
            if self.path == "/_posts":
                return self.reply(200, {"posts": st["posts"]})
        self.reply(404, {"error": "unknown path"})

    def do_POST(self):
        st = self.server.st
        body = self.read_body()
        if self.path == "/_reset":
            with st["lock"]:
                st["records"].clear()
                st["posts"] = 0
            return self.reply(200, {"ok": True})
        if self.path == "/_config":
            change = json.loads(body or b"{}")
            with st["lock"]:
                if "delay_ms" in change:
                    st["delay"] = float(change["delay_ms"]) / 1000.0
                if "status" in change:
                    st["status"] = int(change["status"])
                if "store" in change:
                    st["store"] = bool(change["store"])
                if "fail_next" in change:
                    st["fail_next"] = int(change["fail_next"])
                return self.reply(200, {"delay_ms": st["delay"] * 1000.0, "status": st["status"],
                                        "store": st["store"], "fail_next": st["fail_next"]})
        with st["lock"]:
            delay, status, store = st["delay"], st["status"], st["store"]
            if st["fail_next"] > 0:
                st["fail_next"] -= 1
                status, store = 503, False
        records = []
        for line in body.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"_unparsed": line})
        if delay:
            time.sleep(delay)
        with st["lock"]:
            if store:
                st["records"].extend(records)
            st["posts"] += 1
        self.reply(status, None if status == 204 else {"accepted": len(records)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--status", type=int, default=204)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    server = serving.http_server(args.host, args.port, Handler)
    server.st = {
        "lock": threading.Lock(),
        "records": [],
        "posts": 0,
        "status": args.status,
        "delay": args.delay_ms / 1000.0,
        "store": True,
        "fail_next": 0,
    }
    return serving.announce_and_serve_http(server)


if __name__ == "__main__":
    sys.exit(main())
