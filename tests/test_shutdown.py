"""Shutdown: SIGTERM, SIGINT and unmount finish pending uploads before exit,
within shutdown_timeout; what cannot finish stays in the spool, is named in
the log, and the next mount finishes it."""

import errno
import os
import signal
import subprocess
import threading
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


def test_a_close_uploading_at_sigterm_is_cut_at_the_deadline(bucket, mount_factory):
    """SIGTERM while a close is uploading: libfuse's loop ends only once that close
    is answered, so the deadline counts from the signal and the upload is cut short
    there. The close fails with EIO, the mount exits 3 within about
    shutdown_timeout, and the next mount uploads the file from the spool."""
    m = mount_factory(bucket, "run", opts=["shutdown_timeout=2"])
    data = os.urandom(200_000)
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "stall-60s", "count": 1}])
    outcome = {}

    def write_and_close():
        try:
            with open(m.p("closing.bin"), "wb") as f:
                f.write(data)
            outcome["rc"] = 0
        except OSError as e:
            outcome["rc"] = e.errno

    writer = threading.Thread(target=write_and_close)
    writer.start()
    deadline = time.time() + 20
    while bucket.faults()[0]["met"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert bucket.faults()[0]["met"] == 1, "the close never began uploading"
    start = time.time()
    m.proc.send_signal(signal.SIGTERM)
    try:
        rc = m.proc.wait(60)
    finally:
        took = time.time() - start
        m.proc = None
        m.log.close()
        subprocess.run(["fusermount3", "-uz", m.path], capture_output=True)
        writer.join(10)
    assert rc == 3, m.read_log()
    assert took < 6, took                     # 2 s, and about a second to notice
    assert outcome.get("rc") in (errno.EIO, errno.ENOTCONN), outcome
    log = m.read_log()
    assert "abandoned at the shutdown deadline" in log
    assert "closing.bin" in log and "spool" in log
    bucket.clear_faults()
    m.start()
    deadline = time.time() + 30
    while not bucket.exists("run/closing.bin") and time.time() < deadline:
        time.sleep(0.1)
    assert bucket.get("run/closing.bin") == data
