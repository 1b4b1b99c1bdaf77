"""The three ways of doing each workload: raw HTTP (curl / python http.client, no
filesystem), a gcsmount mount and an rclone mount, all against one emulator.

A mount tool gives `mounted(bench, bucket, prefix, purpose)`, a context manager
that starts a fresh mount, yields it and unmounts (checking the exit status)
whatever happens.  purpose is "write", "read" or "meta" (rclone picks its VFS
cache mode from it; gcsmount has a single mode).
"""

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import time
from urllib.parse import quote, urlencode

from infra import (CLEANUP, REPO, Failed, is_mounted, last_line, log, unmount,
                   proc_cpu, proc_status_kb, rmtree, stop_process)

GCSMOUNT_BIN = os.environ.get("GCSMOUNT_BIN") or os.path.join(REPO, "gcsmount")


def version_of(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e
    return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr) else "?"


class Tool:
    name = "?"
    is_mount = True
    uploads_after_close = False     # True: close returns before the object exists


class Curl(Tool):
    """The raw-HTTP floor: curl for single big transfers, python http.client on one
    keep-alive connection for request-heavy loops (no process per request)."""
    name = "curl"
    is_mount = False

    @staticmethod
    def upload_argv(url, bucket, name, path):
        q = urlencode({"uploadType": "media", "name": name})
        return ["curl", "-sS", "-f", "-X", "POST", "-T", path, "-H", "Expect:",
                "-H", "Content-Type: application/octet-stream", "-o", "/dev/null",
                "-w", "%{http_code}", "%s/upload/storage/v1/b/%s/o?%s" % (url, bucket, q)]

    @staticmethod
    def download_argv(url, bucket, name):
        return ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{size_download}",
                "%s/storage/v1/b/%s/o/%s?alt=media" % (url, bucket, quote(name, safe=""))]

    @staticmethod
    def version():
        return " ".join(version_of(["curl", "--version"]).split()[:2])


class Mount:
    """One running FUSE mount process."""

    def __init__(self, tool, argv, path, env, workdir):
        self.tool, self.argv, self.path, self.env, self.workdir = tool, argv, path, env, workdir
        self.proc = None
        self.log_path = os.path.join(workdir, "mount.log")

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        c = proc_cpu(self.pid)
        if c is None:
            raise Failed("%s process is gone" % self.tool.name)
        return c

    def hwm_kb(self):
        return proc_status_kb(self.pid, "VmHWM")

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return last_line(f.read()[-4000:].decode("utf-8", "replace"))
        except OSError:
            return ""

    def start(self, timeout=60):
        os.makedirs(self.path, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, env=self.env, start_new_session=True)
        CLEANUP.push(self.abort, "%s mount on %s" % (self.tool.name, self.path))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_mounted(self.path):
                os.stat(self.path)
                return self
            if self.proc.poll() is not None:
                raise Failed("%s exited %d at mount: %s" % (self.tool.name, self.proc.returncode,
                                                            self.log_tail()))
            time.sleep(0.02)
        raise Failed("%s did not mount within %ds" % (self.tool.name, timeout))

    def stop(self, timeout=300):
        """Unmount and wait for the process; returns its exit status."""
        CLEANUP.discard(self.abort)
        if self.proc is None:
            return None
        if not unmount(self.path):
            log("%s: %s was busy; unmounted lazily" % (self.tool.name, self.path))
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.abort()
            raise Failed("%s did not exit within %ds of unmount" % (self.tool.name, timeout))
        self.proc = None
        return rc

    def abort(self):
        """Cleanup path: unmount, then terminate or kill."""
        if self.proc is None:
            return
        unmount(self.path, patience=5)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, grace=10)
        unmount(self.path, patience=0)
        self.proc = None


class MountTool(Tool):
    def __init__(self, bench_dir):
        self.bench_dir = bench_dir
        self.seq = 0

    def make(self, url, bucket, prefix, purpose, workdir):
        raise NotImplementedError

    @contextlib.contextmanager
    def mounted(self, bench, bucket, prefix, purpose):
        self.seq += 1
        workdir = os.path.join(self.bench_dir, "mounts", "%s-%d" % (self.name, self.seq))
        rmtree(workdir)
        os.makedirs(workdir)
        m = self.make(bench.emu.url, bucket, prefix, purpose, workdir)
        ok = False
        try:
            m.start()
            yield m
            ok = True
        finally:
            rc = m.stop() if m.proc is not None else None
            if ok and rc not in (0, None):
                raise Failed("%s exited with status %d after unmount: %s"
                             % (self.name, rc, m.log_tail()))
            if ok:
                rmtree(workdir)         # kept when something failed, for the log


class GcsMount(MountTool):
    """Runs a private copy of the binary taken at start: others rebuild ./gcsmount while
    the benchmark runs, and every figure must measure the same build."""
    name = "gcsmount"

    def __init__(self, bench_dir):
        super().__init__(bench_dir)
        self.bin = os.path.join(bench_dir, "gcsmount.bin")
        if not os.path.exists(GCSMOUNT_BIN):
            raise SystemExit("%s not found: run `make` first" % GCSMOUNT_BIN)
        shutil.copy2(GCSMOUNT_BIN, self.bin + ".tmp")
        os.replace(self.bin + ".tmp", self.bin)

    def make(self, url, bucket, prefix, purpose, workdir):
        opts = ["endpoint=" + url, "anonymous", "spool_dir=" + os.path.join(workdir, "spool")]
        extra = os.environ.get("BENCH_GCSMOUNT_OPTS", "").strip()
        if extra:
            opts.append(extra)
        source = "gs://%s/%s" % (bucket, prefix) if prefix else "gs://" + bucket
        env = dict(os.environ)
        env["GCSMOUNT_NO_METADATA_PROBE"] = "1"
        env.pop("STORAGE_EMULATOR_HOST", None)
        argv = [self.bin, "-f", "-o", ",".join(opts), source, os.path.join(workdir, "mnt")]
        return Mount(self, argv, os.path.join(workdir, "mnt"), env, workdir)

    def version(self):
        v = version_of([self.bin, "--version"])
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
        with open(self.bin, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()[:12]
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(self.bin)))
        # The repository's own binary is named as such, not by a path of this machine.
        shown = os.path.relpath(GCSMOUNT_BIN, REPO)
        shown = "./" + shown if not shown.startswith("..") else os.path.basename(GCSMOUNT_BIN)
        return "%s; copy of %s (sha256 %s, built %s UTC); tree at git %s" % (
            v, shown, sha, built, rev or "?")


class RcloneMount(MountTool):
    """Debian's rclone mount, GCS backend pointed at the emulator through env vars.

    rclone 1.60 wants the Go API library's base path as endpoint: <url>/storage/v1/.
    Writes use --vfs-cache-mode writes (needed for random/ordinary writes) with
    --vfs-write-back 0s: upload right after close instead of rclone's default 5 s
    idle delay, which would only add a constant.  Reads and metadata use the
    default mode (off), overridable with BENCH_RCLONE_READ_MODE.
    """
    name = "rclone"
    uploads_after_close = True

    def make(self, url, bucket, prefix, purpose, workdir):
        conf = os.path.join(workdir, "rclone.conf")
        open(conf, "w").close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        env.update({"RCLONE_CONFIG": conf, "HOME": workdir,
                    "RCLONE_CONFIG_EMU_TYPE": "google cloud storage",
                    "RCLONE_CONFIG_EMU_ANONYMOUS": "true",
                    "RCLONE_CONFIG_EMU_ENDPOINT": url + "/storage/v1/",
                    "RCLONE_CONFIG_EMU_BUCKET_POLICY_ONLY": "true"})
        if purpose == "write":
            mode = ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s"]
        else:
            mode = ["--vfs-cache-mode", os.environ.get("BENCH_RCLONE_READ_MODE", "off")]
        remote = "emu:%s/%s" % (bucket, prefix) if prefix else "emu:" + bucket
        mnt = os.path.join(workdir, "mnt")
        argv = ["rclone", "mount", remote, mnt, "--cache-dir", os.path.join(workdir, "cache"),
                "--log-file", os.path.join(workdir, "rclone.log")] + mode
        argv += shlex.split(os.environ.get("BENCH_RCLONE_OPTS", ""))
        return Mount(self, argv, mnt, env, workdir)

    @staticmethod
    def version():
        return version_of(["rclone", "version"])


def make_tools(bench_dir, names):
    all_tools = {"curl": Curl(), "gcsmount": GcsMount(bench_dir),
                 "rclone": RcloneMount(bench_dir)}
    bad = [n for n in names if n not in all_tools]
    if bad:
        raise SystemExit("unknown tool(s) in BENCH_TOOLS: %s" % ", ".join(bad))
    versions = {n: t.version() for n, t in all_tools.items()}   # as of the start
    for n in names:
        log("%s: %s" % (n, versions[n]))
    return [all_tools[n] for n in names], versions
