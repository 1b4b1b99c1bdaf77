"""Protocol tests of the local GCS emulator, talking HTTP directly (urllib /
http.client / curl), independent of the gcsmount C code: listing, uploads,
ranges, preconditions, compose/rewrite/patch, errors, tokens and auth, fault
injection, persistence across restarts, keep-alive and concurrency."""

import http.client as hc
import json
import os
import re
import subprocess
import threading
import time
from urllib.parse import urlencode

import pytest

from emulator.client import (JWT_GRANT, GcsHttpError, enc, http, make_jwt,
                             make_service_account_key, crc32c_b64 as b64crc, md5_b64 as b64md5)

Q = 256 * 1024


def assert_error(status, body, code, reason=None):
    assert status == code, body
    err = json.loads(body)["error"]
    assert err["code"] == code and isinstance(err["message"], str)
    assert err["errors"][0]["domain"] == "global"
    if reason:
        assert err["errors"][0]["reason"] == reason


def upload_url(c, **q):
    return "%s/upload/storage/v1/b/%s/o?%s" % (c.base, c.bucket, urlencode(q))


def obj_url(c, name, **q):
    return "%s/storage/v1/b/%s/o/%s%s" % (c.base, c.bucket, enc(name),
                                          "?" + urlencode(q) if q else "")


TREE = ["a.txt", "b/1", "b/2", "b/c/3", "b/c/4", "d/", "d/x", "e", "f/g/h"]


# ---------------------------------------------------------------- listing

def test_list_prefix_delimiter_offsets(bucket):
    for n in TREE:
        bucket.put(n, n.encode())
    names = lambda items: [i["name"] for i in items]            # noqa: E731
    items, prefixes = bucket.list(delimiter="/")
    assert names(items) == ["a.txt", "e"] and prefixes == ["b/", "d/", "f/"]
    items, prefixes = bucket.list(prefix="b/", delimiter="/")
    assert names(items) == ["b/1", "b/2"] and prefixes == ["b/c/"]
    items, prefixes = bucket.list(prefix="d/", delimiter="/")
    assert names(items) == ["d/", "d/x"] and prefixes == []
    items, _ = bucket.list(prefix="b/")
    assert names(items) == ["b/1", "b/2", "b/c/3", "b/c/4"]
    items, _ = bucket.list(startOffset="b/2", endOffset="e")
    assert names(items) == ["b/2", "b/c/3", "b/c/4", "d/", "d/x"]
    items, prefixes = bucket.list(delimiter="/", includeTrailingDelimiter="true")
    assert names(items) == ["a.txt", "d/", "e"] and prefixes == ["b/", "d/", "f/"]
    st, _, body = http("GET", "%s/storage/v1/b/%s/o?prefix=zzz" % (bucket.base, bucket.bucket))
    assert st == 200 and json.loads(body) == {"kind": "storage#objects"}


def test_fields_partial_response(bucket):
    """`fields` selects parts of an answer: a,b/c,d(e,f) and *; unknown names of the
    object and list resources are a 400 before anything is done."""
    for n in ("p/a", "p/b", "p/c/d"):
        bucket.put(n, b"xy", metadata={"metadata": {"k": "v"}})
    path = "/storage/v1/b/%s/o" % bucket.bucket
    page = bucket._json("GET", path, query={
        "prefix": "p/", "delimiter": "/", "maxResults": 1,
        "fields": "nextPageToken,prefixes,items(name,size,metadata)"})
    assert page["items"] == [{"name": "p/a", "size": "2", "metadata": {"k": "v"}}]
    assert set(page) == {"items", "nextPageToken"}
    page = bucket._json("GET", path, query={"prefix": "p/", "fields": "items/name"})
    assert page == {"items": [{"name": "p/a"}, {"name": "p/b"}, {"name": "p/c/d"}]}
    page = bucket._json("GET", path, query={"prefix": "p/c/", "fields": "kind,items(*)"})
    assert page["kind"] == "storage#objects" and page["items"][0]["bucket"] == bucket.bucket
    obj = bucket.stat("p/a", fields="name,metadata/k,generation")
    assert set(obj) == {"name", "metadata", "generation"} and obj["metadata"] == {"k": "v"}
    for bad in ("items(nosuch)", "nosuch", "items(name", "items()", "a,,b", ""):
        with pytest.raises(GcsHttpError) as e:
            bucket._json("GET", path, query={"prefix": "p/", "fields": bad})
        assert e.value.status == 400, bad
        assert json.loads(e.value.body)["error"]["errors"][0]["reason"] == "invalidParameter"
    # Refused before acting: an upload with a bad selection stores nothing.
    with pytest.raises(GcsHttpError):
        bucket.put("p/new", b"z", fields="nosuch(")
    assert not bucket.exists("p/new")


def test_list_paging_counts_prefixes(bucket):
    for n in TREE:
        bucket.put(n, b"x")
    pages, token = [], None
    while True:
        q = {"delimiter": "/", "maxResults": 2, "fields": "items(name),prefixes,nextPageToken"}
        if token:
            q["pageToken"] = token
        st, _, body = http("GET", "%s/storage/v1/b/%s/o?%s" % (bucket.base, bucket.bucket,
                                                                urlencode(q)))
        assert st == 200
        page = json.loads(body)
        pages.append(([i["name"] for i in page.get("items", [])], page.get("prefixes", [])))
        token = page.get("nextPageToken")
        if not token:
            break
    assert [len(i) + len(p) for i, p in pages] == [2, 2, 1]
    assert pages == [(["a.txt"], ["b/"]), (["e"], ["d/"]), ([], ["f/"])]
    items, _ = bucket.list(max_results=2)
    assert [i["name"] for i in items] == sorted(TREE)


def test_list_token_before_items(bucket):
    """A page is written in the order the reference gives the resource's fields
    (kind, nextPageToken, prefixes, items), with or without fields=."""
    for n in TREE:
        bucket.put(n, b"x")
    for fields in (None, "items(name),prefixes,nextPageToken"):
        q = {"delimiter": "/", "maxResults": 2}
        if fields:
            q["fields"] = fields
        st, _, body = http("GET", "%s/storage/v1/b/%s/o?%s" % (bucket.base, bucket.bucket,
                                                                urlencode(q)))
        assert st == 200
        keys = list(json.loads(body, object_pairs_hook=lambda kv: kv))
        top = [k for k, _ in keys]
        want = ["kind", "nextPageToken", "prefixes", "items"]
        assert top == [k for k in want if k in top] and "nextPageToken" in top, top


@pytest.mark.slow
def test_list_ten_thousand_objects(bucket):
    conn = bucket.connection()
    for i in range(10000):
        conn.request("POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=big/f%05d"
                     % (bucket.bucket, i), body=b"")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    t0 = time.monotonic()
    items, prefixes = bucket.list(prefix="big/", delimiter="/")
    assert len(items) == 10000 and prefixes == []
    assert [i["name"] for i in items] == ["big/f%05d" % i for i in range(10000)]
    _, prefixes = bucket.list(delimiter="/")
    assert prefixes == ["big/"]
    assert time.monotonic() - t0 < 10


# ---------------------------------------------------------------- uploads

def test_media_upload_resource_and_media_link(bucket):
    data = os.urandom(5000)
    r = bucket.put("dir/ü ñ+%#?.bin", data, content_type="application/x-test")
    assert r["kind"] == "storage#object" and r["name"] == "dir/ü ñ+%#?.bin"
    assert r["size"] == "5000" and r["metageneration"] == "1"
    assert r["generation"].isdigit() and isinstance(r["generation"], str)
    assert r["md5Hash"] == b64md5(data) and r["crc32c"] == b64crc(data)
    assert r["contentType"] == "application/x-test" and "metadata" not in r
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["timeCreated"])
    st, h, body = http("GET", r["mediaLink"])
    assert st == 200 and body == data and h["Content-Type"] == "application/x-test"
    assert h["x-goog-generation"] == r["generation"]
    st, _, body = http("GET", r["selfLink"])
    assert st == 200 and json.loads(body)["md5Hash"] == r["md5Hash"]


def test_multipart_upload_without_media_content_type(bucket):
    data = b"\r\n--not-the-boundary\r\n" + os.urandom(3000)
    meta = {"name": "mp/obj", "contentType": "text/x-special", "metadata": {"k": "v"},
            "crc32c": b64crc(data), "md5Hash": b64md5(data)}
    body = (b"--BOUND\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            + json.dumps(meta).encode() + b"\r\n--BOUND\r\n\r\n" + data + b"\r\n--BOUND--\r\n")
    st, _, resp = http("POST", upload_url(bucket, uploadType="multipart"), body,
                       {"Content-Type": 'multipart/related; boundary="BOUND"'})
    assert st == 200, resp
    r = json.loads(resp)
    assert r["name"] == "mp/obj" and r["metadata"] == {"k": "v"}
    assert r["contentType"] == "text/x-special" and bucket.get("mp/obj") == data
    meta["name"], meta["md5Hash"] = "mp/bad", b64md5(b"other")
    body = body.replace(b'"mp/obj"', b'"mp/bad"').replace(b64md5(data).encode(),
                                                          meta["md5Hash"].encode())
    st, _, resp = http("POST", upload_url(bucket, uploadType="multipart"), body,
                       {"Content-Type": "multipart/related; boundary=BOUND"})
    assert_error(st, resp, 400, "invalid")
    assert not bucket.exists("mp/bad")


def test_media_upload_x_goog_hash(bucket):
    data = os.urandom(10000)
    good = "crc32c=%s,md5=%s" % (b64crc(data), b64md5(data))
    st, _, _ = http("POST", upload_url(bucket, uploadType="media", name="h1"), data,
                    {"x-goog-hash": good})
    assert st == 200
    st, _, body = http("POST", upload_url(bucket, uploadType="media", name="h2"), data,
                       {"x-goog-hash": "crc32c=%s" % b64crc(b"nope")})
    assert_error(st, body, 400)
    assert not bucket.exists("h2")


def test_chunked_transfer_encoding_and_curl_expect_continue(bucket, tmp_path):
    conn = bucket.connection()
    conn.putrequest("POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=chunked"
                    % bucket.bucket)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    parts = [os.urandom(n) for n in (1, 70000, 3)]
    for p in parts:
        conn.send(b"%x\r\n%s\r\n" % (len(p), p))
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["size"] == str(sum(map(len, parts)))
    assert bucket.get("chunked") == b"".join(parts)
    f = tmp_path / "two-mb"
    f.write_bytes(os.urandom(2 << 20))
    out = subprocess.run(["curl", "-sS", "-X", "POST", "-T", str(f), "-H",
                          "Content-Type: application/octet-stream",
                          upload_url(bucket, uploadType="media", name="via-curl")],
                         capture_output=True, check=True, timeout=60).stdout
    assert json.loads(out)["md5Hash"] == b64md5(f.read_bytes())


def test_resumable_protocol(bucket):
    data = os.urandom(3 * Q + 1000)
    url = bucket.start_resumable("res/obj", {"metadata": {"m": "1"}, "contentType": "text/y"})
    assert "upload_id=" in url
    st, h, _ = http("PUT", url, b"", {"Content-Range": "bytes */*"})
    assert st == 308 and h.get("Range") is None
    st, h, _ = bucket.put_chunk(url, data[:Q], 0)
    assert st == 308 and h["Range"] == "bytes=0-%d" % (Q - 1)
    st, h, _ = http("PUT", url, b"", {"Content-Range": "bytes */*"})
    assert st == 308 and h["Range"] == "bytes=0-%d" % (Q - 1)
    st, _, body = bucket.put_chunk(url, data[Q:Q + 1000], Q)          # non-final < 256 KiB
    assert_error(st, body, 400)
    st, h, body = bucket.put_chunk(url, data[2 * Q:3 * Q], 2 * Q)     # gap after persisted:
    assert st == 503 and body.startswith(b"Invalid request.")         # GCS answers 503, text
    st, h, _ = bucket.put_chunk(url, data[0:2 * Q + 1000], 0)         # overlap + partial quantum
    assert st == 308 and h["Range"] == "bytes=0-%d" % (2 * Q - 1)     # whole quanta persist
    st, h, _ = bucket.put_chunk(url, data[2 * Q:3 * Q], 2 * Q,
                                headers={"X-GUploader-No-308": "yes"})
    assert st == 200 and h["X-HTTP-Status-Code-Override"] == "308"
    assert h["Range"] == "bytes=0-%d" % (3 * Q - 1)
    good = "crc32c=%s,md5=%s" % (b64crc(data), b64md5(data))
    st, _, body = bucket.put_chunk(url, data[3 * Q:], 3 * Q, len(data), {"x-goog-hash": good})
    assert st == 200, body
    r = json.loads(body)
    assert r["size"] == str(len(data)) and r["metadata"] == {"m": "1"}
    assert r["contentType"] == "text/y" and bucket.get("res/obj") == data
    st, _, body = http("PUT", url, b"", {"Content-Range": "bytes */%d" % len(data)})
    assert st == 200 and json.loads(body)["generation"] == r["generation"]


def test_resumable_bad_hash_cancel_and_single_request(bucket):
    data = os.urandom(Q + 5)
    url = bucket.start_resumable("bad")
    assert bucket.put_chunk(url, data[:Q], 0)[0] == 308
    st, _, body = bucket.put_chunk(url, data[Q:], Q, len(data),
                                   {"x-goog-hash": "md5=" + b64md5(b"x")})
    assert_error(st, body, 400)
    assert not bucket.exists("bad")
    assert http("PUT", url, b"", {"Content-Range": "bytes */*"})[0] in (404, 410)
    url = bucket.start_resumable("cancelled")
    st, _, _ = http("DELETE", url)
    assert st == 499
    assert_error(*http("PUT", url, b"", {"Content-Range": "bytes */*"})[::2], 404)
    url = bucket.start_resumable("single", headers={"X-Upload-Content-Type": "text/z"})
    st, _, body = http("PUT", url, data)
    assert st == 200 and json.loads(body)["contentType"] == "text/z"
    assert bucket.get("single") == data
    url = bucket.start_resumable("empty")
    st, _, body = http("PUT", url, b"", {"Content-Range": "bytes */0"})
    assert st == 200 and json.loads(body)["size"] == "0"


def test_resumable_precondition_checked_at_completion(bucket):
    url = bucket.start_resumable("pc", ifGenerationMatch="0")
    bucket.put("pc", b"someone else")
    st, _, body = bucket.put_chunk(url, b"mine", 0, 4)
    assert_error(st, body, 412, "conditionNotMet")
    assert bucket.get("pc") == b"someone else"


# ---------------------------------------------------------------- ranges

def test_ranged_reads(bucket):
    data = os.urandom(1000)
    r = bucket.put("r", data)
    for rng, want, cr in (("bytes=10-19", data[10:20], "bytes 10-19/1000"),
                          ("bytes=990-", data[990:], "bytes 990-999/1000"),
                          ("bytes=-5", data[-5:], "bytes 995-999/1000"),
                          ("bytes=0-5000", data, "bytes 0-999/1000")):
        st, h, body = http("GET", obj_url(bucket, "r", alt="media"), None, {"Range": rng})
        assert (st, body, h["Content-Range"]) == (206, want, cr)
        assert h["x-goog-hash"] == "crc32c=%s,md5=%s" % (r["crc32c"], r["md5Hash"])
        assert h["x-goog-stored-content-length"] == "1000"
    st, h, body = http("GET", obj_url(bucket, "r", alt="media"), None, {"Range": "bytes=1000-"})
    assert_error(st, body, 416, "requestedRangeNotSatisfiable")
    assert h["Content-Range"] == "bytes */1000"
    bucket.put("empty", b"")                      # GCS: 416 for bytes=0- on an empty object
    st, h, body = http("GET", obj_url(bucket, "empty", alt="media"), None,
                       {"Range": "bytes=0-"})
    assert_error(st, body, 416)
    assert h["Content-Range"] == "bytes */0"
    assert http("GET", obj_url(bucket, "empty", alt="media"), None,
                {"Range": "bytes=-5"})[::2] == (200, b"")
    st, _, body = http("GET", "%s/download/storage/v1/b/%s/o/r?alt=media"
                       % (bucket.base, bucket.bucket), None, {"Range": "bytes=1-2"})
    assert (st, body) == (206, data[1:3])


# ---------------------------------------------------------------- preconditions

def test_preconditions(bucket):
    r1 = bucket.put("p", b"one")
    st, _, body = http("POST", upload_url(bucket, uploadType="media", name="p",
                                          ifGenerationMatch=0), b"two")
    assert_error(st, body, 412, "conditionNotMet")
    assert bucket.get("p") == b"one"
    r2 = bucket.put("p", b"two", ifGenerationMatch=r1["generation"])
    assert int(r2["generation"]) > int(r1["generation"])
    assert_error(*http("GET", obj_url(bucket, "p", generation=r1["generation"]))[::2], 404)
    st, _, _ = http("GET", obj_url(bucket, "p", ifGenerationNotMatch=r2["generation"]))
    assert st == 304
    st, _, _ = http("GET", obj_url(bucket, "p", alt="media",
                                   ifGenerationNotMatch=r2["generation"]))
    assert st == 304
    assert_error(*http("PATCH", obj_url(bucket, "p", ifMetagenerationMatch=5), b"{}",
                       {"Content-Type": "application/json"})[::2], 412)
    assert_error(*http("DELETE", obj_url(bucket, "p", generation=r1["generation"]))[::2], 404)
    assert_error(*http("DELETE", obj_url(bucket, "p", ifGenerationMatch=r1["generation"]))
                 [::2], 412)
    assert http("DELETE", obj_url(bucket, "p", ifGenerationMatch=r2["generation"]))[0] == 204
    assert_error(*http("DELETE", obj_url(bucket, "p"))[::2], 404, "notFound")


# ---------------------------------------------------------------- compose / rewrite / patch

def test_compose(bucket):
    parts = [os.urandom(1000 + i) for i in range(3)]
    for i, p in enumerate(parts):
        bucket.put("part%d" % i, p)
    r = bucket.compose("whole", ["part0", "part1", "part2"],
                       {"contentType": "text/c", "metadata": {"c": "1"}})
    whole = b"".join(parts)
    assert r["componentCount"] == 3 and r["size"] == str(len(whole))
    assert r["crc32c"] == b64crc(whole) and "md5Hash" not in r
    assert r["contentType"] == "text/c" and r["metadata"] == {"c": "1"}
    assert bucket.get("whole") == whole
    r2 = bucket.compose("whole2", ["whole", "part0"])
    assert r2["componentCount"] == 4 and bucket.get("whole2") == whole + parts[0]
    for sources, status in ((["part0"] * 33, 400), (["missing"], 404),
                            ([{"name": "part0", "objectPreconditions": {"ifGenerationMatch": 1}}],
                             412)):
        with pytest.raises(GcsHttpError) as e:
            bucket.compose("x", sources)
        assert e.value.status == status


def test_rewrite_copy_and_patch(bucket, emulator):
    data = os.urandom((3 << 20) + 123)
    bucket.put("src", data, metadata={"metadata": {"a": "1", "b": "2"}}, content_type="text/s")
    path = "/storage/v1/b/%s/o/src/rewriteTo/b/%s/o/%s" % (bucket.bucket, bucket.bucket,
                                                           enc("dst/1"))
    st, _, body = http("POST", bucket.base + path, b"null", {"Content-Type": "application/json"})
    assert st == 200, body
    rw = json.loads(body)
    assert rw["kind"] == "storage#rewriteResponse" and rw["done"] is True
    assert rw["totalBytesRewritten"] == rw["objectSize"] == str(len(data))
    assert rw["resource"]["metadata"] == {"a": "1", "b": "2"}
    assert rw["resource"]["contentType"] == "text/s" and bucket.get("dst/1") == data
    rounds, token = 0, None
    while True:
        q = {"maxBytesRewrittenPerCall": 1 << 20}
        if token:
            q["rewriteToken"] = token
        rw = bucket.rewrite("src", "dst/2", {"metadata": {"z": "9"}}, **q)
        rounds += 1
        if rw["done"]:
            break
        token = rw["rewriteToken"]
    assert rounds == 4 and rw["resource"]["metadata"] == {"z": "9"}
    other = emulator.new_bucket()
    st, _, body = http("POST", bucket.base + "/storage/v1/b/%s/o/src/copyTo/b/%s/o/c"
                       % (bucket.bucket, other.bucket), b"", {})
    assert st == 200 and json.loads(body)["bucket"] == other.bucket
    assert other.get("c") == data
    p = bucket.patch("src", {"metadata": {"a": None, "c": "3"}, "contentType": "text/p"})
    assert p["metadata"] == {"b": "2", "c": "3"} and p["contentType"] == "text/p"
    assert p["metageneration"] == "2"
    assert p["generation"] == bucket.stat("src")["generation"]
    with pytest.raises(GcsHttpError) as e:
        bucket.patch("src", {"metadata": {"x": "1"}}, ifMetagenerationMatch=1)
    assert e.value.status == 412


# ---------------------------------------------------------------- errors, names, buckets

def test_error_shapes_names_and_buckets(bucket, emulator):
    assert_error(*http("GET", emulator.url + "/nowhere")[::2], 404)
    assert_error(*http("GET", emulator.url + "/storage/v1/b/no-such-bucket-x")[::2], 404)
    st, _, body = http("POST", emulator.url + "/storage/v1/b?project=p",
                       json.dumps({"name": bucket.bucket}).encode(),
                       {"Content-Type": "application/json"})
    assert_error(st, body, 409, "conflict")
    assert_error(*http("POST", upload_url(bucket, uploadType="media", name="x" * 1025),
                       b"")[::2], 400)
    assert_error(*http("POST", upload_url(bucket, uploadType="media", name="a\nb"),
                       b"")[::2], 400)
    assert_error(*http("POST", upload_url(bucket, name="n"), b"")[::2], 400)
    assert_error(*http("POST", bucket.base + "/storage/v1/b/%s/o/x/compose" % bucket.bucket,
                       b"{not json", {"Content-Type": "application/json"})[::2], 400)
    name = "日本/ß ü+é%2F?#&=.txt"
    bucket.put(name, b"utf8")
    assert bucket.get(name) == b"utf8" and bucket.stat(name)["name"] == name
    items, _ = bucket.list(prefix="日本/")
    assert [i["name"] for i in items] == [name]
    buckets = emulator.client()._json("GET", "/storage/v1/b", query={"project": "p"})
    assert bucket.bucket in [b["name"] for b in buckets["items"]]


# ---------------------------------------------------------------- tokens and auth

def _token(c, assertion):
    return c.token_request({"grant_type": JWT_GRANT, "assertion": assertion})


def test_token_endpoint_and_require_auth(emulator_factory):
    emu = emulator_factory("--require-auth", "--bucket", "authb")
    c = emu.client("authb")
    st, _, body = c.request("GET", "/storage/v1/b/authb", expect=None)
    assert_error(st, body, 401, "required")
    sa = make_service_account_key(emu.token_url)
    c.register_service_account(sa)
    res = c.fetch_token(sa)
    assert res["token_type"] == "Bearer" and res["expires_in"] == 3600
    assert c.get_bucket()["name"] == "authb"
    now = int(time.time())
    other = make_service_account_key(emu.token_url)
    for jwt, err in ((make_jwt(sa, emu.token_url, private_key=other["private_key"]),
                      "invalid_grant"),
                     (make_jwt(sa, "https://oauth2.googleapis.com/token"), "invalid_grant"),
                     (make_jwt(sa, emu.token_url, iat=now - 7200, exp=now - 3600),
                      "invalid_grant"),
                     (make_jwt(sa, emu.token_url, iat=now, exp=now + 7200), "invalid_grant"),
                     (make_jwt(sa, emu.token_url, scope=None), "invalid_scope"),
                     (make_jwt(other, emu.token_url), "invalid_grant"),
                     ("not.a-jwt", "invalid_grant")):
        st, body = _token(c, jwt)
        assert st == 400 and body["error"] == err, body
    assert c.token_request({"grant_type": "password"})[1]["error"] == "unsupported_grant_type"
    st, _, body = c.request("GET", "/storage/v1/b/authb",
                            headers={"Authorization": "Bearer wrong"}, expect=None)
    assert_error(st, body, 401, "authError")
    old = c.token
    c.revoke_key(sa["private_key_id"])
    assert _token(c, make_jwt(sa, emu.token_url))[0] == 400
    assert c.get_bucket()["name"] == "authb"                   # issued tokens stay valid
    sa2 = make_service_account_key(emu.token_url)
    c.register_service_account(sa2)
    c.fetch_token(sa2)
    c.revoke_key(sa2["private_key_id"], revoke_tokens=True)
    assert c.request("GET", "/storage/v1/b/authb", expect=None)[0] == 401
    c.token = old
    c.config(require_auth=False)
    c.token = None
    assert c.get_bucket()["name"] == "authb"


def test_key_file_token_lifetime_and_refresh_grant(emulator_factory, tmp_path):
    sa = make_service_account_key("http://127.0.0.1:1/token")
    (tmp_path / "sa.json").write_text(json.dumps(sa))
    emu = emulator_factory("--require-auth", "--token-lifetime", "1", "--key-file",
                           str(tmp_path / "sa.json"), "--bucket", "kfb")
    c = emu.client("kfb")
    assert c.fetch_token(sa)["expires_in"] == 1
    assert c.get_bucket()["name"] == "kfb"
    time.sleep(1.3)
    assert c.request("GET", "/storage/v1/b/kfb", expect=None)[0] == 401
    c.config(token_lifetime=100)
    c.register_refresh_token("cid", "secret", "rt-1")
    st, res = c.token_request({"grant_type": "refresh_token", "client_id": "cid",
                               "client_secret": "secret", "refresh_token": "rt-1"})
    assert st == 200 and res["expires_in"] == 100
    c.token = res["access_token"]
    assert c.get_bucket()["name"] == "kfb"
    st, res = c.token_request({"grant_type": "refresh_token", "client_id": "cid",
                               "client_secret": "bad", "refresh_token": "rt-1"})
    assert st == 401 and res["error"] == "invalid_client"
    st, res = c.token_request({"grant_type": "refresh_token", "client_id": "cid",
                               "client_secret": "secret", "refresh_token": "nope"})
    assert st == 400 and res["error"] == "invalid_grant"
    c.clear_tokens()
    assert c.request("GET", "/storage/v1/b/kfb", expect=None)[0] == 401



def test_token_clock_switches(emulator_factory):
    emu = emulator_factory("--require-auth", "--bucket", "clk")
    c = emu.client("clk")
    sa = make_service_account_key(emu.token_url)
    c.register_service_account(sa)
    # A token server whose clock runs ahead answers a short or negative
    # expires_in; the token itself still lives token_lifetime seconds.
    c.config(expires_in_skew=3700)
    assert c.fetch_token(sa)["expires_in"] == -100
    assert c.get_bucket()["name"] == "clk"
    # A client whose clock is an hour behind signs a JWT that has expired.
    c.config(expires_in_skew=0, jwt_clock_offset=3600)
    st, body = _token(c, make_jwt(sa, emu.token_url))
    assert st == 400 and body["error"] == "invalid_grant" and "iat" in body["error_description"]
    assert c.config(jwt_clock_offset=0)["jwt_clock_offset"] == 0
    assert _token(c, make_jwt(sa, emu.token_url))[0] == 200
    st, _, body = c.request("POST", "/_emu/config", json.dumps({"expires_in_skew": "x"}).encode(),
                            expect=None)
    assert_error(st, body, 400)


# ---------------------------------------------------------------- fault injection

def test_fault_status_count_and_met(bucket):
    bucket.put("f", b"data")
    bucket.set_faults([{"kind": "object.get", "action": "return-503", "count": 2},
                       {"kind": "object.media", "action": "return-429", "count": 1}])
    sts = [http("GET", obj_url(bucket, "f"))[0] for _ in range(3)]
    assert sts == [503, 503, 200]
    st, _, body = http("GET", obj_url(bucket, "f", alt="media"))
    assert_error(st, body, 429)
    assert bucket.get("f") == b"data"
    assert [(f["met"], f["remaining"]) for f in bucket.faults()] == [(2, 0), (1, 0)]


def test_fault_reset_and_broken_stream(bucket):
    data = os.urandom(1 << 20)
    bucket.put("big", data)
    bucket.set_faults([{"kind": "object.media", "action": "reset-connection"}])
    conn = bucket.connection()
    conn.request("GET", "/storage/v1/b/%s/o/big?alt=media" % bucket.bucket)
    with pytest.raises((ConnectionError, hc.HTTPException)):
        conn.getresponse().read()
    bucket.set_faults([{"kind": "object.media", "action": "broken-stream-after-256K"}])
    conn = bucket.connection()
    conn.request("GET", "/storage/v1/b/%s/o/big?alt=media" % bucket.bucket)
    r = conn.getresponse()
    assert r.status == 200
    with pytest.raises(hc.IncompleteRead) as e:
        r.read()
    assert len(e.value.partial) == Q and e.value.partial == data[:Q]
    assert bucket.get("big") == data
    assert bucket.faults()[0]["met"] == 1



def test_fault_close_and_200_answers(emulator):
    c = emulator.client()
    form = urlencode({"grant_type": "password"}).encode()
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    c.set_faults([{"kind": "token", "action": "close-connection"},
                  {"kind": "token", "action": "return-200-garbage"},
                  {"kind": "token", "action": "return-200-empty-json"}])
    try:
        conn = c.connection()
        conn.request("POST", "/token", form, hdrs)
        with pytest.raises(hc.RemoteDisconnected):      # a clean close, no status line
            conn.getresponse()
        st, h, body = http("POST", c.base + "/token", form, hdrs)
        assert st == 200 and h["Content-Type"].startswith("text/html")
        assert body.startswith(b"<html>")
        st, h, body = http("POST", c.base + "/token", form, hdrs)
        assert st == 200 and json.loads(body) == {}
        assert [f["met"] for f in c.faults()] == [1, 1, 1]
        assert http("POST", c.base + "/token", form, hdrs)[0] == 400   # faults used up
    finally:
        c.clear_faults()

def test_fault_partial_json_and_stall_after(bucket):
    data = os.urandom(600 * 1024)
    bucket.put("s", data)
    bucket.set_faults([{"kind": "object.get", "action": "broken-stream-after-1K"},
                       {"kind": "object.media", "action": "stall-1s-after-256K"},
                       {"kind": "object.get", "action": "return-503-after-1K"}])
    conn = bucket.connection()
    conn.request("GET", "/storage/v1/b/%s/o/s" % bucket.bucket)
    r = conn.getresponse()
    assert r.status == 200
    with pytest.raises(hc.IncompleteRead):
        r.read()
    t0 = time.monotonic()
    assert bucket.get("s") == data and time.monotonic() - t0 >= 1.0
    assert http("GET", obj_url(bucket, "s"))[0] == 503
    assert [f["met"] for f in bucket.faults()] == [1, 1, 1]


def test_fault_503_after_bytes_on_resumable_chunk(bucket):
    data = os.urandom(4 * Q + 17)
    url = bucket.start_resumable("cut")
    bucket.set_faults([{"kind": "upload.chunk", "action": "return-503-after-600K"}])
    try:
        st = bucket.put_chunk(url, data[:4 * Q], 0)[0]
    except (ConnectionError, OSError):
        st = None
    assert st in (503, None)
    st, h, _ = http("PUT", url, b"", {"Content-Range": "bytes */*"})
    assert st == 308 and h["Range"] == "bytes=0-%d" % (2 * Q - 1)
    st, _, body = bucket.put_chunk(url, data[2 * Q:], 2 * Q, len(data))
    assert st == 200 and json.loads(body)["md5Hash"] == b64md5(data)
    assert bucket.get("cut") == data and bucket.faults()[0]["met"] == 1


def test_fault_corrupt_upload_stall_and_filters(bucket):
    data = os.urandom(5000)
    bucket.set_faults([{"kind": "object.insert.media", "action": "corrupt-upload", "count": 2}])
    st, _, body = http("POST", upload_url(bucket, uploadType="media", name="c1"), data,
                       {"x-goog-hash": "md5=" + b64md5(data)})
    assert_error(st, body, 400)
    assert not bucket.exists("c1")
    r = bucket.put("c2", data)
    stored = bucket.get("c2")
    assert stored != data and len(stored) == len(data) and r["md5Hash"] == b64md5(stored)
    bucket.set_faults([{"kind": "*", "action": "stall-1s", "object": "slow"},
                       {"kind": "*", "action": "return-500", "bucket": "other-bucket"}])
    bucket.put("fast", b"1")
    t0 = time.monotonic()
    bucket.put("slow", b"2")
    assert time.monotonic() - t0 >= 1.0
    assert [f["met"] for f in bucket.faults()] == [1, 0]
    st, _, body = http("POST", bucket.base + "/_emu/faults",
                       json.dumps([{"kind": "*", "action": "explode"}]).encode())
    assert_error(st, body, 400)


def test_fault_throttle_slows_request_bodies(bucket):
    # 384 KiB at 256 KiB/s: at least a second, whatever the kind of upload.
    data = os.urandom(384 * 1024)
    bucket.set_faults([{"kind": "*", "action": "throttle-256K", "count": -1,
                        "bucket": bucket.bucket}])
    t0 = time.monotonic()
    bucket.put("slow-media", data)
    assert time.monotonic() - t0 >= 1.0
    url = bucket.start_resumable("slow-chunks")
    t0 = time.monotonic()
    st, _, _ = bucket.put_chunk(url, data, 0, len(data))
    assert st == 200 and time.monotonic() - t0 >= 1.0
    assert bucket.get("slow-media") == data and bucket.get("slow-chunks") == data
    assert bucket.faults()[0]["met"] >= 3
    st, _, body = http("POST", bucket.base + "/_emu/faults",
                       json.dumps([{"kind": "*", "action": "throttle-0K"}]).encode())
    assert_error(st, body, 400)


def test_stats(bucket):
    bucket.reset_stats()
    bucket.put("s", b"12345")
    bucket.get("s")
    bucket.stat("s")
    bucket.list()
    bucket.delete("s")
    http("GET", obj_url(bucket, "s"))
    s = bucket.stats()
    assert s["requests"] == {"object.insert.media": 1, "object.media": 1, "object.get": 2,
                             "object.list": 1, "object.delete": 1}
    assert s["by_kind"]["object.get"] == {"200": 1, "404": 1}
    assert s["status"]["204"] == 1 and s["bytes_in"] == 5 and s["bytes_out"] > 5


# ---------------------------------------------------------------- persistence, concurrency

def test_persistence_across_restart(emulator_factory):
    emu = emulator_factory("--bucket", "pbk")
    c = emu.client("pbk")
    r = c.put("keep/a", b"A" * 1000, metadata={"metadata": {"x": "y"}})
    data = os.urandom(Q + 99)
    url = c.start_resumable("sess.bin")
    assert c.put_chunk(url, data[:Q], 0)[0] == 308
    emu.restart()
    c = emu.client("pbk")
    s = c.stat("keep/a")
    assert (s["generation"], s["metadata"]) == (r["generation"], {"x": "y"})
    assert c.get("keep/a") == b"A" * 1000
    st, h, _ = http("PUT", url, b"", {"Content-Range": "bytes */*"})
    assert st == 308 and h["Range"] == "bytes=0-%d" % (Q - 1)
    st, _, body = c.put_chunk(url, data[Q:], Q, len(data))
    assert st == 200 and json.loads(body)["md5Hash"] == b64md5(data)
    assert int(json.loads(body)["generation"]) > int(r["generation"])
    assert [i["name"] for i in c.list()[0]] == ["keep/a", "sess.bin"]


def test_keepalive_and_concurrent_writers(bucket):
    conn = bucket.connection()
    bucket.put("ka", b"keep")
    for _ in range(200):
        conn.request("GET", "/storage/v1/b/%s/o/ka?alt=media" % bucket.bucket)
        r = conn.getresponse()
        assert r.read() == b"keep" and not r.will_close
    payloads = [os.urandom(50000 + i) for i in range(8)]
    errors = []

    def writer(p):
        try:
            for _ in range(5):
                bucket.put("contended", p)
                assert bucket.get("contended") in payloads
        except Exception as e:                                   # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = bucket.get("contended")
    assert final in payloads and bucket.stat("contended")["md5Hash"] == b64md5(final)
    assert [i["name"] for i in bucket.list()[0]] == ["contended", "ka"]
