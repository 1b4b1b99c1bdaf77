"""fsx-style test: a long seeded random sequence of operations on files
through the mount, checked against an in-memory model after every step and
against the object (through the API) after every close.

The seed is printed on failure; rerun one with FSX_SEED=N.
"""

import os
import random

import pytest

STEPS = int(os.environ.get("FSX_STEPS", "400"))
MAX_SIZE = 3 << 20


def run_fsx(bucket, m, seed, nfiles=3):
    rnd = random.Random(seed)
    model = {i: bytearray() for i in range(nfiles)}
    fds = {}
    log = []

    def path(i):
        return m.p("fsx%d" % i)

    def check_closed(i):
        assert bucket.get("run/fsx%d" % i) == bytes(model[i]), \
            "object differs after close; seed %d, ops %s" % (seed, log[-10:])

    for i in range(nfiles):
        with open(path(i), "wb"):
            pass
    for step in range(STEPS):
        i = rnd.randrange(nfiles)
        cur = model[i]
        if i not in fds:
            fds[i] = os.open(path(i), os.O_RDWR)
        fd = fds[i]
        op = rnd.choices(["write", "append", "truncate", "read", "close", "fsync"],
                         [30, 15, 10, 30, 10, 5])[0]
        log.append((step, i, op))
        if op == "write":
            off = rnd.randrange(0, min(len(cur) + 65536, MAX_SIZE))
            n = rnd.randrange(1, 200_000)
            data = rnd.randbytes(n)
            assert os.pwrite(fd, data, off) == n
            if off > len(cur):
                cur.extend(b"\0" * (off - len(cur)))
            cur[off:off + n] = data
        elif op == "append":
            data = rnd.randbytes(rnd.randrange(1, 50_000))
            os.pwrite(fd, data, len(cur))
            cur.extend(data)
        elif op == "truncate":
            size = rnd.randrange(0, min(len(cur) * 2 + 1000, MAX_SIZE))
            os.ftruncate(fd, size)
            if size < len(cur):
                del cur[size:]
            else:
                cur.extend(b"\0" * (size - len(cur)))
        elif op == "read":
            off = rnd.randrange(0, len(cur) + 100)
            n = rnd.randrange(1, 300_000)
            got = os.pread(fd, n, off)
            assert got == bytes(cur[off:off + n]), \
                "read mismatch at %d+%d; seed %d, ops %s" % (off, n, seed, log[-10:])
        elif op == "fsync":
            os.fsync(fd)
            check_closed(i)
        else:
            os.close(fds.pop(i))
            check_closed(i)
            assert os.stat(path(i)).st_size == len(cur)
        assert os.fstat(fd).st_size == len(cur) if i in fds else True
    for i, fd in list(fds.items()):
        os.close(fd)
        check_closed(i)
    # And once more through a fresh mount: bytes from the server.
    m.remount()
    for i in range(nfiles):
        with open(path(i), "rb") as f:
            assert f.read() == bytes(model[i]), "after remount; seed %d" % seed


@pytest.mark.parametrize("n", range(2))
def test_fsx(bucket, mount_factory, n):
    seed = int(os.environ.get("FSX_SEED", random.SystemRandom().randrange(1 << 30))) + n
    print("fsx seed", seed)
    m = mount_factory(bucket, "run")
    run_fsx(bucket, m, seed)
