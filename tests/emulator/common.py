"""Shared helpers for the GCS emulator.

Holds: the HttpError exception rendered in Google's JSON error shape, the
OAuth error shape of the token endpoint, request-body streaming (fixed
Content-Length or chunked transfer encoding), DataSink (writes an upload to an
open file while computing CRC32C inline and MD5 on a helper thread), hash and
time formatting, the generation clock and object-precondition checks.
"""

import base64
import hashlib
import json
import os
import queue
import struct
import threading
import time

import crc32c as _crc32c

BLOCK = 1 << 20              # I/O block size for uploads and copies
QUANTUM = 256 * 1024         # resumable-upload chunk granularity

REASONS = {
    304: "notModified",
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    405: "methodNotAllowed",
    408: "requestTimeout",
    409: "conflict",
    410: "gone",
    411: "lengthRequired",
    412: "conditionNotMet",
    413: "uploadTooLarge",
    416: "requestedRangeNotSatisfiable",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "badGateway",
    503: "backendError",
    504: "gatewayTimeout",
}


class HttpError(Exception):
    """An error answered as {"error": {"code", "message", "errors": [...]}}."""

    content_type = "application/json; charset=UTF-8"

    def __init__(self, code, message, reason=None, headers=None, plain=False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "backendError")
        self.headers = headers or {}
        self.plain = plain                 # a text/plain body, as GCS's upload server sends
        if plain:
            self.content_type = "text/plain; charset=utf-8"

    def body(self):
        if self.plain:
            return self.message.encode()
        err = {"domain": "global", "reason": self.reason, "message": self.message}
        return json.dumps({"error": {"code": self.code, "message": self.message,
                                     "errors": [err]}}).encode()


class OAuthError(Exception):
    """A token-endpoint error: {"error": ..., "error_description": ...}."""

    def __init__(self, code, error, description):
        super().__init__(description)
        self.code = code
        self.error = error
        self.description = description

    def body(self):
        return json.dumps({"error": self.error,
                           "error_description": self.description}).encode()


class ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class FaultCut(Exception):
    """An injected 'after-NK' fault stopped reading the request body."""


def not_found(what="No such object."):
    return HttpError(404, what, "notFound")


def bad_request(message):
    return HttpError(400, message, "invalid")


def precondition_failed():
    return HttpError(412, "At least one of the pre-conditions you specified did not hold.",
                     "conditionNotMet")


# ---------------------------------------------------------------- formatting

def rfc3339(us):
    """Microseconds since the epoch -> '2024-01-02T03:04:05.678Z'."""
    secs, rem = divmod(int(us), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%03dZ" % (rem // 1000)


def crc_b64(value):
    return base64.b64encode(struct.pack(">I", value & 0xFFFFFFFF)).decode()


def md5_b64(digest):
    return base64.b64encode(digest).decode()


def parse_x_goog_hash(values):
    """'crc32c=AAAAAA==,md5=...' (possibly several headers) -> {'crc32c': b64, 'md5': b64}."""
    out = {}
    for value in values or ():
        for part in value.split(","):
            key, sep, val = part.strip().partition("=")
            if sep and key.strip().lower() in ("crc32c", "md5"):
                out[key.strip().lower()] = val.strip()
    return out


def crc32c_update(data, value=0):
    return _crc32c.crc32c(data, value)


class Clock:
    """Strictly increasing microsecond timestamps, used as object generations."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def next(self):
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last

    def observe(self, value):
        with self._lock:
            self._last = max(self._last, int(value))


# ---------------------------------------------------------------- request bodies

class BodyReader:
    """Reads a request body framed by Content-Length or chunked encoding."""

    def __init__(self, rfile, headers, on_bytes=None):
        self.rfile = rfile
        self.on_bytes = on_bytes
        te = (headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        self.chunk_left = 0
        self.consumed = 0
        self.length = None
        self.broken = False      # framing error: the rest of the stream is unusable
        self.rate = None         # bytes per second when throttled (a throttle fault)
        self.started = None
        if self.chunked:
            self.remaining = None
            self.done = False
        else:
            cl = headers.get("Content-Length")
            try:
                self.length = int(cl) if cl is not None else 0
            except ValueError:
                self.length = 0
                self.done = True
                self.remaining = 0
                raise bad_request("Invalid Content-Length header.")
            if self.length < 0:
                self.length = 0
            self.remaining = self.length
            self.done = self.remaining == 0

    def throttle(self, rate):
        """Read the rest of the body at `rate` bytes per second."""
        self.rate = max(1, int(rate))
        self.started = time.monotonic()
        self.consumed_at_start = self.consumed

    def _count(self, n):
        self.consumed += n
        if self.on_bytes:
            self.on_bytes(n)
        if self.rate:
            # Sleep until the bytes read so far are due at the rate.
            due = self.started + (self.consumed - self.consumed_at_start) / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def readinto(self, mv):
        """Fill as much of mv as the body allows; 0 at the end of the body."""
        if self.done or len(mv) == 0:
            return 0
        if self.rate:
            # Small reads keep the pace even: a tenth of a second's worth.
            mv = mv[:max(4096, self.rate // 10)]
        if self.broken:
            raise bad_request("Malformed chunked request body.")
        if not self.chunked:
            n = min(len(mv), self.remaining)
            got = self.rfile.readinto(mv[:n])
            if not got:
                raise ClientGone()
            self.remaining -= got
            self.done = self.remaining == 0
            self._count(got)
            return got
        if self.chunk_left == 0:
            line = self.rfile.readline(65537)
            if not line:
                raise ClientGone()
            try:
                size = int(line.split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                self.broken = True
                raise bad_request("Malformed chunked request body.")
            if size == 0:
                while True:                      # trailers, then an empty line
                    line = self.rfile.readline(65537)
                    if not line:
                        raise ClientGone()
                    if line in (b"\r\n", b"\n"):
                        break
                self.done = True
                return 0
            self.chunk_left = size
        n = min(len(mv), self.chunk_left)
        got = self.rfile.readinto(mv[:n])
        if not got:
            raise ClientGone()
        self.chunk_left -= got
        if self.chunk_left == 0:
            self.rfile.readline(3)               # CRLF after the chunk data
        self._count(got)
        return got

    def read_all(self, limit=64 << 20):
        """The whole (small) body as bytes; 413 when larger than limit."""
        out = bytearray()
        buf = bytearray(min(BLOCK, max(self.remaining or BLOCK, 1)))
        mv = memoryview(buf)
        while True:
            n = self.readinto(mv)
            if n == 0:
                break
            out += mv[:n]
            if len(out) > limit:
                raise HttpError(413, "Request body too large.")
        return bytes(out)

    def drain(self, limit=1 << 20):
        """Discard up to limit bytes; True when the body is fully consumed."""
        if self.broken:
            return False
        buf = bytearray(64 * 1024)
        mv = memoryview(buf)
        read = 0
        try:
            while not self.done and read <= limit:
                n = self.readinto(mv)
                if n == 0:
                    break
                read += n
        except (ClientGone, OSError, HttpError):
            return False
        return self.done


# ---------------------------------------------------------------- hashing sink

_SPARE_LOCK = threading.Lock()
_SPARE = []                     # full-size buffers kept between requests (no page faults)
_SPARE_MAX = 12


class DataSink:
    """Writes data to a file descriptor while computing CRC32C and MD5.

    Large streams use pooled buffers: get_buffer() -> fill -> put_buffer().
    put_buffer() writes the block and updates the CRC32C at once, then hands
    the block to a helper thread for MD5 (hashlib releases the GIL, so MD5 of
    one block overlaps the receive, write and CRC of the next); the buffer
    returns to the pool afterwards.  write() is synchronous and takes any
    bytes-like object.  With md5=False no MD5 is computed (md5 stays None).
    """

    POOL = 3
    SIZE = 4 << 20

    def __init__(self, fd, crc=0, md5=None, corrupt=False, want_md5=True, expected=None):
        self.fd = fd
        self._bufsize = self.SIZE if expected is None else max(4096, min(self.SIZE, expected))
        self.crc = crc
        self.md5 = md5 if md5 is not None else (hashlib.md5() if want_md5 else None)
        self.size = 0
        self.corrupt = corrupt
        self._free = None
        self._work = None
        self._thread = None

    def _write_fd(self, mv):
        off = 0
        while off < len(mv):
            off += os.write(self.fd, mv[off:])

    def _maybe_corrupt(self, mv):
        if self.corrupt and len(mv):
            mv[0] = mv[0] ^ 0xFF
            self.corrupt = False

    def write(self, data):
        """Write and hash data synchronously (any bytes-like object)."""
        if not len(data):
            return
        if self.corrupt:
            data = bytearray(data)
        mv = memoryview(data)
        self._maybe_corrupt(mv)
        self._stop_thread()
        self._write_fd(mv)
        self.crc = _crc32c.crc32c(mv, self.crc)
        if self.md5 is not None:
            self.md5.update(mv)
        self.size += len(mv)
        mv.release()

    def get_buffer(self):
        """A free pool buffer (the pool grows lazily up to POOL buffers)."""
        if self._free is None:
            self._free = queue.SimpleQueue()
            self._allocated = 0
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._allocated < self.POOL:
            self._allocated += 1
            if self._bufsize == self.SIZE:
                with _SPARE_LOCK:
                    if _SPARE:
                        return _SPARE.pop()
            return bytearray(self._bufsize)
        return self._free.get()

    def release_buffer(self, buf):
        self._free.put(buf)

    def put_buffer(self, buf, n):
        """Write buf[:n] and CRC it now; MD5 it on the helper thread."""
        if n <= 0:
            self._free.put(buf)
            return
        with memoryview(buf) as whole:
            mv = whole[:n]
            self._maybe_corrupt(mv)
            self._write_fd(mv)
            self.crc = _crc32c.crc32c(mv, self.crc)
            mv.release()
        self.size += n
        if self.md5 is None:
            self._free.put(buf)
            return
        if self._thread is None:
            self._work = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._md5_loop, daemon=True)
            self._thread.start()
        self._work.put((buf, n))

    def _md5_loop(self):
        work, free, md5 = self._work, self._free, self.md5
        while True:
            item = work.get()
            if item is None:
                return
            buf, n = item
            with memoryview(buf) as mv:
                md5.update(mv[:n])
            free.put(buf)

    def _stop_thread(self):
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None

    def finish(self):
        """Wait for pending hashing; returns (size, crc, md5 hasher or None)."""
        self._stop_thread()
        if self._free is not None and self._bufsize == self.SIZE:
            with _SPARE_LOCK:
                while len(_SPARE) < _SPARE_MAX:
                    try:
                        _SPARE.append(self._free.get_nowait())
                    except queue.Empty:
                        break
            self._free = None
        return self.size, self.crc, self.md5


def hash_file(path, length=None, want_md5=True):
    """(crc, md5 hasher or None) of the first length bytes (all when None) of a file."""
    crc = 0
    md5 = hashlib.md5() if want_md5 else None
    left = length
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(BLOCK)
        mv = memoryview(buf)
        while left is None or left > 0:
            want = BLOCK if left is None else min(BLOCK, left)
            n = f.readinto(mv[:want])
            if not n:
                break
            crc = _crc32c.crc32c(mv[:n], crc)
            if md5 is not None:
                md5.update(mv[:n])
            if left is not None:
                left -= n
    return crc, md5


# ---------------------------------------------------------------- preconditions

OBJECT_CONDS = ("ifGenerationMatch", "ifGenerationNotMatch",
                "ifMetagenerationMatch", "ifMetagenerationNotMatch")
SOURCE_CONDS = ("ifSourceGenerationMatch", "ifSourceGenerationNotMatch",
                "ifSourceMetagenerationMatch", "ifSourceMetagenerationNotMatch")


def int_param(q, key, default=None):
    val = q.get(key) if isinstance(q, dict) else None
    if val is None or val == "":
        return default
    try:
        return int(val)
    except (ValueError, TypeError):
        raise bad_request("Invalid value for %s: %r" % (key, val))


def check_preconditions(q, rec, names=OBJECT_CONDS, not_modified=False):
    """Raise 412 (or 304 for the NotMatch forms on reads) when a condition fails.

    rec is the live object record (dict with generation/metageneration) or None.
    ifGenerationMatch=0 means "the object must not exist".
    """
    gm, gnm, mgm, mgnm = (int_param(q, n) for n in names)
    gen = rec["generation"] if rec else None
    mgen = rec["metageneration"] if rec else None
    if gm is not None:
        if gm == 0:
            if rec is not None:
                raise precondition_failed()
        elif gen != gm:
            raise precondition_failed()
    if gnm is not None and rec is not None and gen == gnm:
        if not_modified:
            raise HttpError(304, "Not Modified")
        raise precondition_failed()
    if mgm is not None and (rec is None or mgen != mgm):
        raise precondition_failed()
    if mgnm is not None and rec is not None and mgen == mgnm:
        if not_modified:
            raise HttpError(304, "Not Modified")
        raise precondition_failed()


def validate_object_name(name):
    if name is None or name == "":
        raise bad_request("Required parameter: name")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("The object name is not valid UTF-8.")
    if len(raw) > 1024:
        raise bad_request("The maximum object length is 1024 characters, but got a name "
                          "with %d characters" % len(raw))
    if "\r" in name or "\n" in name:
        raise bad_request("Object name contains a carriage return or line feed.")
    if name in (".", ".."):
        raise bad_request("Object name cannot be '.' or '..'.")
    return name
