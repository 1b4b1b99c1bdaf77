"""Credentials end to end: a private emulator that requires tokens, a real
mount that finds its key the way a pod provides it, short-lived tokens,
rotation, and a token endpoint that fails."""

import errno
import http.server
import json
import os
import threading
import time

import pytest

from emulator.client import EmulatorClient, make_service_account_key
from mountlib import Mount, run_cli


@pytest.fixture
def authemu(emulator_factory):
    """An emulator requiring 5-second tokens, with a bucket and a registered key."""
    emu = emulator_factory("--require-auth", "--token-lifetime", "5")
    sa = make_service_account_key(emu.token_url)
    admin = emu.client()
    admin.register_service_account(sa)
    admin.fetch_token(sa)
    b = EmulatorClient(emu.url, "auth-bucket", admin.token)
    b.create_bucket()
    return emu, sa, b


def write_key(path, sa):
    path.write_text(json.dumps(sa))
    return str(path)


def start_mount(emu, tmp_path, opts=(), env=None, name="m"):
    wd = tmp_path / name
    wd.mkdir(exist_ok=True)
    m = Mount(emu.url, "auth-bucket", "run", list(opts), env, str(wd), anonymous=False)
    return m.start()


def token_requests(emu):
    return emu.client().stats()["requests"].get("token", 0)


def test_steady_io_over_many_token_lifetimes(authemu, tmp_path):
    emu, sa, b = authemu
    key = write_key(tmp_path / "key.json", sa)
    m = start_mount(emu, tmp_path, ["key_file=" + key])
    try:
        before = token_requests(emu)
        b.token = None  # only the mount's own tokens from here
        end = time.time() + 30
        n = 0
        while time.time() < end:
            data = os.urandom(1000 + n)
            with open(m.p("f%d" % (n % 20)), "wb") as f:
                f.write(data)
            with open(m.p("f%d" % (n % 20)), "rb") as f:
                assert f.read() == data
            os.listdir(m.path)
            n += 1
        fetched = token_requests(emu) - before
        # About one token per lifetime (refreshed ahead of expiry), not one per request.
        assert 3 <= fetched <= 12, fetched
        assert n > 100
        assert "401" not in m.read_log()
    finally:
        assert m.stop() == 0


def test_sixteen_threads_share_one_refresh(authemu, tmp_path):
    emu, sa, b = authemu
    key = write_key(tmp_path / "key.json", sa)
    m = start_mount(emu, tmp_path, ["key_file=" + key, "stat_ttl=0", "type_ttl=0"])
    try:
        with open(m.p("x"), "w") as f:
            f.write("x")
        before = token_requests(emu)
        errors = []

        def hammer():
            end = time.time() + 11
            while time.time() < end:
                try:
                    os.stat(m.p("x"))
                except OSError as e:
                    errors.append(e)

        threads = [threading.Thread(target=hammer) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        fetched = token_requests(emu) - before
        assert 1 <= fetched <= 4, fetched  # 11 s of 5 s tokens: per lifetime, not per thread
    finally:
        assert m.stop() == 0


def test_key_rotation_by_symlink_swap(authemu, tmp_path):
    emu, sa, b = authemu
    # The layout of a Kubernetes secret volume: key.json -> ..data/key.json, ..data -> ..v1
    vol = tmp_path / "secret"
    (vol / "..v1").mkdir(parents=True)
    write_key(vol / "..v1" / "key.json", sa)
    os.symlink("..v1", vol / "..data")
    os.symlink("..data/key.json", vol / "key.json")
    m = start_mount(emu, tmp_path, ["key_file=%s" % (vol / "key.json")])
    try:
        with open(m.p("before"), "w") as f:
            f.write("1")
        sa2 = make_service_account_key(emu.token_url)
        emu.client().register_service_account(sa2)
        (vol / "..v2").mkdir()
        write_key(vol / "..v2" / "key.json", sa2)
        os.symlink("..v2", vol / "..data.tmp")
        os.rename(vol / "..data.tmp", vol / "..data")   # the atomic swap kubelet does
        emu.client().revoke_key(sa["private_key_id"], revoke_tokens=True)
        with open(m.p("after"), "w") as f:
            f.write("2")
        b.fetch_token(sa2)
        assert b.get("run/after") == b"2"
    finally:
        assert m.stop() == 0


def check_works(m, b, name):
    with open(m.p(name), "w") as f:
        f.write(name)
    assert b.get("run/" + name) == name.encode()


@pytest.mark.parametrize("source", ["GC_KEY_PATH", "GOOGLE_KEY_PATH",
                                    "GOOGLE_APPLICATION_CREDENTIALS", "GC_KEYFILE_DICT",
                                    "GOOGLE_KEYFILE_DICT", "default"])
def test_discovery_sources(authemu, tmp_path, source):
    emu, sa, b = authemu
    env = {}
    key = write_key(tmp_path / "key.json", sa)
    if source.endswith("_DICT"):
        # Kubernetes env from a secret often carries the PEM's newlines escaped.
        env[source] = json.dumps(sa).replace("\\n", "\\\\n")
    elif source == "default":
        env["GCSMOUNT_DEFAULT_KEY_PATH"] = key
    else:
        env[source] = key
    m = start_mount(emu, tmp_path, env=env)
    try:
        check_works(m, b, source.lower())
        log = m.read_log()
        assert sa["client_email"] in log
        assert "PRIVATE KEY" not in log
        with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
            assert b"PRIVATE KEY" not in f.read()
    finally:
        assert m.stop() == 0


def test_key_path_beats_key_dict(authemu, tmp_path):
    emu, sa, b = authemu
    unknown = make_service_account_key(emu.token_url)   # never registered
    env = {"GC_KEY_PATH": write_key(tmp_path / "key.json", sa),
           "GC_KEYFILE_DICT": json.dumps(unknown)}
    m = start_mount(emu, tmp_path, env=env)
    try:
        check_works(m, b, "order")
    finally:
        assert m.stop() == 0


def test_set_but_broken_variable_is_an_error(authemu, tmp_path):
    emu, sa, b = authemu
    mp = tmp_path / "mp"
    mp.mkdir()
    env = {"GCSMOUNT_NO_METADATA_PROBE": "1", "GC_KEY_PATH": str(tmp_path / "missing.json"),
           "GC_KEYFILE_DICT": json.dumps(sa)}
    r = run_cli(["-f", "-o", "endpoint=" + emu.url, "gs://auth-bucket", str(mp)], env=env)
    assert r.returncode == 1
    assert "GC_KEY_PATH" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unregistered_key_refused_at_mount(authemu, tmp_path):
    emu, sa, b = authemu
    other = make_service_account_key(emu.token_url)
    mp = tmp_path / "mp"
    mp.mkdir()
    r = run_cli(["-f", "-o", "endpoint=%s,key_file=%s" % (emu.url, write_key(tmp_path / "k", other)),
                 "gs://auth-bucket", str(mp)], env={"GCSMOUNT_NO_METADATA_PROBE": "1"})
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "gcsmount:" in line and ("invalid_grant" in line or "refused" in line or "400" in line)


def test_token_endpoint_down_after_mount(authemu, tmp_path):
    emu, sa, b = authemu
    key = write_key(tmp_path / "key.json", sa)
    m = start_mount(emu, tmp_path, ["key_file=" + key, "retry_deadline=2"])
    status = None
    try:
        check_works(m, b, "ok1")
        admin = emu.client()
        admin.set_faults([{"kind": "token", "action": "return-503", "count": 1000}])
        admin.revoke_key(sa["private_key_id"], revoke_tokens=True)
        admin.register_service_account(sa)   # same key, but every old token is gone
        # The mount's root is known (listed by the first lookup), so the open
        # needs no request and the failure comes at close.
        with pytest.raises(OSError) as e:
            with open(m.p("fails"), "w") as f:
                f.write("x")
        assert e.value.errno in (errno.EIO, errno.EACCES)
        admin.clear_faults()
        time.sleep(1.5)                     # a failed refresh is not retried for 1 s
        b.fetch_token(sa)
        check_works(m, b, "ok2")            # the mount kept serving
    finally:
        status = m.stop()
    # What close could not upload stays in the spool for the next mount, and
    # the exit status says so.
    assert status == 3
    assert "run/fails: not in the bucket" in m.read_log()


class FakeMetadata(http.server.BaseHTTPRequestHandler):
    token = None
    hits = 0

    def do_GET(self):
        if self.headers.get("Metadata-Flavor") != "Google":
            self.send_response(403)
            self.end_headers()
            return
        type(self).hits += 1
        body = json.dumps({"access_token": self.token, "expires_in": 3599,
                           "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_metadata_server(authemu, tmp_path):
    emu, sa, b = authemu
    FakeMetadata.token = b.token
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMetadata)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        m = start_mount(emu, tmp_path,
                        env={"GCE_METADATA_HOST": "127.0.0.1:%d" % srv.server_address[1]})
        try:
            check_works(m, b, "wi")
            assert FakeMetadata.hits >= 1
        finally:
            assert m.stop() == 0
    finally:
        srv.shutdown()
