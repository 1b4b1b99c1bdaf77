"""The figures.  Each workload function does one run of one tool and returns
{row key: value}, plus optionally "_requests" {row key: emulator request counts}
and "_emu_cpu" {row key: emulator CPU seconds}; it raises Failed when the tool
could not do it.  Every run of a mount tool is a fresh mount.  Results are
checked through the API (sizes, counts) outside the timed window.
"""

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import time
from collections import Counter

from infra import (GiB, Failed, children_cpu, drop_caches, free_bytes, proc_cpu,
                   run_timed, spawn, stop_process, unmount, wait_all, warm_file)

MB = 1e6                      # throughput is reported in MB/s = 10^6 bytes/s
WORK, PREP = "work", "prep"   # work: wiped each invocation; prep: listings kept on disk


# ---------------------------------------------------------------- measuring

class Window:
    """A timed window: wall time, CPU of one process and of the emulator, and the
    emulator's request counts minus the benchmark's own polling requests."""

    def __init__(self, B, pid=None):
        self.B, self.pid = B, pid
        B.api.reset_stats()
        self.poll0 = Counter(B.poll.counts)
        self.cpu0 = proc_cpu(pid) if pid else None
        self.ccpu0 = children_cpu()
        self.emu0 = proc_cpu(B.emu.pid)
        self.t0 = time.perf_counter()

    def stop(self):
        self.dt = time.perf_counter() - self.t0
        self.cpu = (proc_cpu(self.pid) - self.cpu0) if self.pid else children_cpu() - self.ccpu0
        self.emu_cpu = proc_cpu(self.B.emu.pid) - self.emu0
        snap = self.B.api.stats()
        req = Counter(snap["requests"])
        req.subtract(Counter(self.B.poll.counts) - self.poll0)
        # kind -> [count, {status: count}] (polling is all 200/404 lookups; its statuses
        # are left in the breakdown, only the totals are corrected)
        self.requests = {k: [v, snap["by_kind"].get(k, {})] for k, v in sorted(req.items())
                         if v > 0}
        return self


def wait_objects(B, names_sizes, deadline_s, interval=0.05):
    """Poll (counted on B.poll) until every name exists with its size."""
    deadline = time.monotonic() + deadline_s
    pending = dict(names_sizes)
    while pending:
        for name, size in list(pending.items()):
            o = B.poll.stat(WORK, name)
            if o is not None and int(o["size"]) == size:
                del pending[name]
        if pending:
            if time.monotonic() > deadline:
                raise Failed("%d object(s) not in the bucket %ds after close"
                             % (len(pending), deadline_s))
            time.sleep(interval)


def wait_count(B, bucket, prefix, n, deadline_s, interval=0.2):
    deadline = time.monotonic() + deadline_s
    while True:
        got = len(files_only(B.poll.list_all(bucket, prefix)))
        if got >= n:
            return
        if time.monotonic() > deadline:
            raise Failed("%d of %d objects in the bucket %ds after cp returned"
                         % (got, n, deadline_s))
        time.sleep(interval)


def files_only(items):
    """Objects that are files (a mount's mkdir writes a placeholder ending in /)."""
    return [i for i in items if not i["name"].endswith("/")]


def check_objects(B, names_sizes):
    for name, size in names_sizes.items():
        o = B.api.stat(WORK, name)
        if o is None:
            raise Failed("object %s missing after the run" % name)
        if int(o["size"]) != size:
            raise Failed("object %s has %s bytes, wrote %d" % (name, o["size"], size))


def delete_objects(B, names):
    for n in names:
        B.api.delete(WORK, n)


def dd_argv(src, dst):
    return ["dd", "if=" + src, "of=" + dst, "bs=1M", "status=none"]


def dd_read_bytes(stderr):
    m = re.search(r"^(\d+) bytes", stderr or "", re.M)
    return int(m.group(1)) if m else -1


def result(values, win=None, key=None, reqs=True):
    if win is not None and key is not None:
        values["_emu_cpu"] = {key: win.emu_cpu}
        if reqs:
            values["_requests"] = {key: win.requests}
    return values


# ---------------------------------------------------------------- 1 + 7a: sequential write

def seq_write(B, tool, run):
    size, src = B.cfg.big, B.src_big
    warm_file(src)
    name = "w1/%s-r%d" % (tool.name, run)
    gib = size / GiB
    try:
        if not tool.is_mount:
            win = Window(B)
            _, p, _ = run_timed(tool.upload_argv(B.emu.url, WORK, name, src), B.cfg.timeout)
            win.stop()
            if p.stdout.strip() != "200":
                raise Failed("upload answered HTTP %s" % p.stdout.strip())
        else:
            with tool.mounted(B, WORK, "w1", "write") as m:
                win = Window(B, m.pid)
                run_timed(dd_argv(src, m.p(os.path.basename(name))), B.cfg.timeout)
                if tool.uploads_after_close:
                    wait_objects(B, {name: size}, B.cfg.timeout)
                win.stop()
        check_objects(B, {name: size})
    finally:
        delete_objects(B, [name])
    return result({"1": size / win.dt / MB, "7a": win.cpu / gib}, win, "1")


# ---------------------------------------------------------------- 2 + 7b: sequential read, cold

def _warm_server(B):
    """Cold client side, warm server side: drop every cache, then have the emulator read
    the object once so that its disk is not what the random reads measure."""
    drop_caches()
    st, n = B.api.request("GET", B.api.opath(WORK, B.read_obj) + "?alt=media", sink=True)
    if st != 200 or n != B.cfg.big:
        raise Failed("warming the object: HTTP %d, %d bytes" % (st, n))


def seq_read(B, tool, run):
    size, name = B.cfg.big, B.read_obj
    if not tool.is_mount:
        _warm_server(B)
        win = Window(B)
        _, p, _ = run_timed(tool.download_argv(B.emu.url, WORK, name), B.cfg.timeout)
        win.stop()
        got = int(p.stdout.strip() or -1)
    else:
        with tool.mounted(B, WORK, os.path.dirname(name), "read") as m:
            _warm_server(B)
            win = Window(B, m.pid)
            _, p, _ = run_timed(["dd", "if=" + m.p(os.path.basename(name)), "of=/dev/null",
                                 "bs=1M"], B.cfg.timeout)
            win.stop()
            got = dd_read_bytes(p.stderr)
    if got != size:
        raise Failed("read %d bytes of %d" % (got, size))
    return result({"2": size / win.dt / MB, "7b": win.cpu / (size / GiB)}, win, "2")


# ---------------------------------------------------------------- 3: random 4 KiB reads

def _fio(B, path, size):
    argv = ["fio", "--name=randread", "--filename=" + path, "--rw=randread", "--bs=4k",
            "--size=%d" % size, "--runtime=%d" % B.cfg.rand_seconds, "--time_based",
            "--direct=0", "--ioengine=psync", "--invalidate=1", "--output-format=json"]
    _, p, _ = run_timed(argv, B.cfg.rand_seconds + B.cfg.timeout)
    try:
        job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    except (ValueError, KeyError, IndexError):
        raise Failed("fio output not understood: " + p.stdout[:200])
    if job.get("error"):
        raise Failed("fio error %s" % job["error"])
    return job["read"]["total_ios"], job["read"]["runtime"] / 1000.0


def _pread_loop(B, path, size):
    rnd = random.Random(1)
    blocks = size // 4096
    n, deadline = 0, time.perf_counter() + B.cfg.rand_seconds
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        while time.perf_counter() < deadline:
            if len(os.pread(fd, 4096, rnd.randrange(blocks) * 4096)) != 4096:
                raise Failed("short read")
            n += 1
        return n, time.perf_counter() - t0
    finally:
        os.close(fd)


def rand_read(B, tool, run):
    size = B.cfg.big
    _warm_server(B)
    if not tool.is_mount:
        # As many ranged GETs as gcsmount did in this run (it runs first), keep-alive.
        n = B.rand_count.get(run) or B.cfg.rand_default_n
        rnd = random.Random(run)
        blocks = size // 4096
        path = B.api.opath(WORK, B.read_obj) + "?alt=media"
        win = Window(B)
        for _ in range(n):
            off = rnd.randrange(blocks) * 4096
            st, data = B.api.request("GET", path,
                                     headers={"Range": "bytes=%d-%d" % (off, off + 4095)})
            if st != 206 or len(data) != 4096:
                raise Failed("ranged GET: HTTP %d, %d bytes" % (st, len(data)))
        win.stop()
        return result({"3": n / win.dt}, win, "3")
    with tool.mounted(B, WORK, os.path.dirname(B.read_obj), "read") as m:
        path = m.p(os.path.basename(B.read_obj))
        win = Window(B, m.pid)
        if shutil.which("fio"):
            n, secs = _fio(B, path, size)
        else:
            n, secs = _pread_loop(B, path, size)
        win.stop()
    if n <= 0:
        raise Failed("no reads completed")
    if tool.name == "gcsmount":
        B.rand_count[run] = n
    return result({"3": n / secs}, win, "3")


# ---------------------------------------------------------------- 4: ls -l, cold

# The selection gcsmount's listings ask for (gcs/objects.c LIST_FIELDS): the floor
# fetches the same bytes.
GCSMOUNT_LIST_FIELDS = ("nextPageToken,prefixes,items(name,size,generation,metageneration,"
                        "componentCount,crc32c,updated,metadata)")

def list_dir(B, tool, run):
    return listing(B, tool, "4", 0.0)


def list_dir_far(B, tool, run):
    return listing(B, tool, "4b", B.cfg.ls_latency_ms / 1000.0)


def far_lists(B, seconds):
    """From now on every objects.list waits `seconds` before it is answered (0: none)."""
    B.api.json("DELETE", "/_emu/faults")
    if seconds > 0:
        B.api.json("POST", "/_emu/faults",
                   [{"kind": "object.list", "action": "stall-%.6fs" % seconds, "count": -1}])


def floor_listing(B):
    """The listing page by page, no filesystem in between: the number of entries."""
    count, token = 0, None
    while True:
        page = B.api.list_page(PREP, B.ls_prefix + "/", token, delimiter="/",
                               fields=GCSMOUNT_LIST_FIELDS)
        count += len(page.get("items", [])) + len(page.get("prefixes", []))
        token = page.get("nextPageToken")
        if not token:
            return count


def listing(B, tool, key, latency):
    n = B.cfg.ls_files
    try:
        if not tool.is_mount:
            far_lists(B, latency)
            win = Window(B)
            count = floor_listing(B)
            win.stop()
        else:
            with tool.mounted(B, PREP, B.ls_prefix, "meta") as m:
                far_lists(B, latency)       # after mounting: the listing only
                drop_caches()
                win = Window(B, m.pid)
                _, p, _ = run_timed(["ls", "-l", m.path], B.cfg.timeout)
                win.stop()
                count = sum(1 for ln in p.stdout.splitlines() if not ln.startswith("total "))
    finally:
        far_lists(B, 0)
    if count != n:
        raise Failed("listed %d entries of %d" % (count, n))
    return result({key: win.dt}, win, key)


def memfs_binary(out_dir):
    """tests/bench/memfs.c built into out_dir; None (and why) when it cannot be built."""
    out = os.path.join(out_dir, "memfs")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "memfs.c")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"],
                           capture_output=True, text=True)
    if flags.returncode != 0:
        return None, "pkg-config fuse3: " + flags.stderr.strip()
    p = subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                        "-Werror", "-o", out, src] + flags.stdout.split(),
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None, "cc memfs.c: " + p.stderr.strip()[:300]
    return out, None


def listing_bound(B, runs):
    """Figure 4's yardstick: `ls -l` over memfs (the same number of names, answered from
    memory) alone, then at the same time as the floor's listing; the floor alone for the
    ratios.  No FUSE mount can list faster than the last of these on this machine: it has
    to fetch the pages and pay the kernel's and ls's share as well."""
    binary, why = memfs_binary(B.bench_dir)
    if binary is None:
        return {"error": why}
    try:
        return measure_bound(B, binary, runs)
    except Failed as e:
        return {"error": str(e)}


def measure_bound(B, binary, runs):
    mnt = os.path.join(B.bench_dir, "mounts", "memfs")
    os.makedirs(mnt, exist_ok=True)
    proc = spawn([binary, str(B.cfg.ls_files), mnt])
    out = {"floor": [], "memfs": [], "together": []}
    try:
        for _ in range(50):
            if os.path.ismount(mnt):
                break
            if proc.poll() is not None:
                return {"error": "memfs exited: " + proc.stderr.read().decode()[-300:]}
            time.sleep(0.1)
        else:
            return {"error": "memfs did not mount"}
        for _ in range(runs):
            t0 = time.perf_counter()
            if floor_listing(B) != B.cfg.ls_files:
                raise Failed("the floor's listing is short")
            out["floor"].append(time.perf_counter() - t0)
            drop_caches()
            out["memfs"].append(run_timed(["ls", "-l", mnt], B.cfg.timeout)[0])
            drop_caches()
            t0 = time.perf_counter()
            ls = subprocess.Popen(["ls", "-l", mnt], stdout=subprocess.DEVNULL,
                                  start_new_session=True)
            try:
                floor_listing(B)
            finally:
                ls.wait(B.cfg.timeout)
            out["together"].append(time.perf_counter() - t0)
            if ls.returncode != 0:
                raise Failed("ls -l over memfs exited with status %d" % ls.returncode)
    finally:
        unmount(mnt)
        stop_process(proc)
    return {k: statistics.median(v) for k, v in out.items()}


# ---------------------------------------------------------------- 5: stat, first pass and warm

def stat_files(B, tool, run):
    names = B.stat_names
    if not tool.is_mount:
        # No cache in front of the API: both passes are one objects.get per file.
        out = {"_requests": {}, "_emu_cpu": {}}
        for key in ("5a", "5b"):
            win = Window(B)
            for nm in names:
                if B.api.stat(PREP, B.stat_prefix + "/" + nm) is None:
                    raise Failed("object %s missing" % nm)
            win.stop()
            out[key] = win.dt
            out["_requests"][key] = win.requests
            out["_emu_cpu"][key] = win.emu_cpu
        return out
    out = {"_requests": {}, "_emu_cpu": {}}
    with tool.mounted(B, PREP, B.stat_prefix, "meta") as m:
        drop_caches()
        for key in ("5a", "5b"):
            win = Window(B, m.pid)
            for nm in names:
                os.stat(m.p(nm))
            win.stop()
            out[key] = win.dt
            out["_requests"][key] = win.requests
            out["_emu_cpu"][key] = win.emu_cpu
    return out


# ---------------------------------------------------------------- 6: cp -r of small files

def copy_tree(B, tool, run):
    src, n, fsize = B.small_dir, B.cfg.cp_files, B.cfg.cp_size
    files = sorted(os.listdir(src))
    for f in files:
        warm_file(os.path.join(src, f))
    prefix = "cp/%s-r%d" % (tool.name, run)
    top = os.path.basename(src)
    if not tool.is_mount:
        # Sequential like cp: one media upload per file on one keep-alive connection.
        win = Window(B)
        for f in files:
            with open(os.path.join(src, f), "rb") as fh:
                B.api.put(WORK, "%s/%s/%s" % (prefix, top, f), fh.read())
        win.stop()
    else:
        with tool.mounted(B, WORK, prefix, "write") as m:
            win = Window(B, m.pid)
            run_timed(["cp", "-r", src, m.path + "/"], B.cfg.timeout)
            if tool.uploads_after_close:
                wait_count(B, WORK, prefix + "/", n, B.cfg.timeout)
            win.stop()
    items = files_only(B.api.list_all(WORK, prefix + "/"))
    bad = [i["name"] for i in items if int(i["size"]) != fsize]
    if len(items) != n or bad:
        raise Failed("%d objects after cp (want %d), %d of wrong size" % (len(items), n,
                                                                          len(bad)))
    return result({"6": win.dt}, win, "6")


# ---------------------------------------------------------------- 7c/7d: concurrent writers

def concurrent_writes(B, tool, run):
    w, size, src = B.cfg.writers, B.cfg.big, B.src_big
    need = 2.2 * w * size          # client-side spool/cache + the emulator's copy
    if free_bytes(B.bench_dir) < need:
        raise Failed("needs %.0f GB free disk in %s" % (need / 1e9, B.bench_dir))
    warm_file(src)
    names = {"c/%s-r%d-%02d" % (tool.name, run, i): size for i in range(w)}
    try:
        if not tool.is_mount:
            # A child exec'd from this Python inherits its RSS high-water mark, so curl's
            # max RSS comes from /usr/bin/time, which forks curl from a small process.
            rss_files = [os.path.join(B.bench_dir, "curl-rss-%d" % i) for i in range(w)]
            timer = ["/usr/bin/time", "-f", "%M", "-o"] if os.path.exists("/usr/bin/time") \
                else None
            win = Window(B)
            procs = [spawn((timer + [rf] if timer else [])
                           + tool.upload_argv(B.emu.url, WORK, nm, src))
                     for nm, rf in zip(names, rss_files)]
            res = wait_all(procs, B.cfg.timeout * 2)
            win.stop()
            errs = [p.stderr.read().decode(errors="replace") for p in procs]
            if any(res):
                raise Failed("curl failed: " + next(e for rc, e in zip(res, errs) if rc))
            rss_kb = 0
            for rf in rss_files:
                if timer:
                    with open(rf) as f:
                        rss_kb += int(f.read().split()[-1])
                    os.unlink(rf)
        else:
            with tool.mounted(B, WORK, "c", "write") as m:
                win = Window(B, m.pid)
                procs = [spawn(dd_argv(src, m.p(os.path.basename(nm)))) for nm in names]
                res = wait_all(procs, B.cfg.timeout * 2)
                errs = [p.stderr.read().decode(errors="replace") for p in procs]
                if any(res):
                    raise Failed("dd failed: " + next(e for rc, e in zip(res, errs) if rc))
                if tool.uploads_after_close:
                    wait_objects(B, names, B.cfg.timeout * 2, interval=0.2)
                win.stop()
                rss_kb = m.hwm_kb()
        check_objects(B, names)
    finally:
        delete_objects(B, list(names))
    out = {"7d": w * size / win.dt / MB, "7e": win.cpu / (w * size / GiB)}
    if rss_kb:
        out["7c"] = rss_kb * 1024 / MB
    return result(out, win, "7d")
