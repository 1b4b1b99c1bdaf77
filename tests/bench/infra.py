"""Plumbing of the benchmark: the emulator process, a keep-alive JSON-API client,
process CPU/RSS probes, page-cache dropping, cleanup on exit.

Nothing here measures a tool; workloads.py does, with these pieces.
"""

import http.client
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import quote, urlencode

# The tests' own helpers (tests/): one reading of /proc/self/mounts for both.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mountlib import is_mounted  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
EMULATOR = os.path.join(TESTS, "emulator", "gcs_emulator.py")
PYTHON = "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
GiB = 1 << 30


class Failed(Exception):
    """A tool could not do the workload; the message goes into its table cell."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------- cleanup

class Cleanup:
    """LIFO of callbacks run at exit (mounts before the emulator they talk to)."""

    def __init__(self):
        self.items = []

    def push(self, fn, what):
        self.items.append((fn, what))
        return fn

    def discard(self, fn):
        self.items = [(f, w) for f, w in self.items if f is not fn]

    def run(self):
        while self.items:
            fn, what = self.items.pop()
            try:
                fn()
            except BaseException as e:          # keep cleaning up whatever happens
                log("cleanup of %s: %r" % (what, e))


CLEANUP = Cleanup()


def install_signal_handlers():
    """SIGINT (even when inherited as ignored, as in a background job), SIGTERM and
    SIGHUP raise KeyboardInterrupt: unwind through every finally."""
    def handler(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# ---------------------------------------------------------------- system

def drop_caches():
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


PAGE_REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"


def pause_page_reporting(keep):
    """Stop a virtual machine's free page reporting for the run; a line for the results.

    With it on, the guest hands 2 MiB blocks of free memory back to the host within
    seconds of their freeing, and whoever touches that memory next pays a host fault per
    page.  Each run drops the page cache, so the next run's fresh memory (a mount's
    buffers and the page cache of the file it reads, never curl's writes to /dev/null)
    costs more or less by chance: figure 2 swung between about 0.7x and 1.0x curl on the
    same build.  Reporting starts at page_reporting_order; an order above the largest
    free block stops it.  Restored at exit."""
    try:
        with open(PAGE_REPORTING_ORDER) as f:
            was = f.read().strip()
    except OSError:
        return "not present on this machine"
    if keep:
        return "left on (order %s; BENCH_PAGE_REPORTING=keep)" % was
    for order in ("11", "10"):
        try:
            with open(PAGE_REPORTING_ORDER, "w") as f:
                f.write(order)
        except OSError:
            continue

        def restore():
            with open(PAGE_REPORTING_ORDER, "w") as f:
                f.write(was)
        CLEANUP.push(restore, "page_reporting_order")
        if order == "10":
            # The kernel's largest order (x86: blocks of 4 MiB), which mainline
            # kernels cap the parameter at: free blocks that size are still reported.
            return ("reduced for the run (page_reporting_order 10, was %s; free blocks of "
                    "4 MiB are still reported; restored after)" % was)
        return "paused for the run (page_reporting_order %s, was %s; restored after)" % (
            order, was)
    return "on (order %s): page_reporting_order could not be raised" % was


def warm_file(path):
    """Read a local file once so later reads of it come from the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 * MiB):
            pass


def proc_cpu(pid):
    """utime+stime of a process in seconds (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def unmount(path, patience=15.0):
    """fusermount3 -u, retried while the mount is busy (a process still closing a file);
    after `patience` seconds a lazy unmount.  True when the first attempts worked."""
    deadline = time.monotonic() + patience
    while is_mounted(path):
        subprocess.run(["fusermount3", "-u", path], capture_output=True)
        if not is_mounted(path):
            break
        if time.monotonic() > deadline:
            subprocess.run(["fusermount3", "-uz", path], capture_output=True)
            return False
        time.sleep(0.2)
    return True


def kill_group(proc):
    """SIGKILL a child started with start_new_session=True and everything it forked."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)       # the group outlives a dead leader
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc, grace=20):
    """Terminate a Popen we started; returns its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def run_timed(argv, timeout, **kw):
    """Run argv; (seconds, CompletedProcess, cpu seconds of the child).  Raises Failed on
    a non-zero status or a timeout (the child is killed)."""
    c0 = children_cpu()
    t0 = time.perf_counter()
    # Own process group, so that a timeout or Ctrl-C kills what it forked too (fio).
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException as e:
        kill_group(p)
        p.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise Failed("%s timed out after %ds" % (os.path.basename(argv[0]), timeout))
        raise
    dt = time.perf_counter() - t0
    p = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if p.returncode != 0:
        raise Failed("%s exit %d: %s" % (os.path.basename(argv[0]), p.returncode,
                                         last_line(p.stderr)))
    return dt, p, children_cpu() - c0


def last_line(text):
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:160]


def spawn(argv):
    """A workload process in its own group (see run_timed); stderr piped."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_all(procs, timeout):
    """Wait for spawned processes; their exit statuses.  On a timeout or an interrupt
    every one still running is killed."""
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise Failed("%d of %d processes still running after %ds"
                             % (sum(p.poll() is None for p in procs), len(procs), timeout))
            time.sleep(0.005)
    except BaseException:
        for p in procs:
            if p.poll() is None:
                kill_group(p)
                p.wait()
        raise
    return [p.returncode for p in procs]


def machine_cpu():
    """(all CPU seconds elapsed, busy CPU seconds) of the whole machine so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v = v[:8]                                  # guest time is already in user
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) / CLK_TCK, (sum(v) - idle) / CLK_TCK


def cpu_busy(seconds=1.0):
    """Fraction of the machine's CPU time that was busy over `seconds` (everyone's)."""
    t0, b0 = machine_cpu()
    time.sleep(seconds)
    t1, b1 = machine_cpu()
    return (b1 - b0) / max(1e-9, t1 - t0)


class OtherLoad:
    """CPU the rest of the machine used meanwhile: machine busy time minus this process,
    its reaped children and the given live pids (kernel threads working for us, such as
    writeback and loopback softirqs, count as other)."""

    def __init__(self, pids=()):
        self.pids = list(pids)
        self.t0, self.b0 = machine_cpu()
        self.o0 = self._ours()

    def _ours(self):
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            total += ru.ru_utime + ru.ru_stime
        for pid in self.pids:
            total += proc_cpu(pid) or 0.0
        return total

    def fraction(self):
        t1, b1 = machine_cpu()
        other = (b1 - self.b0) - (self._ours() - self.o0)
        return max(0.0, other) / max(1e-9, t1 - self.t0)


def wait_quiet(max_wait, threshold=0.15):
    """Wait up to max_wait seconds for the machine to be mostly idle; the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = cpu_busy(2.0)
        if busy <= threshold or time.monotonic() >= deadline:
            return busy
        log("machine %.0f%% busy with other work; waiting for it to calm down" % (busy * 100))


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# ---------------------------------------------------------------- the emulator

class Emulator:
    """gcs_emulator.py on a free port with its root on disk (kept across runs)."""

    def __init__(self, root, buckets, log_path):
        self.root = root
        self.buckets = buckets
        self.log_path = log_path
        self.proc = None
        self.url = None

    def start(self, timeout=120):
        os.makedirs(self.root, exist_ok=True)
        cmd = [PYTHON, EMULATOR, "--port", "0", "--root", self.root]
        for b in self.buckets:
            cmd += ["--bucket", b]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=logf, start_new_session=True)
        CLEANUP.push(self.stop, "emulator")
        line = b""
        deadline = time.monotonic() + timeout      # loading a big root takes a moment
        while not line.endswith(b"\n"):
            ready = select.select([self.proc.stdout], [], [],
                                  max(0.0, deadline - time.monotonic()))[0]
            chunk = os.read(self.proc.stdout.fileno(), 256) if ready else b""
            if not chunk:
                raise RuntimeError("emulator did not start; see " + self.log_path)
            line += chunk
        word, self.url = line.decode().split()[:2]
        assert word == "READY", line
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc.stdout.close()
            self.proc = None

    def api(self):
        return Api("127.0.0.1", self.port)


class Api:
    """JSON-API client on one keep-alive connection (python http.client).

    counts: requests made, by the emulator's kind names, so that requests the
    benchmark itself makes (polling) can be told apart from a tool's.
    """

    def __init__(self, host, port, timeout=600):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None
        self.counts = Counter()

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, kind=None, sink=False):
        """(status, body bytes); body read to /dev/null (counted) when sink."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                if sink:
                    n = 0
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        n += len(chunk)
                    data = n
                else:
                    data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                if kind:
                    self.counts[kind] += 1
                return r.status, data
            except (http.client.HTTPException, ConnectionError) as e:
                self.close()
                if attempt or body is not None and not isinstance(body, (bytes, str)):
                    raise Failed("HTTP %s %s: %r" % (method, path[:80], e))
        raise AssertionError("unreachable")

    def json(self, method, path, body=None, expect=(200,), kind=None):
        hdrs = {}
        if body is not None:
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        st, data = self.request(method, path, body, hdrs, kind)
        if st not in expect:
            raise Failed("HTTP %d on %s %s: %s" % (st, method, path[:80], data[:200]))
        return json.loads(data) if data else None

    # -------------------------------------------------------- objects
    @staticmethod
    def opath(bucket, name):
        return "/storage/v1/b/%s/o/%s" % (bucket, quote(name, safe=""))

    def put(self, bucket, name, data):
        q = urlencode({"uploadType": "media", "name": name})
        st, body = self.request("POST", "/upload/storage/v1/b/%s/o?%s" % (bucket, q), data,
                                {"Content-Type": "application/octet-stream"},
                                kind="object.insert.media")
        if st != 200:
            raise Failed("upload of %s: HTTP %d %s" % (name, st, body[:200]))
        return json.loads(body)

    def stat(self, bucket, name):
        """Object resource or None."""
        st, body = self.request("GET", self.opath(bucket, name), kind="object.get")
        if st == 404:
            return None
        if st != 200:
            raise Failed("stat of %s: HTTP %d" % (name, st))
        return json.loads(body)

    def delete(self, bucket, name):
        st, _ = self.request("DELETE", self.opath(bucket, name), kind="object.delete")
        if st not in (204, 404):
            raise Failed("delete of %s: HTTP %d" % (name, st))

    def list_page(self, bucket, prefix, token=None, delimiter=None, max_results=1000,
                  fields=None):
        q = {"prefix": prefix, "maxResults": max_results}
        if fields:
            q["fields"] = fields
        if delimiter:
            q["delimiter"] = delimiter
        if token:
            q["pageToken"] = token
        return self.json("GET", "/storage/v1/b/%s/o?%s" % (bucket, urlencode(q)),
                         kind="object.list")

    def list_all(self, bucket, prefix, delimiter=None):
        items, token = [], None
        while True:
            page = self.list_page(bucket, prefix, token, delimiter)
            items += page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return items

    def stats(self):
        return self.json("GET", "/_emu/stats")

    def reset_stats(self):
        self.json("POST", "/_emu/stats/reset")


def parallel(port, fn, items, threads=8):
    """fn(api, item) for every item, on `threads` keep-alive connections to the
    emulator at port; raises the first error."""
    it = iter(items)
    lock = threading.Lock()
    errors = []

    def worker(api):
        try:
            while not errors:
                with lock:
                    item = next(it, None)
                if item is None:
                    return
                fn(api, item)
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            api.close()

    ths = [threading.Thread(target=worker, args=(Api("127.0.0.1", port),)) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        raise errors[0]



def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
