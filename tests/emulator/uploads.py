"""Object uploads of the GCS emulator: objects.insert with uploadType=media,
multipart and resumable, plus the resumable-session protocol (PUT chunks with
Content-Range, status queries, 308 + Range, cancel with DELETE).

Resumable rules follow GCS: a non-final chunk under 256 KiB is rejected
(400); of a longer one only whole 256 KiB quanta persist (the 308 Range says
how much); bytes resent below the persisted size are skipped; a chunk starting
past the persisted size gets 503 with a text/plain body; x-goog-hash (or the
crc32c/md5Hash given at the start) is checked when the upload completes.

Bodies stream from the socket to a spool file in blocks of up to 4 MiB while CRC32C
and MD5 are computed (common.DataSink).  Resumable sessions live on disk under
<root>/uploads/<id>.json (+ <id>.data holding the bytes persisted so far), so
they survive an emulator restart.  Handlers return (status, body, headers).
"""

import json
import os
import re
import secrets
import threading
import time
from urllib.parse import quote

from common import (BLOCK, QUANTUM, DataSink, FaultCut, HttpError, OBJECT_CONDS,
                    bad_request, check_preconditions, crc_b64, hash_file, md5_b64, not_found,
                    parse_x_goog_hash, validate_object_name)
from storage import SETTABLE, object_resource, write_json_atomic

CR_RE = re.compile(r"^bytes\s+(?:(\*)|(\d+)-(\d+))/(\*|\d+)$")
SID_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


# ---------------------------------------------------------------- helpers

def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _cut_bytes(h):
    f = h.fault
    if f is not None and f.after is not None and f.type in ("status", "broken", "stall_after"):
        return f.after
    return None


def _at_cut(h):
    """The body reached an after-NK fault: stall and go on, or stop (FaultCut)."""
    if h.fault.type == "stall_after":
        time.sleep(h.fault.seconds)
        h.fault = None
        return False
    raise FaultCut()


def stream_body(h, sink, skip=0, keep=None):
    """Copy the request body into sink, dropping its first `skip` bytes (and all
    after skip + keep when keep is given).

    Returns the number of body bytes read.  An 'after-NK' fault stops the copy
    after N KiB (or at the end of a shorter body) by raising FaultCut.
    """
    cut = _cut_bytes(h)
    read = 0
    end = None if keep is None else skip + max(keep, 0)
    while not h.body.done:
        if cut is not None and read >= cut:
            if not _at_cut(h):
                cut = None
                continue
        buf = sink.get_buffer()
        want = len(buf)
        if cut is not None:
            want = min(want, cut - read)
        if read < skip:
            want = min(want, skip - read)
        elif end is not None and read < end:
            want = min(want, end - read)
        try:
            n = h.body.readinto(memoryview(buf)[:want])
        except BaseException:
            sink.release_buffer(buf)
            raise
        if n == 0:
            sink.release_buffer(buf)
            break
        if read < skip or (end is not None and read >= end):
            sink.release_buffer(buf)
        else:
            sink.put_buffer(buf, n)
        read += n
    if cut is not None:
        _at_cut(h)
    return read


def _resource_meta(raw):
    """Parse an optional JSON object resource from a request body."""
    if raw is None or not raw.strip():
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        raise bad_request("Metadata part is not valid JSON.")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise bad_request("Object metadata must be a JSON object.")
    md = meta.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise bad_request("Invalid value for metadata: must be an object.")
    return meta


def _clean_metadata(md):
    return {str(k): (v if isinstance(v, str) else json.dumps(v))
            for k, v in (md or {}).items() if v is not None}


def finalize(h, bucket, name, path, size, crc, md5, meta, query, content_type,
             hash_headers=None):
    """Verify client-supplied hashes and commit path as bucket/name (400/412 raise)."""
    given = parse_x_goog_hash(hash_headers)
    if md5 is None and (meta.get("md5Hash") is not None or "md5" in given):
        md5 = hash_file(path, size)[1]           # --no-md5 mode, but asked to verify one
    crc_s = crc_b64(crc)
    md5_s = md5_b64(md5.digest()) if md5 is not None else None
    checks = ((meta.get("crc32c"), crc_s, "CRC32C"), (given.get("crc32c"), crc_s, "CRC32C"),
              (meta.get("md5Hash"), md5_s, "MD5 hash"), (given.get("md5"), md5_s, "MD5 hash"))
    for want, got, label in checks:
        if want is not None and want != got:
            raise bad_request('Provided %s "%s" doesn\'t match calculated %s "%s".'
                              % (label, want, label, got))
    info = {"size": size, "crc": crc, "md5": md5_s,
            "contentType": meta.get("contentType") or content_type,
            "metadata": _clean_metadata(meta.get("metadata"))}
    for k in SETTABLE:
        if k != "contentType" and isinstance(meta.get(k), str):
            info[k] = meta[k]
    store = h.server.app.store
    return store.commit(bucket, name, path, info,
                        check=lambda cur: check_preconditions(query, cur))


def _wants_md5(h, meta):
    return (h.server.app.md5 or meta.get("md5Hash") is not None
            or "md5" in parse_x_goog_hash(h.headers.get_all("x-goog-hash")))


def _spool_upload(h, bucket, name, meta, content_type, writer):
    """Run writer(sink) into a spool file, then finalize; returns the resource."""
    store = h.server.app.store
    fd, tmp = store.new_temp()
    try:
        sink = DataSink(fd, corrupt=bool(h.fault and h.fault.type == "corrupt"),
                        want_md5=_wants_md5(h, meta),
                        expected=None if h.body.chunked else h.body.length)
        try:
            writer(sink)
        finally:
            size, crc, md5 = sink.finish()
            os.close(fd)
        rec = finalize(h, bucket, name, tmp, size, crc, md5, meta, h.q, content_type,
                       h.headers.get_all("x-goog-hash"))
    finally:
        _unlink(tmp)
    return 200, object_resource(rec, bucket, h.base), {}


# ---------------------------------------------------------------- objects.insert

def insert(h, bucket, upload_type):
    h.server.app.store.bucket(bucket)
    if upload_type == "media":
        name = validate_object_name(h.q.get("name"))
        ctype = h.headers.get("Content-Type") or "application/octet-stream"
        return _spool_upload(h, bucket, name, {}, ctype, lambda sink: stream_body(h, sink))
    if upload_type == "multipart":
        return _multipart(h, bucket)
    if upload_type == "resumable":
        return _resumable_start(h, bucket)
    if upload_type is None:          # metadata-only insert: an empty object
        meta = _resource_meta(h.body.read_all(1 << 20))
        name = validate_object_name(h.q.get("name") or meta.get("name"))
        return _spool_upload(h, bucket, name, meta, "application/octet-stream",
                             lambda sink: None)
    raise bad_request("Invalid uploadType: %s" % upload_type)


class _PartReader:
    """Incremental reader over a multipart/related body."""

    def __init__(self, h):
        self.h = h
        self.buf = bytearray()
        self.cut = _cut_bytes(h)
        self.read = 0
        self.tmp = bytearray(BLOCK)

    def more(self):
        if self.h.body.done:
            return False
        want = BLOCK
        if self.cut is not None and self.read >= self.cut:
            if not _at_cut(self.h):
                self.cut = None
        if self.cut is not None:
            want = min(want, self.cut - self.read)
        n = self.h.body.readinto(memoryview(self.tmp)[:want])
        if n == 0:
            return False
        self.buf += memoryview(self.tmp)[:n]
        self.read += n
        return True

    def find(self, pat, start=0, limit=1 << 20):
        """Index of pat at or after start, reading more as needed (-1 at the end)."""
        origin = start
        while True:
            i = self.buf.find(pat, start)
            if i >= 0:
                return i
            start = max(start, len(self.buf) - len(pat) + 1)
            if len(self.buf) - origin > limit:
                raise bad_request("Multipart header section too large.")
            if not self.more():
                return -1


def _part_headers(raw):
    out = {}
    for line in raw.decode("latin-1").split("\r\n"):
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip().lower()] = v.strip()
    return out


def _multipart(h, bucket):
    ctype = h.headers.get("Content-Type") or ""
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', ctype, re.I)
    if not ctype.lower().startswith("multipart/") or not m:
        raise bad_request("Multipart upload needs a multipart/related Content-Type "
                          "with a boundary.")
    boundary = (m.group(1) or m.group(2)).encode("latin-1")
    dash, delim = b"--" + boundary, b"\r\n--" + boundary
    r = _PartReader(h)
    i = r.find(dash)
    if i < 0:
        raise bad_request("Multipart body has no boundary.")
    j = r.find(b"\r\n\r\n", i + len(dash))
    if j < 0:
        raise bad_request("Malformed multipart metadata part.")
    k = r.find(delim, j + 4)
    if k < 0:
        raise bad_request("Multipart body has only one part.")
    meta = _resource_meta(bytes(r.buf[j + 4:k]))
    pos = k + len(delim)
    while len(r.buf) < pos + 4 and r.more():
        pass
    if r.buf[pos:pos + 2] == b"--":
        raise bad_request("Multipart body has no media part.")
    if r.buf[pos:pos + 2] != b"\r\n":
        raise bad_request("Malformed multipart boundary line.")
    hpos = pos + 2
    if r.buf[hpos:hpos + 2] == b"\r\n":              # media part without headers
        media_headers, start = {}, hpos + 2
    else:
        e = r.find(b"\r\n\r\n", hpos)
        if e < 0:
            raise bad_request("Malformed multipart media part.")
        media_headers, start = _part_headers(bytes(r.buf[hpos:e])), e + 4
    del r.buf[:start]
    name = validate_object_name(h.q.get("name") or meta.get("name"))
    part_type = media_headers.get("content-type") or "application/octet-stream"

    def writer(sink):
        keep = len(delim) - 1
        while True:
            idx = r.buf.find(delim)
            if idx >= 0:
                with memoryview(r.buf) as mv:
                    sink.write(mv[:idx])
                tail = bytes(r.buf[idx + len(delim):idx + len(delim) + 2])
                while len(tail) < 2 and r.more():
                    tail = bytes(r.buf[idx + len(delim):idx + len(delim) + 2])
                if tail != b"--":
                    raise bad_request("Multipart body has more than two parts.")
                break
            if len(r.buf) > keep:
                n = len(r.buf) - keep
                with memoryview(r.buf) as mv:
                    sink.write(mv[:n])
                del r.buf[:n]
            if not r.more():
                raise bad_request("Multipart body is missing its closing boundary.")
        h.body.drain(1 << 16)
        if r.cut is not None:
            _at_cut(h)

    return _spool_upload(h, bucket, name, meta, part_type, writer)


# ---------------------------------------------------------------- resumable sessions

class Sessions:
    """Persistent resumable-upload sessions."""

    def __init__(self, root, want_md5=True):
        self.want_md5 = want_md5
        self.dir = os.path.join(root, "uploads")
        os.makedirs(self.dir, exist_ok=True)
        self.lock = threading.Lock()
        self.locks = {}
        self.hashers = {}        # id -> (offset, crc, md5) valid for the first offset bytes

    def lock_for(self, sid):
        with self.lock:
            return self.locks.setdefault(sid, threading.Lock())

    def json_path(self, sid):
        return os.path.join(self.dir, sid + ".json")

    def data_path(self, sid):
        return os.path.join(self.dir, sid + ".data")

    def create(self, info):
        sid = secrets.token_urlsafe(32)
        info.update({"id": sid, "state": "active", "total": None})
        open(self.data_path(sid), "wb").close()
        self.save(info)
        return sid

    def load(self, sid):
        if not sid or not SID_RE.match(sid):
            return None
        try:
            with open(self.json_path(sid)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save(self, s):
        write_json_atomic(self.json_path(s["id"]), s)

    def remove(self, sid):
        _unlink(self.json_path(sid))
        _unlink(self.data_path(sid))
        self.hashers.pop(sid, None)

    def hasher(self, sid, offset):
        ent = self.hashers.pop(sid, None)
        if ent is not None and ent[0] == offset:
            return ent[1], ent[2]
        return hash_file(self.data_path(sid), offset, self.want_md5)

    def truncate(self, sid, size):
        os.truncate(self.data_path(sid), size)
        self.hashers.pop(sid, None)


def _resumable_start(h, bucket):
    app = h.server.app
    meta = _resource_meta(h.body.read_all(1 << 20))
    name = validate_object_name(h.q.get("name") or meta.get("name"))
    check_preconditions(h.q, app.store.lookup(bucket, name))
    xlen = h.headers.get("X-Upload-Content-Length")
    try:
        xlen = int(xlen) if xlen not in (None, "") else None
    except ValueError:
        raise bad_request("Invalid X-Upload-Content-Length header.")
    query = {k: v for k, v in h.q.items() if k in OBJECT_CONDS}
    ctype = (meta.get("contentType") or h.headers.get("X-Upload-Content-Type")
             or "application/octet-stream")
    sid = app.sessions.create({"bucket": bucket, "name": name, "meta": meta, "query": query,
                               "content_type": ctype, "x_upload_content_length": xlen})
    loc = "%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s" % (
        h.base, quote(bucket, safe=""), quote(name, safe=""), sid)
    return 200, None, {"Location": loc, "X-GUploader-UploadID": sid}


def _status_308(h, size):
    """308 Resume Incomplete, or 200 + X-HTTP-Status-Code-Override: 308 when the
    client asks for it with X-GUploader-No-308: yes (as GCS's upload server does)."""
    headers = {}
    if size > 0:
        headers["Range"] = "bytes=0-%d" % (size - 1)
    if (h.headers.get("X-GUploader-No-308") or "").strip().lower() == "yes":
        headers["X-HTTP-Status-Code-Override"] = "308"
        return 200, None, headers
    return 308, None, headers


def _complete(h, s, size, hash_headers):
    app = h.server.app
    sid = s["id"]
    crc, md5 = app.sessions.hasher(sid, size)
    try:
        rec = finalize(h, s["bucket"], s["name"], app.sessions.data_path(sid), size, crc, md5,
                       s["meta"], s["query"], s["content_type"], hash_headers)
    except HttpError as e:
        s["state"], s["error"] = "failed", e.message
        app.sessions.save(s)
        _unlink(app.sessions.data_path(sid))
        app.sessions.hashers.pop(sid, None)
        raise
    s["state"], s["result"] = "done", rec
    app.sessions.save(s)
    return 200, object_resource(rec, s["bucket"], h.base), {}


def session_kind(headers):
    cr = (headers.get("Content-Range") or "").replace(" ", "")
    return "upload.status" if cr.startswith("bytes*/") else "upload.chunk"


def upload_put(h, bucket):
    """PUT (or POST) to a resumable session URI: a chunk or a status query."""
    app = h.server.app
    sid = h.q.get("upload_id")
    with app.sessions.lock_for(sid or ""):
        s = app.sessions.load(sid)
        if s is None or s["bucket"] != bucket:
            raise not_found("No such upload session: %s" % sid)
        if s["state"] == "done":
            h.body.drain()
            return 200, object_resource(s["result"], bucket, h.base), {}
        if s["state"] == "failed":
            h.body.drain()
            raise HttpError(410, "The upload session failed and cannot be resumed: %s"
                            % s.get("error", ""), "gone")
        return _put_locked(h, s)


def _put_locked(h, s):
    app = h.server.app
    sid = s["id"]
    persisted = os.path.getsize(app.sessions.data_path(sid))
    hash_headers = h.headers.get_all("x-goog-hash")
    xlen = s.get("x_upload_content_length")
    cr = h.headers.get("Content-Range")
    if cr is None:                                   # single-request upload of everything
        first, last, total = 0, None, None
        if persisted:
            app.sessions.truncate(sid, 0)
            persisted = 0
    else:
        m = CR_RE.match(cr.strip())
        if not m:
            raise bad_request("Invalid Content-Range header: %r" % cr)
        total = None if m.group(4) == "*" else int(m.group(4))
        if total is not None:
            if s["total"] is not None and s["total"] != total:
                raise bad_request("The total object size %d does not match the size %d "
                                  "given earlier." % (total, s["total"]))
            if xlen is not None and xlen != total:
                raise bad_request("The total object size %d does not match "
                                  "X-Upload-Content-Length %d." % (total, xlen))
        if m.group(1):                               # bytes */TOTAL: status query
            h.body.drain()
            if total is not None and total < persisted:
                raise bad_request("The total object size %d is smaller than the %d bytes "
                                  "already uploaded." % (total, persisted))
            if total is not None and total == persisted:
                return _complete(h, s, persisted, hash_headers)
            return _status_308(h, persisted)
        first, last = int(m.group(2)), int(m.group(3))
        if last < first:
            raise bad_request("Invalid Content-Range header: %r" % cr)
        if total is not None and last >= total:
            raise bad_request("Content-Range %r goes past the total object size." % cr)
        clen = last - first + 1
        if h.body.length is not None and not h.body.chunked and h.body.length != clen:
            raise bad_request("The Content-Length %d does not match the Content-Range %r."
                              % (h.body.length, cr))
        final = total is not None and last + 1 == total
        if not final and clen < QUANTUM:
            raise bad_request(
                "Invalid request. The number of bytes uploaded is required to be equal or "
                "greater than %d, except for the final request (it's recommended to be the "
                "exact multiple of %d). The received request contained %d bytes, which does "
                "not meet this requirement." % (QUANTUM, QUANTUM, clen))
        if first > persisted:                        # GCS: 503 with a text/plain body
            raise HttpError(
                503, "Invalid request.  According to the Content-Range header, the upload "
                "offset is %d byte(s), which exceeds already uploaded size of %d byte(s)."
                % (first, persisted), plain=True)
    skip = persisted - first
    keep = None
    if cr is not None and not final:                 # only whole 256 KiB quanta persist
        keep = ((last + 1) // QUANTUM) * QUANTUM - persisted
    crc, md5 = app.sessions.hasher(sid, persisted)
    fd = os.open(app.sessions.data_path(sid), os.O_WRONLY)
    os.lseek(fd, persisted, os.SEEK_SET)
    sink = DataSink(fd, crc, md5, corrupt=bool(h.fault and h.fault.type == "corrupt"),
                    want_md5=md5 is not None,
                    expected=None if h.body.chunked else h.body.length)
    try:
        try:
            read = stream_body(h, sink, skip, keep)
        finally:
            written, crc, md5 = sink.finish()
            os.close(fd)
        new = persisted + written
        if last is not None and read != last - first + 1:
            raise bad_request("The request body has %d bytes but Content-Range says %d."
                              % (read, last - first + 1))
        if cr is None and xlen is not None and read != xlen:
            raise bad_request("The request body has %d bytes but X-Upload-Content-Length "
                              "is %d." % (read, xlen))
    except HttpError:
        app.sessions.truncate(sid, persisted)
        raise
    except BaseException:
        # An interrupted chunk (fault, client gone) keeps only whole 256 KiB quanta.
        grown = persisted + sink.size
        app.sessions.truncate(sid, max(persisted, (grown // QUANTUM) * QUANTUM))
        raise
    app.sessions.hashers[sid] = (new, crc, md5)
    if cr is None:
        total = new
    if total is not None and s["total"] is None:
        s["total"] = total
        app.sessions.save(s)
    if total is not None and new == total:
        return _complete(h, s, new, hash_headers)
    return _status_308(h, new)


def upload_cancel(h, bucket):
    app = h.server.app
    sid = h.q.get("upload_id")
    with app.sessions.lock_for(sid or ""):
        s = app.sessions.load(sid)
        if s is None or s["bucket"] != bucket:
            raise not_found("No such upload session: %s" % sid)
        app.sessions.remove(sid)
    return 499, None, {}
