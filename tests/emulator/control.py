"""Test-control API of the GCS emulator (everything under /_emu/).

Stats   - request counters by kind and status and by User-Agent, body bytes in/out.
Faults  - fault injection in the spirit of storage-testbench's retry
          instructions: each fault matches a request kind ("*" = any, with
          optional bucket/object filters) and applies to its next `count`
          matching requests (count -1 = every one), or with "seconds": N to every
          matching request for N seconds from the first one it meets (a server
          overloaded for a while); `met` tells how often it fired.
          Actions: return-NNN; return-NNN-after-NK (uploads: accept N KiB of
          the body, then answer NNN; downloads: N KiB of the body, then the
          connection closes; other requests: NNN at once); reset-connection
          (RST, no answer); broken-stream-after-NK (downloads and JSON answers:
          N KiB of the body then FIN; uploads: read N KiB then RST);
          stall-Ns (sleep before answering); stall-Ns-after-NK (pause N
          seconds after N KiB of an upload or download body); throttle-NK
          (read the request body at N KiB/s: a slow uplink); corrupt-upload
          (flip the first byte of the uploaded data before hashing);
          close-connection (read the request, then FIN without an answer);
          return-200-garbage (200 with an HTML body, as a captive portal or a
          misrouted proxy answers); return-200-empty-json (200 with "{}");
          ignore-range (downloads: the whole object with 200, as a server or
          proxy that drops the Range header does).
Routes  - GET  /_emu/stats            POST /_emu/stats/reset
          GET  /_emu/faults           POST /_emu/faults   DELETE /_emu/faults
          GET  /_emu/config           POST /_emu/config {require_auth, token_lifetime,
                                        expires_in_skew, jwt_clock_offset, verbose}
          GET  /_emu/keys             POST /_emu/keys {client_email, private_key_id, public_key_pem}
          DELETE /_emu/keys/{id}[?revoke_tokens=true]
          POST /_emu/refresh_tokens {client_id, client_secret, refresh_token}
          DELETE /_emu/tokens         (invalidate every issued access token)
          GET  /_emu/health
"""

import json
import re
import threading
import time
from collections import Counter
from urllib.parse import unquote

from common import HttpError

ACTIONS = (
    (re.compile(r"^return-(\d{3})$"), "status"),
    (re.compile(r"^return-(\d{3})-after-(\d+)K$"), "status_after"),
    (re.compile(r"^(?:return-)?broken-stream-after-(\d+)K$"), "broken_after"),
    (re.compile(r"^(?:return-)?broken-stream$"), "broken_after0"),
    (re.compile(r"^(?:return-)?reset-connection$"), "reset"),
    (re.compile(r"^stall-(\d+(?:\.\d+)?)s$"), "stall"),
    (re.compile(r"^stall-(\d+(?:\.\d+)?)s-after-(\d+)K$"), "stall_after"),
    (re.compile(r"^throttle-(\d+)K$"), "throttle"),
    (re.compile(r"^corrupt-upload$"), "corrupt"),
    (re.compile(r"^close-connection$"), "close"),
    (re.compile(r"^return-200-(garbage|empty-json)$"), "answer200"),
    (re.compile(r"^ignore-range$"), "ignore_range"),
)

# What a return-200-* fault answers: (content type, body).
ANSWERS_200 = {
    "garbage": ("text/html; charset=UTF-8",
                b"<html><head><title>Sign in</title></head><body>Proxy login</body></html>"),
    "empty-json": ("application/json; charset=UTF-8", b"{}"),
}


class Fault:
    """A parsed fault action."""

    def __init__(self, action):
        self.action = action
        self.type = None
        self.code = None
        self.after = None        # bytes
        self.seconds = 0.0
        self.rate = None         # bytes per second (throttle)
        self.answer = None       # (content type, body) of a return-200-* fault
        for rx, typ in ACTIONS:
            m = rx.match(action or "")
            if not m:
                continue
            self.type = typ
            if typ == "status":
                self.code = int(m.group(1))
            elif typ == "status_after":
                self.type, self.code, self.after = "status", int(m.group(1)), int(m.group(2)) * 1024
            elif typ == "broken_after":
                self.type, self.after = "broken", int(m.group(1)) * 1024
            elif typ == "broken_after0":
                self.type, self.after = "broken", 0
            elif typ == "stall":
                self.seconds = float(m.group(1))
            elif typ == "stall_after":
                self.seconds, self.after = float(m.group(1)), int(m.group(2)) * 1024
            elif typ == "throttle":
                self.rate = int(m.group(1)) * 1024
            elif typ == "answer200":
                self.answer = ANSWERS_200[m.group(1)]
            break
        if self.type is None:
            raise HttpError(400, "Unknown fault action: %r" % (action,))
        if self.rate == 0:
            raise HttpError(400, "A throttle needs a rate above 0K: %r" % (action,))
        if self.code is not None and not 400 <= self.code <= 599:
            raise HttpError(400, "Fault status must be 4xx or 5xx: %r" % (action,))


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.next_id = 1

    def add(self, specs):
        if isinstance(specs, dict):
            specs = specs.get("faults", [specs]) if "faults" in specs else [specs]
        if not isinstance(specs, list):
            raise HttpError(400, "Expected a list of faults")
        new = []
        for s in specs:
            if not isinstance(s, dict) or not isinstance(s.get("kind"), str):
                raise HttpError(400, "Each fault needs a 'kind' and an 'action'")
            Fault(s.get("action"))                      # validate
            count = s.get("count", 1)
            if not isinstance(count, int):
                raise HttpError(400, "'count' must be an integer")
            seconds = s.get("seconds")
            if seconds is not None and (not isinstance(seconds, (int, float)) or seconds <= 0):
                raise HttpError(400, "'seconds' must be a number above 0")
            new.append({"kind": s["kind"], "action": s["action"], "count": count,
                        "remaining": -1 if seconds else count, "met": 0,
                        "bucket": s.get("bucket"), "object": s.get("object"),
                        "seconds": seconds, "until": None})
        with self.lock:
            for f in new:
                f["id"] = self.next_id
                self.next_id += 1
                self.items.append(f)
        return [dict(f) for f in new]

    def take(self, kind, bucket=None, obj=None):
        """The first active fault matching this request (consumes one use)."""
        with self.lock:
            for f in self.items:
                if f["remaining"] == 0:
                    continue
                if f["until"] is not None and time.monotonic() >= f["until"]:
                    continue
                if f["kind"] not in ("*", kind):
                    continue
                if f["bucket"] is not None and f["bucket"] != bucket:
                    continue
                if f["object"] is not None and f["object"] != obj:
                    continue
                if f["remaining"] > 0:
                    f["remaining"] -= 1
                if f["seconds"] and f["until"] is None:
                    f["until"] = time.monotonic() + f["seconds"]
                f["met"] += 1
                return Fault(f["action"])
        return None

    def snapshot(self):
        with self.lock:
            return [dict(f) for f in self.items]

    def clear(self):
        with self.lock:
            self.items = []


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = Counter()
            self.status = Counter()
            self.by_kind = {}
            self.user_agents = Counter()   # User-Agent header ("" when none) -> requests
            self.bytes_in = 0
            self.bytes_out = 0
            self.since = time.time()

    def record(self, kind, status, agent=None):
        with self.lock:
            self.user_agents[agent or ""] += 1
            self.requests[kind] += 1
            self.status[str(status)] += 1
            self.by_kind.setdefault(kind, Counter())[str(status)] += 1

    def add_in(self, n):
        with self.lock:
            self.bytes_in += n

    def add_out(self, n):
        with self.lock:
            self.bytes_out += n

    def snapshot(self):
        with self.lock:
            return {"requests": dict(self.requests), "status": dict(self.status),
                    "by_kind": {k: dict(v) for k, v in self.by_kind.items()},
                    "user_agents": dict(self.user_agents),
                    "total": sum(self.requests.values()),
                    "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                    "since": self.since}


def _json_body(h, want=dict):
    raw = h.body.read_all(1 << 20)
    if not raw.strip():
        return want()
    try:
        obj = json.loads(raw)
    except ValueError:
        raise HttpError(400, "Body is not valid JSON")
    if want is dict and not isinstance(obj, dict):
        raise HttpError(400, "Body must be a JSON object")
    return obj


def _truthy(v):
    return str(v).lower() in ("1", "true", "yes", "on")


def handle(h, method, segs):
    """Serve one /_emu/... request; returns (status, json-able body)."""
    app = h.server.app
    path = "/".join(segs[1:]).rstrip("/")
    if path == "health" and method == "GET":
        return 200, {"ok": True}
    if path == "stats" and method == "GET":
        return 200, app.stats.snapshot()
    if path == "stats/reset" and method == "POST":
        app.stats.reset()
        return 200, {"ok": True}
    if path == "faults":
        if method == "GET":
            return 200, {"faults": app.faults.snapshot()}
        if method == "POST":
            return 200, {"faults": app.faults.add(_json_body(h, list))}
        if method == "DELETE":
            app.faults.clear()
            return 200, {"ok": True}
    if path == "config":
        if method == "POST":
            cfg = _json_body(h)
            if "require_auth" in cfg:
                app.auth.require_auth = bool(cfg["require_auth"])
            if "token_lifetime" in cfg:
                try:
                    app.auth.token_lifetime = int(cfg["token_lifetime"])
                except (TypeError, ValueError):
                    raise HttpError(400, "token_lifetime must be an integer (seconds)")
            for name in ("expires_in_skew", "jwt_clock_offset"):
                if name in cfg:
                    try:
                        setattr(app.auth, name, int(cfg[name]))
                    except (TypeError, ValueError):
                        raise HttpError(400, "%s must be an integer (seconds)" % name)
            if "verbose" in cfg:
                app.verbose = bool(cfg["verbose"])
        if method in ("GET", "POST"):
            return 200, {"require_auth": app.auth.require_auth,
                         "token_lifetime": app.auth.token_lifetime,
                         "expires_in_skew": app.auth.expires_in_skew,
                         "jwt_clock_offset": app.auth.jwt_clock_offset,
                         "verbose": app.verbose}
    if path == "keys":
        if method == "GET":
            return 200, {"keys": app.auth.list_keys()}
        if method == "POST":
            k = _json_body(h)
            app.auth.register_key(k.get("client_email"), k.get("private_key_id"),
                                  k.get("public_key_pem"))
            return 200, {"ok": True}
    if path.startswith("keys/") and method == "DELETE":
        app.auth.revoke_key(unquote(path[5:]), _truthy(h.q.get("revoke_tokens", "")))
        return 200, {"ok": True}
    if path == "refresh_tokens" and method == "POST":
        k = _json_body(h)
        app.auth.register_refresh_token(k.get("client_id"), k.get("client_secret"),
                                        k.get("refresh_token"))
        return 200, {"ok": True}
    if path == "tokens" and method == "DELETE":
        return 200, {"revoked": app.auth.clear_tokens()}
    raise HttpError(404, "Unknown control endpoint: %s %s" % (method, "/".join(segs)))
