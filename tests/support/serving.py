"""Plumbing the test servers share: reading a request body (chunked or not) and the
`LISTENING <port>` start-up handshake the harnesses wait for."""

import time


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
