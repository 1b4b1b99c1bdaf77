"""Mixed load against a reference model: 32 threads create, append,
overwrite, truncate, rename, read and delete files in one tree for a minute
while the emulator injects faults; every read is checked against the model
as it happens, and at the end the bucket must equal the model exactly."""

import os
import random
import threading
import time

import pytest

SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
THREADS = int(os.environ.get("LOAD_THREADS", "32"))
DIRS = ["", "a", "a/b", "c"]


@pytest.mark.slow
def test_mixed_load_matches_model(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["chunk_size=256K", "retry_deadline=60"])
    for d in DIRS[1:]:
        os.makedirs(m.p(d), exist_ok=True)
    model = {}            # relative path -> bytes, for every file the threads own
    lock = threading.Lock()
    errors = []
    counts = {}
    stop = time.time() + SECONDS

    def put(rel, data):
        with lock:
            if data is None:
                model.pop(rel, None)
            else:
                model[rel] = data

    def worker(tid):
        rnd = random.Random(tid * 7919 + 1)
        mine = {}         # this thread's files: rel -> bytes
        serial = 0
        while time.time() < stop and not errors:
            op = rnd.choices(["create", "append", "overwrite", "truncate", "rename", "read",
                              "delete"], [25, 20, 10, 8, 10, 20, 7])[0]
            if op != "create" and not mine:
                op = "create"
            try:
                if op == "create":
                    serial += 1
                    rel = os.path.join(rnd.choice(DIRS), "t%02d-%d" % (tid, serial))
                    data = rnd.randbytes(rnd.choice([0, 10, 5000, 300_000, 700_000]))
                    with open(m.p(rel), "wb") as f:
                        f.write(data)
                    mine[rel] = data
                elif op == "append":
                    rel = rnd.choice(sorted(mine))
                    add = rnd.randbytes(rnd.randrange(1, 100_000))
                    with open(m.p(rel), "ab") as f:
                        f.write(add)
                    mine[rel] += add
                elif op == "overwrite":
                    rel = rnd.choice(sorted(mine))
                    cur = bytearray(mine[rel])
                    off = rnd.randrange(0, len(cur) + 1)
                    patch = rnd.randbytes(rnd.randrange(1, 20_000))
                    with open(m.p(rel), "r+b") as f:
                        f.seek(off)
                        f.write(patch)
                    cur[off:off + len(patch)] = patch
                    mine[rel] = bytes(cur)
                elif op == "truncate":
                    rel = rnd.choice(sorted(mine))
                    size = rnd.randrange(0, len(mine[rel]) + 1000)
                    os.truncate(m.p(rel), size)
                    mine[rel] = mine[rel][:size] + bytes(max(0, size - len(mine[rel])))
                elif op == "rename":
                    rel = rnd.choice(sorted(mine))
                    serial += 1
                    new = os.path.join(rnd.choice(DIRS), "t%02d-%d" % (tid, serial))
                    os.rename(m.p(rel), m.p(new))
                    mine[new] = mine.pop(rel)
                    put(rel, None)
                    rel = new
                elif op == "read":
                    rel = rnd.choice(sorted(mine))
                    with open(m.p(rel), "rb") as f:
                        got = f.read()
                    if got != mine[rel]:
                        errors.append("read %s: %d bytes, model has %d" % (rel, len(got),
                                                                          len(mine[rel])))
                elif op == "delete":
                    rel = rnd.choice(sorted(mine))
                    os.unlink(m.p(rel))
                    del mine[rel]
                    put(rel, None)
                    rel = None
                if rel is not None and rel in mine:
                    put(rel, mine[rel])
                with lock:
                    counts[op] = counts.get(op, 0) + 1
            except OSError as e:
                errors.append("%s: %r" % (op, e))

    def faults():
        rnd = random.Random(99)
        kinds = ["object.insert.multipart", "object.media", "object.list", "object.get",
                 "object.delete", "object.rewrite", "object.compose", "upload.chunk"]
        while time.time() < stop - 2 and not errors:
            bucket.set_faults([{"kind": rnd.choice(kinds),
                                "action": rnd.choice(["return-503", "return-429", "return-500",
                                                      "reset-connection"]),
                                "count": rnd.randrange(1, 3)}])
            time.sleep(0.5)
        bucket.clear_faults()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    threads.append(threading.Thread(target=faults))
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 300)
    assert not errors, errors[:10]
    items = {o["name"][len("run/"):]: o for o in bucket.list("run/")[0]
             if not o["name"].endswith("/")}
    assert sorted(items) == sorted(model)
    for rel, data in model.items():
        assert int(items[rel]["size"]) == len(data), rel
        assert bucket.get("run/" + rel) == data, rel
    total = sum(counts.values())
    print("load: %d operations in %.0f s over %d threads: %s; %d files at the end"
          % (total, SECONDS, THREADS, counts, len(model)))
    assert total > THREADS * 10
