"""Shared pytest fixtures.

Emulator fixtures: `emulator` (one local GCS emulator for the whole session,
on a free port with a temporary root), `bucket` (a fresh, uniquely named
bucket per test, returned as an EmulatorClient) and `emulator_factory`
(private emulators for tests that restart or reconfigure one).  Tests import
the client with `from emulator.client import ...`.
"""

import os
import select
import subprocess
import sys
import time
import uuid

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from emulator.client import EmulatorClient  # noqa: E402

EMULATOR_SCRIPT = os.path.join(TESTS_DIR, "emulator", "gcs_emulator.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running tests (large transfers, rclone)")


class Emulator:
    """A running gcs_emulator.py subprocess."""

    def __init__(self, root, args=(), port=0):
        self.root = str(root)
        self.args = list(args)
        self.port = port
        self.proc = None
        self.url = None
        self.log_path = self.root.rstrip("/") + ".log"

    def start(self, timeout=20):
        os.makedirs(self.root, exist_ok=True)
        cmd = [sys.executable, EMULATOR_SCRIPT, "--port", str(self.port), "--root", self.root]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd + self.args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=log)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([self.proc.stdout], [], [], max(0.0, left))[0]
            chunk = os.read(self.proc.stdout.fileno(), 256) if ready else b""
            if not chunk:
                self.stop()
                raise RuntimeError("emulator did not start; log:\n" + self.log_tail())
            line += chunk
        word, url = line.decode().split()[:2]
        assert word == "READY", line
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def restart(self, args=None):
        """Stop and start again on the same port and root (state is on disk)."""
        self.stop()
        if args is not None:
            self.args = list(args)
        return self.start()

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def token_url(self):
        return self.url + "/token"

    @property
    def storage_endpoint(self):
        """JSON API base, as clients built on Google's API libraries want it."""
        return self.url + "/storage/v1/"

    def client(self, bucket=None, token=None):
        return EmulatorClient(self.url, bucket, token)

    def new_bucket(self, prefix="t"):
        c = self.client("%s-%s" % (prefix, uuid.uuid4().hex[:20]))
        c.create_bucket()
        return c


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("emulator") / "root").start()
    yield emu
    emu.stop()


@pytest.fixture
def bucket(emulator):
    c = emulator.new_bucket()
    yield c
    emulator.client().clear_faults()


@pytest.fixture
def emulator_factory(tmp_path):
    """start(*args) -> a private Emulator, stopped at teardown."""
    started = []

    def start(*args, root=None):
        emu = Emulator(root or tmp_path / ("emu%d" % len(started)), args).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


# Mount fixtures (mount_factory, mnt) live beside the emulator ones.
pytest_plugins = ["mount_fixtures"]
