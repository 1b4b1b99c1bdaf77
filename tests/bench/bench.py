#!/usr/bin/python3
"""gcsmount benchmark: each workload done three ways against one local GCS emulator,
  curl      the raw-HTTP floor (curl for big transfers, python http.client on one
            keep-alive connection for request loops), no filesystem in between;
  gcsmount  a fresh mount of ./gcsmount;
  rclone    a fresh `rclone mount` of Debian's rclone (GCS backend).
Medians of BENCH_RUNS runs are printed as a table and written to RESULTS.md
(plus results.json and, with gnuplot, results.png) in this directory.

Environment (all optional):
  BENCH_SCALE=1        scales sizes and counts (0.1 for a quick run)
  BENCH_RUNS=3         runs per figure (median); BENCH_CONC_RUNS=1 for figure 7c/d/e;
                       BENCH_SHORT_RUNS=7 for figures 2 and 4 (short, noisy)
  BENCH_ONLY=1,2,...   figures to run (1..7); BENCH_TOOLS=curl,gcsmount,rclone
  BENCH_DIR=/var/tmp/gcsmount-bench   emulator root, source files, mounts; the
                       prepared listings (bucket "prep") are kept there across runs
  BENCH_LS_LATENCY_MS=50   server latency per list page in figure 4b
  BENCH_FILE_MB, BENCH_LS_FILES, BENCH_STAT_FILES, BENCH_CP_FILES, BENCH_CP_KB,
  BENCH_WRITERS=16, BENCH_RANDREAD_SECONDS, BENCH_TIMEOUT=600 (per step)
  BENCH_GCSMOUNT_OPTS  extra -o options for gcsmount; BENCH_RCLONE_OPTS extra flags
  BENCH_RCLONE_READ_MODE=off   rclone --vfs-cache-mode for reads and metadata
  BENCH_OUT            markdown path (default tests/bench/RESULTS.md)
  BENCH_WAIT_QUIET=0   wait up to this many seconds for other load to stop first
  GCSMOUNT_BIN         binary (default ./gcsmount at the repository root)
Needs root (drop_caches, FUSE).  Build first: `make` (or run `make bench`).
"""

import os
import platform
import shutil
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report                                                    # noqa: E402
import workloads as wl                                           # noqa: E402
from infra import (CLEANUP, HERE, MiB, Emulator, Failed, OtherLoad,  # noqa: E402
                   install_signal_handlers, log, parallel, pause_page_reporting, rmtree,
                   run_timed, wait_quiet, warm_file)
from tools import make_tools, version_of                         # noqa: E402


class Config:
    def __init__(self, env):
        def num(name, default, conv=int):
            v = env.get(name, "").strip()
            return conv(v) if v else default
        s = self.scale = num("BENCH_SCALE", 1.0, float)
        self.runs = max(1, num("BENCH_RUNS", 3))
        # Figures 2 and 4 take under a second a run and swing most with the machine's
        # other load: more runs for their medians.
        self.short_runs = max(self.runs, num("BENCH_SHORT_RUNS", 7))
        self.conc_runs = max(1, num("BENCH_CONC_RUNS", 1))
        self.big = max(4, num("BENCH_FILE_MB", int(round(1024 * s)))) * MiB
        self.rand_seconds = max(2, num("BENCH_RANDREAD_SECONDS", int(round(20 * s))))
        self.rand_default_n = 2000
        self.ls_files = max(10, num("BENCH_LS_FILES", int(round(10000 * s))))
        # What a list page costs GCS to answer from far away, which the emulator on the
        # same machine does not: for figure 4b.
        self.ls_latency_ms = max(0.0, num("BENCH_LS_LATENCY_MS", 50.0, float))
        self.stat_files = max(10, num("BENCH_STAT_FILES", int(round(1000 * s))))
        self.cp_files = max(10, num("BENCH_CP_FILES", int(round(2000 * s))))
        self.cp_size = num("BENCH_CP_KB", 64) * 1024
        self.writers = max(1, num("BENCH_WRITERS", 16))
        self.timeout = num("BENCH_TIMEOUT", 600)
        self.only = {x.strip() for x in env.get("BENCH_ONLY", "").split(",") if x.strip()}
        self.tools = [t.strip() for t in env.get("BENCH_TOOLS", "curl,gcsmount,rclone")
                      .split(",") if t.strip()]
        self.bench_dir = env.get("BENCH_DIR") or "/var/tmp/gcsmount-bench"
        self.out = env.get("BENCH_OUT") or os.path.join(HERE, "RESULTS.md")

    def wants(self, fig):
        return not self.only or fig in self.only


def human(n):
    return "{:,}".format(n)


def make_rows(c):
    mb = c.big // MiB
    size = "%d MiB" % mb if mb % 1024 else "%d GiB" % (mb // 1024)
    R = report.Row
    w = c.writers
    return [
        R("1", "1. Sequential write %s (until close / object exists)" % size, "MB/s", "higher",
          "1. seq write"),
        R("2", "2. Sequential read %s, cold" % size, "MB/s", "higher", "2. seq read cold"),
        R("3", "3. Random 4 KiB reads over %s (%ds)" % (size, c.rand_seconds), "reads/s",
          "higher", "3. random 4K reads"),
        R("4", "4. ls -l of %s objects, cold" % human(c.ls_files), "s", "lower",
          "4. ls -l %s" % human(c.ls_files)),
        R("4b", "4b. ls -l of %s objects, cold, %g ms per list request"
          % (human(c.ls_files), c.ls_latency_ms), "s", "lower",
          "4b. ls -l, %g ms server" % c.ls_latency_ms),
        R("5a", "5a. stat %s files, first pass (cold)" % human(c.stat_files), "s", "lower",
          "5a. stat cold"),
        R("5b", "5b. stat %s files, second pass (warm)" % human(c.stat_files), "s", "lower",
          "5b. stat warm"),
        R("6", "6. cp -r %s files of %d KiB" % (human(c.cp_files), c.cp_size // 1024), "s",
          "lower", "6. cp -r small files"),
        R("7a", "7a. CPU per GiB written (figure 1)", "CPU s/GiB", "lower", "7a. CPU/GiB write"),
        R("7b", "7b. CPU per GiB read (figure 2)", "CPU s/GiB", "lower", "7b. CPU/GiB read"),
        R("7c", "7c. Peak RSS, %d concurrent %s writers" % (w, size), "MB", "lower",
          "7c. peak RSS %dx write" % w),
        R("7d", "7d. Aggregate write, %d concurrent %s writers" % (w, size), "MB/s", "higher",
          "7d. %dx write MB/s" % w),
        R("7e", "7e. CPU per GiB written, %d concurrent writers" % w, "CPU s/GiB", "lower",
          "7e. CPU/GiB %dx write" % w),
    ]


NOTES = [
    "**Every run** of a mount is a fresh mount; `cold` figures also drop the page cache "
    "(`echo 3 > /proc/sys/vm/drop_caches`, which also empties the emulator's file cache). "
    "A virtual machine's free page reporting is paused for the run where the kernel has it "
    "(BENCH_PAGE_REPORTING=keep leaves it on): it hands freed memory back to the host, and "
    "the next run's first touch of that memory pays a host fault per page, more or less by "
    "chance, and only for tools that touch fresh memory (a mount's buffers and the page "
    "cache of the file read; curl writes to /dev/null).",
    "**1** curl: one `uploadType=media` POST of the file from disk (`curl -T`). gcsmount: "
    "`dd bs=1M` into the mount, timed until dd returns (close publishes). rclone "
    "(`--vfs-cache-mode writes --vfs-write-back 0s`): timed until the object exists with its "
    "full size through the API (polled every 50 ms). The source file is in the page cache.",
    "**2** cold on the client side: page cache dropped, then the emulator reads the object "
    "once, so its disk (which real GCS does not share) is not measured. curl `alt=media` "
    "to /dev/null; mounts (fresh): `dd bs=1M` of the file to /dev/null. rclone: "
    "`--vfs-cache-mode off` (BENCH_RCLONE_READ_MODE).",
    "**3** page cache dropped, then the emulator reads the object once (its disk is not "
    "measured); mounts: fio randread bs=4k psync direct=0 time-based; curl: as many "
    "ranged 4 KiB GETs as gcsmount did in that run, python http.client keep-alive.",
    "**4** mounts: `ls -l` of the mount's root, fresh mount, caches dropped; curl: the "
    "same listing page by page (maxResults=1000, delimiter=/, and the `fields=` selection "
    "gcsmount asks for, so the floor fetches what gcsmount fetches), http.client keep-alive.",
    "**4b** as 4, with every objects.list answered late by the milliseconds the row names "
    "(BENCH_LS_LATENCY_MS; the emulator's stall fault, for the floor and the mounts alike): the round trip and the server's time that "
    "a real bucket adds to each page, which the emulator on the same machine does not.",
    "**4 bound**: `ls -l` over memfs (`tests/bench/memfs.c`, built by the benchmark), a "
    "FUSE filesystem that answers the same names from memory with readdirplus as gcsmount "
    "does: alone, and started together with the floor's listing. Together is the least "
    "any FUSE mount could take on this machine: it must fetch the same pages and pay the "
    "kernel's and ls's share too, and here all of them share the CPUs.",
    "**5** mounts: os.stat of every file by name (no readdir first), twice on one mount; "
    "5a is the first pass after mounting, 5b the second. curl: one objects.get per file "
    "on one keep-alive connection for each pass (no cache exists at that level).",
    "**6** mounts: `cp -r` of a local directory into the mount; gcsmount until cp returns, "
    "rclone until every object is listed in the bucket. curl: one media upload per file, "
    "sequential like cp, http.client keep-alive.",
    "**7** CPU = utime+stime of the gcsmount/rclone process (/proc/PID/stat) over the "
    "window, or of the curl process (rusage). Peak RSS = VmHWM of the mount process of a "
    "fresh mount after 16 concurrent `dd` writers; for curl the sum of the 16 curl "
    "processes' max RSS. 7c-7e come from BENCH_CONC_RUNS run(s) only.",
    "MB = 10^6 bytes. The emulator (Python, one process) runs on the same machine and its "
    "CPU competes with the tool measured.",
]

# (figure id, workload, row keys it fills, tool order within a run, runs attribute)
FIGURES = [
    ("1", wl.seq_write, ("1", "7a"), None, "runs"),
    ("2", wl.seq_read, ("2", "7b"), None, "short_runs"),
    ("3", wl.rand_read, ("3",), ("gcsmount", "rclone", "curl"), "runs"),
    ("4", wl.list_dir, ("4",), None, "short_runs"),
    ("4b", wl.list_dir_far, ("4b",), None, "runs"),
    ("5", wl.stat_files, ("5a", "5b"), None, "runs"),
    ("6", wl.copy_tree, ("6",), None, "runs"),
    ("7", wl.concurrent_writes, ("7c", "7d", "7e"), None, "conc_runs"),
]


class Bench:
    """What the workloads share (named B there)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.bench_dir = cfg.bench_dir
        self.emu = None
        self.api = None           # the benchmark's (and the curl floor's) connection
        self.poll = None          # polling for rclone's uploads (subtracted from counts)
        self.rand_count = {}
        self.read_obj = "rd/big"
        self.ls_prefix = "ls%d" % cfg.ls_files
        self.stat_prefix = "st%d" % cfg.stat_files
        self.stat_names = ["f%05d" % i for i in range(cfg.stat_files)]
        self.src_big = os.path.join(self.bench_dir, "src-%dM.bin" % (cfg.big // MiB))
        self.small_dir = os.path.join(self.bench_dir, "small-%dx%dK"
                                      % (cfg.cp_files, cfg.cp_size // 1024))


# ---------------------------------------------------------------- preparation

def random_file(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)


def prepare_listing(B, prefix, n):
    """n small objects prefix/f00000.. in bucket prep (kept on disk across invocations)."""
    have = {i["name"] for i in B.api.list_all(wl.PREP, prefix + "/")}
    names = ["%s/f%05d" % (prefix, i) for i in range(n)]
    missing = [nm for nm in names if nm not in have]
    if missing:
        log("uploading %d objects under gs://prep/%s/ (kept for later runs)"
            % (len(missing), prefix))
        t0 = time.time()
        parallel(B.emu.port, lambda api, nm: api.put(wl.PREP, nm, nm.encode() * 2), missing,
                 threads=8)
        log("  done in %.1fs" % (time.time() - t0))


def prepare(B):
    c = B.cfg
    os.makedirs(B.bench_dir, exist_ok=True)
    # Every invocation measures the emulator with it (server_speed), whatever BENCH_ONLY says.
    random_file(B.src_big, c.big)
    if c.wants("6") and not (os.path.isdir(B.small_dir)
                             and len(os.listdir(B.small_dir)) == c.cp_files):
        rmtree(B.small_dir)
        os.makedirs(B.small_dir)
        for i in range(c.cp_files):
            with open(os.path.join(B.small_dir, "f%05d" % i), "wb") as f:
                f.write(os.urandom(c.cp_size))
    if c.wants("4") or c.wants("4b"):
        prepare_listing(B, B.ls_prefix, c.ls_files)
    if c.wants("5"):
        prepare_listing(B, B.stat_prefix, c.stat_files)


def server_speed(B):
    """Figure 8: how fast the emulator itself is with curl (uploads the read fixture)."""
    from tools import Curl
    warm_file(B.src_big)
    os.sync()
    dt, p, _ = run_timed(Curl.upload_argv(B.emu.url, wl.WORK, B.read_obj, B.src_big),
                         B.cfg.timeout)
    if p.stdout.strip() != "200":
        raise Failed("fixture upload: HTTP " + p.stdout.strip())
    up = B.cfg.big / dt / wl.MB
    downs = []
    for _ in range(3):
        dt, p, _ = run_timed(Curl.download_argv(B.emu.url, wl.WORK, B.read_obj), B.cfg.timeout)
        downs.append(B.cfg.big / dt / wl.MB)
    return up, statistics.median(downs)


# ---------------------------------------------------------------- running

def run_figure(B, fig, fn, keys, order, nruns, rows, tools):
    failed = set()
    by_name = {t.name: t for t in tools}
    seq = [by_name[n] for n in (order or [t.name for t in tools]) if n in by_name]
    for run in range(nruns):
        for tool in seq:
            if tool.name in failed:
                continue
            os.sync()       # every run starts without the previous one's dirty pages
            t0 = time.time()
            try:
                res = fn(B, tool, run)
            except Failed as e:
                reason = str(e)
            except Exception as e:          # noqa: BLE001 - one tool's bug is its cell
                reason = "%s: %s" % (type(e).__name__, e)
                traceback.print_exc()
            else:
                reason = None
            if reason is not None:
                failed.add(tool.name)
                for k in keys:
                    rows[k].errors[tool.name] = reason
                log("  fig %s run %d %-8s failed: %s" % (fig, run + 1, tool.name, reason))
                continue
            for k, counts in res.pop("_requests", {}).items():
                rows[k].requests[tool.name] = counts
            for k, secs in res.pop("_emu_cpu", {}).items():
                rows[k].emu_cpu.setdefault(tool.name, []).append(secs)
            for k, v in res.items():
                rows[k].runs.setdefault(tool.name, []).append(v)
            log("  fig %s run %d %-8s %s  (%.1fs)" % (
                fig, run + 1, tool.name,
                "  ".join("%s=%s %s" % (k, report.fmt(v), rows[k].unit)
                          for k, v in res.items()), time.time() - t0))


def machine_meta(c, speed, load0, versions, other, reporting):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        ("Date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("Machine", "%d CPUs (%s), %.0f GiB RAM, kernel %s" % (os.cpu_count(), cpu, mem,
                                                               platform.release())),
        ("Free page reporting to the host", reporting),
        ("gcsmount", versions["gcsmount"]),
        ("rclone", versions["rclone"]),
        ("curl", versions["curl"]),
        ("fio", version_of(["fio", "--version"]) if shutil.which("fio")
         else "not installed (python pread loop)"),
        ("Settings", "BENCH_SCALE=%g, %d run(s) per figure (median), %d for 2 and 4, "
         "%d for 7c-7e" % (c.scale, c.runs, c.short_runs, c.conc_runs)),
        ("Emulator speed with curl (figure 8)", speed),
        ("Load average at start / end", "%s / %s" % (load0, loadavg())),
        ("CPU used by other processes during each figure (share of all %d CPUs; kernel "
         "threads such as writeback count here too)" % os.cpu_count(),
         ", ".join("fig %s %.0f%%" % (f, v * 100) for f, v in other.items()) or "n/a"),
    ]


def num_env(name, default):
    v = os.environ.get(name, "").strip()
    return float(v) if v else default


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    c = Config(os.environ)
    if os.geteuid() != 0:
        sys.exit("bench.py needs root (drop_caches, FUSE mounts)")
    install_signal_handlers()
    B = Bench(c)
    rows = make_rows(c)
    by_key = {r.key: r for r in rows}
    emu_root = os.path.join(c.bench_dir, "emu")
    busy0 = wait_quiet(num_env("BENCH_WAIT_QUIET", 0))
    if busy0 > 0.15:
        log("WARNING: the machine is %.0f%% busy with other work; results will be noisy"
            % (busy0 * 100))
    t_start = time.time()
    reporting = pause_page_reporting(os.environ.get("BENCH_PAGE_REPORTING") == "keep")
    load0 = "%s (CPU %.0f%% busy before start)" % (loadavg(), busy0 * 100)
    try:
        os.makedirs(c.bench_dir, exist_ok=True)
        rmtree(os.path.join(emu_root, "buckets", wl.WORK))      # last invocation's leftovers
        rmtree(os.path.join(c.bench_dir, "mounts"))
        tools, versions = make_tools(c.bench_dir, c.tools)
        B.emu = Emulator(emu_root, [wl.WORK, wl.PREP],
                         os.path.join(c.bench_dir, "emulator.log")).start()
        B.api, B.poll = B.emu.api(), B.emu.api()
        log("emulator %s, root %s" % (B.emu.url, emu_root))
        prepare(B)
        try:
            up, down = server_speed(B)
            speed = "upload %.0f MB/s, download (warm) %.0f MB/s (%s file)" % (
                up, down, report.fmt(c.big / 1e6) + " MB")
        except Failed as e:
            speed = "failed: %s" % e
        print("\n=== Emulator speed with curl (what the server can do, not a result): %s\n"
              % speed, flush=True)
        other, bound = {}, None
        for fig, fn, keys, order, runs_attr in FIGURES:
            if not c.wants(fig):
                continue
            log("figure %s: %s" % (fig, by_key[keys[0]].label))
            ol = OtherLoad([B.emu.pid])
            run_figure(B, fig, fn, keys, order, getattr(c, runs_attr), by_key, tools)
            if fig == "4":
                log("figure 4's bound: ls -l over memfs, alone and with the floor's listing")
                bound = wl.listing_bound(B, c.short_runs)
                log("  %s" % report.bound_summary(bound))
            other[fig] = ol.fraction()
            if other[fig] > 0.15:
                log("WARNING: other processes used %.0f%% of the machine's CPU during "
                    "figure %s; its numbers are noisy" % (other[fig] * 100, fig))
        shown = [r for r in rows if r.runs or r.errors]
        print("\n" + report.text_table(shown) + "\n", flush=True)
        print("better = which direction is better for gcsmount's value; ratios are "
              "gcsmount's value divided by the other's.\n")
        meta = machine_meta(c, speed, load0, versions, other, reporting)
        meta.append(("Total benchmark time", "%.0f s" % (time.time() - t_start)))
        out_dir = os.path.dirname(os.path.abspath(c.out))
        png = os.path.join(out_dir, "results.png")
        drawn = report.chart(png, shown, c.bench_dir)
        sections = [report.bound_section(bound, by_key["4"], c.ls_files)] if bound else []
        report.write_markdown(c.out, meta, shown, os.path.basename(png) if drawn else None,
                              NOTES, sections)
        report.write_json(os.path.join(out_dir, "results.json"), meta, shown,
                          {"rand_count_gcsmount": B.rand_count, "figure_4_bound": bound})
        log("wrote %s%s" % (c.out, " and " + png if drawn else ""))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        CLEANUP.run()
        for a in (B.api, B.poll):
            if a is not None:
                a.close()
        rmtree(os.path.join(emu_root, "buckets", wl.WORK))
        rmtree(os.path.join(emu_root, "uploads"))
        rmtree(os.path.join(c.bench_dir, "mounts"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
