"""Injected faults, in the spirit of storage-testbench's retry conformance:
each scenario tells the emulator what to do to the next requests of a kind,
checks the bytes through the API, and checks every fault was actually met."""

import ctypes
import errno
import os
import time

import pytest


def log_time(line):
    """Seconds since midnight of a log line's UTC timestamp."""
    hms = line.split("T", 1)[1].split("Z", 1)[0]
    h, mi, sec = hms.split(":")
    return int(h) * 3600 + int(mi) * 60 + float(sec)


def assert_all_met(bucket):
    for f in bucket.faults():
        assert f["met"] >= f.get("count", 1), f


def test_upload_503_twice(bucket, mnt):
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503", "count": 2}])
    data = os.urandom(100_000)
    with open(mnt.p("a"), "wb") as f:
        f.write(data)
    assert_all_met(bucket)
    assert bucket.get("run/a") == data


def test_upload_connection_reset(bucket, mnt):
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "reset-connection",
                        "count": 1}])
    data = os.urandom(50_000)
    with open(mnt.p("b"), "wb") as f:
        f.write(data)
    assert_all_met(bucket)
    assert bucket.get("run/b") == data


def test_resumable_503_after_8mib(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["chunk_size=16M"])
    bucket.set_faults([{"kind": "upload.chunk", "action": "return-503-after-8192K",
                        "count": 1}])
    bucket.reset_stats()
    data = os.urandom(24_000_000)
    with open(m.p("c"), "wb") as f:
        f.write(data)
    assert_all_met(bucket)
    assert bucket.get("run/c") == data
    st = bucket.stats()
    assert st["requests"].get("upload.status", 0) >= 1   # asked where to resume
    assert st["bytes_in"] < len(data) + (9 << 20)         # resent less than 9 MiB


def test_chunk_reset_mid_stream(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["chunk_size=1M"])
    bucket.set_faults([{"kind": "upload.chunk", "action": "reset-connection", "count": 2}])
    data = os.urandom(5 << 20)
    with open(m.p("d"), "wb") as f:
        f.write(data)
    assert_all_met(bucket)
    assert bucket.get("run/d") == data


def test_a_server_overloaded_for_seconds_mid_upload_is_waited_out(bucket, mount_factory):
    """Every chunk answered 429 for 2.5 s: the tries back off (as every request's
    do) instead of spending a fixed count at once, and the upload completes."""
    m = mount_factory(bucket, "run", opts=["chunk_size=1M"])
    bucket.set_faults([{"kind": "upload.chunk", "action": "return-429", "seconds": 2.5}])
    data = os.urandom(5 << 20)
    t0 = time.monotonic()
    with open(m.p("busy"), "wb") as f:
        f.write(data)
    assert time.monotonic() - t0 >= 2.5
    assert_all_met(bucket)
    assert bucket.get("run/busy") == data
    met = bucket.faults()[0]["met"]
    assert 2 <= met <= 12, met            # paced: a handful of tries, not a storm


def test_chunk_failures_give_up_at_the_retry_deadline(bucket, mount_factory):
    """A session failing for longer than retry_deadline gives up after about that
    long: not after a fixed number of tries in a fraction of a second, and not
    never. The close then tries the file whole (failing too here) and fails
    with EIO."""
    m = mount_factory(bucket, "run", opts=["chunk_size=1M", "retry_deadline=3"])
    bucket.set_faults([{"kind": "upload.chunk", "action": "return-503", "count": -1},
                       {"kind": "object.insert.multipart", "action": "return-503",
                        "count": -1}])
    t0 = time.monotonic()
    with pytest.raises(OSError) as ei:
        with open(m.p("down"), "wb") as f:
            f.write(os.urandom(3 << 20))
    took = time.monotonic() - t0
    assert ei.value.errno == errno.EIO
    assert 1.0 <= took <= 30, took
    chunks = bucket.faults()[0]["met"]
    assert 2 <= chunks <= 12, chunks
    # The session's own tries spanned the deadline before the whole-file try.
    log = m.read_log().splitlines()
    first = next(ln for ln in log if "upload: chunk failed" in ln)
    gave_up = next(ln for ln in log if "will be uploaded whole when closed" in ln)
    assert log_time(gave_up) - log_time(first) >= 1.0, (first, gave_up)
    bucket.clear_faults()
    assert m.stop() == 0   # kept, and tried again by the shutdown
    assert int(bucket.stat("run/down")["size"]) == 3 << 20


def test_a_failing_request_is_tried_until_the_retry_deadline(bucket, mount_factory):
    """A read answered 503 for longer than retry_deadline: its tries back off and go
    on to the deadline itself (the last one at it), then the read fails with EIO.
    Giving up once the next backoff's cap would pass the deadline stopped after
    about half of it."""
    data = os.urandom(100_000)
    bucket.put("run/f", data)
    m = mount_factory(bucket, "run", opts=["retry_deadline=2"])
    os.stat(m.p("f"))
    bucket.set_faults([{"kind": "object.media", "action": "return-503", "count": -1}])
    t0 = time.monotonic()
    with pytest.raises(OSError) as ei:
        with open(m.p("f"), "rb") as f:
            f.read()
    took = time.monotonic() - t0
    assert ei.value.errno == errno.EIO
    assert took >= 1.9, took
    tries = bucket.faults()[0]["met"]
    assert 3 <= tries <= 30, tries       # paced, not a storm
    bucket.clear_faults()
    with open(m.p("f"), "rb") as f:
        assert f.read() == data


def test_read_503_and_429(bucket, mount_factory):
    data = os.urandom(3_000_000)
    bucket.put("run/r", data)
    m = mount_factory(bucket, "run")
    bucket.set_faults([{"kind": "object.media", "action": "return-503", "count": 1},
                       {"kind": "object.media", "action": "return-429", "count": 1}],)
    with open(m.p("r"), "rb") as f:
        assert f.read() == data
    assert_all_met(bucket)


def test_read_broken_after_1mib_fresh_mount(bucket, mount_factory):
    data = os.urandom(24 << 20)
    bucket.put("run/big", data)
    m = mount_factory(bucket, "run")   # fresh: the bytes come from the server
    # Three ranged GETs in a row break after 1 MiB of body (the first is only 1 MiB
    # long, the prefetched ones longer): each is continued from where it stopped.
    bucket.set_faults([{"kind": "object.media", "action": "broken-stream-after-1024K",
                        "count": 3}])
    with open(m.p("big"), "rb") as f:
        assert f.read() == data
    assert_all_met(bucket)
    assert "continuing at" in m.read_log()


def test_read_answered_without_its_range_is_an_error(bucket, mount_factory):
    """A server (or proxy) that drops the Range header sends the object from byte 0
    with 200: those bytes must never be served as the bytes asked for."""
    data = os.urandom(3 << 20)
    bucket.put("run/nr", data)
    m = mount_factory(bucket, "run")
    os.stat(m.p("nr"))
    bucket.set_faults([{"kind": "object.media", "action": "ignore-range", "count": -1}])
    fd = os.open(m.p("nr"), os.O_RDONLY)
    try:
        for off in (1 << 20, (2 << 20) + 4096):
            with pytest.raises(OSError) as e:
                got = os.pread(fd, 4096, off)
                assert got == data[off:off + 4096]   # never other bytes
            assert e.value.errno == errno.EIO
        assert bucket.faults()[0]["met"] >= 2
        bucket.clear_faults()
        assert os.pread(fd, 4096, 1 << 20) == data[1 << 20:(1 << 20) + 4096]
    finally:
        os.close(fd)
    assert "ignored the Range header" in m.read_log()


@pytest.mark.parametrize("action", ["return-200-garbage", "return-200-empty-json"])
def test_a_page_not_from_the_bucket_is_never_file_bytes(bucket, mount_factory, action):
    """A proxy's or captive portal's own 200 page, answering a range from byte 0,
    lacks the x-goog-generation the bucket names its bytes with: reading gives EIO,
    never that page as the file's first bytes, and rewriting part of the file in
    place (which fetches the old bytes around the write) fails instead of
    publishing that page."""
    data = os.urandom(3_000_000)
    bucket.put("run/g", data)
    m = mount_factory(bucket, "run")
    os.stat(m.p("g"))
    bucket.set_faults([{"kind": "object.media", "action": action, "count": -1}])
    with pytest.raises(OSError) as e:
        with open(m.p("g"), "rb") as f:
            got = f.read()
            assert got == data                     # never other bytes
    assert e.value.errno == errno.EIO
    assert bucket.faults()[0]["met"] >= 1
    assert "not the object's bytes" in m.read_log()
    bucket.clear_faults()
    with open(m.p("g"), "rb") as f:               # the proxy gone: the bytes
        assert f.read() == data

    bucket.set_faults([{"kind": "object.media", "action": action, "count": -1}])
    fd = os.open(m.p("g"), os.O_WRONLY)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"PATCH", 2_000_000)     # needs the old bytes around it
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    bucket.clear_faults()
    assert bucket.get("run/g") == data


def test_a_read_answered_as_if_the_file_ended_early_is_an_error(bucket, mount_factory):
    """A read is pinned to a generation whose size is known, and every fetch ends at
    or before it: a 416 for bytes inside it is the server's mistake, an EIO, never
    an early end of file (cat printed nothing and exited 0)."""
    data = os.urandom(3 << 20)
    bucket.put("run/e", data)
    m = mount_factory(bucket, "run")
    os.stat(m.p("e"))
    bucket.set_faults([{"kind": "object.media", "action": "return-416", "count": -1}])
    with pytest.raises(OSError) as e:
        with open(m.p("e"), "rb") as f:
            got = f.read()
            assert got == data                     # never a shorter file
    assert e.value.errno == errno.EIO
    assert bucket.faults()[0]["met"] >= 1
    bucket.clear_faults()
    with open(m.p("e"), "rb") as f:
        assert f.read() == data


def test_list_500_then_503(bucket, mnt):
    for i in range(5):
        bucket.put("run/l/f%d" % i, b"x")
    bucket.set_faults([{"kind": "object.list", "action": "return-500", "count": 1},
                       {"kind": "object.list", "action": "return-503", "count": 1}])
    assert sorted(os.listdir(mnt.p("l"))) == ["f%d" % i for i in range(5)]
    assert_all_met(bucket)


def _readdir_names_through_errors(path):
    """Every name of a directory read with libc's opendir/readdir, reading on after an
    error on the same handle (as a program may, and as Python's scandir does not);
    the errnos met on the way."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    d = libc.opendir(path.encode())
    assert d, os.strerror(ctypes.get_errno())
    names, errs = [], []
    try:
        while len(errs) < 5:
            ctypes.set_errno(0)
            ent = libc.readdir(d)
            if not ent:
                err = ctypes.get_errno()
                if err == 0:
                    break
                errs.append(err)
                continue
            # struct dirent on Linux/glibc: ino (8), off (8), reclen (2), type (1), name.
            name = ctypes.string_at(ent + 19).decode()
            if name not in (".", ".."):
                names.append(name)
    finally:
        libc.closedir(d)
    return names, errs


@pytest.mark.parametrize("action,err", [("return-400", errno.EINVAL),
                                        ("return-200-garbage", errno.EIO),
                                        ("return-404", errno.EIO)])
def test_list_page_failing_mid_listing_is_asked_again(bucket, mount_factory, action, err):
    """Pages are fetched ahead of the reader; when the second page fails (an error, or
    an answer that is no listing), readdir fails, and reading on asks for that page
    again: every name once, none lost or repeated. A 404 is EIO, not ENOENT, which
    glibc's readdir takes for the end of the directory."""
    names = ["f%04d" % i for i in range(2500)]
    for n in names:
        bucket.put("run/l/" + n, b"x")
    m = mount_factory(bucket, "run")
    assert os.path.isdir(m.p("l"))
    bucket.set_faults([{"kind": "object.list", "action": "stall-0s", "count": 1},
                       {"kind": "object.list", "action": action, "count": 1}])
    got, errs = _readdir_names_through_errors(m.p("l"))
    assert errs == [err]
    assert sorted(got) == names
    assert_all_met(bucket)


def test_stat_retried(bucket, mnt):
    bucket.put("run/s", b"123")
    bucket.set_faults([{"kind": "object.get", "action": "return-502", "count": 2}])
    assert os.stat(mnt.p("s")).st_size == 3
    assert_all_met(bucket)


def test_non_retryable_error_not_retried(bucket, mnt):
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-400", "count": 5}])
    f = open(mnt.p("bad"), "wb")
    f.write(b"x")
    with pytest.raises(OSError):
        f.close()
    assert [f["met"] for f in bucket.faults()] == [1]   # tried once, not five times
    bucket.clear_faults()
    assert mnt.stop() == 0   # kept, and tried again by the shutdown
    assert bucket.get("run/bad") == b"x"


def test_a_burst_of_failures_is_logged_in_part(bucket, mnt):
    """Every call failing alike (here: 403 on each read) gives each caller its errno,
    but the log holds a bounded number of lines, and says how many it held back."""
    bucket.put("run/f", b"data" * 1000)
    bucket.set_faults([{"kind": "object.media", "action": "return-403", "count": 300}])
    failures = 0
    for _ in range(120):
        try:
            with open(mnt.p("f"), "rb") as f:
                f.read()
        except OSError as e:
            assert e.errno == errno.EACCES
            failures += 1
    assert failures == 120
    lines = [ln for ln in mnt.read_log().splitlines() if " error: read:" in ln]
    assert 1 <= len(lines) <= 25, len(lines)
    # The next failure after the window (10 s) first says what was held back.
    time.sleep(10.5)
    with pytest.raises(PermissionError):
        open(mnt.p("f"), "rb").read()
    assert "failures not logged" in mnt.read_log()
    bucket.clear_faults()
    with open(mnt.p("f"), "rb") as f:
        assert f.read() == b"data" * 1000


def test_a_bucket_out_of_reach_is_eio_to_file_calls(bucket, mount_factory):
    """Connections reset, past retry_deadline: the calls fail with EIO (what
    read(2) and stat(2) callers handle), not the socket's ECONNRESET; the log
    says what happened."""
    m = mount_factory(bucket, "run", opts=["retry_deadline=1", "negative_ttl=0"])
    bucket.put("run/f", b"data" * 1000)
    os.stat(m.p("f"))
    bucket.set_faults([{"kind": "object.media", "action": "reset-connection", "count": -1},
                       {"kind": "object.get", "action": "reset-connection", "count": -1},
                       {"kind": "object.list", "action": "reset-connection", "count": -1}])
    with pytest.raises(OSError) as e:
        with open(m.p("f"), "rb") as f:
            f.read()
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        os.stat(m.p("other"))
    assert e.value.errno == errno.EIO
    assert "cannot reach" in m.read_log()
    bucket.clear_faults()
    with open(m.p("f"), "rb") as f:
        assert f.read() == b"data" * 1000
