"""Lookups answered from what a directory is known to hold (fs/dircache.c).

A directory's children are known after a readdir to the end, after this
mount's own mkdir, or after a lookup miss whose one-page listing was the
whole directory. Then a missing name costs no request, for negative_ttl
(listed directories) or type_ttl (directories this mount made). Request
counts come from the emulator's /_emu/ counters.
"""

import errno
import os
import stat
import subprocess
import threading

import pytest

from test_mount_errors import wait_for_kept
from test_write_path import wait_for


def requests(bucket):
    return bucket.stats()["requests"]


def lookups(reqs):
    return reqs.get("object.get", 0) + reqs.get("object.list", 0)


def test_cp_r_into_new_directory_is_one_upload_per_file(bucket, mnt, tmp_path):
    n = 150
    src = tmp_path / "tree"
    src.mkdir()
    for i in range(n):
        (src / ("f%03d" % i)).write_bytes(b"%d" % i * 500)
    bucket.reset_stats()
    subprocess.run(["cp", "-r", str(src), mnt.path + "/"], check=True)
    reqs = requests(bucket)
    # One multipart upload per file and one for the directory's placeholder;
    # the lookup of "tree" itself (and the listing of the mount's root) is all
    # the rest: no object.get or object.list per file.
    assert reqs.get("object.insert.multipart") == n + 1, reqs
    assert lookups(reqs) <= 4, reqs
    items = {o["name"] for o in bucket.list("run/tree/")[0]}
    assert len(items) == n + 1
    assert bucket.get("run/tree/f007") == b"7" * 500


def test_stat_of_a_cold_directory_lists_it_once(bucket, mnt):
    for i in range(250):
        bucket.put("run/st/f%05d" % i, b"x" * i)
    bucket.reset_stats()
    for i in range(250):
        assert os.stat(mnt.p("st", "f%05d" % i)).st_size == i
    reqs = requests(bucket)
    assert sum(reqs.values()) <= 6, reqs       # not 2 per file
    # Names the listing did not have are answered without asking.
    bucket.reset_stats()
    for i in range(50):
        assert not os.path.exists(mnt.p("st", "missing%d" % i))
    assert sum(requests(bucket).values()) == 0


def test_readdir_to_the_end_makes_children_known(bucket, mnt):
    for i in range(20):
        bucket.put("run/d/f%02d" % i, b"y")
    assert len(os.listdir(mnt.p("d"))) == 20
    bucket.reset_stats()
    assert os.stat(mnt.p("d", "f05")).st_size == 1
    assert not os.path.exists(mnt.p("d", "nope"))
    assert sum(requests(bucket).values()) == 0


def test_own_changes_keep_the_knowledge_exact(bucket, mnt):
    os.mkdir(mnt.p("w"))
    with open(mnt.p("w", "a"), "w") as f:
        f.write("a")
    os.symlink("a", mnt.p("w", "l"))
    os.mkdir(mnt.p("w", "sub"))
    os.rename(mnt.p("w", "a"), mnt.p("w", "b"))
    with open(mnt.p("w", "gone"), "w") as f:
        f.write("g")
    os.unlink(mnt.p("w", "gone"))
    os.rmdir(mnt.p("w", "sub"))
    bucket.reset_stats()
    assert not os.path.exists(mnt.p("w", "a"))
    assert not os.path.exists(mnt.p("w", "gone"))
    assert not os.path.exists(mnt.p("w", "sub"))
    assert os.readlink(mnt.p("w", "l")) == "a"
    assert lookups(requests(bucket)) == 0
    with open(mnt.p("w", "b")) as f:
        assert f.read() == "a"
    assert sorted(os.listdir(mnt.p("w"))) == ["b", "l"]
    names = sorted(o["name"] for o in bucket.list("run/w/")[0])
    assert names == ["run/w/", "run/w/b", "run/w/l"]


def test_a_name_made_behind_the_mount_shows_after_negative_ttl(bucket, mount_factory):
    bucket.put("run/l/one", b"1")
    m = mount_factory(bucket, "run", opts=["negative_ttl=1"])
    assert os.path.exists(m.p("l", "one"))        # lists l: one page, complete
    bucket.put("run/l/two", b"22")
    bucket.reset_stats()
    seen_at_once = os.path.exists(m.p("l", "two"))
    if not seen_at_once:
        assert lookups(requests(bucket)) == 0       # answered from the listing
    # Within negative_ttl of the listing (and of the negative entry) it shows.
    wait_for(lambda: os.path.exists(m.p("l", "two")), timeout=2.5,
             what="a name created through the API")
    assert os.stat(m.p("l", "two")).st_size == 2


def test_a_directory_made_here_is_known_for_type_ttl(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["type_ttl=2", "negative_ttl=1"])
    os.mkdir(m.p("out"))
    bucket.put("run/out/theirs", b"t")
    bucket.reset_stats()
    assert not os.path.exists(m.p("out", "theirs"))  # made here: known empty
    assert lookups(requests(bucket)) == 0
    wait_for(lambda: os.path.exists(m.p("out", "theirs")), timeout=3.5,
             what="a name created through the API in a directory made here")


def test_create_over_a_name_known_absent_is_a_conflict_not_a_clobber(bucket, mnt):
    os.mkdir(mnt.p("c"))
    bucket.put("run/c/x", b"theirs")               # behind the mount's back
    f = open(mnt.p("c", "x"), "w")                 # the mount thinks x is absent
    f.write("mine")
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.ESTALE
    assert bucket.get("run/c/x") == b"theirs"
    # The conflict dropped what the mount knew: the next look sees their file
    # (once the kernel has released the handle, which close does not wait for).
    wait_for(lambda: os.stat(mnt.p("c", "x")).st_size == len(b"theirs"), timeout=5,
             what="the other writer's file")
    with open(mnt.p("c", "x"), "rb") as g:
        assert g.read() == b"theirs"
    bucket.put("run/c/y", b"y")
    assert os.path.exists(mnt.p("c", "y"))
    kept = wait_for_kept(mnt, "run/c/x")           # "mine" is not lost
    with open(kept, "rb") as g:
        assert g.read() == b"mine"
    assert mnt.stop() == 3


def test_mkdir_over_a_name_known_absent_drops_the_knowledge(bucket, mnt):
    os.mkdir(mnt.p("m"))
    bucket.put("run/m/sub/", b"")
    with pytest.raises(FileExistsError):
        os.mkdir(mnt.p("m", "sub"))
    bucket.put("run/m/other", b"o")
    assert os.path.exists(mnt.p("m", "other"))


def test_rename_of_a_vanished_source_drops_the_knowledge(bucket, mnt):
    bucket.put("run/r/x", b"x")
    assert os.path.exists(mnt.p("r", "x"))         # r listed: complete
    bucket.delete("run/r/x")
    with pytest.raises(FileNotFoundError):
        os.rename(mnt.p("r", "x"), mnt.p("r", "y"))
    bucket.put("run/r/z", b"z")
    assert os.path.exists(mnt.p("r", "z"))         # asked the bucket again
    assert not os.path.exists(mnt.p("r", "y"))


def test_a_directory_larger_than_a_page_is_not_known_by_a_lookup(bucket, mnt):
    for i in range(1001):                           # one page is 1,000 entries
        bucket.put("run/big/f%04d" % i, b"")
    assert os.path.isdir(mnt.p("big"))
    bucket.reset_stats()
    assert os.path.exists(mnt.p("big", "f0000"))
    reqs = requests(bucket)
    assert reqs == {"object.get": 1, "object.list": 2}, reqs  # and one page of big
    bucket.put("run/big/late", b"l")
    bucket.reset_stats()
    assert os.path.exists(mnt.p("big", "late"))    # asked, not answered from a page
    assert not os.path.exists(mnt.p("big", "nope"))
    reqs = requests(bucket)
    # get + list per name, and no second listing of the big directory.
    assert reqs == {"object.get": 2, "object.list": 2}, reqs


def test_negative_ttl_zero_turns_it_off(bucket, mount_factory, tmp_path):
    m = mount_factory(bucket, "run", opts=["negative_ttl=0"])
    os.mkdir(m.p("d"))
    bucket.put("run/d/x", b"x")
    assert os.path.exists(m.p("d", "x"))


def test_listings_answered_as_directories_close(bucket, mount_factory):
    """readdir's reply lets the program close the directory at once: the release
    can run while the thread that answered is still finishing. Many short
    listings make that window common; the mount must outlive it."""
    for i in range(40):
        bucket.put("run/d/f%02d" % i, b"x")
    m = mount_factory(bucket, "run")
    want = sorted("f%02d" % i for i in range(40))
    errors = []

    def worker():
        for _ in range(60):
            try:
                got = sorted(os.listdir(m.p("d")))
            except OSError as e:
                errors.append(str(e))
                return
            if got != want:
                errors.append("listed %d names" % len(got))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []      # and the mount's exit status, checked at teardown


@pytest.mark.parametrize("between", [0, 1100, 2300])
def test_an_object_and_a_directory_of_one_name_on_different_pages(bucket, mnt, between):
    """An object "y" and objects under "y/": names "y-..." sort between them, so
    with enough of those the prefix "y/" comes a page or two after "y". Listed
    the directory shows as a directory (as when both are on one page), and what
    is under it can be reached."""
    bucket.put("run/y", b"the file")
    for i in range(between):
        bucket.put("run/y-%04d" % i, b"")
    bucket.put("run/y/inner", b"inside")
    bucket.put("run/z", b"last")
    names = os.listdir(mnt.p())
    assert names.count("y") == 1 and "z" in names and len(names) == between + 2
    st = os.lstat(mnt.p("y"))
    assert stat.S_ISDIR(st.st_mode)
    assert os.listdir(mnt.p("y")) == ["inner"]
    with open(mnt.p("y", "inner"), "rb") as f:
        assert f.read() == b"inside"
    assert "both an object and a directory" in mnt.read_log()
