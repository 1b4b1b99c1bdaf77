"""Cross-check of the GCS emulator with an independent client: Debian's rclone
(GCS backend built on Google's Go API library).  rclone is pointed at the
emulator with endpoint = <emulator>/storage/v1/ (the Go library's base path),
either anonymously or with a service-account key whose token_uri is the
emulator's /token while the emulator requires bearer tokens."""

import base64
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from emulator.client import make_service_account_key

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")]

TREE = {
    "top.txt": b"hello\n",
    "empty": b"",
    "d1/mid.bin": os.urandom(300_000),
    "d1/d2/big.bin": os.urandom(20_000_000),          # > rclone's 16 MiB chunk: resumable
    "d1/ünï cödé/with space.txt": "naïve café ✓\n".encode(),
    "d1/d2/d3/deep.txt": b"deep",
}


def rclone_env(tmp_path, endpoint, **extra):
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env.update({"RCLONE_CONFIG": str(conf), "HOME": str(tmp_path),
                "RCLONE_CONFIG_EMU_TYPE": "google cloud storage",
                "RCLONE_CONFIG_EMU_ENDPOINT": endpoint,
                "RCLONE_CONFIG_EMU_BUCKET_POLICY_ONLY": "true"})
    env.update({"RCLONE_CONFIG_EMU_" + k.upper(): v for k, v in extra.items()})
    return env


def rclone(env, *args, check=True, timeout=300):
    p = subprocess.run(["rclone", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("rclone %s failed (%d):\n%s" % (" ".join(args), p.returncode,
                                                              p.stderr[-4000:]))
    return p


def write_tree(root):
    for rel, data in TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def md5hex(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def anon_env(emulator, tmp_path):
    return rclone_env(tmp_path, emulator.storage_endpoint, anonymous="true")


def test_rclone_copy_list_roundtrip(emulator, bucket, anon_env, tmp_path):
    src, back = tmp_path / "src", tmp_path / "back"
    write_tree(src)
    remote = "emu:%s/tree" % bucket.bucket
    bucket.reset_stats()
    rclone(anon_env, "copy", str(src), remote)
    stats = bucket.stats()["requests"]
    assert stats.get("object.insert.resumable_start", 0) >= 1
    assert stats.get("upload.chunk", 0) >= 2
    assert stats.get("object.insert.multipart", 0) >= 1

    listing = json.loads(rclone(anon_env, "lsjson", "-R", "--files-only", remote).stdout)
    assert {e["Path"]: e["Size"] for e in listing} == {k: len(v) for k, v in TREE.items()}

    items, _ = bucket.list(prefix="tree/")
    by_name = {i["name"][len("tree/"):]: i for i in items}
    assert set(by_name) == set(TREE)
    for rel, data in TREE.items():
        assert int(by_name[rel]["size"]) == len(data)
        assert bucket.get("tree/" + rel) == data
        got_md5 = by_name[rel]["md5Hash"]
        assert base64.b64decode(got_md5).hex() == md5hex(data)

    rclone(anon_env, "copy", remote, str(back))
    for rel, data in TREE.items():
        assert (back / rel).read_bytes() == data

    rclone(anon_env, "check", str(src), remote)
    sums = dict(reversed(line.split("  ", 1))
                for line in rclone(anon_env, "md5sum", remote).stdout.splitlines())
    assert sums == {rel: md5hex(data) for rel, data in TREE.items()}

    top = rclone(anon_env, "lsf", remote).stdout.split()
    assert sorted(top) == ["d1/", "empty", "top.txt"]
    p = subprocess.run(["rclone", "cat", "--offset", "1000", "--count", "5000",
                        remote + "/d1/mid.bin"], env=anon_env, capture_output=True, timeout=120)
    assert p.returncode == 0 and p.stdout == TREE["d1/mid.bin"][1000:6000]


def test_rclone_moveto_deletefile_and_sync(emulator, bucket, anon_env, tmp_path):
    src = tmp_path / "src"
    write_tree(src)
    remote = "emu:%s/m" % bucket.bucket
    rclone(anon_env, "copy", str(src), remote)
    bucket.reset_stats()
    rclone(anon_env, "moveto", remote + "/top.txt", remote + "/moved/top renamed.txt")
    assert bucket.stats()["requests"].get("object.rewrite", 0) >= 1
    assert not bucket.exists("m/top.txt")
    assert bucket.get("m/moved/top renamed.txt") == TREE["top.txt"]
    rclone(anon_env, "deletefile", remote + "/d1/d2/big.bin")
    assert not bucket.exists("m/d1/d2/big.bin")
    (src / "d1" / "mid.bin").write_bytes(b"changed")
    (src / "top.txt").unlink()
    rclone(anon_env, "sync", str(src), remote)
    names = sorted(i["name"] for i in bucket.list(prefix="m/")[0])
    assert names == sorted("m/" + k for k in TREE if k != "top.txt")
    assert bucket.get("m/d1/mid.bin") == b"changed"
    rclone(anon_env, "purge", remote)
    assert bucket.list(prefix="m/")[0] == []


def test_rclone_survives_injected_faults(emulator, bucket, anon_env, tmp_path):
    src = tmp_path / "src"
    write_tree(src)
    remote = "emu:%s/f" % bucket.bucket
    bucket.set_faults([{"kind": "upload.chunk", "action": "return-503", "count": 1},
                       {"kind": "object.insert.multipart", "action": "return-503", "count": 1},
                       {"kind": "object.media", "action": "broken-stream-after-64K",
                        "object": "f/d1/mid.bin", "count": 1}])
    rclone(anon_env, "copy", str(src), remote)
    back = tmp_path / "back"
    rclone(anon_env, "copy", remote, str(back))
    for rel, data in TREE.items():
        assert bucket.get("f/" + rel) == data
        assert (back / rel).read_bytes() == data
    assert [f["met"] for f in bucket.faults()] == [1, 1, 1]


def test_rclone_service_account_token_flow(emulator_factory, tmp_path):
    emu = emulator_factory("--require-auth", "--bucket", "sa-bucket")
    sa = make_service_account_key(emu.token_url)
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(sa))
    ctl = emu.client("sa-bucket")
    ctl.register_service_account(sa)
    env = rclone_env(tmp_path, emu.storage_endpoint, service_account_file=str(key_file))
    (tmp_path / "one.txt").write_bytes(b"token path works")
    rclone(env, "copy", str(tmp_path / "one.txt"), "emu:sa-bucket/dir")
    out = sorted(rclone(env, "lsf", "-R", "emu:sa-bucket").stdout.split())
    assert out == ["dir/", "dir/one.txt"]
    assert ctl.stats()["requests"].get("token", 0) >= 1
    ctl.fetch_token(sa)
    assert ctl.get("dir/one.txt") == b"token path works"
    anon = rclone_env(tmp_path, emu.storage_endpoint, anonymous="true")
    p = rclone(anon, "lsf", "emu:sa-bucket", "--low-level-retries", "1", "--retries", "1",
               check=False)
    assert p.returncode != 0 and "401" in p.stderr
