#!/usr/bin/env python3
"""A price source for the live-pricing tests (Python stdlib only): serves one document and counts
the fetches.

    python3 tests/support/pricing_server.py --port 0 [--tls-cert C --tls-key K]

prints `LISTENING <port>` as its first stdout line. Any `GET` other than the control paths is a
fetch: it is counted (with its arrival time) and answered `200` with the current document
(`application/json`), or with `--status`. `PUT /_document` replaces the document (the body, as
is: malformed documents are the point); `GET /_fetches` returns `{"count": N, "times": [...]}`
(Unix seconds); `POST /_status` with `{"status": 503}` changes the answer's status.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

try:  # imported as part of the tests/support package
    from support import serving
except ImportError:  # run as a script: its directory is on sys.path
    import serving


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pricing"

    def log_message(self, fmt, *args):
        pass

    read_body = serving.read_body

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.st
        with st["lock"]:
            if self.path == "/_fetches":
                return self.reply(200, json.dumps({"count": len(st["times"]), "times": st["times"]}).encode())
            st["times"].append(time.time())
            status, body = st["status"], st["document"]
        self.reply(status, body)

    def do_PUT(self):
        body = self.read_body()
        if self.path != "/_document":
            return self.reply(404, b"{}")
        with self.server.st["lock"]:
            self.server.st["document"] = body
        self.reply(200, b"{}")

    def do_POST(self):
        body = self.read_body()
        if self.path != "/_status":
            return self.reply(404, b"{}")
        with self.server.st["lock"]:
            self.server.st["status"] = int(json.loads(body)["status"])
        self.reply(200, b"{}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--document", help="file served until a PUT /_document")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    document = b'{"data": []}'
    if args.document:
        with open(args.document, "rb") as f:
            document = f.read()
    server = serving.http_server(args.host, args.port, Handler, args.tls_cert, args.tls_key)
    server.st = {"lock": threading.Lock(), "times": [], "status": args.status, "document": document}
    return serving.announce_and_serve_http(server)


if __name__ == "__main__":
    sys.exit(main())
