"""The benchmark's listing yardsticks: the floor asks for what gcsmount asks for (the
same `fields=`), and memfs, figure 4's bound, lists what it should."""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "bench"))

import workloads  # noqa: E402


def test_floor_fields_match_gcsmount():
    with open(os.path.join(HERE, "..", "gcs", "objects.c")) as f:
        src = f.read()
    m = re.search(r'#define LIST_FIELDS ((?:"[^"]*"\s*\\?\s*)+)', src)
    assert m, "LIST_FIELDS not found in gcs/objects.c"
    fields = "".join(re.findall(r'"([^"]*)"', m.group(1)))
    assert fields == workloads.GCSMOUNT_LIST_FIELDS


def test_memfs_yardstick_lists_its_names(tmp_path):
    """Figure 4's bound is only as good as memfs: it builds warning-free and `ls -l`
    over it shows its names as files with attributes, and nothing else."""
    binary, why = workloads.memfs_binary(str(tmp_path))
    assert binary, why
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen([binary, "37", str(mnt)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not os.path.ismount(mnt):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "memfs did not mount"
            time.sleep(0.05)
        out = subprocess.run(["ls", "-l", str(mnt)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
        names = [ln.split()[-1] for ln in out if not ln.startswith("total")]
        assert names == ["f%05d" % k for k in range(37)]
        assert all(ln.startswith("-rw-r--r--") for ln in out[1:])
        assert os.stat(mnt / "f00036").st_size == 24
        assert not os.path.exists(mnt / "f00037")
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        proc.wait(10)
    assert proc.returncode == 0
