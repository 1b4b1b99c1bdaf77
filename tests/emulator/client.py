"""Small urllib-based client for the GCS emulator, used by the tests.

EmulatorClient wraps the JSON API (buckets, objects, uploads, list with paging)
and the /_emu/ control API (stats, faults, config, keys, tokens).  Errors raise
GcsHttpError carrying .status, .body and the parsed .error JSON.
make_service_account_key() builds a service-account JSON key (fresh RSA 2048)
whose token_uri points at the emulator; make_jwt() signs a token-request JWT.
"""

import base64
import hashlib
import http.client as httpclient
import json
import struct
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote, urlencode, urlparse

import crc32c

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE_RW = "https://www.googleapis.com/auth/devstorage.read_write"


class GcsHttpError(Exception):
    def __init__(self, status, body, headers=None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        try:
            self.error = json.loads(body) if body else None
        except ValueError:
            self.error = None
        super().__init__("HTTP %d: %s" % (status, body[:300].decode("utf-8", "replace")
                                          if isinstance(body, bytes) else body))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect())


def http(method, url, body=None, headers=None, timeout=60):
    """(status, headers, body bytes) without raising on HTTP error statuses."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        data = e.read()
        return e.code, e.headers, data


def enc(name):
    return quote(name, safe="")


def crc32c_b64(data):
    """GCS's crc32c field: base64 of the big-endian CRC32C."""
    return base64.b64encode(struct.pack(">I", crc32c.crc32c(data))).decode()


def md5_b64(data):
    """GCS's md5Hash field: base64 of the MD5 digest."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class EmulatorClient:
    def __init__(self, base_url, bucket=None, token=None, timeout=60):
        self.base = base_url.rstrip("/")
        self.bucket = bucket
        self.token = token
        self.timeout = timeout

    # ------------------------------------------------------------ plumbing
    def connection(self, timeout=30):
        """A keep-alive http.client connection to the emulator."""
        u = urlparse(self.base)
        return httpclient.HTTPConnection(u.hostname, u.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, query=None, expect=(200,)):
        url = self.base + path
        if query:
            url += ("&" if "?" in url else "?") + urlencode(
                {k: v for k, v in query.items() if v is not None})
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)) or (body is None and method in ("POST", "PATCH")
                                              and "Content-Type" not in hdrs):
            body = json.dumps(body if body is not None else {}).encode()
            hdrs.setdefault("Content-Type", "application/json")
        status, rh, data = http(method, url, body, hdrs, self.timeout)
        if expect is not None and status not in expect:
            raise GcsHttpError(status, data, rh)
        return status, rh, data

    def _json(self, method, path, body=None, query=None, expect=(200,), headers=None):
        _, _, data = self.request(method, path, body, headers, query, expect)
        return json.loads(data) if data else None

    def _o(self, name):
        return "/storage/v1/b/%s/o/%s" % (enc(self.bucket), enc(name))

    # ------------------------------------------------------------ buckets
    def create_bucket(self, name=None):
        name = name or self.bucket
        return self._json("POST", "/storage/v1/b", {"name": name}, {"project": "emulator"})

    def get_bucket(self, name=None):
        return self._json("GET", "/storage/v1/b/%s" % enc(name or self.bucket))

    # ------------------------------------------------------------ objects
    def put(self, name, data, metadata=None, content_type="application/octet-stream",
            **query):
        """Upload data (media upload, or multipart when metadata is given)."""
        if isinstance(data, str):
            data = data.encode()
        q = dict(query)
        q["name"] = name
        path = "/upload/storage/v1/b/%s/o" % enc(self.bucket)
        if metadata is None:
            q["uploadType"] = "media"
            return self._json("POST", path, bytes(data), q,
                              headers={"Content-Type": content_type})
        q["uploadType"] = "multipart"
        boundary = "emu-" + uuid.uuid4().hex
        meta = dict(metadata)
        meta.setdefault("name", name)
        meta.setdefault("contentType", content_type)
        body = (("--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n%s\r\n"
                 "--%s\r\nContent-Type: %s\r\n\r\n") % (
            boundary, json.dumps(meta), boundary, content_type)).encode() \
            + bytes(data) + ("\r\n--%s--\r\n" % boundary).encode()
        return self._json("POST", path, body, q,
                          headers={"Content-Type": "multipart/related; boundary=" + boundary})

    def start_resumable(self, name, metadata=None, headers=None, **query):
        q = dict(query, uploadType="resumable", name=name)
        body = json.dumps(metadata).encode() if metadata is not None else b""
        hdrs = {"Content-Type": "application/json; charset=UTF-8"}
        hdrs.update(headers or {})
        _, rh, _ = self.request("POST", "/upload/storage/v1/b/%s/o" % enc(self.bucket),
                                body, hdrs, q)
        return rh["Location"]

    def put_chunk(self, session_url, data, first, total=None, headers=None):
        """Send one chunk; returns (status, headers, body)."""
        last = first + len(data) - 1
        hdrs = {"Content-Range": "bytes %d-%d/%s" % (first, last,
                                                     "*" if total is None else total)}
        if not data:
            hdrs["Content-Range"] = "bytes */%s" % ("*" if total is None else total)
        hdrs.update(headers or {})
        return http("PUT", session_url, bytes(data), hdrs, self.timeout)

    def upload_resumable(self, name, data, chunk_size=256 * 1024, metadata=None, **query):
        url = self.start_resumable(name, metadata, **query)
        off = 0
        while True:
            piece = data[off:off + chunk_size]
            final = off + len(piece) >= len(data)
            st, _, body = self.put_chunk(url, piece, off, len(data) if final else None)
            if final:
                if st != 200:
                    raise GcsHttpError(st, body)
                return json.loads(body)
            if st != 308:
                raise GcsHttpError(st, body)
            off += len(piece)

    def get(self, name, generation=None, range=None):
        hdrs = {"Range": range} if range else {}
        _, _, data = self.request("GET", self._o(name), headers=hdrs,
                                  query={"alt": "media", "generation": generation},
                                  expect=(200, 206))
        return data

    def stat(self, name, **query):
        return self._json("GET", self._o(name), query=query)

    def exists(self, name):
        st, _, _ = self.request("GET", self._o(name), expect=None)
        return st == 200

    def list(self, prefix=None, delimiter=None, max_results=None, **query):
        """All pages: (items, prefixes)."""
        items, prefixes, token = [], [], None
        while True:
            q = dict(query, prefix=prefix, delimiter=delimiter, maxResults=max_results,
                     pageToken=token)
            page = self._json("GET", "/storage/v1/b/%s/o" % enc(self.bucket), query=q)
            items += page.get("items", [])
            prefixes += page.get("prefixes", [])
            token = page.get("nextPageToken")
            if not token:
                return items, prefixes

    def delete(self, name, **query):
        self.request("DELETE", self._o(name), query=query, expect=(204,))

    def patch(self, name, body, **query):
        return self._json("PATCH", self._o(name), body, query)

    def compose(self, dest, sources, destination=None, **query):
        body = {"sourceObjects": [s if isinstance(s, dict) else {"name": s} for s in sources]}
        if destination is not None:
            body["destination"] = destination
        return self._json("POST", self._o(dest) + "/compose", body, query)

    def rewrite(self, src, dest, body=None, dest_bucket=None, **query):
        path = "%s/rewriteTo/b/%s/o/%s" % (self._o(src), enc(dest_bucket or self.bucket),
                                           enc(dest))
        raw = json.dumps(body).encode()
        return self._json("POST", path, raw, query, headers={"Content-Type": "application/json"})

    # ------------------------------------------------------------ control API
    def stats(self):
        return self._json("GET", "/_emu/stats")

    def reset_stats(self):
        return self._json("POST", "/_emu/stats/reset")

    def set_faults(self, faults, clear=True):
        """faults: a list of {"kind", "action", "count"?, "bucket"?, "object"?}."""
        if clear:
            self.clear_faults()
        if isinstance(faults, dict):
            faults = [faults]
        return self._json("POST", "/_emu/faults", faults)["faults"]

    def faults(self):
        return self._json("GET", "/_emu/faults")["faults"]

    def clear_faults(self):
        return self._json("DELETE", "/_emu/faults")

    def config(self, **kw):
        if kw:
            return self._json("POST", "/_emu/config", kw)
        return self._json("GET", "/_emu/config")

    def register_key(self, client_email, private_key_id, public_key_pem):
        return self._json("POST", "/_emu/keys", {"client_email": client_email,
                                                 "private_key_id": private_key_id,
                                                 "public_key_pem": public_key_pem})

    def register_service_account(self, sa):
        return self.register_key(sa["client_email"], sa["private_key_id"], public_key_pem(sa))

    def revoke_key(self, private_key_id, revoke_tokens=False):
        return self._json("DELETE", "/_emu/keys/%s" % enc(private_key_id),
                          query={"revoke_tokens": "true" if revoke_tokens else None})

    def register_refresh_token(self, client_id, client_secret, refresh_token):
        return self._json("POST", "/_emu/refresh_tokens", {
            "client_id": client_id, "client_secret": client_secret,
            "refresh_token": refresh_token})

    def clear_tokens(self):
        return self._json("DELETE", "/_emu/tokens")

    def token_request(self, form):
        """POST /token with a form; (status, parsed JSON)."""
        st, _, data = http("POST", self.base + "/token", urlencode(form).encode(),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        return st, json.loads(data)

    def fetch_token(self, sa, scope=SCOPE_RW):
        """Exchange a JWT signed with sa's key for an access token; sets self.token."""
        st, res = self.token_request({"grant_type": JWT_GRANT,
                                      "assertion": make_jwt(sa, self.base + "/token", scope)})
        if st != 200:
            raise GcsHttpError(st, json.dumps(res).encode())
        self.token = res["access_token"]
        return res


# ---------------------------------------------------------------- service accounts

def make_service_account_key(token_uri, email=None, project_id="emulator-project"):
    """A service-account JSON key dict with a fresh RSA 2048 key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    kid = uuid.uuid4().hex
    email = email or "sa-%s@%s.iam.gserviceaccount.com" % (kid[:8], project_id)
    return {"type": "service_account", "project_id": project_id, "private_key_id": kid,
            "private_key": pem, "client_email": email,
            "client_id": str(uuid.uuid4().int)[:21], "token_uri": token_uri,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth"}


def public_key_pem(sa):
    key = serialization.load_pem_private_key(sa["private_key"].encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_jwt(sa, aud, scope=SCOPE_RW, iat=None, exp=None, kid=True, extra=None,
             private_key=None):
    """An RS256 JWT token request signed with sa's key (or private_key PEM)."""
    iat = int(time.time()) if iat is None else int(iat)
    exp = iat + 3600 if exp is None else int(exp)
    header = {"alg": "RS256", "typ": "JWT"}
    if kid:
        header["kid"] = sa["private_key_id"]
    claims = {"iss": sa["client_email"], "aud": aud, "iat": iat, "exp": exp}
    if scope is not None:
        claims["scope"] = scope
    claims.update(extra or {})
    signing = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    key = serialization.load_pem_private_key((private_key or sa["private_key"]).encode(),
                                             password=None)
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + _b64url(sig)
