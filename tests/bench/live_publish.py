#!/usr/bin/python3
"""Live publishing cost: a log of LOG_MB that grows by GROW_MB every second
while held open, published every INTERVAL seconds by gcsmount, against what
re-uploading the whole file at each publish (a sync sidecar's way) costs.
Bytes and requests come from the emulator's counters. Writes a table to
tests/bench/LIVE_PUBLISH.md.

Environment: BENCH_SCALE (1: a 1 GiB log), LIVE_SECONDS=30, LIVE_INTERVAL=5,
LIVE_GROW_MB=1, GCSMOUNT_BIN.
"""

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from conftest import Emulator          # noqa: E402
from mountlib import Mount             # noqa: E402

MiB = 1 << 20


def main():
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    log_mb = max(8, int(1024 * scale))
    seconds = int(os.environ.get("LIVE_SECONDS", "30"))
    interval = float(os.environ.get("LIVE_INTERVAL", "5"))
    grow = int(os.environ.get("LIVE_GROW_MB", "1")) * MiB
    work = tempfile.mkdtemp(prefix="gcsmount-live-")
    emu = Emulator(os.path.join(work, "emu"), ["--no-md5"]).start()
    m = None
    try:
        b = emu.new_bucket("live")
        print("live publish: preparing a %d MiB log" % log_mb, flush=True)
        status, _, _ = b.request("POST", "/upload/storage/v1/b/%s/o" % b.bucket,
                                 body=os.urandom(MiB) * log_mb,
                                 headers={"Content-Type": "text/plain"},
                                 query={"uploadType": "media", "name": "run/train.log"})
        m = Mount(emu.url, b.bucket, "run", ["publish_interval=%g" % interval],
                  workdir=os.path.join(work, "m")).start()
        b.reset_stats()
        versions = []
        with open(m.p("train.log"), "ab") as f:
            start = time.time()
            for s in range(seconds):
                f.write(os.urandom(grow))
                f.flush()
                meta = b.stat("run/train.log")
                if not versions or versions[-1] != meta["generation"]:
                    versions.append(meta["generation"])
                time.sleep(max(0, start + s + 1 - time.time()))
            stats = b.stats()
        publishes = max(1, len(versions) - 1)   # the first generation seen is the old one
        reqs = {k: v for k, v in stats["requests"].items() if k != "object.get"}
        nreq = sum(reqs.values())
        size_end = log_mb * MiB + seconds * grow
        avg_size = log_mb * MiB + seconds * grow / 2
        rows = [
            ("publishes while open", "%d" % publishes, "%d" % publishes),
            ("bytes sent per publish", "%.2f MB" % (stats["bytes_in"] / publishes / 1e6),
             "%.0f MB" % (avg_size / 1e6)),
            ("requests per publish", "%.1f (%s)" % (nreq / publishes,
                                                  ", ".join("%s %d" % kv for kv in
                                                            sorted(reqs.items()))),
             "1 (whole upload)"),
            ("bytes sent in %d s" % seconds, "%.1f MB" % (stats["bytes_in"] / 1e6),
             "%.0f MB" % (publishes * avg_size / 1e6)),
        ]
        lines = ["# Live publishing: appended bytes only",
                 "",
                 "A %d MiB log held open and growing by %d MiB a second for %d s, "
                 "published every %g s (`-o publish_interval=%g`), against re-uploading the "
                 "whole file at each publish. Measured with the emulator's counters "
                 "(`tests/bench/live_publish.py`); the log ended at %.0f MB."
                 % (log_mb, grow // MiB, seconds, interval, interval, size_end / 1e6),
                 "",
                 "| | gcsmount (tail + compose) | whole re-upload |",
                 "|---|---|---|"]
        lines += ["| %s | %s | %s |" % r for r in rows]
        text = "\n".join(lines) + "\n"
        out = os.environ.get("LIVE_OUT", os.path.join(HERE, "LIVE_PUBLISH.md"))
        with open(out, "w") as f:
            f.write(text)
        print(text)
    finally:
        if m:
            m.stop()
        emu.stop()


if __name__ == "__main__":
    main()
