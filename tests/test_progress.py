"""The progress line: on a terminal, uploads that take long show one status
line redrawn in place below the log ("uploading 1 file, X of Y, R/s"), and
`gcsmount run` shows "saving outputs: ..." while it waits for uploads after
the command exited, then a one-line summary. With stderr not a terminal (or
-o noprogress) nothing of it is written.

The emulator reads upload bodies slowly (a throttle-NK fault on the test's
bucket), so an upload of a few MiB lasts several seconds: long enough for the
line to show after its two seconds however loaded the machine is. A
pseudo-terminal stands for the terminal; what gcsmount writes to it is read
on the master side and replayed on a small screen model, so the tests check
what a user would be left looking at, not only which bytes went by."""

import errno
import os
import pty
import re
import select
import struct
import subprocess
import termios
import fcntl
import time

from mountlib import BIN, SANITIZER_MARKS, is_mounted

SIZE = 3 * 1024 * 1024
# 3 MiB at 512 KiB/s: about six seconds of uploading.
THROTTLE = "throttle-512K"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z gcsmount (error|warn|info|debug): ")
STATUS = re.compile(r"\r(uploading|saving outputs:) (\d+) files?, [\d.]+ (?:B|KiB|MiB) of "
                    r"[\d.]+ (?:B|KiB|MiB)(?:, [\d.]+ (?:B|KiB|MiB)/s)?(?:\x1b\[K)?\r")


def slow_uploads(bucket):
    bucket.set_faults([{"kind": "*", "action": THROTTLE, "count": -1, "bucket": bucket.bucket}])


def base_env(tmp_path):
    env = dict(os.environ, GCSMOUNT_NO_METADATA_PROBE="1", TERM="xterm",
               GCSMOUNT_DEFAULT_KEY_PATH=str(tmp_path / "no-default-key.json"),
               CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"))
    for var in ("STORAGE_EMULATOR_HOST", "GC_KEY_PATH", "GOOGLE_KEY_PATH",
                "GOOGLE_APPLICATION_CREDENTIALS", "GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT"):
        env.pop(var, None)
    return env


def opts(emulator, tmp_path, extra=()):
    return ",".join(["endpoint=" + emulator.url, "anonymous",
                     "spool_dir=%s" % (tmp_path / "spool"), "chunk_size=1M"] + list(extra))


class Terminal:
    """A process whose stdin, stdout and stderr are a pseudo-terminal."""

    def __init__(self, argv, env, cols=150):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.out = b""

    def read_until(self, pattern, timeout):
        """Read until pattern (bytes regex) matches what was read, or the end."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                return None
        return re.search(pattern, self.out)

    def _read(self, timeout):
        if not select.select([self.master], [], [], timeout)[0]:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: every slave side is closed
                raise
            data = b""
        self.out += data
        return bool(data)

    def finish(self, timeout=120):
        """Read to the end and wait; returns (exit status, output text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass
        rc = self.proc.wait(timeout=max(1, deadline - time.monotonic()))
        os.close(self.master)
        text = self.out.decode("utf-8", "replace")
        for mark in SANITIZER_MARKS:
            assert mark not in text, "sanitizer report:\n" + text
        return rc, text


def screen(text):
    """The lines a terminal is left showing after text: \\r returns to the
    start of the line, ESC[K clears to its end, \\n starts the next one."""
    lines, line, col = [], [], 0
    i = 0
    while i < len(text):
        if text.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        c = text[i]
        i += 1
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
    if line:
        lines.append("".join(line).rstrip())
    return lines


def check_screen(lines, extra_ok=()):
    """Every line left is a whole log line or one the test expects: no
    status line, nothing drawn over another."""
    for line in lines:
        if not line:
            continue
        assert LOG_LINE.match(line) or any(re.fullmatch(p, line) for p in extra_ok), \
            "unexpected line on the screen: %r\nscreen:\n%s" % (line, "\n".join(lines))
        assert not re.search(r"uploading \d+ file|saving outputs: ", line), line


def run_argv(emulator, bucket, tmp_path, prefix, script, extra=()):
    return [BIN, "run", "-o", opts(emulator, tmp_path, extra),
            "gs://%s/%s" % (bucket.bucket, prefix), str(tmp_path / "outputs"), "--",
            "sh", "-c", script, "sh", str(tmp_path / "outputs")]


def test_run_shows_long_uploads_on_a_terminal(emulator, bucket, tmp_path):
    slow_uploads(bucket)
    # The command prints after its close returned (the upload is done by then).
    script = 'head -c %d /dev/urandom > "$1/model.bin"; echo "wrote the model"' % SIZE
    t = Terminal(run_argv(emulator, bucket, tmp_path, "job", script), base_env(tmp_path))
    rc, text = t.finish()
    assert rc == 0, text
    frames = STATUS.findall(text)
    assert ("uploading", "1") in frames, text
    # Redrawn in place a few times a second at most, not once per chunk only.
    assert 2 <= len(frames) <= 4 * 60, frames
    lines = screen(text)
    # The status line was gone before the command wrote: its line is clean.
    assert "wrote the model" in lines, lines
    assert lines[-1] == ("gcsmount: outputs saved to gs://%s/job (all uploaded while the command "
                         "ran)" % bucket.bucket), lines
    check_screen(lines, extra_ok=[r"wrote the model", r"gcsmount: outputs saved to .*"])
    assert int(bucket.stat("job/model.bin")["size"]) == SIZE


def test_run_shows_saving_outputs_and_a_summary(emulator, bucket, tmp_path):
    slow_uploads(bucket)
    # The command exits at once, leaving behind a process that holds a file of
    # the mount open and writes it two seconds later: run waits for its upload.
    script = ('exec 3>"$1/late.bin"; (sleep 2; head -c %d /dev/urandom >&3) & '
              'echo "command done"' % SIZE)
    t = Terminal(run_argv(emulator, bucket, tmp_path, "left", script), base_env(tmp_path))
    rc, text = t.finish()
    assert rc == 0, text
    assert ("saving outputs:", "1") in STATUS.findall(text), text
    lines = screen(text)
    assert re.fullmatch(r"gcsmount: outputs saved to gs://%s/left: 1 file, 3\.0 MiB uploaded in "
                        r"[\d.]+ s after the command ended" % bucket.bucket, lines[-1]), lines
    check_screen(lines, extra_ok=[r"command done", r"gcsmount: outputs saved to .*"])
    assert int(bucket.stat("left/late.bin")["size"]) == SIZE


def test_run_is_quiet_when_stderr_is_not_a_terminal(emulator, bucket, tmp_path):
    slow_uploads(bucket)
    script = 'head -c %d /dev/urandom > "$1/model.bin"; echo "wrote the model"' % SIZE
    r = subprocess.run(run_argv(emulator, bucket, tmp_path, "pipe", script),
                       env=base_env(tmp_path), capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "wrote the model\n"
    for text in (r.stdout, r.stderr):
        assert "\r" not in text and "\x1b" not in text, repr(text)
        assert not re.search(r"uploading \d+ file|saving outputs: |outputs saved", text), text
    assert all(LOG_LINE.match(line) for line in r.stderr.splitlines()), r.stderr
    assert int(bucket.stat("pipe/model.bin")["size"]) == SIZE


def test_noprogress_on_a_terminal(emulator, bucket, tmp_path):
    slow_uploads(bucket)
    script = 'head -c %d /dev/urandom > "$1/model.bin"' % SIZE
    t = Terminal(run_argv(emulator, bucket, tmp_path, "off", script, ["noprogress"]),
                 base_env(tmp_path))
    rc, text = t.finish()
    assert rc == 0, text
    assert "\x1b" not in text and "\r\r" not in text, repr(text)
    assert not re.search(r"uploading \d+ file|saving outputs: |outputs saved", text), text
    assert int(bucket.stat("off/model.bin")["size"]) == SIZE


def test_foreground_mount_shows_long_uploads(emulator, bucket, tmp_path):
    slow_uploads(bucket)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [BIN, "-f", "-o", opts(emulator, tmp_path), "gs://%s/fg" % bucket.bucket, str(mnt)]
    t = Terminal(argv, base_env(tmp_path))
    try:
        assert t.read_until(rb"mounted gs://", 30), t.out
        data = os.urandom(SIZE)
        with open(mnt / "ckpt.bin", "wb") as f:
            f.write(data)
        # close returned: the object is there, and the line showed while it waited.
        assert bucket.get("fg/ckpt.bin") == data
        assert t.read_until(rb"\ruploading 1 file, ", 10), t.out
    finally:
        if is_mounted(str(mnt)):
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    rc, text = t.finish()
    assert rc == 0, text
    check_screen(screen(text))
