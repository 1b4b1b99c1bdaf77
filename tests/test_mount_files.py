"""Files and directories through a real mount, checked through the API."""

import base64
import errno
import hashlib
import os
import subprocess
import stat

import crc32c
import pytest


def obj_crc(data):
    return base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("size", [0, 1, 300_000, 20_000_000])
def test_round_trip_sizes(bucket, mount_factory, size):
    data = os.urandom(size)
    m = mount_factory(bucket, "run")
    with open(m.p("f.bin"), "wb") as f:
        f.write(data)
    meta = bucket.stat("run/f.bin")
    assert int(meta["size"]) == size
    assert meta["crc32c"] == obj_crc(data)
    assert meta["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert bucket.get("run/f.bin") == data
    assert os.stat(m.p("f.bin")).st_size == size
    # A fresh mount reads the bytes from the server, not from a local copy.
    m.stop()
    m2 = mount_factory(bucket, "run")
    with open(m2.p("f.bin"), "rb") as f:
        assert f.read() == data


def test_objects_put_through_api_appear(bucket, mnt):
    bucket.put("run/hello.txt", b"hello from the API")
    bucket.put("run/sub/deep.txt", b"deep")
    assert sorted(os.listdir(mnt.path)) == ["hello.txt", "sub"]
    with open(mnt.p("hello.txt"), "rb") as f:
        assert f.read() == b"hello from the API"
    st = os.stat(mnt.p("hello.txt"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 18


def test_implicit_directories(bucket, mnt):
    bucket.put("run/a/b/c/file.txt", b"x" * 10)
    assert os.listdir(mnt.path) == ["a"]
    assert stat.S_ISDIR(os.stat(mnt.p("a", "b")).st_mode)
    assert os.listdir(mnt.p("a", "b", "c")) == ["file.txt"]
    with open(mnt.p("a", "b", "c", "file.txt"), "rb") as f:
        assert f.read() == b"x" * 10
    # Writing into an implicit directory puts the object under it.
    with open(mnt.p("a", "b", "new.txt"), "w") as f:
        f.write("n")
    assert bucket.get("run/a/b/new.txt") == b"n"
    found = sorted(p for p, _, _ in os.walk(mnt.path))
    assert found == [mnt.path, mnt.p("a"), mnt.p("a", "b"), mnt.p("a", "b", "c")]


def test_prefix_mount_stays_inside(bucket, mount_factory):
    bucket.put("outside.txt", b"o")
    bucket.put("runner/x.txt", b"r")      # shares the prefix's first letters
    bucket.put("run.txt", b"f")           # a sibling object named like the prefix
    bucket.put("run/inside.txt", b"i")
    m = mount_factory(bucket, "run")
    assert os.listdir(m.path) == ["inside.txt"]
    with open(m.p("made.txt"), "w") as f:
        f.write("m")
    os.mkdir(m.p("d"))
    os.rename(m.p("made.txt"), m.p("d", "moved.txt"))
    names = sorted(o["name"] for o in bucket.list()[0])
    assert names == ["outside.txt", "run.txt", "run/d/", "run/d/moved.txt",
                     "run/inside.txt", "runner/x.txt"]
    assert not os.path.exists(m.p("outside.txt"))
    assert not os.path.exists(m.p("x.txt"))


def test_nested_prefix_and_bucket_root(bucket, mount_factory):
    bucket.put("a/b/c/x.txt", b"1")
    bucket.put("top.txt", b"2")
    m = mount_factory(bucket, "a/b")
    assert os.listdir(m.path) == ["c"]
    root = mount_factory(bucket, "")
    assert sorted(os.listdir(root.path)) == ["a", "top.txt"]


def test_mkdir_rmdir(bucket, mnt):
    os.mkdir(mnt.p("d"))
    assert bucket.exists("run/d/")
    assert stat.S_ISDIR(os.stat(mnt.p("d")).st_mode)
    with pytest.raises(FileExistsError):
        os.mkdir(mnt.p("d"))
    with open(mnt.p("d", "f"), "w") as f:
        f.write("x")
    with pytest.raises(OSError) as e:
        os.rmdir(mnt.p("d"))
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(mnt.p("d", "f"))
    os.rmdir(mnt.p("d"))
    assert not bucket.exists("run/d/")
    assert os.listdir(mnt.path) == []


def test_rmdir_of_implicit_dir_with_content_refused(bucket, mnt):
    bucket.put("run/imp/sub/x", b"x")
    with pytest.raises(OSError) as e:
        os.rmdir(mnt.p("imp"))
    assert e.value.errno == errno.ENOTEMPTY
    assert bucket.exists("run/imp/sub/x")


def test_rmdir_keeps_a_placeholder_that_holds_data(bucket, mnt):
    """An object "d/" with bytes in it (some tools write such) is data: rmdir of
    the empty-looking directory refuses rather than deleting it unseen."""
    bucket.put("run/d/", b"notes kept in the directory object")
    assert os.listdir(mnt.p("d")) == []
    with pytest.raises(OSError) as e:
        os.rmdir(mnt.p("d"))
    assert e.value.errno == errno.ENOTEMPTY
    assert bucket.get("run/d/") == b"notes kept in the directory object"
    assert "'run/d/' holds 34 bytes; not deleting it" in mnt.read_log()


def test_rename_file(bucket, mnt):
    data = os.urandom(5000)
    with open(mnt.p("a.bin"), "wb") as f:
        f.write(data)
    os.rename(mnt.p("a.bin"), mnt.p("b.bin"))
    assert not bucket.exists("run/a.bin")
    assert bucket.get("run/b.bin") == data
    assert os.listdir(mnt.path) == ["b.bin"]
    # Over an existing file (the checkpoint pattern).
    with open(mnt.p("c.bin"), "wb") as f:
        f.write(b"old")
    os.rename(mnt.p("b.bin"), mnt.p("c.bin"))
    assert bucket.get("run/c.bin") == data
    assert sorted(o["name"] for o in bucket.list("run/")[0]) == ["run/c.bin"]


def test_rename_directory(bucket, mnt):
    os.makedirs(mnt.p("src", "inner"))
    files = {"src/a.txt": b"a", "src/inner/b.txt": b"b" * 1000}
    for rel, data in files.items():
        with open(mnt.p(rel), "wb") as f:
            f.write(data)
    bucket.put("run/src/implicit/c.txt", b"c")  # under an implicit subdirectory
    os.rename(mnt.p("src"), mnt.p("dst"))
    names = sorted(o["name"] for o in bucket.list("run/")[0])
    assert names == ["run/dst/", "run/dst/a.txt", "run/dst/implicit/c.txt",
                     "run/dst/inner/", "run/dst/inner/b.txt"]
    assert bucket.get("run/dst/inner/b.txt") == b"b" * 1000
    assert sorted(os.listdir(mnt.p("dst"))) == ["a.txt", "implicit", "inner"]
    with open(mnt.p("dst", "implicit", "c.txt"), "rb") as f:
        assert f.read() == b"c"
    assert not os.path.exists(mnt.p("src"))


def test_rename_dir_onto_nonempty_dir_refused(bucket, mnt):
    os.makedirs(mnt.p("a"))
    os.makedirs(mnt.p("b"))
    with open(mnt.p("b", "keep"), "w") as f:
        f.write("k")
    with pytest.raises(OSError) as e:
        os.rename(mnt.p("a"), mnt.p("b"))
    assert e.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    assert bucket.exists("run/a/") and bucket.exists("run/b/keep")


def test_unlink(bucket, mnt):
    with open(mnt.p("gone"), "w") as f:
        f.write("x")
    assert bucket.exists("run/gone")
    os.unlink(mnt.p("gone"))
    assert not bucket.exists("run/gone")
    with pytest.raises(FileNotFoundError):
        os.stat(mnt.p("gone"))


def test_truncate(bucket, mnt):
    data = os.urandom(100_000)
    with open(mnt.p("t"), "wb") as f:
        f.write(data)
    os.truncate(mnt.p("t"), 1000)
    assert bucket.get("run/t") == data[:1000]
    os.truncate(mnt.p("t"), 3000)
    assert bucket.get("run/t") == data[:1000] + b"\0" * 2000
    with open(mnt.p("t"), "r+b") as f:
        f.truncate(10)
    assert bucket.get("run/t") == data[:10]
    os.truncate(mnt.p("t"), 0)
    assert bucket.get("run/t") == b""
    assert os.stat(mnt.p("t")).st_size == 0


def test_append(bucket, mnt):
    with open(mnt.p("log"), "w") as f:
        f.write("one\n")
    with open(mnt.p("log"), "a") as f:
        f.write("two\n")
    with open(mnt.p("log"), "a") as f:
        f.write("three\n")
    assert bucket.get("run/log") == b"one\ntwo\nthree\n"
    assert os.stat(mnt.p("log")).st_size == 14


def test_overwrite_in_place(bucket, mnt):
    data = bytearray(os.urandom(600_000))
    with open(mnt.p("o"), "wb") as f:
        f.write(data)
    with open(mnt.p("o"), "r+b") as f:
        f.seek(300_000)
        f.write(b"PATCH")
        f.seek(10)
        f.write(b"HEAD")
    data[300_000:300_005] = b"PATCH"
    data[10:14] = b"HEAD"
    assert bucket.get("run/o") == bytes(data)


def test_read_own_unflushed_data(bucket, mnt):
    with open(mnt.p("rw"), "w+b") as f:
        f.write(b"abcdef")
        f.flush()
        with open(mnt.p("rw"), "rb") as r:
            assert r.read() == b"abcdef"
        f.seek(0)
        assert f.read() == b"abcdef"


def test_fsync_publishes(bucket, mnt):
    with open(mnt.p("s"), "wb") as f:
        f.write(b"first")
        f.flush()
        os.fsync(f.fileno())
        assert bucket.get("run/s") == b"first"
        f.write(b"second")
    assert bucket.get("run/s") == b"firstsecond"


def test_many_files_in_one_dir(bucket, mnt):
    os.mkdir(mnt.p("many"))
    for i in range(300):
        with open(mnt.p("many", "f%03d" % i), "w") as f:
            f.write(str(i))
    names = sorted(os.listdir(mnt.p("many")))
    assert names == ["f%03d" % i for i in range(300)]
    items = [o["name"] for o in bucket.list("run/many/")[0]]
    assert len(items) == 301  # 300 files and the placeholder


def test_listing_pages_and_costs(bucket, mount_factory):
    for i in range(2500):
        bucket.put("run/big/f%05d" % i, b"x" * (i % 7))
    m = mount_factory(bucket, "run")
    bucket.reset_stats()
    out = {}
    for e in os.scandir(m.p("big")):
        out[e.name] = e.stat().st_size
    assert len(out) == 2500 and out["f00006"] == 6
    kinds = bucket.stats()["requests"]
    assert kinds.get("object.list", 0) <= 6, kinds
    assert kinds.get("object.get", 0) <= 3, kinds


def test_ls_l_of_several_pages_costs_its_pages(bucket, mount_factory):
    """ls -l reads the whole listing first (large getdents buffers), then stats every
    entry: each part of the listing must carry attributes, or every stat is a lookup."""
    for i in range(2500):
        bucket.put("run/big/f%05d" % i, b"x" * (i % 5))
    m = mount_factory(bucket, "run")
    bucket.reset_stats()
    out = subprocess.run(["ls", "-l", m.p("big")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == 2501 and out[0].startswith("total ")
    kinds = bucket.stats()["requests"]
    assert kinds.get("object.list", 0) <= 6, kinds
    assert kinds.get("object.get", 0) <= 3, kinds


def test_remount_shows_everything(bucket, mount_factory):
    m = mount_factory(bucket, "run")
    os.makedirs(m.p("x", "y"))
    with open(m.p("x", "y", "z.txt"), "w") as f:
        f.write("zz")
    with open(m.p("top"), "wb") as f:
        f.write(b"t" * 12345)
    m.remount()
    assert sorted(os.listdir(m.path)) == ["top", "x"]
    assert os.stat(m.p("top")).st_size == 12345
    with open(m.p("x", "y", "z.txt")) as f:
        assert f.read() == "zz"


def test_symlink(bucket, mnt):
    # gcsfuse's older form: an empty object naming its target in metadata.
    bucket.put("run/old", b"", metadata={"metadata": {"gcsfuse_symlink_target": "t2"}})
    os.symlink("target/file.txt", mnt.p("link"))
    assert os.readlink(mnt.p("link")) == "target/file.txt"
    meta = bucket.stat("run/link")
    assert meta["metadata"]["goog-reserved-file-is-symlink"] == "true"
    assert bucket.get("run/link") == b"target/file.txt"
    assert os.readlink(mnt.p("old")) == "t2"


def test_mtime(bucket, mnt):
    # Written by other tools before the mount looks (a name made behind its back
    # in a directory it has listed shows within negative_ttl, see test_dircache).
    bucket.put("run/r", b"r", metadata={"metadata": {"mtime": "2001-02-03T04:05:06.5Z"}})
    bucket.put("run/g", b"g", metadata={"metadata": {"goog-reserved-file-mtime": "1000000000"}})
    bucket.put("run/f", b"f", metadata={"metadata": {"gcsfuse_mtime": "2010-01-01T00:00:00Z"}})
    with open(mnt.p("m"), "w") as f:
        f.write("x")
    os.utime(mnt.p("m"), ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    md = bucket.stat("run/m")["metadata"]
    assert md["goog-reserved-file-mtime"] == "1600000000"
    assert md["mtime"] == "2020-09-13T12:26:40.123456789Z"
    assert os.stat(mnt.p("m")).st_mtime_ns == 1_600_000_000_123_456_789
    assert os.stat(mnt.p("r")).st_mtime_ns == 981173106_500_000_000
    assert os.stat(mnt.p("g")).st_mtime == 1_000_000_000
    assert os.stat(mnt.p("f")).st_mtime == 1_262_304_000


def test_statfs(mnt):
    st = os.statvfs(mnt.path)
    assert st.f_bavail * st.f_frsize > 1 << 40


def test_file_and_dir_with_same_name(bucket, mnt):
    bucket.put("run/both", b"file")
    bucket.put("run/both/inner", b"i")
    assert os.listdir(mnt.path) == ["both"]
    assert stat.S_ISDIR(os.stat(mnt.p("both")).st_mode)
    assert os.listdir(mnt.p("both")) == ["inner"]
