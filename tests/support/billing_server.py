#!/usr/bin/env python3
"""A local stand-in for the three providers' billing APIs that `llm-cost billing fetch` reads
(Python stdlib only), answering in their documented shapes (the shapes and their sources:
tests/envoy/test_reconcile.py's header):

  OpenRouter  GET /api/v1/keys (offset paging), GET /api/v1/activity[?api_key_hash=H]
  OpenAI      GET /v1/organization/costs, GET /v1/organization/usage/completions
  Anthropic   GET /v1/organizations/cost_report, GET /v1/organizations/usage_report/messages

    python3 tests/support/billing_server.py --port 0

prints `LISTENING <port>` first. Control: `PUT /_state` with a JSON document (below) replaces
everything; `GET /_requests` lists the requests served (path, query, which auth header came,
status answered). State:

  {"keys": {"openrouter": K, "openai": K, "anthropic": K},   # the admin keys accepted
   "page_size": 2,                                            # buckets (keys) per page at most
   "rate_limit_first": 1,                                     # the first N data requests per path: 429
   "hang_seconds": 0,                                         # wait this long before answering
   "openrouter": {"keys": [{"hash": H, "name": N}], "activity": {H: [item, ...]}},
   "openai": {"costs": [bucket], "completions": [bucket]},
   "anthropic": {"cost_report": [bucket], "messages": [bucket]}}

Amounts are given as decimal strings and sent as JSON numbers where the provider sends numbers
(OpenRouter `usage`, OpenAI `amount.value`), with exactly those digits. An OpenRouter activity
list under a hash that `keys` does not list is a deleted key: only the unfiltered activity shows it.
"""

import argparse
import base64
import json
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

try:  # imported as part of the tests/support package
    from support import serving
except ImportError:  # run as a script: its directory is on sys.path
    import serving


class Number(str):
    """A decimal string to be written as a bare JSON number."""


def dumps(value):
    """JSON text where `Number` values are bare number literals, exactly as given."""
    if isinstance(value, Number):
        Decimal(value)  # must be a number
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join("%s:%s" % (json.dumps(k), dumps(v)) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


ERRORS = {
    # OpenRouter's openapi.yaml examples (ForbiddenResponse, TooManyRequests in the same form).
    "openrouter": {
        "denied": (403, {"error": {"code": 403, "message": "Only management keys can perform this operation"}}),
        "rate": (429, {"error": {"code": 429, "message": "Rate limit exceeded"}}),
        "bad": (400, {"error": {"code": 400, "message": "Invalid request parameters"}}),
    },
    # OpenAI's error object {"error": {message, type, param, code}}; a key without the
    # api.usage.read scope is told which scope is missing.
    "openai": {
        "denied": (401, {"error": {
            "message": "You have insufficient permissions for this operation. Missing scopes: api.usage.read. "
                       "Check that you have the correct role in your organization (Owner), and if you're using "
                       "a restricted API key, that it has the necessary scopes.",
            "type": "invalid_request_error", "param": None, "code": None}}),
        "rate": (429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                 "param": None, "code": "rate_limit_exceeded"}}),
        "bad": (400, {"error": {"message": "Invalid query", "type": "invalid_request_error", "param": None,
                                "code": None}}),
    },
    # Anthropic's error shape {"type": "error", "error": {type, message}}.
    "anthropic": {
        "denied": (401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
        "rate": (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}),
        "bad": (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "invalid query"}}),
    },
}

OPENAI_GROUPS = {
    "/v1/organization/costs": ({"project_id", "line_item", "api_key_id"}, 180),
    "/v1/organization/usage/completions": ({"project_id", "user_id", "api_key_id", "model", "batch", "service_tier"}, 31),
}
ANTHROPIC_GROUPS = {
    "/v1/organizations/cost_report": ({"workspace_id", "description"}, "cost_report"),
    "/v1/organizations/usage_report/messages": (
        {"api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo", "speed",
         "account_id", "service_account_id"}, "messages"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "billing"

    def log_message(self, fmt, *args):
        pass

    read_body = serving.read_body

    def reply(self, status, text, headers=()):
        body = text.encode() if isinstance(text, str) else text
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        return status

    def error(self, provider, kind, extra_headers=()):
        status, body = ERRORS[provider][kind]
        return self.reply(status, dumps(body), extra_headers)

    def do_PUT(self):
        body = self.read_body()
        if self.path != "/_state":
            return self.reply(404, "{}")
        with self.server.lock:
            self.server.state = json.loads(body)
            self.server.requests = []
            self.server.served = {}
        self.reply(200, "{}")

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_requests":
            with self.server.lock:
                return self.reply(200, json.dumps(self.server.requests))
        query = parse_qs(url.query, keep_blank_values=True)
        with self.server.lock:
            hang = self.server.state.get("hang_seconds", 0)
        if hang:
            time.sleep(hang)  # outside the lock: other requests are still served
        with self.server.lock:
            state = self.server.state
            status = self.route(url.path, query, state)
            self.server.requests.append({
                "path": url.path, "query": query, "status": status,
                "authorization": "authorization" in self.headers, "x-api-key": "x-api-key" in self.headers,
                "anthropic-version": self.headers.get("anthropic-version"),
            })

    def provider_of(self, path):
        if path.startswith("/api/v1/"):
            return "openrouter"
        if path.startswith("/v1/organization/"):
            return "openai"
        if path.startswith("/v1/organizations/"):
            return "anthropic"
        return None

    def route(self, path, query, state):
        provider = self.provider_of(path)
        if provider is None:
            return self.reply(404, "{}")
        key = state.get("keys", {}).get(provider)
        if provider == "anthropic":
            given = self.headers.get("x-api-key")
            if self.headers.get("anthropic-version") != "2023-06-01":
                return self.error(provider, "bad")
        else:
            auth = self.headers.get("authorization", "")
            given = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if not key or given != key:
            return self.error(provider, "denied")
        served = self.server.served.setdefault(path, 0)
        self.server.served[path] = served + 1
        if served < state.get("rate_limit_first", 0):
            return self.error(provider, "rate", [("retry-after", "1")])
        size = int(state.get("page_size", 100))
        if provider == "openrouter":
            return self.openrouter(path, query, state.get("openrouter", {}), size)
        if provider == "openai":
            return self.openai(path, query, state.get("openai", {}), size)
        return self.anthropic(path, query, state.get("anthropic", {}), size)

    # -- OpenRouter -------------------------------------------------------------------------

    def openrouter(self, path, query, data, size):
        if path == "/api/v1/keys":
            offset = int(query.get("offset", ["0"])[0] or 0)
            keys = data.get("keys", [])[offset:offset + size]
            return self.reply(200, dumps({"data": [dict(k, disabled=False) for k in keys]}))
        if path != "/api/v1/activity":
            return self.reply(404, "{}")
        activity = data.get("activity", {})
        wanted = query.get("api_key_hash", [None])[0]
        if wanted is not None:
            items = activity.get(wanted, [])
            return self.reply(200, dumps({"data": [self.item(i) for i in items]}))
        # Unfiltered: every key's activity summed per (date, model, endpoint).
        total = {}
        for items in activity.values():
            for i in items:
                k = (i["date"], i["model"], i["endpoint_id"])
                t = total.setdefault(k, dict(i, usage="0", byok_usage_inference="0", requests=0, prompt_tokens=0,
                                             completion_tokens=0, reasoning_tokens=0))
                for f in ("usage", "byok_usage_inference"):
                    t[f] = str(Decimal(t[f]) + Decimal(i[f]))
                for f in ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens"):
                    t[f] += i[f]
        return self.reply(200, dumps({"data": [self.item(i) for i in total.values()]}))

    @staticmethod
    def item(i):
        out = dict(i)
        out["usage"] = Number(i["usage"])
        out["byok_usage_inference"] = Number(i["byok_usage_inference"])
        return out

    # -- paged bucket lists (OpenAI, Anthropic) --------------------------------------------

    @staticmethod
    def token(index):
        return "page_" + base64.b64encode(str(index).encode()).decode()

    @staticmethod
    def index(token):
        return int(base64.b64decode(token[len("page_"):]).decode())

    def page(self, buckets, query, size, limit_max, default_limit):
        start = self.index(query["page"][0]) if query.get("page") else 0
        limit = int(query.get("limit", [default_limit])[0])
        if not 1 <= limit <= limit_max:
            return None
        n = min(limit, size)
        chunk = buckets[start:start + n]
        more = start + n < len(buckets)
        return chunk, more, (self.token(start + n) if more else None)

    def openai(self, path, query, data, size):
        if path not in OPENAI_GROUPS:
            return self.reply(404, "{}")
        groups, limit_max = OPENAI_GROUPS[path]
        if "start_time" not in query or not set(query.get("group_by[]", [])) <= groups:
            return self.error("openai", "bad")
        start = int(query["start_time"][0])
        end = int(query.get("end_time", [str(2 ** 62)])[0])
        buckets = data.get("costs" if path.endswith("costs") else "completions", [])
        buckets = [b for b in buckets if start <= b["start_time"] < end]
        paged = self.page(buckets, query, size, limit_max, 7)
        if paged is None:
            return self.error("openai", "bad")
        chunk, more, token = paged
        if path.endswith("costs"):
            chunk = [dict(b, results=[dict(r, amount=dict(r["amount"], value=Number(r["amount"]["value"])))
                                      for r in b["results"]]) for b in chunk]
        return self.reply(200, dumps({"object": "page", "data": chunk, "has_more": more, "next_page": token}))

    def anthropic(self, path, query, data, size):
        if path not in ANTHROPIC_GROUPS:
            return self.reply(404, "{}")
        groups, name = ANTHROPIC_GROUPS[path]
        if "starting_at" not in query or not set(query.get("group_by[]", [])) <= groups:
            return self.error("anthropic", "bad")
        start = query["starting_at"][0]
        end = query.get("ending_at", ["9999"])[0]
        buckets = [b for b in data.get(name, []) if start <= b["starting_at"] and b["ending_at"] <= end]
        paged = self.page(buckets, query, size, 31, 7)
        if paged is None:
            return self.error("anthropic", "bad")
        chunk, more, token = paged
        return self.reply(200, dumps({"data": chunk, "has_more": more, "next_page": token}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    server = serving.http_server(args.host, args.port, Handler)
    server.lock = threading.Lock()
    server.state = {}
    server.requests = []
    server.served = {}
    return serving.announce_and_serve_http(server)


if __name__ == "__main__":
    sys.exit(main())
