"""pytest fixtures for real mounts (loaded from conftest.py).

mount_factory(bucket_client, prefix="", opts=(), env=None) starts a Mount
of the emulator's bucket; every mount made is stopped at the end of the test
and must exit 0 with a clean log. `mnt` is the common case: the test's fresh
bucket mounted at prefix "run".
"""

import pytest

from mountlib import Mount


@pytest.fixture
def mount_factory(emulator, tmp_path):
    made = []

    def make(client, prefix="", opts=(), env=None, start=True, anonymous=True):
        wd = tmp_path / ("m%d" % len(made))
        wd.mkdir()
        m = Mount(emulator.url, client.bucket, prefix, opts, env, str(wd), anonymous)
        made.append(m)
        return m.start() if start else m

    yield make
    errors = []
    for m in made:
        if m.proc is not None:
            rc = m.stop()
            if rc != 0:
                errors.append("gcsmount exited %s:\n%s" % (rc, m.read_log()))
    assert not errors, "\n".join(errors)


@pytest.fixture
def mnt(bucket, mount_factory):
    return mount_factory(bucket, "run")
