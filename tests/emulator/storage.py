"""On-disk object store of the GCS emulator.

Layout under --root:
    buckets/<bucket>/bucket.json                 bucket resource fields
    buckets/<bucket>/objects/<hh>/<sha>.json     object record (live generation)
    buckets/<bucket>/objects/<hh>/<sha>.<gen>    object data of that generation
    tmp/                                         upload spool files (same fs: rename)
    uploads/                                     resumable sessions (see uploads.py)

<sha> is the SHA-256 of the UTF-8 object name.  Data files are immutable once
committed (a new generation gets a new file), so a reader holding an open file
descriptor always sees the generation it looked up.  Each bucket keeps a sorted
in-memory list of names for listing with bisect.  One re-entrant lock guards
the in-memory index and metadata writes; data is written outside the lock.
"""

import base64
import bisect
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from urllib.parse import quote

from common import (Clock, HttpError, bad_request, crc_b64, not_found, rfc3339)

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")

# Object fields a client may set on insert/patch/rewrite/compose (besides metadata).
SETTABLE = ("contentType", "contentEncoding", "contentDisposition", "contentLanguage",
            "cacheControl", "customTime", "storageClass")


def write_json_atomic(path, obj, fsync=False):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def name_hash(name):
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


class Bucket:
    def __init__(self, name, path, meta):
        self.name = name
        self.path = path
        self.meta = meta
        self.names = []          # sorted object names
        self.recs = {}           # name -> record dict

    def obj_dir(self, name):
        return os.path.join(self.path, "objects", name_hash(name)[:2])

    def meta_path(self, name):
        h = name_hash(name)
        return os.path.join(self.path, "objects", h[:2], h + ".json")

    def data_path(self, name, generation):
        h = name_hash(name)
        return os.path.join(self.path, "objects", h[:2], "%s.%d" % (h, generation))


def _succ(prefix):
    """Smallest string greater than every string starting with prefix (or None)."""
    if not prefix:
        return None
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(last + 1)


class Store:
    def __init__(self, root, fsync=False):
        self.root = os.path.abspath(root)
        self.fsync = fsync
        self.lock = threading.RLock()
        self.clock = Clock()
        self.buckets = {}
        self.tmp_dir = os.path.join(self.root, "tmp")
        for d in ("buckets", "tmp", "uploads"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        for f in os.listdir(self.tmp_dir):            # stale spool files
            try:
                os.unlink(os.path.join(self.tmp_dir, f))
            except OSError:
                pass
        self._load()

    # ------------------------------------------------------------ loading
    def _load(self):
        bdir = os.path.join(self.root, "buckets")
        for bname in sorted(os.listdir(bdir)):
            bpath = os.path.join(bdir, bname)
            try:
                with open(os.path.join(bpath, "bucket.json")) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            b = Bucket(bname, bpath, meta)
            self.clock.observe(meta.get("created", 0))
            odir = os.path.join(bpath, "objects")
            for sub in os.listdir(odir) if os.path.isdir(odir) else ():
                sdir = os.path.join(odir, sub)
                for fn in os.listdir(sdir):
                    if not fn.endswith(".json") or fn.startswith(".tmp-"):
                        continue
                    try:
                        with open(os.path.join(sdir, fn)) as f:
                            rec = json.load(f)
                    except (OSError, ValueError):
                        continue
                    if not os.path.exists(b.data_path(rec["name"], rec["generation"])):
                        continue
                    b.recs[rec["name"]] = rec
                    self.clock.observe(rec["generation"])
            b.names = sorted(b.recs)
            self.buckets[bname] = b

    # ------------------------------------------------------------ buckets
    def create_bucket(self, name, fields=None):
        if not isinstance(name, str) or not BUCKET_RE.match(name) or ".." in name:
            raise bad_request("Invalid bucket name: %r" % (name,))
        with self.lock:
            if name in self.buckets:
                raise HttpError(409, "Your previous request to create the named bucket "
                                "succeeded and you already own it.", "conflict")
            path = os.path.join(self.root, "buckets", name)
            os.makedirs(os.path.join(path, "objects"), exist_ok=True)
            now = self.clock.next()
            meta = {"name": name, "created": now, "updated": now, "metageneration": 1,
                    "location": "US", "storageClass": "STANDARD", "project": "emulator"}
            for k in ("location", "storageClass"):
                if fields and isinstance(fields.get(k), str):
                    meta[k] = fields[k]
            write_json_atomic(os.path.join(path, "bucket.json"), meta, self.fsync)
            b = Bucket(name, path, meta)
            self.buckets[name] = b
            return b

    def ensure_bucket(self, name):
        with self.lock:
            if name not in self.buckets:
                self.create_bucket(name)
            return self.buckets[name]

    def bucket(self, name):
        b = self.buckets.get(name)
        if b is None:
            raise not_found("The specified bucket does not exist.")
        return b

    def delete_bucket(self, name):
        with self.lock:
            b = self.bucket(name)
            if b.names:
                raise HttpError(409, "The bucket you tried to delete is not empty.", "conflict")
            del self.buckets[name]
            shutil.rmtree(b.path, ignore_errors=True)

    def bucket_resource(self, b, base):
        m = b.meta
        return {"kind": "storage#bucket", "id": b.name, "name": b.name,
                "selfLink": "%s/storage/v1/b/%s" % (base, b.name),
                "projectNumber": "0", "metageneration": str(m["metageneration"]),
                "location": m["location"], "locationType": "multi-region",
                "storageClass": m["storageClass"],
                "etag": base64.b64encode(b"b%d" % m["metageneration"]).decode(),
                "timeCreated": rfc3339(m["created"]), "updated": rfc3339(m["updated"]),
                "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True},
                                     "bucketPolicyOnly": {"enabled": True}}}

    # ------------------------------------------------------------ objects
    def get(self, bucket, name, generation=None):
        with self.lock:
            rec = self.bucket(bucket).recs.get(name)
            if rec is None or (generation is not None and rec["generation"] != generation):
                raise not_found("No such object: %s/%s" % (bucket, name))
            return rec

    def lookup(self, bucket, name):
        """The live record or None (no 404)."""
        with self.lock:
            return self.bucket(bucket).recs.get(name)

    def open_data(self, bucket, name, generation=None):
        """(record, read-only fd) for a consistent read of one generation."""
        with self.lock:
            rec = self.get(bucket, name, generation)
            fd = os.open(self.buckets[bucket].data_path(name, rec["generation"]), os.O_RDONLY)
            return rec, fd

    def data_path(self, bucket, rec):
        return self.bucket(bucket).data_path(rec["name"], rec["generation"])

    def new_temp(self):
        """(fd, path) of a fresh spool file on the store's filesystem."""
        return tempfile.mkstemp(dir=self.tmp_dir, prefix="up-")

    def commit(self, bucket, name, tmp_path, info, check=None):
        """Atomically make tmp_path the new live generation of bucket/name.

        info: size, crc (int), md5 (b64 or None), contentType, metadata, plus any
        SETTABLE field and componentCount.  check(current_record_or_None) runs
        under the lock and may raise (preconditions).  Returns the new record.
        """
        with self.lock:
            b = self.bucket(bucket)
            cur = b.recs.get(name)
            if check:
                check(cur)
            gen = self.clock.next()
            old_data = None
            now = gen
            rec = {"name": name, "generation": gen, "metageneration": 1,
                   "size": int(info["size"]), "crc32c": crc_b64(info["crc"]),
                   "md5Hash": info.get("md5"),
                   "contentType": info.get("contentType") or "application/octet-stream",
                   "timeCreated": now, "updated": now,
                   "metadata": dict(info.get("metadata") or {})}
            for k in SETTABLE:
                if info.get(k) is not None:
                    rec[k] = info[k]
            rec.setdefault("storageClass", "STANDARD")
            if info.get("componentCount"):
                rec["componentCount"] = int(info["componentCount"])
            os.makedirs(b.obj_dir(name), exist_ok=True)
            if self.fsync:
                fd = os.open(tmp_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            dpath = b.data_path(name, gen)
            os.replace(tmp_path, dpath)
            write_json_atomic(b.meta_path(name), rec, self.fsync)
            if cur is None:
                bisect.insort(b.names, name)
            else:
                old_data = b.data_path(name, cur["generation"])
            b.recs[name] = rec
        if old_data:                      # outside the lock: freeing a big file takes time
            self._unlink(old_data)
        return rec

    def link_copy(self, bucket, rec, dst_bucket):
        """A spool file hard-linked to rec's (immutable) data file."""
        fd, tmp = self.new_temp()
        os.close(fd)
        os.unlink(tmp)
        try:
            os.link(self.data_path(bucket, rec), tmp)
        except OSError:
            shutil.copyfile(self.data_path(bucket, rec), tmp)
        return tmp

    def patch(self, bucket, name, change, check=None, generation=None):
        """Apply change(rec_copy) to the live record, bump metageneration."""
        with self.lock:
            b = self.bucket(bucket)
            cur = self.get(bucket, name, generation)
            if check:
                check(cur)
            rec = json.loads(json.dumps(cur))
            change(rec)
            rec["metageneration"] = cur["metageneration"] + 1
            rec["updated"] = max(self.clock.next(), cur["updated"] + 1)
            write_json_atomic(b.meta_path(name), rec, self.fsync)
            b.recs[name] = rec
            return rec

    def delete(self, bucket, name, generation=None, check=None):
        with self.lock:
            b = self.bucket(bucket)
            cur = self.get(bucket, name, generation)
            if check:
                check(cur)
            self._unlink(b.meta_path(name))
            old_data = b.data_path(name, cur["generation"])
            del b.recs[name]
            i = bisect.bisect_left(b.names, name)
            if i < len(b.names) and b.names[i] == name:
                del b.names[i]
        self._unlink(old_data)

    @staticmethod
    def _unlink(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------ listing
    def list(self, bucket, prefix="", delimiter=None, max_results=1000, start_name=None,
             start_offset=None, end_offset=None, include_trailing=False):
        """One page: (records, prefixes, next_start_name_or_None).

        Every item and every new prefix counts toward max_results.  The
        continuation is the (inclusive) name where the next page starts.
        """
        with self.lock:
            b = self.bucket(bucket)
            names = b.names
            lo_key = prefix
            for k in (start_offset, start_name):
                if k and k > lo_key:
                    lo_key = k
            i = bisect.bisect_left(names, lo_key)
            hi = len(names)
            up = _succ(prefix)
            if up is not None:
                hi = bisect.bisect_left(names, up, i)
            if end_offset:
                hi = min(hi, bisect.bisect_left(names, end_offset, i))
            items, prefixes, count = [], [], 0
            plen = len(prefix)
            while i < hi:
                if count >= max_results:
                    return items, prefixes, names[i]
                name = names[i]
                if not name.startswith(prefix):      # only when _succ() had no bound
                    break
                if delimiter:
                    j = name.find(delimiter, plen)
                    if j >= 0:
                        p = name[:j + len(delimiter)]
                        prefixes.append(p)
                        count += 1
                        if include_trailing and name == p:
                            items.append(b.recs[name])
                            count += 1
                        nxt = _succ(p)
                        if nxt is not None:
                            i = bisect.bisect_left(names, nxt, i + 1)
                        else:
                            i += 1
                            while i < hi and names[i].startswith(p):
                                i += 1
                        continue
                items.append(b.recs[name])
                count += 1
                i += 1
            return items, prefixes, None


def object_resource(rec, bucket, base):
    """The storage#object JSON resource of a record."""
    name = rec["name"]
    gen = rec["generation"]
    enc = quote(name, safe="")
    out = {
        "kind": "storage#object",
        "id": "%s/%s/%d" % (bucket, name, gen),
        "selfLink": "%s/storage/v1/b/%s/o/%s" % (base, bucket, enc),
        "mediaLink": "%s/download/storage/v1/b/%s/o/%s?generation=%d&alt=media"
                     % (base, bucket, enc, gen),
        "name": name,
        "bucket": bucket,
        "generation": str(gen),
        "metageneration": str(rec["metageneration"]),
        "contentType": rec.get("contentType", "application/octet-stream"),
        "storageClass": rec.get("storageClass", "STANDARD"),
        "size": str(rec["size"]),
        "crc32c": rec["crc32c"],
        "etag": etag(rec),
        "timeCreated": rfc3339(rec["timeCreated"]),
        "updated": rfc3339(rec["updated"]),
        "timeStorageClassUpdated": rfc3339(rec["timeCreated"]),
    }
    if rec.get("md5Hash"):
        out["md5Hash"] = rec["md5Hash"]
    for k in ("contentEncoding", "contentDisposition", "contentLanguage", "cacheControl",
              "customTime"):
        if rec.get(k) is not None:
            out[k] = rec[k]
    if rec.get("componentCount"):
        out["componentCount"] = int(rec["componentCount"])
    if rec.get("metadata"):
        out["metadata"] = dict(rec["metadata"])
    return out


def etag(rec):
    raw = b"%d/%d" % (rec["generation"], rec["metageneration"])
    return base64.b64encode(raw).decode()


def now_us():
    return time.time_ns() // 1000
