"""Bucket and object request handlers of the GCS emulator (everything except
uploads): buckets.get/list/insert/delete, objects.get (metadata and media,
with Range), objects.list, objects.delete, objects.patch, objects.rewrite,
objects.copy and objects.compose.  Handlers return (status, body, headers);
media downloads stream the file themselves through h.send_file().
"""

import base64
import json
import os
import re

from common import (BLOCK, SOURCE_CONDS, HttpError, bad_request, check_preconditions,
                    crc32c_update, int_param, validate_object_name)
from storage import SETTABLE, object_resource

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _json_body(h, allow_null=True):
    raw = h.body.read_all(8 << 20)
    if not raw.strip():
        return {}
    try:
        obj = json.loads(raw)
    except ValueError:
        raise bad_request("Parse Error: the request body is not valid JSON.")
    if obj is None and allow_null:
        return {}
    if not isinstance(obj, dict):
        raise bad_request("The request body must be a JSON object.")
    return obj


def _gen(h, key="generation"):
    return int_param(h.q, key)


# ---------------------------------------------------------------- buckets

def bucket_list(h):
    app = h.server.app
    with app.store.lock:
        items = [app.store.bucket_resource(b, h.base)
                 for _, b in sorted(app.store.buckets.items())]
    out = {"kind": "storage#buckets"}
    if items:
        out["items"] = items
    return 200, out, {}


def bucket_insert(h):
    body = _json_body(h)
    b = h.server.app.store.create_bucket(body.get("name"), body)
    return 200, h.server.app.store.bucket_resource(b, h.base), {}


def bucket_get(h, bucket):
    store = h.server.app.store
    return 200, store.bucket_resource(store.bucket(bucket), h.base), {}


def bucket_delete(h, bucket):
    h.server.app.store.delete_bucket(bucket)
    return 204, None, {}


# ---------------------------------------------------------------- objects.get

def object_get(h, bucket, name):
    rec = h.server.app.store.get(bucket, name, _gen(h))
    check_preconditions(h.q, rec, not_modified=True)
    return 200, object_resource(rec, bucket, h.base), {}


def parse_range(value, size):
    """(start, end_inclusive) or None for a full response; raises 416."""
    if not value:
        return None
    m = RANGE_RE.match(value.strip().replace(" ", ""))
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None                                   # unsupported/invalid: ignore
    a, b = m.group(1), m.group(2)
    if size == 0:
        # Like GCS: no byte of an empty object can satisfy "bytes=a-[b]" (416); a
        # suffix range "bytes=-n" selects the whole (empty) object (200).
        if a == "":
            return None
        raise _unsatisfiable(size)
    if a == "":
        n = int(b)
        if n == 0:
            raise _unsatisfiable(size)
        return max(0, size - n), size - 1
    start = int(a)
    if b and int(b) < start:
        return None                                   # syntactically invalid: ignore
    if start >= size:
        raise _unsatisfiable(size)
    end = int(b) if b else size - 1
    return start, min(end, size - 1)


def _unsatisfiable(size):
    return HttpError(416, "The requested range cannot be satisfied.",
                     "requestedRangeNotSatisfiable",
                     headers={"Content-Range": "bytes */%d" % size})


def object_media(h, bucket, name):
    store = h.server.app.store
    rec, fd = store.open_data(bucket, name, _gen(h))
    try:
        check_preconditions(h.q, rec, not_modified=True)
        size = rec["size"]
        rng = parse_range(h.headers.get("Range"), size)
        if h.fault is not None and h.fault.type == "ignore_range":
            rng = None
        hashes = "crc32c=" + rec["crc32c"]
        if rec.get("md5Hash"):
            hashes += ",md5=" + rec["md5Hash"]
        headers = {"Content-Type": rec.get("contentType") or "application/octet-stream",
                   "x-goog-hash": hashes,
                   "x-goog-generation": str(rec["generation"]),
                   "x-goog-metageneration": str(rec["metageneration"]),
                   "x-goog-stored-content-length": str(size),
                   "x-goog-stored-content-encoding": rec.get("contentEncoding") or "identity",
                   "x-goog-storage-class": rec.get("storageClass", "STANDARD"),
                   "ETag": '"%s"' % base64.b64encode(
                       b"%d/%d" % (rec["generation"], rec["metageneration"])).decode(),
                   "Accept-Ranges": "bytes"}
        for k, hk in (("contentEncoding", "Content-Encoding"),
                      ("contentDisposition", "Content-Disposition"),
                      ("contentLanguage", "Content-Language"),
                      ("cacheControl", "Cache-Control")):
            if rec.get(k):
                headers[hk] = rec[k]
        if rng is None:
            h.send_file(200, headers, fd, 0, size)
        else:
            start, end = rng
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
            h.send_file(206, headers, fd, start, end - start + 1)
    finally:
        os.close(fd)
    return None


# ---------------------------------------------------------------- objects.list

def _token_encode(name):
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode().rstrip("=")


def _token_decode(tok):
    try:
        return base64.b64decode(tok + "=" * (-len(tok) % 4), altchars=b"-_",
                                validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid pageToken.")


def object_list(h, bucket):
    q = h.q
    max_results = int_param(q, "maxResults", 1000)
    if max_results < 0:
        raise bad_request("Invalid value for maxResults: %d" % max_results)
    max_results = min(max_results or 1000, 1000)
    tok = q.get("pageToken")
    start_name = _token_decode(tok) if tok else None
    trailing = str(q.get("includeTrailingDelimiter", "")).lower() == "true"
    items, prefixes, nxt = h.server.app.store.list(
        bucket, prefix=q.get("prefix") or "", delimiter=q.get("delimiter") or None,
        max_results=max_results, start_name=start_name,
        start_offset=q.get("startOffset") or None, end_offset=q.get("endOffset") or None,
        include_trailing=trailing)
    # In the order the reference gives the resource's fields (kind,
    # nextPageToken, prefixes, items): the token before the items, so a
    # client can ask for the next page before it reads them. JSON leaves the
    # order free; clients must not depend on it, and gcsmount does not.
    out = {"kind": "storage#objects"}
    if nxt is not None:
        out["nextPageToken"] = _token_encode(nxt)
    if prefixes:
        out["prefixes"] = prefixes
    if items:
        out["items"] = [object_resource(r, bucket, h.base) for r in items]
    return 200, out, {}


# ---------------------------------------------------------------- delete / patch

def object_delete(h, bucket, name):
    h.server.app.store.delete(bucket, name, _gen(h), check=lambda r: check_preconditions(h.q, r))
    return 204, None, {}


def _apply_fields(rec, body):
    """Patch semantics: metadata merges (null deletes a key), other fields replace."""
    if "metadata" in body:
        md = body["metadata"]
        if md is None:
            rec["metadata"] = {}
        elif isinstance(md, dict):
            cur = dict(rec.get("metadata") or {})
            for k, v in md.items():
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[str(k)] = v if isinstance(v, str) else json.dumps(v)
            rec["metadata"] = cur
        else:
            raise bad_request("Invalid value for metadata: must be an object.")
    for k in SETTABLE:
        if k in body:
            if body[k] is None:
                rec.pop(k, None)
            elif isinstance(body[k], str):
                rec[k] = body[k]
            else:
                raise bad_request("Invalid value for %s." % k)
    if not rec.get("contentType"):
        rec["contentType"] = "application/octet-stream"


def object_patch(h, bucket, name):
    body = _json_body(h)
    rec = h.server.app.store.patch(bucket, name, lambda r: _apply_fields(r, body),
                                   check=lambda r: check_preconditions(h.q, r),
                                   generation=_gen(h))
    return 200, object_resource(rec, bucket, h.base), {}


# ---------------------------------------------------------------- rewrite / copy

def _copy_info(src, body):
    info = {"size": src["size"], "md5": src.get("md5Hash"),
            "contentType": src.get("contentType"),
            "metadata": dict(src.get("metadata") or {}),
            "componentCount": src.get("componentCount")}
    for k in SETTABLE:
        if src.get(k) is not None and k != "contentType":
            info[k] = src[k]
    if body:
        tmp = dict(info)
        tmp["metadata"] = {}
        _apply_fields(tmp, body)
        info.update(tmp)
        if "metadata" not in body:
            info["metadata"] = dict(src.get("metadata") or {})
    info["crc"] = int.from_bytes(base64.b64decode(src["crc32c"]), "big")
    return info


def _do_copy(h, sb, so, db, do, body):
    store = h.server.app.store
    validate_object_name(do)
    store.bucket(db)
    src = store.get(sb, so, _gen(h, "sourceGeneration"))
    check_preconditions(h.q, src, names=SOURCE_CONDS)
    tmp = store.link_copy(sb, src, db)
    try:
        rec = store.commit(db, do, tmp, _copy_info(src, body),
                           check=lambda cur: check_preconditions(h.q, cur))
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return rec


def object_copy(h, sb, so, db, do):
    rec = _do_copy(h, sb, so, db, do, _json_body(h))
    return 200, object_resource(rec, db, h.base), {}


def object_rewrite(h, sb, so, db, do):
    body = _json_body(h)
    store = h.server.app.store
    src = store.get(sb, so, _gen(h, "sourceGeneration"))
    check_preconditions(h.q, src, names=SOURCE_CONDS)
    size = src["size"]
    per_call = int_param(h.q, "maxBytesRewrittenPerCall")
    if per_call is not None and (per_call <= 0 or per_call % (1 << 20)):
        raise bad_request("maxBytesRewrittenPerCall must be a positive multiple of 1048576.")
    done_bytes = 0
    tok = h.q.get("rewriteToken")
    if tok:
        try:
            state = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
            done_bytes = int(state["bytes"])
            ok = state["src"] == [sb, so, src["generation"]] and state["dst"] == [db, do]
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise bad_request("Invalid rewriteToken (or the source object changed).")
    if per_call is not None and size - done_bytes > per_call:
        done_bytes += per_call
        state = {"src": [sb, so, src["generation"]], "dst": [db, do], "bytes": done_bytes}
        token = base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")
        return 200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": str(done_bytes),
                     "objectSize": str(size), "done": False, "rewriteToken": token}, {}
    rec = _do_copy(h, sb, so, db, do, body)
    return 200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": str(size),
                 "objectSize": str(size), "done": True,
                 "resource": object_resource(rec, db, h.base)}, {}


# ---------------------------------------------------------------- compose

def object_compose(h, bucket, dest):
    store = h.server.app.store
    validate_object_name(dest)
    body = _json_body(h, allow_null=False)
    sources = body.get("sourceObjects")
    if not isinstance(sources, list) or not sources:
        raise bad_request("Required field: sourceObjects.")
    if len(sources) > 32:
        raise bad_request("The number of source components provided (%d) exceeds the maximum "
                          "(32)." % len(sources))
    dmeta = body.get("destination") or {}
    if not isinstance(dmeta, dict):
        raise bad_request("Invalid destination.")
    fds, total_components = [], 0
    try:
        with store.lock:
            store.bucket(bucket)
            for s in sources:
                if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                    raise bad_request("Each source object needs a name.")
                gen = int_param(s, "generation")
                pre = int_param(s.get("objectPreconditions") or {}, "ifGenerationMatch")
                rec, fd = store.open_data(bucket, s["name"], gen)
                fds.append((rec, fd))
                if pre is not None and pre != rec["generation"]:
                    raise HttpError(412, "At least one of the pre-conditions you specified "
                                    "did not hold.", "conditionNotMet")
                total_components += int(rec.get("componentCount") or 1)
        if total_components > 1024:
            raise bad_request("The number of components in the composed object (%d) exceeds "
                              "the maximum (1024)." % total_components)
        tfd, tmp = store.new_temp()
        try:
            crc, size = 0, 0
            buf = bytearray(BLOCK)
            mv = memoryview(buf)
            with os.fdopen(tfd, "wb", buffering=0) as out:
                for _, fd in fds:
                    while True:
                        n = os.readv(fd, [buf])
                        if n <= 0:
                            break
                        out.write(mv[:n])
                        crc = crc32c_update(mv[:n], crc)
                        size += n
            info = {"size": size, "crc": crc, "md5": None, "componentCount": total_components,
                    "contentType": dmeta.get("contentType") or "application/octet-stream",
                    "metadata": {}}
            tmprec = {"metadata": {}}
            _apply_fields(tmprec, {k: v for k, v in dmeta.items()
                                   if k in SETTABLE or k == "metadata"})
            info.update({k: v for k, v in tmprec.items() if k != "contentType"})
            rec = store.commit(bucket, dest, tmp, info,
                               check=lambda cur: check_preconditions(h.q, cur))
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    finally:
        for _, fd in fds:
            os.close(fd)
    return 200, object_resource(rec, bucket, h.base), {}
