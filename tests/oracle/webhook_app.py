"""A webhook receiver that checks every request with the providers' official SDKs (the
adapters of sdk_oracle.py), for client/tests/trigger.rs: `twk-tunnel trigger` must get
through it exactly when a provider's real webhook would.

    python webhook_app.py '{"stripe": "whsec_…", "bandwidth": "user:pass", …}'

Prints `PORT <n>` once listening on 127.0.0.1. Routes (the first path segment):

    /<provider>        verify with that provider's SDK: 200, or 400 with the SDK's reason
    /bandwidth         Basic auth with the challenge: 401 + WWW-Authenticate until the
                       credentials match, then 200
    /bandwidth-bare    401 without WWW-Authenticate (the mistake that loses callbacks)
    /flaky/<n>         500 for the first n requests of each body, then 200
    /fail              always 500
    /slow/<ms>         answers 200 after <ms> milliseconds
    GET /count/<path>  how many requests reached /<path> so far (JSON)
    GET /last/<path>   the last request to /<path>: method, query, body (JSON)
    PUT /secret/<provider>  sets that provider's secret to the body (a key known only later,
                       such as an Authy webhook's WSK_ key)

GET requests to /<provider> are verified too (Twilio signs a GET webhook's URL alone).

The public URL the sender signed is rebuilt from X-Forwarded-Proto/Host/Prefix, as an app
behind any proxy does.
"""

import base64
import collections
import hashlib
import http.server
import json
import sys
import threading
import time

import sdk_oracle

SECRETS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
COUNTS = collections.Counter()
SEEN = collections.Counter()
LAST = {}
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, text="", headers=()):
        body = text.encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def public_url(self):
        proto = self.headers.get("X-Forwarded-Proto", "http")
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host", "")
        prefix = self.headers.get("X-Forwarded-Prefix", "")
        return "%s://%s%s%s" % (proto, host, prefix, self.path)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "count":
            with LOCK:
                n = COUNTS["/" + "/".join(parts[1:])]
            return self.answer(200, json.dumps({"count": n}))
        if parts[0] == "last":
            with LOCK:
                last = LAST.get("/" + "/".join(parts[1:]))
            return self.answer(200, json.dumps(last))
        if parts[0] in sdk_oracle.VERIFY:
            return self.do_POST()
        self.answer(404, "no such route")

    def do_PUT(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path.strip("/").split("/")
        if parts[0] == "secret" and len(parts) == 2:
            with LOCK:
                SECRETS[parts[1]] = raw.decode("utf-8")
            return self.answer(204)
        self.answer(404, "no such route")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        route = "/" + self.path.split("?")[0].strip("/")
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        with LOCK:
            COUNTS[route] += 1
            LAST[route] = {"method": self.command, "query": query, "body": raw.decode("utf-8")}
        parts = route.strip("/").split("/")
        head = parts[0]
        if head == "bandwidth":
            want = "Basic " + base64.b64encode(SECRETS["bandwidth"].encode()).decode()
            if self.headers.get("Authorization") == want:
                return self.answer(200, "ok")
            return self.answer(401, "credentials", [("WWW-Authenticate", 'Basic realm="app"')])
        if head == "bandwidth-bare":
            return self.answer(401, "no")
        if head == "flaky":
            key = hashlib.sha256(raw).hexdigest()
            with LOCK:
                SEEN[key] += 1
                seen = SEEN[key]
            return self.answer(500 if seen <= int(parts[1]) else 200, "flaky")
        if head == "fail":
            return self.answer(500, "down")
        if head == "slow":
            time.sleep(int(parts[1]) / 1000)
            return self.answer(200, "slow")
        if head not in sdk_oracle.VERIFY:
            return self.answer(404, "no such route")
        op = {
            "op": "verify",
            "provider": head,
            "secret": SECRETS.get(head, ""),
            "method": self.command,
            "url": self.public_url(),
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": raw.decode("utf-8"),
            "now": int(time.time()),
            "tolerance": 300,
        }
        result = sdk_oracle.run(op)
        if result.get("valid"):
            return self.answer(200, "valid")
        self.answer(400, "rejected by the %s SDK: %s" % (head, result.get("why") or "invalid"))


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
