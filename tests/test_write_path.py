"""The write path: streamed uploads, fsync that publishes, compose appends,
staged random writes, the spool across kill -9, integrity and conflicts.
Every check goes through the API, not through the mount alone."""

import errno
import os
import subprocess
import threading
import time

import pytest

TMP = ".gcsmount-tmp/"


def tmp_objects(bucket, prefix="run/"):
    return [o["name"] for o in bucket.list(prefix + TMP)[0]]


def wait_for(cond, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_streams_while_writing(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["chunk_size=1M"])
    data = os.urandom(12 << 20)
    bucket.reset_stats()
    with open(m.p("stream.bin"), "wb") as f:
        f.write(data[:10 << 20])
        f.flush()
        # Chunks go up while the file is still open and being written.
        wait_for(lambda: bucket.stats()["requests"].get("upload.chunk", 0) >= 5,
                 what="chunks uploaded before close")
        assert not bucket.exists("run/stream.bin")
        f.write(data[10 << 20:])
    assert bucket.get("run/stream.bin") == data
    st = bucket.stats()["requests"]
    assert st.get("object.insert.resumable_start") == 1
    assert st.get("upload.chunk", 0) >= 10


def _resident_bytes(path):
    """Bytes of path in the page cache (mincore over a copy-on-write mapping that
    is never written, so its pages are the file's)."""
    import ctypes
    import mmap
    size = os.path.getsize(path)
    if size == 0:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            first = ctypes.c_char.from_buffer(mm)
            base = ctypes.addressof(first)
            del first
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            if libc.mincore(ctypes.c_void_p(base), ctypes.c_size_t(size), vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
            return sum(v & 1 for v in vec) * page
        finally:
            mm.close()


def test_streamed_bytes_leave_the_page_cache(bucket, mount_factory):
    """Bytes the server confirmed are let go from the spool's page cache (written
    out, then dropped), so a long streamed file holds a few chunks of memory, not its
    size: a pod's memory limit counts page cache."""
    m = mount_factory(bucket, "run", opts=["chunk_size=4M"])
    data = os.urandom(64 << 20)
    bucket.reset_stats()
    with open(m.p("big.bin"), "wb") as f:
        f.write(data)
        f.flush()
        wait_for(lambda: bucket.stats()["requests"].get("upload.chunk", 0) >= 15,
                 what="chunks uploaded before close")
        spooled = [os.path.join(m.spool, d, n) for d in os.listdir(m.spool)
                   if os.path.isdir(os.path.join(m.spool, d))
                   for n in os.listdir(os.path.join(m.spool, d)) if n.endswith(".data")]
        assert len(spooled) == 1, spooled
        resident = _resident_bytes(spooled[0])
        assert resident < 32 << 20, resident
    assert bucket.get("run/big.bin") == data


def test_fsync_then_write_then_close(bucket, mnt):
    a, b = os.urandom(3 << 20), os.urandom(5 << 20)
    with open(mnt.p("f"), "wb") as f:
        f.write(a)
        f.flush()
        os.fsync(f.fileno())
        assert bucket.get("run/f") == a
        f.write(b)
        f.flush()
        os.fsync(f.fileno())
        assert bucket.get("run/f") == a + b
        f.write(b"tail")
    assert bucket.get("run/f") == a + b + b"tail"
    meta = bucket.stat("run/f")
    assert meta["componentCount"] >= 2  # the tails were composed, not re-uploaded
    assert tmp_objects(bucket) == []
    with open(mnt.p("f"), "rb") as f:
        assert f.read() == a + b + b"tail"


def test_append_composes_without_reupload(bucket, mnt):
    old = os.urandom(30_000_000)
    bucket.put("run/big.log", old)
    bucket.reset_stats()
    new = b"appended line\n" * 1000
    with open(mnt.p("big.log"), "ab") as f:
        f.write(new)
    st = bucket.stats()
    assert bucket.get("run/big.log") == old + new
    assert st["requests"].get("object.media", 0) == 0       # nothing downloaded
    assert st["bytes_in"] < 1_000_000                        # only the tail went up
    assert bucket.stat("run/big.log")["componentCount"] >= 2
    assert tmp_objects(bucket) == []


def test_tee_append_logs(bucket, mnt):
    for i in range(5):
        subprocess.run(["tee", "-a", mnt.p("train.log")], input=b"epoch %d\n" % i,
                       stdout=subprocess.DEVNULL, check=True)
    assert bucket.get("run/train.log") == b"".join(b"epoch %d\n" % i for i in range(5))
    assert tmp_objects(bucket) == []


def test_random_writes_are_staged(bucket, mnt):
    data = bytearray(os.urandom(6 << 20))
    bucket.put("run/r.bin", bytes(data))
    subprocess.run(["dd", "if=/dev/zero", "of=" + mnt.p("r.bin"), "bs=4096", "count=3",
                    "seek=100", "conv=notrunc", "status=none"], check=True)
    data[409600:409600 + 12288] = bytes(12288)
    assert bucket.get("run/r.bin") == bytes(data)
    with open(mnt.p("r.bin"), "r+b") as f:   # seek back after appending
        f.seek(0, 2)
        f.write(b"END")
        f.seek(5)
        f.write(b"xy")
    data += b"END"
    data[5:7] = b"xy"
    assert bucket.get("run/r.bin") == bytes(data)


def test_h5py_writer(bucket, mnt, tmp_path):
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    arr = np.arange(200_000, dtype="float64").reshape(400, 500)
    with h5py.File(mnt.p("model.h5"), "w") as f:
        f.create_dataset("weights", data=arr, chunks=(50, 50))
        f.attrs["epoch"] = 7
        g = f.create_group("opt")
        g.create_dataset("m", data=arr[:10] * 2)
    local = tmp_path / "model.h5"
    local.write_bytes(bucket.get("run/model.h5"))
    with h5py.File(local, "r") as f:
        assert (f["weights"][:] == arr).all()
        assert f.attrs["epoch"] == 7
        assert (f["opt/m"][:] == arr[:10] * 2).all()


def test_checkpoint_tempstate_rename(bucket, mnt):
    # TensorFlow writes checkpoint.tempstateNNN, fsyncs, renames over the old one.
    for step in range(3):
        data = os.urandom(200_000 + step)
        tmp = mnt.p("checkpoint.tempstate%d" % step)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, mnt.p("checkpoint"))
        assert bucket.get("run/checkpoint") == data
    names = sorted(o["name"] for o in bucket.list("run/")[0])
    assert names == ["run/checkpoint"]


def test_cp_r_many_small_files(bucket, mnt, tmp_path):
    src = tmp_path / "src"
    for d in range(10):
        (src / ("d%d" % d)).mkdir(parents=True)
        for i in range(50):
            (src / ("d%d" % d) / ("f%d" % i)).write_bytes(b"%d-%d" % (d, i) * 100)
    subprocess.run(["cp", "-r", str(src), mnt.p("copy")], check=True)
    items = {o["name"]: int(o["size"]) for o in bucket.list("run/copy/")[0]}
    files = [n for n in items if not n.endswith("/")]
    assert len(files) == 500
    assert bucket.get("run/copy/d3/f7") == b"3-7" * 100


def journal_says_closing(m):
    import glob
    for path in glob.glob(os.path.join(m.spool, "*", "*.journal")):
        with open(path, "rb") as f:
            # Rewritten in place: what follows the end line is an older journal's.
            if b"\nclosing 1\n" in f.read().split(b"\nend ")[0] + b"\n":
                return True
    return False


def test_kill_9_mid_upload_resumes_session(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["chunk_size=1M"])
    # Not a whole number of chunks: the close always has bytes left to send.
    data = os.urandom((10 << 20) + 4321)
    bucket.reset_stats()
    f = open(m.p("ckpt.bin"), "wb")
    f.write(data)
    f.flush()
    wait_for(lambda: bucket.stats()["requests"].get("upload.chunk", 0) >= 3, what="streaming")
    # Hold every further chunk, then close: the close hangs inside the upload.
    bucket.set_faults([{"kind": "upload.chunk", "action": "stall-20s", "count": 1000}])
    closer = threading.Thread(target=lambda: _close_quietly(f))
    closer.start()
    wait_for(lambda: journal_says_closing(m), what="the close to begin")
    wait_for(lambda: bucket.faults()[0]["met"] >= 1, what="a stalled chunk")
    m.kill()
    closer.join(30)
    bucket.clear_faults()
    assert not bucket.exists("run/ckpt.bin")
    bucket.reset_stats()
    m.start()  # same spool: the restart finishes the upload
    wait_for(lambda: bucket.exists("run/ckpt.bin"), what="the recovered object")
    assert bucket.get("run/ckpt.bin") == data
    st = bucket.stats()
    assert st["requests"].get("upload.status", 0) >= 1    # asked the session where it was
    assert st["bytes_in"] < len(data) - (2 << 20)         # and did not start from zero
    assert "resuming its upload at byte" in m.read_log()
    spool = os.path.join(m.spool, os.listdir(m.spool)[0])
    wait_for(lambda: os.listdir(spool) == ["lock"], what="the spool entry to go")


def test_two_mounts_sharing_a_spool_keep_to_their_own(bucket, mount_factory, tmp_path):
    """Two mounts of the same bucket and prefix on one spool_dir (root's default is
    shared by all): the second must not take the first one's open file for an
    earlier run's leftover and publish it half written; each holds a directory of
    its own, and the first publishes the whole file at its close. (The file is held
    by a process of its own: a fork of this one would close a copy of it, and a
    close publishes.)"""
    a = mount_factory(bucket, "run", opts=["publish_interval=0"])
    head, tail = os.urandom(2 << 20), os.urandom(300 << 10)
    (tmp_path / "head").write_bytes(head)
    (tmp_path / "tail").write_bytes(tail)
    writer = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import sys\n"
         "f = open(sys.argv[1], 'wb')\n"
         "f.write(open(sys.argv[2], 'rb').read()); f.flush()\n"
         "print('written', flush=True); sys.stdin.readline()\n"
         "f.write(open(sys.argv[3], 'rb').read()); f.close()\n",
         a.p("held.bin"), str(tmp_path / "head"), str(tmp_path / "tail")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == b"written\n"
        b = mount_factory(bucket, "run", start=False, opts=["publish_interval=0"])
        b.spool = a.spool
        b.start()
        time.sleep(1)
        # Created empty at open; never the half written bytes.
        assert not bucket.exists("run/held.bin") or bucket.get("run/held.bin") == b""
        assert "another mount of the same bucket and prefix holds" in b.read_log()
    finally:
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
        assert writer.wait(60) == 0
    assert bucket.get("run/held.bin") == head + tail
    assert b.stop() == 0
    dirs = sorted(os.listdir(a.spool))
    assert len(dirs) == 2 and dirs[1] == dirs[0] + "-2", dirs


def _close_quietly(f):
    try:
        f.close()
    except OSError:
        pass


def test_unclosed_file_not_published_after_kill(bucket, mount_factory):
    # Without live publishing, a file never closed must not look complete.
    m = mount_factory(bucket, "run", opts=["chunk_size=1M", "publish_interval=0"])
    f = open(m.p("half.bin"), "wb")
    f.write(os.urandom(3 << 20))
    f.flush()
    m.kill()
    _close_quietly(f)
    m.start()
    time.sleep(1)
    assert not bucket.exists("run/half.bin")
    assert "never closed" in m.read_log()
    assert m.stop() == 3          # still in the spool, and said so


def test_spool_full_is_enospc(bucket, mount_factory, tmp_path):
    spool = tmp_path / "small-spool"
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(spool)], check=True)
    try:
        m = mount_factory(bucket, "run", opts=["spool_dir=%s" % spool])
        f = open(m.p("too-big"), "wb", buffering=0)
        with pytest.raises(OSError) as e:
            for _ in range(10):
                f.write(b"z" * (1 << 20))
        assert e.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as e:
            f.close()  # a file that lacks what was written is never published
        assert e.value.errno == errno.ENOSPC
        # Nothing half-written appears as if complete, and the mount goes on.
        assert not bucket.exists("run/too-big")
        os.unlink(m.p("too-big")) if os.path.exists(m.p("too-big")) else None
        with open(m.p("small"), "wb") as g:
            g.write(b"fits")
        assert bucket.get("run/small") == b"fits"
        m.stop()
    finally:
        subprocess.run(["umount", "-l", str(spool)])


def test_corrupt_chunk_rejected(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["chunk_size=1M"])
    bucket.set_faults([{"kind": "upload.chunk", "action": "corrupt-upload", "count": 1}])
    f = open(m.p("c.bin"), "wb")
    f.write(os.urandom(6 << 20))
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EIO
    assert bucket.faults()[0]["met"] == 1
    assert not bucket.exists("run/c.bin")
    assert m.stop() == 0, m.read_log()   # kept, and tried again by the shutdown
    assert int(bucket.stat("run/c.bin")["size"]) == 6 << 20


def test_write_budget_bounds_pending(bucket, mount_factory):
    # A tiny budget: writers wait for their chunks instead of running ahead.
    m = mount_factory(bucket, "run", opts=["chunk_size=256K", "write_buffer=1M"])
    datas = [os.urandom(4 << 20) for _ in range(4)]

    def write(i):
        with open(m.p("w%d" % i), "wb") as f:
            for k in range(0, len(datas[i]), 65536):
                f.write(datas[i][k:k + 65536])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i in range(4):
        assert bucket.get("run/w%d" % i) == datas[i]


@pytest.mark.slow
def test_component_cap_planned_for(bucket, mnt):
    expected = b""
    for i in range(1030):
        line = b"line %d\n" % i
        with open(mnt.p("many-appends.log"), "ab") as f:
            f.write(line)
        expected += line
    meta = bucket.stat("run/many-appends.log")
    assert meta.get("componentCount", 1) <= 1024
    assert bucket.get("run/many-appends.log") == expected
    assert tmp_objects(bucket) == []


def test_torch_save_and_load(bucket, mnt, tmp_path):
    torch = pytest.importorskip("torch")
    state = {"w": torch.arange(100_000, dtype=torch.float32).reshape(100, 1000),
             "step": torch.tensor(42)}
    # PyTorch's usual checkpoint dance: save to a temporary name, rename over.
    torch.save(state, mnt.p("model.pt.tmp"))
    os.rename(mnt.p("model.pt.tmp"), mnt.p("model.pt"))
    local = tmp_path / "model.pt"
    local.write_bytes(bucket.get("run/model.pt"))
    back = torch.load(str(local))
    assert torch.equal(back["w"], state["w"]) and int(back["step"]) == 42
    again = torch.load(mnt.p("model.pt"))
    assert torch.equal(again["w"], state["w"])


def test_truncate_by_name_while_open_then_read(bucket, mnt):
    """truncate(2) by name of a file held open for writing publishes the new size; a
    reader opened meanwhile, reading after the writer is closed, gets those bytes."""
    data = os.urandom(300_000)
    w = open(mnt.p("t"), "wb")
    w.write(data)
    w.flush()
    os.fsync(w.fileno())
    os.truncate(mnt.p("t"), 50_000)
    assert bucket.get("run/t") == data[:50_000]
    r = open(mnt.p("t"), "rb")
    w.close()
    try:
        assert r.read() == data[:50_000]
    finally:
        r.close()
    with open(mnt.p("t"), "rb") as f:
        assert f.read() == data[:50_000]
