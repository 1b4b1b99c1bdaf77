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
from mountlib import Mount, is_mounted, run_cli


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


def write_fails_during_outage(authemu, tmp_path, faults, cut_tokens, log_has=()):
    """Break token fetching after mount: a new file fails (at close, since the root is
    known from the first lookup and the open needs no request) with EIO/EACCES and
    log_has in the log; once fixed, the mount serves again, and the file close could
    not upload is tried again until it is in the bucket."""
    emu, sa, b = authemu
    key = write_key(tmp_path / "key.json", sa)
    m = start_mount(emu, tmp_path, ["key_file=" + key, "retry_deadline=2"])
    status = None
    try:
        check_works(m, b, "ok1")
        admin = emu.client()
        admin.set_faults(faults)
        cut_tokens(admin)
        with pytest.raises(OSError) as e:
            with open(m.p("fails"), "w") as f:
                f.write("x")
        assert e.value.errno in (errno.EIO, errno.EACCES)
        log = m.read_log()
        for text in log_has:
            assert text in log, log
        admin.clear_faults()
        time.sleep(1.5)                     # a failed fetch is shared for 1 s
        b.fetch_token(sa)
        check_works(m, b, "ok2")            # the mount kept serving
    finally:
        status = m.stop()
    assert status == 0, m.read_log()   # by a background try, or by the shutdown's
    assert b.get("run/fails") == b"x"


def test_token_endpoint_down_after_mount(authemu, tmp_path):
    emu, sa, _ = authemu

    def revoke(admin):
        admin.revoke_key(sa["private_key_id"], revoke_tokens=True)
        admin.register_service_account(sa)   # same key, but every old token is gone

    write_fails_during_outage(authemu, tmp_path,
                              [{"kind": "token", "action": "return-503", "count": 1000}],
                              revoke)


def mount_fails(emu, tmp_path, sa, timeout=60):
    """Mount with sa's key, expecting failure: (stderr's last line, seconds taken)."""
    mp = tmp_path / "mp"
    mp.mkdir(exist_ok=True)
    t0 = time.monotonic()
    r = run_cli(["-f", "-o", "endpoint=%s,key_file=%s,spool_dir=%s"
                 % (emu.url, write_key(tmp_path / "key.json", sa), tmp_path / "spool"),
                 "gs://auth-bucket/run", str(mp)],
                env={"GCSMOUNT_NO_METADATA_PROBE": "1"}, timeout=timeout)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert not is_mounted(str(mp))
    lines = r.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("gcsmount: "), r.stderr
    return lines[-1], took


# What each broken token endpoint makes the mount say (after the URL).
TOKEN_FAULTS = [
    ("return-500", "HTTP 500"),
    ("return-200-garbage", "HTTP 200 but answer is not a JSON object"),
    ("return-200-empty-json", "answer has no \"access_token\""),
    ("close-connection", "no answer"),
    ("reset-connection", "no answer"),
    ("stall-45s", "no answer"),
]


@pytest.mark.parametrize("action,cause", TOKEN_FAULTS, ids=[a for a, _ in TOKEN_FAULTS])
def test_token_endpoint_broken_at_mount(authemu, tmp_path, action, cause):
    emu, sa, b = authemu
    admin = emu.client()
    admin.set_faults([{"kind": "token", "action": action, "count": -1}])
    before = token_requests(emu)
    line, took = mount_fails(emu, tmp_path, sa)
    assert "token endpoint %s" % emu.token_url in line and cause in line, line
    assert token_requests(emu) - before <= 3           # a few tries, no loop
    # A silent endpoint is given up on after three tries of 10 s each.
    assert took < 40, took


def test_jwt_refused_for_clock_skew_at_mount(authemu, tmp_path):
    emu, sa, b = authemu
    emu.client().config(jwt_clock_offset=3600)    # this host's clock an hour behind
    line, _ = mount_fails(emu, tmp_path, sa)
    assert "refused the credentials (HTTP 400)" in line and "iat and exp" in line, line


def test_expired_token_answers_at_mount(authemu, tmp_path):
    emu, sa, b = authemu
    emu.client().config(token_lifetime=0)         # tokens dead as they are issued
    before = token_requests(emu)
    line, _ = mount_fails(emu, tmp_path, sa)
    assert "HTTP 401" in line and "answered expires_in=0" in line, line
    assert token_requests(emu) - before == 2      # the token, and once more after the 401


def test_token_answers_skewed_but_valid(authemu, tmp_path):
    """expires_in says the token expired an hour ago, yet the server takes it
    for its real 5 s: used, replaced after the 401, never a request failed."""
    emu, sa, b = authemu
    emu.client().config(expires_in_skew=3600)
    key = write_key(tmp_path / "key.json", sa)
    m = start_mount(emu, tmp_path, ["key_file=" + key, "stat_ttl=0"])
    try:
        before = token_requests(emu)
        end = time.time() + 11
        n = 0
        while time.time() < end:
            with open(m.p("f"), "w") as f:
                f.write(str(n))
            os.stat(m.p("f"))
            n += 1
        assert n > 20
        fetched = token_requests(emu) - before
        assert 1 <= fetched <= 4, fetched             # per real lifetime, not per request
        log = m.read_log()
        assert log.count("answered expires_in=-3595 ") == 1, log   # warned once
        assert "error" not in log, log
    finally:
        assert m.stop() == 0


@pytest.mark.parametrize("action,cause", [f for f in TOKEN_FAULTS if "stall" not in f[0]],
                         ids=[a for a, _ in TOKEN_FAULTS if "stall" not in a])
def test_token_endpoint_broken_after_mount(authemu, tmp_path, action, cause):
    emu = authemu[0]
    write_fails_during_outage(authemu, tmp_path,
                              [{"kind": "token", "action": action, "count": -1}],
                              lambda admin: admin.clear_tokens(),   # the token is refused
                              ["token endpoint %s" % emu.token_url, cause])


def test_expired_token_answers_after_mount(authemu, tmp_path):
    emu, sa, b = authemu
    key = write_key(tmp_path / "key.json", sa)
    m = start_mount(emu, tmp_path, ["key_file=" + key, "stat_ttl=0", "type_ttl=0"])
    try:
        check_works(m, b, "ok1")
        admin = emu.client()
        admin.config(token_lifetime=0)
        admin.clear_tokens()
        before = token_requests(emu)
        errors, ok = [], []

        def hammer():
            end = time.time() + 4
            while time.time() < end:
                try:
                    os.stat(m.p("ok1"))
                    ok.append(1)
                except OSError as e:
                    errors.append(e.errno)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors and set(errors) == {errno.EACCES} and not ok
        fetched = token_requests(emu) - before
        assert fetched <= 7, fetched                 # about one a second, not one per stat
        log = m.read_log()
        assert "answered expires_in=0" in log and "HTTP 401" in log, log
        admin.config(token_lifetime=5)
        time.sleep(1.2)
        b.fetch_token(sa)
        check_works(m, b, "ok2")                     # serving again
    finally:
        assert m.stop() == 0


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
