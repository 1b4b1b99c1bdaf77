"""Start and stop real gcsmount mounts for the tests.

Mount runs the binary named by $GCSMOUNT_BIN (default: ../gcsmount) in the
foreground (-f) as a child process, waits until the kernel shows the mount,
and on stop unmounts with fusermount3 and checks the process exited cleanly.
Its stderr goes to a log file; a sanitizer report in it fails the test.
"""

import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("GCSMOUNT_BIN") or os.path.join(os.path.dirname(HERE), "gcsmount")

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1].replace("\\040", " ") == path:
                return True
    return False


def run_cli(args, env=None, timeout=60, wrapper=()):
    """Run gcsmount with args (under the wrapper command, if any, such as
    setpriv); returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(list(wrapper) + [BIN] + list(args), capture_output=True, text=True,
                          env=e, timeout=timeout, stdin=subprocess.DEVNULL)


class Mount:
    def __init__(self, endpoint, bucket, prefix="", opts=None, env=None, workdir=None,
                 anonymous=True):
        self.workdir = workdir or tempfile.mkdtemp(prefix="gcsmount-test-")
        self.path = os.path.join(self.workdir, "mnt")
        self.spool = os.path.join(self.workdir, "spool")
        os.makedirs(self.path, exist_ok=True)
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.opts = list(opts or [])
        if anonymous and not any(o.startswith(("key_file=", "token_file=")) for o in self.opts):
            self.opts.append("anonymous")
        self.env = dict(os.environ)
        # Tests never reach a real metadata server or a key outside their tree.
        self.env.setdefault("GCSMOUNT_NO_METADATA_PROBE", "1")
        self.env.setdefault("GCSMOUNT_DEFAULT_KEY_PATH",
                            os.path.join(self.workdir, "no-default-key.json"))
        self.env.setdefault("CLOUDSDK_CONFIG", os.path.join(self.workdir, "no-gcloud"))
        for var in ("STORAGE_EMULATOR_HOST", "GC_KEY_PATH", "GOOGLE_KEY_PATH",
                    "GOOGLE_APPLICATION_CREDENTIALS", "GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT",
                    "GCE_METADATA_HOST", "GCE_METADATA_ROOT"):
            self.env.pop(var, None)
        self.env.update(env or {})
        self.proc = None
        self.log_path = os.path.join(self.workdir, "gcsmount.log")

    @property
    def source(self):
        return "gs://%s/%s" % (self.bucket, self.prefix) if self.prefix else "gs://" + self.bucket

    def argv(self):
        opts = ["endpoint=" + self.endpoint, "spool_dir=" + self.spool] + self.opts
        return [BIN, "-f", "-o", ",".join(opts), self.source, self.path]

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if is_mounted(self.path):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("gcsmount exited with %d:\n%s" % (self.proc.returncode,
                                                                      self.read_log()))
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError("gcsmount did not mount within %ss:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=60):
        """Unmount and wait; returns the exit status."""
        if self.proc is None:
            return None
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", self.path], capture_output=True)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            subprocess.run(["fusermount3", "-uz", self.path], capture_output=True)
            raise AssertionError("gcsmount did not exit after unmount:\n" + self.read_log())
        finally:
            self.log.close()
            self.proc = None
        log = self.read_log()
        for mark in SANITIZER_MARKS:
            assert mark not in log, "sanitizer report in gcsmount's log:\n" + log
        return rc

    def kill(self):
        """kill -9 the mount (the kernel mount stays until unmounted)."""
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["fusermount3", "-uz", self.path], capture_output=True)
        self.log.close()
        self.proc = None

    def remount(self):
        assert self.stop() == 0
        return self.start()

    def p(self, *parts):
        return os.path.join(self.path, *parts)
