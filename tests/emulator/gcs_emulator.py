#!/usr/bin/python3
"""Local Google Cloud Storage JSON-API emulator for tests and benchmarks.

Run:  python3 gcs_emulator.py --port 0 --root DIR [--bucket NAME ...]
      [--require-auth] [--token-lifetime S] [--key-file SA.json ...]
      [--no-md5] [--fsync] [--verbose] [--tls-cert CERT.pem --tls-key KEY.pem]
Prints "READY http://127.0.0.1:PORT" (https with --tls-cert) on stdout once listening.  Clients built
on Google's API libraries take http://127.0.0.1:PORT/storage/v1/ as endpoint.

Served: /storage/v1/b[/{b}] (buckets list/insert/get/delete), /storage/v1/b/{b}/o
(list, get, patch, delete, rewriteTo, copyTo, compose), /download/storage/v1/...
(media), /upload/storage/v1/b/{b}/o (media, multipart, resumable + sessions),
POST /token (JWT bearer and refresh-token grants), /_emu/ (control, control.py).
Every JSON answer honours the `fields` partial-response parameter (fields.py).
Request kinds counted in /_emu/stats and matched by faults: bucket.list,
bucket.insert, bucket.get, bucket.delete, object.list, object.get, object.media,
object.patch, object.delete, object.rewrite, object.copy, object.compose,
object.insert.media, object.insert.multipart, object.insert.resumable_start,
object.insert.metadata, upload.chunk, upload.status, upload.cancel, token, unknown.

This file holds the HTTP server (ThreadingHTTPServer, HTTP/1.1 keep-alive),
request routing, per-request fault injection and auth checks, response
helpers (JSON, sendfile media) and the command line.  See storage.py (object
store), uploads.py (insert/resumable), handlers_objects.py (other object and
bucket calls), auth_tokens.py (/token, bearer checks), control.py (/_emu/).
"""

import argparse
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import control                                               # noqa: E402
import fields                                                # noqa: E402
import handlers_objects as ho                                # noqa: E402
import uploads                                               # noqa: E402
from auth_tokens import Auth                                 # noqa: E402
from common import (BodyReader, ClientGone, FaultCut, HttpError, OAuthError,  # noqa: E402
                    bad_request)
from storage import Store                                    # noqa: E402


# Kinds whose request body is streamed (after-NK faults cut the upload) and the
# media download (after-NK faults cut the response body).
UPLOAD_KINDS = ("object.insert.media", "object.insert.multipart", "upload.chunk")
DOWNLOAD_KINDS = ("object.media",)


class App:
    """Everything the handlers share."""

    def __init__(self, root, require_auth=False, token_lifetime=3600, verbose=False,
                 fsync=False, md5=True):
        self.md5 = md5
        self.store = Store(root, fsync=fsync)
        self.sessions = uploads.Sessions(self.store.root, md5)
        self.auth = Auth(self.store.root, token_lifetime, require_auth)
        self.stats = control.Stats()
        self.faults = control.Faults()
        self.verbose = verbose


def _seg(s):
    try:
        return unquote(s, errors="strict")
    except UnicodeDecodeError:
        raise bad_request("Path segment is not valid percent-encoded UTF-8.")


def route(method, segs, q, headers):
    """(kind, function, args, bucket, object) for a request."""
    if segs[:2] == ["storage", "v1"] and len(segs) >= 3 and segs[2] == "b":
        s = segs[3:]
        if s in ([], [""]):
            if method == "GET":
                return "bucket.list", ho.bucket_list, (), None, None
            if method == "POST":
                return "bucket.insert", ho.bucket_insert, (), None, None
            return "unknown", None, (), None, None
        b = _seg(s[0])
        if len(s) == 1 or (len(s) == 2 and s[1] == ""):
            if method == "GET":
                return "bucket.get", ho.bucket_get, (b,), b, None
            if method == "DELETE":
                return "bucket.delete", ho.bucket_delete, (b,), b, None
            return "unknown", None, (), b, None
        if s[1] != "o":
            return "unknown", None, (), b, None
        rest = s[2:]
        if rest in ([], [""]):
            if method == "GET":
                return "object.list", ho.object_list, (b,), b, None
            if method == "POST":
                ut = q.get("uploadType")
                kind = "object.insert." + (ut or "metadata")
                if ut == "resumable":
                    kind = "object.insert.resumable_start"
                return kind, uploads.insert, (b, ut), b, q.get("name")
            return "unknown", None, (), b, None
        for i in range(1, len(rest)):
            if (rest[i] in ("rewriteTo", "copyTo") and len(rest) >= i + 4
                    and rest[i + 1] == "b" and rest[i + 3] == "o" and method == "POST"):
                so = _seg("/".join(rest[:i]))
                db, do = _seg(rest[i + 2]), _seg("/".join(rest[i + 4:]))
                if rest[i] == "rewriteTo":
                    return "object.rewrite", ho.object_rewrite, (b, so, db, do), b, so
                return "object.copy", ho.object_copy, (b, so, db, do), b, so
        if rest[-1] == "compose" and len(rest) >= 2 and method == "POST":
            name = _seg("/".join(rest[:-1]))
            return "object.compose", ho.object_compose, (b, name), b, name
        name = _seg("/".join(rest))
        if method in ("GET", "HEAD"):
            if q.get("alt") == "media":
                return "object.media", ho.object_media, (b, name), b, name
            return "object.get", ho.object_get, (b, name), b, name
        if method == "PATCH":
            return "object.patch", ho.object_patch, (b, name), b, name
        if method == "DELETE":
            return "object.delete", ho.object_delete, (b, name), b, name
        return "unknown", None, (), b, name
    if segs[:4] == ["download", "storage", "v1", "b"] and len(segs) >= 7 and segs[5] == "o":
        b, name = _seg(segs[4]), _seg("/".join(segs[6:]))
        if method in ("GET", "HEAD"):
            return "object.media", ho.object_media, (b, name), b, name
        return "unknown", None, (), b, name
    if segs[:4] == ["upload", "storage", "v1", "b"] and len(segs) in (6, 7) and segs[5] == "o" \
            and (len(segs) == 6 or segs[6] == ""):
        b = _seg(segs[4])
        if q.get("upload_id"):
            if method in ("PUT", "POST"):
                return uploads.session_kind(headers), uploads.upload_put, (b,), b, None
            if method == "DELETE":
                return "upload.cancel", uploads.upload_cancel, (b,), b, None
        elif method == "POST":
            ut = q.get("uploadType")
            if ut not in ("media", "multipart", "resumable"):
                return "object.insert.invalid", _bad_upload_type, (), b, None
            kind = "object.insert." + ("resumable_start" if ut == "resumable" else ut)
            return kind, uploads.insert, (b, ut), b, q.get("name")
        return "unknown", None, (), b, None
    if segs in (["token"], ["oauth2", "v4", "token"]) and method == "POST":
        return "token", None, (), None, None
    return "unknown", None, (), None, None


def _bad_upload_type(h):
    raise bad_request("Upload requests must include an uploadType URL parameter "
                      "(media, multipart or resumable) and a URL-encoded object name.")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcs-emulator"
    sys_version = ""
    timeout = 900

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def send_error(self, code, message=None, explain=None):
        """Errors raised by http.server itself (bad request line, headers): JSON too."""
        self.close_connection = True
        body = HttpError(code, message or self.responses.get(code, ("Error",))[0]).body()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.app.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def log_error(self, fmt, *args):
        self.log_message(fmt, *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ------------------------------------------------------------ responses
    def _record(self):
        """Count the request once, before its answer leaves (so a client that saw
        the answer and then reads /_emu/stats always finds it counted)."""
        if not self.recorded and self.kind is not None:
            self.recorded = True
            self.server.app.stats.record(self.kind, self.status if self.status is not None else 0,
                                         self.headers.get("User-Agent") if self.headers else None)

    def _start(self, code, headers, length):
        self.status = code
        self._record()
        self.headers_sent = True
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if self.close_connection or not self.body.done:
            self.close_connection = True
            self.send_header("Connection", "close")

    def send_body(self, code, headers, body=b"", content_type=None):
        """Headers and body in one write (no Nagle/delayed-ACK stalls)."""
        if not self.body.done and not self.close_connection:
            self.body.drain()
        headers = dict(headers or {})
        if content_type and body:
            headers["Content-Type"] = content_type
        if code in (204, 304) or (100 <= code < 200):
            body = b""
        self._start(code, headers, None if code in (204, 304) else len(body))
        self._headers_buffer.append(b"\r\n")
        broken = self.fault is not None and self.fault.type == "broken" and body
        if broken:                                   # injected: part of the body, then FIN
            body = body[:min(self.fault.after, len(body) - 1)]
            self.fault = None
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self.server.app.stats.add_out(len(body) if self.command != "HEAD" else 0)
        self.wfile.write(data)
        if broken:
            self._close_now(reset=False)
        elif not self.body.done:
            self._linger_close()

    def _linger_close(self):
        """Answered before the whole body arrived: send FIN, then discard what the
        client still sends for a moment so it reads our response instead of an RST."""
        self.close_connection = True
        sock = self.connection
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(1.0)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                if not sock.recv(1 << 20):
                    break
        except OSError:
            pass

    def send_json(self, code, obj, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_body(code, headers, body, "application/json; charset=UTF-8")

    def send_file(self, code, headers, fd, offset, count):
        """Stream count bytes of fd from offset with sendfile (honours broken-stream faults)."""
        if not self.body.done:
            self.body.drain()
        f = self.fault
        cut = f.after if f is not None and f.after is not None else None
        self._start(code, headers, count)
        self.end_headers()
        if self.command == "HEAD":
            return
        stats = self.server.app.stats
        sent = 0
        with open(fd, "rb", buffering=0, closefd=False) as fobj:
            if cut is not None:
                part = min(cut, count)
                stats.add_out(part)
                sent = self.connection.sendfile(fobj, offset, part) if part else 0
                if f.type != "stall_after":
                    stats.add_out(sent - part)
                    self._close_now(reset=False)     # injected: the stream breaks here
                    return
                time.sleep(f.seconds)
                count -= sent
                offset += sent
            stats.add_out(count)                     # counted before it leaves (see _record)
            done = self.connection.sendfile(fobj, offset, count) if count else 0
            stats.add_out(done - count)

    def _close_now(self, reset):
        """Drop the connection: RST when reset, else a plain FIN after what was sent."""
        self.close_connection = True
        sock = self.connection
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            os.close(sock.detach())
        except OSError:
            pass

    # ------------------------------------------------------------ dispatch
    def _dispatch(self, method):
        app = self.server.app
        self.status = None
        self.headers_sent = False
        self.recorded = False
        self.fault = None
        self.body = BodyReader(self.rfile, {}, None)      # placeholder until parsed
        self.kind = "unknown"
        try:
            try:
                self.body = BodyReader(self.rfile, self.headers, app.stats.add_in)
            except HttpError:
                self.close_connection = True          # cannot find the next request
                raise
            raw_path, _, qs = self.path.partition("?")
            if raw_path.startswith("http://") or raw_path.startswith("https://"):
                raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
            self.q = {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}
            self.base = "http://" + (self.headers.get("Host") or
                                     "127.0.0.1:%d" % self.server.server_address[1])
            segs = raw_path.split("/")[1:]
            if segs and segs[0] == "_emu":
                self.kind = None
                code, obj = control.handle(self, method, segs)
                self.send_json(code, obj)
                return
            kind, fn, args, bucket, obj = route(method, segs, self.q, self.headers)
            self.kind = kind
            self.fault = app.faults.take(kind, bucket, obj)
            if self._apply_fault_before(kind):
                return
            if kind == "token":
                self._token()
                return
            if fn is None:
                raise HttpError(404, "Not Found: %s %s" % (method, raw_path))
            app.auth.check_bearer(self.headers.get("Authorization"))
            if "fields" in self.q:
                fields.parse(self.q["fields"])       # a bad selection is refused before acting
            res = fn(self, *args)
            if res is not None and not self.headers_sent:
                code, obj, headers = res
                if obj is not None and "fields" in self.q:
                    obj = fields.select(obj, self.q["fields"])
                self.send_json(code, obj, headers)
        except HttpError as e:
            self._send_error(e.code, e.body(), e.headers, e.content_type)
        except FaultCut:
            f = self.fault
            if f is not None and f.type == "status" and not self.headers_sent:
                err = HttpError(f.code, "Injected fault: %s" % f.action)
                self.close_connection = True
                self._send_error(f.code, err.body(), {})
            else:
                self._close_now(reset=True)
        except (ClientGone, ConnectionError, BrokenPipeError, socket.timeout):
            self.status = self.status or 499
            self.close_connection = True
        except Exception:
            sys.stderr.write("gcs-emulator: internal error on %s %s\n%s"
                             % (method, self.path, traceback.format_exc()))
            sys.stderr.flush()
            self._send_error(500, HttpError(500, "Internal error in the emulator.").body(), {})
        finally:
            self._record()

    def _send_error(self, code, body, headers, content_type="application/json; charset=UTF-8"):
        if self.headers_sent:
            self.close_connection = True
            return
        try:
            self.send_body(code, headers, body, content_type)
        except OSError:
            self.close_connection = True

    def _apply_fault_before(self, kind):
        """Faults that act before the handler runs; True when the request is answered."""
        f = self.fault
        if f is None:
            return False
        streamed = kind in UPLOAD_KINDS or kind in DOWNLOAD_KINDS
        if f.type == "throttle":
            self.body.throttle(f.rate)
            self.fault = None
            return False
        if f.type == "stall" or (f.type == "stall_after" and not streamed):
            time.sleep(f.seconds)
            self.fault = None
            return False
        if f.type in ("reset", "close"):
            self.status = 0
            if f.type == "close" and not self.body.done:
                self.body.drain()
            self._close_now(reset=f.type == "reset")
            return True
        if f.type == "answer200":
            ctype, body = f.answer
            self.fault = None
            self.send_body(200, {}, body, ctype)
            return True
        if f.type == "status" and (f.after is None or not streamed):
            raise HttpError(f.code, "Injected fault: %s" % f.action)
        return False

    def _token(self):
        app = self.server.app
        raw = self.body.read_all(1 << 20).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        host = self.headers.get("Host") or ""
        urls = ["%s/token" % self.server.canonical_base]
        for u in ("http://%s/token" % host, "http://%s/oauth2/v4/token" % host):
            if u not in urls:
                urls.append(u)
        try:
            res = app.auth.exchange(form, urls)
        except OAuthError as e:
            self.send_body(e.code, {}, e.body(), "application/json; charset=utf-8")
            return
        self.send_body(200, {"Cache-Control": "no-store"}, json.dumps(res).encode(),
                       "application/json; charset=utf-8")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, app, tls=None):
        self.app = app
        self.tls = tls
        super().__init__(addr, Handler)
        self.canonical_base = "%s://%s:%d" % ("https" if tls else "http", addr[0],
                                              self.server_address[1])

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake is the request thread's (finish_request), not the accept loop's.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.tls is not None:
            request.settimeout(30)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            return
        sys.stderr.write("gcs-emulator: error serving %s\n%s" % (client_address,
                                                                 traceback.format_exc()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--root", required=True, help="directory holding buckets and sessions")
    ap.add_argument("--bucket", action="append", default=[], help="create bucket at start")
    ap.add_argument("--require-auth", action="store_true",
                    help="storage requests need a valid Bearer token")
    ap.add_argument("--token-lifetime", type=int, default=3600, help="seconds")
    ap.add_argument("--key-file", action="append", default=[],
                    help="service-account JSON key whose public key is registered")
    ap.add_argument("--fsync", action="store_true", help="fsync object data and metadata")
    ap.add_argument("--no-md5", action="store_true",
                    help="benchmark mode: skip MD5 of uploads (objects get no md5Hash, like "
                         "composite objects) unless a request asks to verify an MD5")
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain ...")
    ap.add_argument("--tls-key", help="... and this PEM private key")
    args = ap.parse_args(argv)

    # Uploads hash on a helper thread while the CRC32C (which holds the GIL) runs on
    # the request thread: a short switch interval keeps the two from stalling each other.
    sys.setswitchinterval(0.0005)
    os.makedirs(args.root, exist_ok=True)
    app = App(args.root, args.require_auth, args.token_lifetime, args.verbose, args.fsync,
              md5=not args.no_md5)
    for b in args.bucket:
        app.store.ensure_bucket(b)
    for k in args.key_file:
        app.auth.register_key_file(k)
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    srv = Server((args.host, args.port), app, tls)
    sys.stdout.write("READY %s\n" % srv.canonical_base)
    sys.stdout.flush()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        srv.shutdown()
        srv.server_close()


if __name__ == "__main__":
    main()
