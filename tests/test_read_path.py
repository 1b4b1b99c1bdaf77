"""The read path: ranged GETs pinned to a generation, prefetch, caches."""

import errno
import http.client
import http.server
import os
import random
import subprocess
import threading
import time
import urllib.parse

import pytest
from mountlib import Mount


@pytest.fixture
def big(bucket):
    data = os.urandom(20 << 20)
    bucket.put("run/big.bin", data)
    return data


def test_random_offsets_byte_exact(bucket, mount_factory, big):
    m = mount_factory(bucket, "run")
    rnd = random.Random(7)
    fd = os.open(m.p("big.bin"), os.O_RDONLY)
    try:
        for _ in range(300):
            off = rnd.randrange(0, len(big) + 1000)
            n = rnd.choice([1, 4096, 10_000, 131_072, 1 << 20, 3 << 20])
            assert os.pread(fd, n, off) == big[off:off + n], (off, n)
    finally:
        os.close(fd)


def test_sequential_reads_across_prefetch_boundaries(bucket, mount_factory, big):
    m = mount_factory(bucket, "run", opts=["read_ahead=16M"])
    for size in (999_999, 4096, 1 << 20, 7_777_777):
        out = bytearray()
        with open(m.p("big.bin"), "rb", buffering=0) as f:
            while True:
                chunk = f.read(size)
                if not chunk:
                    break
                out += chunk
        assert bytes(out) == big, size


class _Proxy(http.server.ThreadingHTTPServer):
    """A forward HTTP proxy (absolute-URI requests) that counts the media GETs it relays."""
    daemon_threads = True

    def __init__(self):
        self.media_gets = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self):
        u = urllib.parse.urlsplit(self.path)
        if "alt=media" in u.query:
            with self.server.lock:
                self.server.media_gets += 1
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in ("proxy-connection", "connection", "host")}
        conn.request(self.command, u.path + ("?" + u.query if u.query else ""), body, hdrs)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = relay


def test_reads_go_through_a_proxy_set_in_the_environment(bucket, mount_factory, big):
    # Ranges are normally received in place over the mount's own HTTP/1.1 exchange; with
    # a proxy in the environment libcurl carries them, through the proxy.
    proxy = _Proxy()
    t = threading.Thread(target=proxy.serve_forever, daemon=True)
    t.start()
    try:
        m = mount_factory(bucket, "run", env={
            "http_proxy": "http://127.0.0.1:%d" % proxy.server_address[1], "no_proxy": ""})
        with open(m.p("big.bin"), "rb") as f:
            assert f.read() == big
        fd = os.open(m.p("big.bin"), os.O_RDONLY)
        try:
            assert os.pread(fd, 70_000, 12_345_678) == big[12_345_678:12_345_678 + 70_000]
        finally:
            os.close(fd)
        assert proxy.media_gets >= 2
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_read_past_eof(bucket, mount_factory):
    bucket.put("run/small", b"0123456789")
    bucket.put("run/empty", b"")
    m = mount_factory(bucket, "run")
    fd = os.open(m.p("small"), os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 5) == b"56789"
        assert os.pread(fd, 100, 10) == b""
        assert os.pread(fd, 100, 1 << 30) == b""
    finally:
        os.close(fd)
    with open(m.p("empty"), "rb") as f:
        assert f.read() == b""


def test_object_replaced_during_read_is_old_bytes_or_error(bucket, mount_factory, big):
    m = mount_factory(bucket, "run", opts=["read_ahead=2M"])
    f = open(m.p("big.bin"), "rb", buffering=0)
    head = f.read(1 << 20)
    assert head == big[:1 << 20]
    new = os.urandom(len(big))
    bucket.put("run/big.bin", new)
    got = bytearray(head)
    try:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            got += chunk
    except OSError as e:
        assert e.errno == errno.ESTALE
    f.close()
    assert bytes(got) == big[:len(got)]     # never a mix with the new generation
    with open(m.p("big.bin"), "rb") as g:   # a new open sees the new object
        time.sleep(0)
        data = g.read()
    assert data in (big, new)


@pytest.mark.parametrize("old_size,new_size", [(12 << 20, 12 << 20), (3 << 20, 20 << 20)])
def test_old_handle_reading_on_never_mixes_into_a_new_open(bucket, mount_factory,
                                                           old_size, new_size):
    """The kernel keeps one set of pages per file, whatever handle filled them. A
    handle pinned to the old generation and still reading when a new open learns of
    the replacement: the new open reads only new bytes, the old handle only old ones
    (or ESTALE once it needs bytes the bucket no longer has), and never zeros past
    its end when the new object is larger."""
    m = mount_factory(bucket, "run", opts=["stat_ttl=0", "read_ahead=4M"])
    for round_ in range(4):
        old = os.urandom(old_size)
        new = os.urandom(new_size)
        bucket.put("run/r.bin", old)
        f = open(m.p("r.bin"), "rb", buffering=0)
        stop = threading.Event()
        seen = []

        def read_old():
            try:
                while not stop.is_set():
                    f.seek(0)
                    while not stop.is_set():
                        off = f.tell()
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        if chunk != old[off:off + len(chunk)]:
                            seen.append("old handle read other bytes at %d" % off)
                            return
            except OSError as e:
                seen.append(e.errno)

        t = threading.Thread(target=read_old)
        t.start()
        time.sleep(0.05)
        bucket.put("run/r.bin", new)
        try:
            with open(m.p("r.bin"), "rb") as g:
                data = g.read()
        finally:
            stop.set()
            t.join()
            f.close()
        assert data == new, round_
        assert seen in ([], [errno.ESTALE]), seen


@pytest.mark.parametrize("old_size,new_size", [(4, 8), (300, 300), (3 << 20, 5 << 20 | 77),
                                               (5 << 20, 1 << 20 | 5), (9, 4)])
def test_open_after_a_replacement_within_stat_ttl_reads_the_new_bytes(
        bucket, mount_factory, old_size, new_size):
    """Another pod rewrites a file (TensorFlow's `checkpoint` index at every save)
    while this mount still holds its attributes (stat_ttl, 60 s by default). An
    open then pins the generation it knew, which is gone: its first read finds
    that out and reads the live generation whole instead of failing with ESTALE
    (no byte of the old one was served, so none is mixed). A smaller one is the
    exception (the kernel, told the larger size, could pad it with zeros): that
    read fails with ESTALE and the next open reads the new bytes."""
    m = mount_factory(bucket, "run")
    old, new = os.urandom(old_size), os.urandom(new_size)
    bucket.put("run/checkpoint", old)
    assert os.stat(m.p("checkpoint")).st_size == old_size      # cached
    with open(m.p("checkpoint"), "rb") as f:
        assert f.read() == old
    bucket.put("run/checkpoint", new)
    if new_size < old_size:
        with pytest.raises(OSError) as e:
            with open(m.p("checkpoint"), "rb") as f:
                got = f.read()
                assert got == new                  # never zeros past the new end
        assert e.value.errno == errno.ESTALE
    for _ in range(2):
        with open(m.p("checkpoint"), "rb") as f:
            assert f.read() == new
    assert os.stat(m.p("checkpoint")).st_size == new_size
    if new_size >= old_size:
        assert "was replaced before this open file read any of it" in m.read_log()


def test_a_file_deleted_elsewhere_while_open_keeps_its_attributes(bucket, mount_factory):
    """fstat of a file open here whose object another pod deleted gives what the
    open file is, with no link left (as a local file unlinked while open), not
    ENOENT; the name is gone for everyone else."""
    m = mount_factory(bucket, "run", opts=["stat_ttl=0"])
    bucket.put("run/f", b"abc")
    with open(m.p("f"), "rb") as f:
        assert f.read(1) == b"a"
        bucket.delete("run/f")
        st = os.fstat(f.fileno())
        assert st.st_size == 3 and st.st_nlink == 0
        # The kernel is told to drop the name right after that answer.
        deadline = time.monotonic() + 10
        while os.path.exists(m.p("f")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(m.p("f"))
        st = os.fstat(f.fileno())
        assert st.st_size == 3 and st.st_nlink == 0


def test_stat_cache_expires_and_our_writes_invalidate(bucket, mount_factory):
    bucket.put("run/s", b"1")
    m = mount_factory(bucket, "run", opts=["stat_ttl=1", "type_ttl=1", "negative_ttl=1"])
    assert os.stat(m.p("s")).st_size == 1
    bucket.put("run/s", b"22")
    time.sleep(1.5)
    assert os.stat(m.p("s")).st_size == 2             # expired, fetched again
    with open(m.p("s"), "ab") as f:
        f.write(b"333")
    assert os.stat(m.p("s")).st_size == 5             # our write, seen at once
    assert not os.path.exists(m.p("later"))
    bucket.put("run/later", b"x")
    time.sleep(1.5)
    assert os.path.exists(m.p("later"))              # negative entry expired


def test_many_readers_within_budget(bucket, mount_factory):
    datas = [os.urandom(6 << 20) for _ in range(8)]
    for i, d in enumerate(datas):
        bucket.put("run/r%d" % i, d)
    m = mount_factory(bucket, "run")
    errors = []

    def read(i):
        with open(m.p("r%d" % i), "rb") as f:
            if f.read() != datas[i]:
                errors.append(i)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_find_over_deep_implicit_tree(bucket, mount_factory):
    names = []
    for a in range(4):
        for b in range(3):
            for c in range(3):
                n = "run/d%d/e%d/f%d/leaf.txt" % (a, b, c)
                bucket.put(n, n.encode())
                names.append(n)
    m = mount_factory(bucket, "run")
    found = []
    for root, dirs, files in os.walk(m.path):
        for f in files:
            found.append(os.path.relpath(os.path.join(root, f), m.path))
    assert sorted("run/" + f for f in found) == sorted(names)


def test_sequential_read_is_prefetched_in_few_requests(bucket, mount_factory, big):
    m = mount_factory(bucket, "run")
    bucket.reset_stats()
    with open(m.p("big.bin"), "rb") as f:
        assert f.read() == big
    media = bucket.stats()["requests"].get("object.media", 0)
    # 20 MiB in a window growing from 1 MiB: a handful of ranged GETs, not one per read.
    assert media <= 12, media


def test_a_file_open_for_writing_reads_the_bucket_part_ahead(bucket, mount_factory, big):
    """Opened read-write (fio's verify, h5py's r+), an existing file's bytes that
    only the bucket holds are read with read-ahead like a reader's, not a request
    per kernel read; appended bytes come from the spool, and once a write lands
    in the middle the whole file is local."""
    m = mount_factory(bucket, "run")
    bucket.reset_stats()
    with open(m.p("big.bin"), "r+b") as f:
        assert f.read() == big
        media = bucket.stats()["requests"].get("object.media", 0)
        assert media <= 12, media
        f.write(b"tail")                        # at the end: streamed, not staged
        f.flush()
        f.seek(len(big) - 4)
        assert f.read() == big[-4:] + b"tail"
        f.seek(1000)
        f.write(b"MID")
        f.flush()
        f.seek(0)
        got = f.read()
    want = big[:1000] + b"MID" + big[1003:] + b"tail"
    assert got == want
    assert bucket.get("run/big.bin") == want


def test_prefetched_bytes_serve_reads_before_their_range_completes(bucket, mount_factory):
    """Every ranged GET sends 512 KiB and then stalls for 4 s: a read of the first
    bytes is answered from what has arrived, not after the whole range has."""
    data = os.urandom(3 << 20)
    bucket.put("run/slow", data)
    m = mount_factory(bucket, "run")
    os.stat(m.p("slow"))
    bucket.set_faults([{"kind": "object.media", "action": "stall-4s-after-512K",
                        "count": -1}])
    fd = os.open(m.p("slow"), os.O_RDONLY)
    try:
        t0 = time.monotonic()
        assert os.pread(fd, 4096, 0) == data[:4096]
        first = time.monotonic() - t0
        assert os.pread(fd, 4096, 4096) == data[4096:8192]
        assert first < 2.0, first
        assert bucket.faults()[0]["met"] >= 1
        bucket.clear_faults()
        assert os.pread(fd, len(data), 0) == data   # and the rest arrives whole
    finally:
        os.close(fd)


def test_scattered_reads_fetch_what_they_ask(bucket, mount_factory, big):
    """Random 4 KiB reads far apart end up fetching about 4 KiB each, not 128 KiB,
    while reads that cluster still share one fetch."""
    m = mount_factory(bucket, "run")
    rnd = random.Random(3)
    blocks = len(big) // (1 << 20)
    offsets = [rnd.randrange(blocks) * (1 << 20) + rnd.randrange(64) * 4096 for _ in range(60)]
    bucket.reset_stats()
    fd = os.open(m.p("big.bin"), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for off in offsets:
            assert os.pread(fd, 4096, off) == big[off:off + 4096], off
        scattered = bucket.stats()["bytes_out"]
        # Clustered: 4 KiB reads stepping backwards through one 128 KiB stretch.
        bucket.reset_stats()
        base = 3 << 20
        for k in reversed(range(32)):
            off = base + k * 4096
            assert os.pread(fd, 4096, off) == big[off:off + 4096], off
        clustered = bucket.stats()["requests"].get("object.media", 0)
    finally:
        os.close(fd)
    # All at 128 KiB would be 7.5 MiB; shrinking to 4 KiB costs well under 1 MiB.
    assert scattered < (1 << 20), scattered
    assert clustered < 32, clustered


@pytest.mark.parametrize("dirname", ["plain", "with space"])
def test_kernel_read_ahead_raised(bucket, emulator, tmp_path, dirname):
    """The mount raises the kernel's read-ahead of its own device to 1 MiB, so a
    sequential reader's data comes in 1 MiB requests instead of 128 KiB ones."""
    wd = tmp_path / dirname
    wd.mkdir()
    m = Mount(emulator.url, bucket.bucket, "run", [], None, str(wd)).start()
    try:
        st = os.stat(m.path)
        path = "/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(st.st_dev), os.minor(st.st_dev))
        with open(path) as f:
            assert f.read().strip() == "1024"
    finally:
        assert m.stop() == 0


def test_long_sequential_read_fetches_whole_segments(bucket, mount_factory):
    """Once the window is at its largest it is topped up in chunks of half of it,
    not by a ranged GET per read: 96 MiB through a 16 MiB window is about a dozen
    8 MiB GETs, where topping up per read made one per kernel read (about 100)."""
    data = os.urandom(96 << 20)
    bucket.put("run/long.bin", data)
    m = mount_factory(bucket, "run", opts=["read_ahead=16M"])
    os.stat(m.p("long.bin"))
    bucket.reset_stats()
    got = bytearray()
    with open(m.p("long.bin"), "rb", buffering=0) as f:
        while True:
            b = f.read(128 << 10)
            if not b:
                break
            got += b
    assert bytes(got) == data
    media = bucket.stats()["requests"].get("object.media", 0)
    assert media <= 20, media


def test_small_read_ahead_bounds_the_first_window(bucket, mount_factory):
    """read_ahead below the first window's 1 MiB is the window from the start: the
    first read of a file fetches what it asked for (at least 128 KiB) and read_ahead
    more, not 1 MiB. O_DIRECT keeps the kernel's own read-ahead out of the count."""
    data = os.urandom(16 << 20)
    bucket.put("run/ra.bin", data)
    m = mount_factory(bucket, "run", opts=["read_ahead=128K"])
    os.stat(m.p("ra.bin"))
    bucket.reset_stats()
    fd = os.open(m.p("ra.bin"), os.O_RDONLY | os.O_DIRECT)
    try:
        assert os.read(fd, 64 << 10) == data[:64 << 10]
        time.sleep(0.5)             # what was started finishes
    finally:
        os.close(fd)
    out = bucket.stats()["bytes_out"]
    assert out <= (256 << 10) + 4096, out


def test_reads_answered_as_files_close(bucket, mount_factory):
    """A read's reply lets the program close its file at once: the release can run
    while the thread that answered is still finishing the read. Many short-lived
    readers make that window common; the mount must outlive it (under
    AddressSanitizer a use after free aborts it)."""
    datas = {}
    for i in range(4):
        datas[i] = os.urandom((256 << 10) + i * 4096)
        bucket.put("run/c%d" % i, datas[i])
    m = mount_factory(bucket, "run", opts=["stat_ttl=60"])
    errors = []

    def worker(k):
        for n in range(150):
            i = (k + n) % 4
            # Sequential reads are answered from prefetched segments, a read
            # elsewhere from a buffer of its own: both kinds, each then closed.
            off = 0 if n % 2 else 64 << 10
            try:
                fd = os.open(m.p("c%d" % i), os.O_RDONLY)
                try:
                    got = os.pread(fd, 128 << 10, off)
                finally:
                    os.close(fd)
                if got != datas[i][off:off + (128 << 10)]:
                    errors.append("c%d: wrong bytes at %d" % (i, off))
            except OSError as e:
                errors.append("c%d: %s" % (i, e))
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []      # and the mount's exit status, checked at teardown


def read_until(f, want, timeout):
    """Read f (unbuffered) at its end until want bytes came or timeout passed."""
    got = b""
    end = time.time() + timeout
    while len(got) < want and time.time() < end:
        chunk = f.read(want - len(got))
        if chunk:
            got += chunk
        else:
            time.sleep(0.1)
    return got


def test_open_file_follows_appends_made_elsewhere(bucket, mount_factory):
    """tail -f, TensorBoard: a file held open and read at its end sees what another
    writer appends, through the same open file, once stat_ttl has passed. Each
    step is checked (the CRC32C of the bytes held, continued over the new tail,
    must be the new generation's), so a replacement is never followed."""
    m = mount_factory(bucket, "run", opts=["stat_ttl=1"])
    data = os.urandom(300 << 10)
    bucket.put("run/events.log", data)
    f = open(m.p("events.log"), "rb", buffering=0)
    try:
        assert read_until(f, len(data), 5) == data
        assert f.read(4096) == b""
        for size in (700 << 10, 1500 << 10, 3 << 20):   # within, past, well past a check piece
            tail = os.urandom(size)
            bucket.put("tmp/tail", tail)                 # an append, as live publishing makes it
            bucket.compose("run/events.log", ["run/events.log", "tmp/tail"])
            data += tail
            assert read_until(f, len(tail), 15) == tail
        assert f.read(4096) == b""
        # Replaced by other, longer bytes: the open file keeps its own.
        other = os.urandom(len(data) + (100 << 10))
        bucket.put("run/events.log", other)
        time.sleep(2)
        try:
            assert f.read(1 << 20) == b""
            f.seek(0)
            assert f.read(len(data) + 1) == data
        except OSError as e:
            assert e.errno == errno.ESTALE            # or the old bytes are gone
    finally:
        f.close()
    with open(m.p("events.log"), "rb") as g:
        assert g.read() == other


def test_reader_in_another_mount_follows_a_live_written_file(bucket, mount_factory):
    """The pods of the mission: a training job writes an event file through one
    mount, only flushing it, and TensorBoard in another pod keeps it open and reads
    on at its end. The reader sees the file grow while it is written, and ends with
    exactly the bytes written."""
    w = mount_factory(bucket, "run", opts=["publish_interval=1"])
    r = mount_factory(bucket, "run", opts=["stat_ttl=1"])
    written = bytearray()
    first = os.urandom(64 << 10)
    with open(w.p("events.out"), "wb") as out:
        out.write(first)
    written += first
    f = open(r.p("events.out"), "rb", buffering=0)
    try:
        got = bytearray(read_until(f, len(first), 10))
        grew_while_open = False
        with open(w.p("events.out"), "ab") as out:
            end = time.time() + 6
            while time.time() < end:
                rec = os.urandom(random.randint(100, 40000))
                out.write(rec)
                out.flush()
                written += rec
                got += f.read(1 << 20)
                if len(got) > len(first):
                    grew_while_open = True
                time.sleep(0.05)
        got += read_until(f, len(written) - len(got), 20)
    finally:
        f.close()
    assert grew_while_open, "nothing new was read while the file was being written"
    assert bytes(got) == bytes(written)


def test_tail_f_in_another_mount_follows_a_growing_log(bucket, mount_factory):
    """GNU tail -f (polling, as it does on FUSE) in one mount over a log that a
    program appends to through another: tail prints every line, in order."""
    w = mount_factory(bucket, "run", opts=["publish_interval=1"])
    r = mount_factory(bucket, "run", opts=["stat_ttl=1"])
    lines = [b"step %d loss %f\n" % (k, random.random()) for k in range(60)]
    with open(w.p("train.log"), "wb") as out:
        out.write(lines[0])
    tail = subprocess.Popen(["tail", "-c", "+1", "-f", "-s", "0.2", r.p("train.log")],
                            stdout=subprocess.PIPE)
    try:
        with open(w.p("train.log"), "ab") as out:
            for line in lines[1:]:
                out.write(line)
                out.flush()
                time.sleep(0.05)
        want = b"".join(lines)
        got = b""
        end = time.time() + 20
        os.set_blocking(tail.stdout.fileno(), False)
        while len(got) < len(want) and time.time() < end:
            chunk = tail.stdout.read()
            if chunk:
                got += chunk
            else:
                time.sleep(0.1)
        assert got == want
    finally:
        tail.kill()
        tail.wait()


def test_followed_tail_is_fetched_once(bucket, mount_factory):
    """Checking an append reads its bytes; the reads after are served from them,
    not from a second transfer of the same tail (up to four check pieces)."""
    m = mount_factory(bucket, "run", opts=["stat_ttl=1"])
    head = os.urandom(200 << 10)
    bucket.put("run/events.log", head)
    tail = os.urandom(3 << 20)
    bucket.put("tmp/tail", tail)
    with open(m.p("events.log"), "rb", buffering=0) as f:
        assert read_until(f, len(head), 5) == head
        time.sleep(1.2)                  # the next read past the end asks the bucket
        bucket.compose("run/events.log", ["run/events.log", "tmp/tail"])
        bucket.reset_stats()
        assert read_until(f, len(tail), 15) == tail
        served = bucket.stats()["bytes_out"]
    assert served < len(tail) + (256 << 10), "%d bytes served for a tail of %d" % (
        served, len(tail))


@pytest.mark.slow
def test_long_append_is_checked_over_several_reads(bucket, mount_factory):
    """A read checks at most 256 MiB of new tail: a longer append is checked over
    the reads that come after (each finding the old end meanwhile), and then read
    on like any other."""
    m = mount_factory(bucket, "run", opts=["stat_ttl=1"])
    head = os.urandom(1 << 20)
    bucket.put("run/long.bin", head)
    with open(m.p("long.bin"), "rb", buffering=0) as f:
        assert read_until(f, len(head), 5) == head
        tail = os.urandom(300 << 20)
        bucket.put("tmp/tail", tail)
        bucket.compose("run/long.bin", ["run/long.bin", "tmp/tail"])
        time.sleep(1.5)
        first = f.read(1 << 20)             # checks the first 256 MiB of the tail
        got = read_until(f, len(tail), 60)
    assert first == b""
    assert got == tail


def test_du_and_tar_read_a_run_directory_as_the_bucket_holds_it(bucket, mount_factory,
                                                                 tmp_path):
    """Real readers of a run's outputs: du sees every object's size, and tar archives
    bytes equal to the objects (and does not find a file "changed as we read it"),
    with listings and ranged GETs only, not a metadata request per entry."""
    objs = {
        "run/logs/events.out.tfevents.1700000000.host": os.urandom(300_000),
        "run/ckpt/model-00001-of-00002.bin": os.urandom(3 << 20),
        "run/ckpt/model-00002-of-00002.bin": os.urandom(1 << 20),
        "run/ckpt/checkpoint": b'model_checkpoint_path: "model"\n',
        "run/a/b/c/deep.txt": b"deep",
        "run/empty": b"",
    }
    for i in range(150):
        objs["run/metrics/step-%04d.json" % i] = b'{"step": %d, "loss": %f}\n' % (i, 1.0 / (i + 1))
    for name, data in objs.items():
        bucket.put(name, data)
    m = mount_factory(bucket, "run")
    bucket.reset_stats()
    du = subprocess.run(["du", "-ab", m.path], capture_output=True, text=True, check=True)
    sizes = {}
    for line in du.stdout.splitlines():
        size, path = line.split("\t", 1)
        sizes["run/" + os.path.relpath(path, m.path)] = int(size)
    for name, data in objs.items():
        assert sizes.get(name) == len(data), name
    archive = tmp_path / "run.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", m.path, "."], capture_output=True,
                   text=True, check=True)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    got = {}
    for root, _, files in os.walk(out):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                got["run/" + os.path.relpath(p, out)] = fh.read()
    assert got.keys() == objs.keys()
    for name, data in objs.items():
        assert got[name] == data, name
    kinds = bucket.stats()["requests"]
    assert kinds.get("object.get", 0) <= 3, kinds          # no stat per entry
    assert kinds.get("object.list", 0) <= 16, kinds        # 7 directories
    assert kinds.get("object.media", 0) <= len(objs) + 10, kinds
