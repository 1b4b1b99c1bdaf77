"""OAuth2 token endpoint and bearer-token checks of the GCS emulator.

- Service-account keys (client_email, private_key_id, public key PEM) are
  registered through the control API or --key-file and persisted in
  <root>/keys.json.  Revoking a key makes later JWT exchanges fail; optionally
  the access tokens it already obtained are invalidated too.
- POST /token with grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
  verifies the RS256 JWT (kid or iss lookup, aud == token URL, iat/exp window,
  scope present) like Google's endpoint, and with grant_type=refresh_token
  checks registered (client_id, client_secret, refresh_token) triples.
- check_bearer() enforces require_auth on storage requests (401 JSON errors).
- Clock switches for tests: expires_in_skew is subtracted from the expires_in
  of every answer (a token server whose clock runs that far ahead reports a
  shorter, even negative, lifetime; the tokens stay valid token_lifetime
  seconds); jwt_clock_offset is added to the clock the iat/exp window of a JWT
  is checked against (the client's clock that far behind).
"""

import base64
import json
import os
import secrets
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from common import HttpError, OAuthError
from storage import write_json_atomic

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_LIFETIME = 3600
CLOCK_SKEW = 300


def b64url_decode(s):
    s = s.strip()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def public_pem_from_private(private_pem):
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class Auth:
    def __init__(self, root, token_lifetime=3600, require_auth=False):
        self.path = os.path.join(root, "keys.json")
        self.lock = threading.Lock()
        self.token_lifetime = int(token_lifetime)
        self.require_auth = bool(require_auth)
        self.expires_in_skew = 0
        self.jwt_clock_offset = 0
        self.keys = {}           # private_key_id -> {"client_email", "public_key_pem", "revoked"}
        self.refresh = {}        # refresh_token -> {"client_id", "client_secret"}
        self.tokens = {}         # access token -> (expiry epoch seconds, key id or client id)
        self._pub = {}
        self.issued = 0
        self._load()

    # ------------------------------------------------------------ keys
    def _load(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return
        self.keys = data.get("keys", {})
        self.refresh = data.get("refresh_tokens", {})

    def _save(self):
        write_json_atomic(self.path, {"keys": self.keys, "refresh_tokens": self.refresh})

    def register_key(self, client_email, private_key_id, public_key_pem):
        if not (isinstance(client_email, str) and client_email and
                isinstance(private_key_id, str) and private_key_id and
                isinstance(public_key_pem, str)):
            raise HttpError(400, "client_email, private_key_id and public_key_pem are required")
        try:
            pub = serialization.load_pem_public_key(public_key_pem.encode())
        except ValueError as e:
            raise HttpError(400, "public_key_pem is not a PEM public key: %s" % e)
        if not isinstance(pub, rsa.RSAPublicKey):
            raise HttpError(400, "public_key_pem must be an RSA key")
        with self.lock:
            self.keys[private_key_id] = {"client_email": client_email,
                                         "public_key_pem": public_key_pem, "revoked": False}
            self._pub[private_key_id] = pub
            self._save()

    def register_key_file(self, path):
        with open(path) as f:
            sa = json.load(f)
        self.register_key(sa["client_email"], sa["private_key_id"],
                          public_pem_from_private(sa["private_key"]))

    def revoke_key(self, private_key_id, revoke_tokens=False):
        with self.lock:
            k = self.keys.get(private_key_id)
            if k is None:
                raise HttpError(404, "No such key: %s" % private_key_id)
            k["revoked"] = True
            self._save()
            if revoke_tokens:
                for t in [t for t, v in self.tokens.items() if v[1] == private_key_id]:
                    del self.tokens[t]

    def list_keys(self):
        with self.lock:
            return [{"private_key_id": kid, "client_email": v["client_email"],
                     "revoked": v["revoked"]} for kid, v in sorted(self.keys.items())]

    def register_refresh_token(self, client_id, client_secret, refresh_token):
        if not all(isinstance(x, str) and x for x in (client_id, client_secret, refresh_token)):
            raise HttpError(400, "client_id, client_secret and refresh_token are required")
        with self.lock:
            self.refresh[refresh_token] = {"client_id": client_id,
                                           "client_secret": client_secret}
            self._save()

    def clear_tokens(self):
        with self.lock:
            n = len(self.tokens)
            self.tokens.clear()
            return n

    def _pubkey(self, kid):
        pub = self._pub.get(kid)
        if pub is None:
            pub = serialization.load_pem_public_key(self.keys[kid]["public_key_pem"].encode())
            self._pub[kid] = pub
        return pub

    # ------------------------------------------------------------ token endpoint
    def _issue(self, owner):
        tok = "ya29.emu-" + secrets.token_urlsafe(32)
        with self.lock:
            now = time.time()
            for t in [t for t, v in self.tokens.items() if v[0] < now - 3600]:
                del self.tokens[t]
            self.tokens[tok] = (now + self.token_lifetime, owner)
            self.issued += 1
        return {"access_token": tok, "expires_in": self.token_lifetime - self.expires_in_skew,
                "token_type": "Bearer"}

    def exchange(self, form, token_urls):
        """Handle a token request; form is a dict of the urlencoded body."""
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            return self._jwt_grant(form.get("assertion"), token_urls)
        if grant == "refresh_token":
            return self._refresh_grant(form)
        if not grant:
            raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type")
        raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: %s" % grant)

    def _jwt_grant(self, assertion, token_urls):
        if not assertion:
            raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: malformed assertion.")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, TypeError):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: cannot decode assertion.")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: not JSON objects.")
        if header.get("alg") != "RS256":
            raise OAuthError(400, "invalid_grant", "Invalid JWT: alg must be RS256.")
        iss = claims.get("iss")
        with self.lock:
            kid = header.get("kid")
            if kid not in self.keys:
                kid = next((k for k, v in self.keys.items()
                            if v["client_email"] == iss and not v["revoked"]), None)
            key = self.keys.get(kid) if kid else None
            if key is None:
                raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
            if key["revoked"]:
                raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
            pub = self._pubkey(kid)
        try:
            pub.verify(sig, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except InvalidSignature:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        if iss != key["client_email"]:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: iss does not match the key.")
        if claims.get("aud") not in token_urls:
            raise OAuthError(400, "invalid_grant",
                             "Invalid JWT: Failed audience check. The expected value was %s"
                             % token_urls[0])
        iat, exp = claims.get("iat"), claims.get("exp")
        now = time.time() + self.jwt_clock_offset
        if (not isinstance(iat, (int, float)) or not isinstance(exp, (int, float))
                or exp <= iat or exp - iat > MAX_LIFETIME or exp <= now
                or iat > now + CLOCK_SKEW):
            raise OAuthError(400, "invalid_grant",
                             "Invalid JWT: Token must be a short-lived token (60 minutes) and "
                             "in a reasonable timeframe. Check your iat and exp values in the "
                             "JWT claim.")
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope.strip():
            raise OAuthError(400, "invalid_scope",
                             "Invalid OAuth scope or ID token audience provided.")
        return self._issue(kid)

    def _refresh_grant(self, form):
        rt = form.get("refresh_token")
        if not rt:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        with self.lock:
            ent = self.refresh.get(rt)
        if ent is None:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        if (form.get("client_id") != ent["client_id"]
                or form.get("client_secret") != ent["client_secret"]):
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        return self._issue(ent["client_id"])

    # ------------------------------------------------------------ request checks
    def check_bearer(self, authorization):
        """Raise 401 unless require_auth is off or the bearer token is valid."""
        if not self.require_auth:
            return
        if not authorization:
            raise HttpError(401, "Anonymous caller does not have storage access. "
                            "Login Required.", "required",
                            headers={"WWW-Authenticate": 'Bearer realm="emulator"'})
        scheme, _, tok = authorization.partition(" ")
        with self.lock:
            ent = self.tokens.get(tok.strip()) if scheme.lower() == "bearer" else None
        if ent is None or ent[0] <= time.time():
            raise HttpError(401, "Invalid Credentials", "authError",
                            headers={"WWW-Authenticate": 'Bearer realm="emulator", '
                                                         'error="invalid_token"'})
