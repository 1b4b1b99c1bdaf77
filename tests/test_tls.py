"""HTTPS end to end: the emulator serving TLS with a certificate of the test's own CA.

Production endpoints are HTTPS only, so every path the mount takes over TLS is taken here:
the bucket check, uploads (libcurl's transfers) and ranged reads (received in place over a
connection libcurl opened with TLS), and the refusal of a server it cannot trust.
"""

import os
import random
import subprocess

import pytest
from mountlib import Mount, run_cli


@pytest.fixture
def tls_emulator(emulator_factory, tmp_path, monkeypatch):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", cert)   # the test's own client trusts it as well
    emu = emulator_factory("--tls-cert", cert, "--tls-key", key)
    assert emu.url.startswith("https://")
    return emu, cert


def test_write_read_and_list_over_https(tls_emulator, tmp_path):
    emu, cert = tls_emulator
    b = emu.new_bucket()
    data = os.urandom(12 << 20)
    b.put("run/model.bin", data)
    wd = tmp_path / "m"
    wd.mkdir()
    m = Mount(emu.url, b.bucket, "run", (), {"SSL_CERT_FILE": cert}, str(wd)).start()
    try:
        with open(m.p("model.bin"), "rb") as f:
            assert f.read() == data
        rnd = random.Random(5)
        fd = os.open(m.p("model.bin"), os.O_RDONLY)
        try:
            for _ in range(40):
                off = rnd.randrange(0, len(data))
                assert os.pread(fd, 50_000, off) == data[off:off + 50_000], off
        finally:
            os.close(fd)
        out = os.urandom(3 << 20)
        os.mkdir(m.p("ckpt"))
        with open(m.p("ckpt/step1.bin"), "wb") as f:
            f.write(out)
        assert sorted(os.listdir(m.p("."))) == ["ckpt", "model.bin"]
    finally:
        assert m.stop() == 0, m.read_log()
    assert b.get("run/ckpt/step1.bin") == out


@pytest.mark.parametrize("ca, why", [
    ("", "certificate"),                        # the system's CAs: ours is not among them
    ("/nonexistent-ca.pem", "/nonexistent-ca.pem"),
])
def test_untrusted_server_is_one_line_and_no_mount(tls_emulator, tmp_path, ca, why):
    emu, _ = tls_emulator
    b = emu.new_bucket()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = run_cli(["-o", "endpoint=%s,anonymous,spool_dir=%s" % (emu.url, tmp_path / "spool"),
                 "gs://%s" % b.bucket, str(mnt)], env={"SSL_CERT_FILE": ca}, timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("gcsmount:")]
    assert len(errors) == 1, p.stderr
    assert why in errors[0], errors[0]
    assert not os.path.ismount(mnt)
