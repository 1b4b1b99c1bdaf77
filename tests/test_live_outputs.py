"""Live outputs: files held open for hours (TensorFlow event files, logs that
are only fflush()ed) are published while they grow, every publish_interval,
as prefixes of what the program wrote cut between its writes."""

import os
import re
import threading
import time

import pytest

RECORD = re.compile(rb"rec (\d{6}) [0-9a-f]+\n")


def record(i):
    return b"rec %06d %s\n" % (i, os.urandom(20 + i % 50).hex().encode())


def check_version(v, final):
    """A published version: a prefix of the final file, made of whole records."""
    assert final.startswith(v), "not a prefix"
    pos = 0
    while pos < len(v):
        mm = RECORD.match(v, pos)
        assert mm, "torn record at byte %d" % pos
        pos = mm.end()


def tf_writer(path, seconds, period, out):
    """Appends a record every period, fflush only (no fsync, no close) until the end."""
    data = b""
    with open(path, "ab") as f:
        i = 0
        end = time.time() + seconds
        while time.time() < end:
            r = record(i)
            f.write(r)
            f.flush()
            data += r
            i += 1
            time.sleep(period)
        out["data"] = data
        out["closing"] = time.time()


def watch(bucket, names, stop, versions):
    while not stop.is_set():
        for n in names:
            try:
                v = bucket.get(n)
            except Exception:
                continue
            if not versions[n] or versions[n][-1] != v:
                versions[n].append(v)
        time.sleep(0.3)


@pytest.mark.parametrize("nfiles", [1, 4])
def test_event_files_published_while_open(bucket, mount_factory, nfiles):
    m = mount_factory(bucket, "run", opts=["publish_interval=3"])
    os.makedirs(m.p("logs"))
    names = ["run/logs/events.out.tfevents.%d" % i for i in range(nfiles)]
    versions = {n: [] for n in names}
    outs = [{} for _ in names]
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(bucket, names, stop, versions))
    watcher.start()
    writers = [threading.Thread(target=tf_writer,
                                args=(m.p(n[len("run/"):]), 20, 0.2, outs[k]))
               for k, n in enumerate(names)]
    for t in writers:
        t.start()
    time.sleep(5)
    # stat through the mount shows the current size at once.
    size_here = os.stat(m.p(names[0][len("run/"):])).st_size
    assert size_here > 0
    for t in writers:
        t.join()
    stop.set()
    watcher.join()
    for k, n in enumerate(names):
        final = outs[k]["data"]
        assert bucket.get(n) == final
        open_versions = [v for v in versions[n] if v != final]
        assert len(open_versions) >= 4, "grew %d times while open" % len(open_versions)
        for v in versions[n]:
            check_version(v, final)
    assert [o["name"] for o in bucket.list("run/.gcsmount-tmp/")[0]] == []


def test_kill_9_keeps_last_prefix_and_restart_completes(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["publish_interval=2"])
    path = m.p("train.log")
    f = open(path, "ab")
    data = b""
    for i in range(40):
        r = record(i)
        f.write(r)
        f.flush()
        data += r
        time.sleep(0.1)
    time.sleep(2.5)  # at least one publish has happened
    published = bucket.get("run/train.log")
    check_version(published, data)
    m.kill()
    try:
        f.close()
    except OSError:
        pass
    after_kill = bucket.get("run/train.log")
    check_version(after_kill, data)       # the last published prefix stays
    m.start()
    deadline = time.time() + 30
    while bucket.get("run/train.log") != data and time.time() < deadline:
        time.sleep(0.2)
    assert bucket.get("run/train.log") == data   # the restart completed it


def test_publish_off_with_zero_interval(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["publish_interval=0"])
    with open(m.p("quiet.log"), "ab") as f:
        f.write(b"x" * 100)
        f.flush()
        time.sleep(2)
        assert not bucket.exists("run/quiet.log")
    assert bucket.get("run/quiet.log") == b"x" * 100


def test_many_publishes_stay_under_component_cap(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["publish_interval=0.05"])
    data = b""
    with open(m.p("chatty.log"), "ab") as f:
        end = time.time() + 8
        i = 0
        while time.time() < end:
            r = record(i)
            f.write(r)
            f.flush()
            data += r
            i += 1
            time.sleep(0.01)
    meta = bucket.stat("run/chatty.log")
    assert meta.get("componentCount", 1) <= 1024
    assert bucket.get("run/chatty.log") == data
