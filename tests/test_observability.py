"""Observability: the Prometheus endpoint of -o metrics=ADDR:PORT, and
`gcsmount status MOUNTPOINT`, which lists what a running mount has not yet
put in the bucket (exit 0 when nothing, 1 otherwise, 2 when MOUNTPOINT is
not a gcsmount mount).

Files are written from a child process where a test runs `gcsmount status`
while they are open: a file descriptor of the test's own process would be
closed (and the file published, as FUSE flushes on every close) in the
child that fork/exec makes to run the command."""

import errno
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from mountlib import BIN, is_mounted, run_cli

STATUS_FILE = ".gcsmount-status"

# A program that opens a file, writes N random bytes, says "written", waits for a
# line on stdin (unless "now" is given), closes, and says "closed" or the error.
WRITER = r"""
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
data = os.urandom(int(sys.argv[2]))
os.write(fd, data)
open(sys.argv[3], "wb").write(data)
print("written", flush=True)
if sys.argv[4] != "now":
    sys.stdin.readline()
try:
    os.close(fd)
    print("closed", flush=True)
except OSError as e:
    print("close failed: %s" % errno.errorcode.get(e.errno, e.errno), flush=True)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Writer:
    """A child process holding a file of the mount open for writing."""

    def __init__(self, path, size, tmp_path, close_now=False):
        self.copy = str(tmp_path / ("copy-%d" % time.monotonic_ns()))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, path, str(size), self.copy,
             "now" if close_now else "wait"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "written"

    @property
    def data(self):
        with open(self.copy, "rb") as f:
            return f.read()

    def close(self, timeout=60):
        """Close (if not already) and return the writer's last line."""
        if self.proc.stdin:
            try:
                self.proc.stdin.write("\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        line = self.proc.stdout.readline().strip()
        self.proc.wait(timeout)
        self.proc.stdout.close()
        return line


# --- the Prometheus text format ------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(?:,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        assert m, "bad labels: %r" % text
        assert m.group(1) not in labels, "label twice: %r" % text
        labels[m.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                                    m.group(2))
        pos = m.end()
    return labels


def parse_metrics(text):
    """Families {name: {"type", "help", "samples": [(name, labels, value)]}}.

    Strict: every line a comment (HELP, TYPE) or a sample, every sample after
    the TYPE line of its family, no sample twice, values that are floats."""
    assert text.endswith("\n")
    families, current, seen = {}, None, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.setdefault(name, {"samples": []})["help"] = help_text
            continue
        if line.startswith("# TYPE "):
            name, typ = line[7:].split(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert "type" not in families.get(name, {}), "TYPE twice: " + line
            families.setdefault(name, {"samples": []})["type"] = typ
            if typ == "counter":
                assert name.endswith("_total"), line
            current = name
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), float(m.group(3))
        assert current, "sample before any TYPE: " + line
        typ = families[current]["type"]
        if typ == "histogram":
            assert name in (current + "_bucket", current + "_sum", current + "_count"), line
        else:
            assert name == current, line
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, "sample twice: " + line
        seen.add(key)
        families[current]["samples"].append((name, labels, value))
    return families


def check_histograms(families):
    for fam, f in families.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for name, labels, value in f["samples"]:
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            s = series.setdefault(rest, {"buckets": []})
            if name.endswith("_bucket"):
                le = labels["le"]
                s["buckets"].append((float("inf") if le == "+Inf" else float(le), value))
            else:
                s[name.rsplit("_", 1)[1]] = value
        assert series, fam
        for rest, s in series.items():
            b = s["buckets"]
            assert [le for le, _ in b] == sorted(le for le, _ in b), (fam, rest)
            assert b[-1][0] == float("inf"), (fam, rest)
            counts = [v for _, v in b]
            assert counts == sorted(counts), ("buckets not cumulative", fam, rest, counts)
            assert s["count"] == b[-1][1], (fam, rest)
            assert s["sum"] >= 0


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = parse_metrics(r.read().decode())
    check_histograms(families)
    return families


def value(families, name, **labels):
    """The sum of the samples of name whose labels include labels."""
    family = name if name in families else re.sub(r"_(bucket|sum|count)$", "", name)
    fam = families[family]
    return sum(v for n, lab, v in fam["samples"]
               if n == name and all(lab.get(k) == w for k, w in labels.items()))


# --- metrics -------------------------------------------------------------------

def test_metrics_during_and_after_a_write(bucket, mount_factory):
    port = free_port()
    m = mount_factory(bucket, "run", opts=["metrics=127.0.0.1:%d" % port,
                                           "publish_interval=0"])
    data = os.urandom(20 << 20)
    with open(m.p("big.bin"), "wb") as f:
        f.write(data[:12 << 20])
        during = scrape(port)
        assert value(during, "gcsmount_files_pending") == 1
        assert value(during, "gcsmount_pending_bytes") == 12 << 20
        assert value(during, "gcsmount_spool_files") >= 1
        assert value(during, "gcsmount_spool_bytes") >= 12 << 20
        f.write(data[12 << 20:])
    after = scrape(port)
    assert bucket.get("run/big.bin") == data
    sent = value(after, "gcsmount_http_sent_bytes_total")
    assert sent >= 20 << 20
    assert value(after, "gcsmount_http_sent_bytes_total", kind="upload") >= 20 << 20
    # The mount's own requests: the bucket check and the listing before mounting,
    # then a resumable session and its chunks.
    for kind in ("bucket", "list", "upload_start", "upload"):
        assert value(after, "gcsmount_http_requests_total", kind=kind) >= 1, kind
    assert value(after, "gcsmount_http_requests_total", kind="upload", code="200") >= 1
    assert value(after, "gcsmount_http_request_duration_seconds_count", kind="upload") == \
        value(after, "gcsmount_http_requests_total", kind="upload")
    assert value(after, "gcsmount_http_retries_total") == 0
    assert value(after, "gcsmount_files_pending") == 0
    assert value(after, "gcsmount_pending_bytes") == 0
    assert value(after, "gcsmount_uploads_in_flight") == 0
    assert value(after, "gcsmount_write_buffer_pending_bytes") == 0
    assert value(after, "gcsmount_write_buffer_limit_bytes") == 256 << 20
    assert after["gcsmount_token_refreshes_total"]["type"] == "counter"
    assert value(after, "gcsmount_http_requests_in_flight") == 0
    # Counters never go down.
    for name in ("gcsmount_http_requests_total", "gcsmount_http_sent_bytes_total"):
        assert value(after, name) >= value(during, name)
    # Anything but /metrics is 404.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10)
    assert e.value.code == 404


def test_metrics_count_retries_and_errors(bucket, mount_factory):
    port = free_port()
    m = mount_factory(bucket, "run", opts=["metrics=127.0.0.1:%d" % port])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503", "count": 2,
                        "bucket": bucket.bucket}])
    with open(m.p("a"), "wb") as f:
        f.write(b"x" * 1000)
    fam = scrape(port)
    assert value(fam, "gcsmount_http_requests_total", kind="upload", code="503") == 2
    assert value(fam, "gcsmount_http_requests_total", kind="upload", code="200") == 1
    assert value(fam, "gcsmount_http_retries_total", kind="upload") == 2


@pytest.mark.parametrize("addr, why, status", [
    ("127.0.0.1", "ADDRESS:PORT", 2),              # malformed: a usage error
    ("127.0.0.1:99999", "port", 2),
    ("127.0.0.1:http", "port", 2),
    ("no.such.host.invalid:9100", "resolve", 1),   # well formed, cannot be served
])
def test_metrics_bad_address(bucket, mount_factory, addr, why, status):
    m = mount_factory(bucket, "run", opts=["metrics=" + addr], start=False)
    r = subprocess.run(m.argv(), capture_output=True, text=True, env=m.env, timeout=60)
    assert r.returncode == status, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "metrics=" + addr in lines[0] and why in lines[0], lines[0]
    assert not is_mounted(m.path)


def test_metrics_port_in_use(bucket, mount_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        m = mount_factory(bucket, "run", opts=["metrics=127.0.0.1:%d" % port], start=False)
        r = subprocess.run(m.argv(), capture_output=True, text=True, env=m.env, timeout=60)
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0], r.stderr
    assert not is_mounted(m.path)


# --- gcsmount status -----------------------------------------------------------

def status(path):
    r = run_cli(["status", path], timeout=30)
    return r.returncode, r.stdout, r.stderr


def wait_status(path, ok, timeout=30):
    """Run `gcsmount status` until ok(rc, stdout) or the timeout; the last result."""
    deadline = time.time() + timeout
    while True:
        got = status(path)
        if ok(got[0], got[1]) or time.time() > deadline:
            return got
        time.sleep(0.1)


def test_status_lists_an_open_file_until_it_is_closed(bucket, mount_factory, tmp_path):
    m = mount_factory(bucket, "run", opts=["publish_interval=0"])
    os.mkdir(m.p("sub"))
    assert status(m.path)[0] == 0
    w = Writer(m.p("sub", "open.bin"), 3 << 20, tmp_path)
    rc, out, err = status(m.path)
    assert rc == 1, (out, err)
    assert "1 file not yet entirely in the bucket" in out
    row = [l for l in out.splitlines() if l.endswith(" sub/open.bin")]
    assert len(row) == 1, out
    size, unpublished, _age, state = row[0].split()[:4]
    assert int(size) == 3 << 20 and int(unpublished) == 3 << 20
    assert state in ("open", "uploading")
    # The status file itself, as other tools see it: readable, never listed.
    with open(os.path.join(m.path, STATUS_FILE)) as f:
        text = f.read()
    lines = text.splitlines()
    assert lines[0] == "gcsmount-status 1"
    assert lines[1] == "source gs://%s/run" % bucket.bucket
    assert lines[2] == "pending 1"
    assert re.match(r"^file 3145728 3145728 \d+\.\d (open|uploading) sub/open\.bin$", lines[3])
    assert STATUS_FILE not in os.listdir(m.path)
    assert not os.path.exists(m.p("sub", STATUS_FILE))
    with pytest.raises(OSError) as e:
        open(os.path.join(m.path, STATUS_FILE), "w")
    assert e.value.errno == errno.EACCES
    # No getxattr answers: ls -l pays no round trip per entry.
    with pytest.raises(OSError) as e:
        os.getxattr(m.path, "user.other")
    assert e.value.errno in (errno.ENOTSUP, errno.ENODATA)
    assert w.close() == "closed"
    rc, out, err = status(m.path)
    assert rc == 0, (out, err)
    assert "everything written is in the bucket" in out
    assert bucket.get("run/sub/open.bin") == w.data


def test_status_during_a_stalled_upload(bucket, mount_factory, tmp_path):
    port = free_port()
    m = mount_factory(bucket, "run", opts=["metrics=127.0.0.1:%d" % port])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "stall-5s", "count": 1,
                        "bucket": bucket.bucket}])
    w = Writer(m.p("slow.txt"), 100_000, tmp_path, close_now=True)
    rc, out, err = wait_status(m.path, lambda rc, out: " uploading " in out, timeout=4)
    assert rc == 1, (out, err)
    assert re.search(r"^\s+100000\s+100000\s+\S+\s+uploading\s+slow\.txt$", out, re.M), out
    fam = scrape(port)
    assert value(fam, "gcsmount_uploads_in_flight") == 1
    assert value(fam, "gcsmount_files_pending") == 1
    assert value(fam, "gcsmount_http_requests_in_flight", kind="upload") == 1
    assert w.close() == "closed"
    rc, out, err = status(m.path)
    assert rc == 0, (out, err)
    assert bucket.get("run/slow.txt") == w.data
    assert value(scrape(port), "gcsmount_uploads_in_flight") == 0


def test_status_shows_the_last_error_of_a_failed_close(bucket, mount_factory, tmp_path):
    m = mount_factory(bucket, "run", opts=["retry_deadline=1", "publish_interval=0"])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503", "count": -1,
                        "bucket": bucket.bucket}])
    w = Writer(m.p("failed.txt"), 5000, tmp_path, close_now=True)
    assert w.close() == "close failed: EIO"
    # Once the kernel released the file, the mount tries it again in the background.
    rc, out, err = wait_status(m.path, lambda rc, out: " retrying " in out, timeout=10)
    assert rc == 1, (out, err)
    assert re.search(r"^\s+5000\s+5000\s+\S+\s+retrying\s+failed\.txt$", out, re.M), out
    assert re.search(r"^\s+last error: .*503", out, re.M), out
    bucket.clear_faults()
    # One of the next tries gets it into the bucket, and the status says so.
    rc, out, err = wait_status(m.path, lambda rc, out: rc == 0, timeout=20)
    assert rc == 0, (out, err)
    assert bucket.get("run/failed.txt") == w.data
    assert m.stop() == 0


def test_status_usage_and_not_a_mount(bucket, mnt, tmp_path):
    r = run_cli(["status"])
    assert r.returncode == 2 and "usage: gcsmount status MOUNTPOINT" in r.stderr
    r = run_cli(["status", "a", "b"])
    assert r.returncode == 2
    r = run_cli(["status", "--help"])
    assert r.returncode == 0 and "usage" in r.stdout
    r = run_cli(["status", str(tmp_path)])
    assert r.returncode == 2
    assert r.stderr.strip() == "gcsmount status: %s: not the root of a gcsmount mount" % tmp_path
    r = run_cli(["status", str(tmp_path / "missing")])
    assert r.returncode == 2 and "No such file or directory" in r.stderr
    os.mkdir(mnt.p("d"))
    r = run_cli(["status", mnt.p("d")])
    assert r.returncode == 2 and "not the root of a gcsmount mount" in r.stderr
    assert run_cli(["status", mnt.path]).returncode == 0


def test_every_request_names_gcsmount_and_its_version(bucket, mount_factory):
    """The server side (request logs, audit, a support case) can tell the
    mount's requests apart: each one, whatever path it takes (libcurl's
    transfers, the in-place ranged GETs), says User-Agent: gcsmount/VERSION."""
    version = subprocess.run([BIN, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.split()[-1]
    m = mount_factory(bucket, "run", opts=["publish_interval=0"])
    data = os.urandom(3 << 20)
    bucket.reset_stats()
    with open(m.p("a.bin"), "wb") as f:       # an upload
        f.write(data)
    os.mkdir(m.p("d"))                         # a placeholder
    assert sorted(os.listdir(m.p(""))) == ["a.bin", "d"]
    with open(m.p("a.bin"), "rb") as f:        # ranged GETs
        f.seek(1 << 20)
        assert f.read(4096) == data[(1 << 20):(1 << 20) + 4096]
    stats = bucket.stats()
    assert stats["user_agents"] == {"gcsmount/" + version: stats["total"]}, stats
    assert stats["requests"].get("object.media", 0) >= 1
    assert bucket.get("run/a.bin") == data


def test_an_object_named_like_the_status_file_does_not_stand_in_for_it(bucket,
                                                                      mount_factory,
                                                                      tmp_path):
    """An object PREFIX/.gcsmount-status (here one saying nothing is pending) is
    not listed, so a listing cannot make the kernel take it for the status file;
    `gcsmount status` still reports the file open here."""
    m = mount_factory(bucket, "run", opts=["publish_interval=0"])
    bucket.put("run/.gcsmount-status", b"gcsmount-status 1\nsource gs://x\npending 0\n")
    w = Writer(m.p("open.bin"), 3 << 20, tmp_path)
    assert sorted(os.listdir(m.p())) == ["open.bin"]
    rc, out, _ = status(m.path)
    assert rc == 1 and "open.bin" in out, out
    w.close()
    assert "'run/.gcsmount-status' is not shown: the mount keeps that name" in m.read_log()
