"""Shutdown: SIGTERM, SIGINT and unmount finish pending uploads before exit,
within shutdown_timeout; what cannot finish stays in the spool, is named in
the log, and the next mount finishes it."""

import os
import signal
import subprocess
import time

import pytest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_publishes_open_files(bucket, mount_factory, sig):
    m = mount_factory(bucket, "run")
    data = os.urandom(3 << 20)
    fd = os.open(m.p("open.bin"), os.O_WRONLY | os.O_CREAT)
    os.write(fd, data)
    m.proc.send_signal(sig)
    rc = m.proc.wait(30)
    m.proc = None
    m.log.close()
    subprocess.run(["fusermount3", "-uz", m.path], capture_output=True)
    assert rc == 0, m.read_log()
    assert bucket.get("run/open.bin") == data
    try:
        os.close(fd)
    except OSError:
        pass


def test_shutdown_deadline_leaves_spool_for_next_mount(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["shutdown_timeout=2"])
    fd = os.open(m.p("slow.bin"), os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"s" * 100_000)
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "stall-30s", "count": 1}])
    start = time.time()
    m.proc.send_signal(signal.SIGTERM)
    rc = m.proc.wait(30)
    took = time.time() - start
    m.proc = None
    m.log.close()
    subprocess.run(["fusermount3", "-uz", m.path], capture_output=True)
    try:
        os.close(fd)
    except OSError:
        pass
    assert rc == 3
    assert took < 8
    log = m.read_log()
    assert "run/slow.bin: not uploaded within shutdown_timeout" in log
    bucket.clear_faults()
    m.start()
    deadline = time.time() + 30
    while not bucket.exists("run/slow.bin") and time.time() < deadline:
        time.sleep(0.1)
    assert bucket.get("run/slow.bin") == b"s" * 100_000


def test_unmount_waits_for_uploads(bucket, mount_factory):
    m = mount_factory(bucket, "run")
    with open(m.p("done.bin"), "wb") as f:
        f.write(b"d" * 1000)
    assert m.stop() == 0
    assert bucket.get("run/done.bin") == b"d" * 1000


def test_shutdown_timeout_zero_with_nothing_pending_is_a_clean_exit(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["shutdown_timeout=0"])
    with open(m.p("done.txt"), "wb") as f:
        f.write(b"uploaded at close")
    assert bucket.get("run/done.txt") == b"uploaded at close"
    assert m.stop() == 0
    assert "shutdown deadline reached" not in m.read_log()
