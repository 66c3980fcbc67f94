"""Plumbing the test servers share: reading a request body (chunked or not) and the
`LISTENING <port>` start-up handshake the harnesses wait for."""

import ssl
import time
from http.server import ThreadingHTTPServer


def read_body(handler):
    """The whole request body of a `BaseHTTPRequestHandler`, chunked or with a content-length."""
    if "chunked" in handler.headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


def http_server(host, port, handler, tls_cert=None, tls_key=None):
    """A threading HTTP(S) server on `host:port` (0: a free port) with a deep listen backlog."""
    ThreadingHTTPServer.request_queue_size = 256  # listen backlog: bursts of connections (default 5)
    server = ThreadingHTTPServer((host, port), handler)
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_cert, tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    return server


def announce_and_serve_http(server):
    """Prints `LISTENING <port>`, then serves until interrupted (SIGINT)."""
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def announce_and_serve(port, stop):
    """Prints `LISTENING <port>` (what harness.Helper and harness.mjs wait for), then waits until
    interrupted (SIGINT) and calls `stop()`. For servers that run in their own threads (gRPC)."""
    print("LISTENING %d" % port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0
