"""Bad input and server failures: one clear line and an exit status, or an errno."""

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.client import make_service_account_key
from mountlib import BIN, is_mounted, run_cli


def wait_for_object(bucket, name, timeout=30):
    deadline = time.time() + timeout
    while not bucket.exists(name):
        assert time.time() < deadline, "%s never appeared" % name
        time.sleep(0.1)


def one_line(text):
    lines = [l for l in text.strip().splitlines() if "gcsmount" in l]
    assert lines, text
    return lines[-1]


def test_version_and_help():
    r = run_cli(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("gcsmount ")
    r = run_cli(["--help"])
    assert r.returncode == 0 and "gs://BUCKET[/PREFIX]" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["-o", "bogus_option", "gs://b/p", "/tmp"], "unknown option 'bogus_option'"),
    (["-o", "chunk_size=1000", "gs://b", "/tmp"], "chunk_size"),
    (["-o", "uid=abc", "gs://b", "/tmp"], "uid=abc"),
    (["gs://b"], "usage"),
    (["-x", "gs://b", "/tmp"], "unknown flag"),
    (["gs://Bad_Bucket!", "/tmp"], "bucket"),
    (["-o", "anonymous,key_file=/k", "gs://bkt", "/tmp"], "anonymous"),
])
def test_usage_errors_exit_2(args, needle):
    r = run_cli(args)
    assert r.returncode == 2, r
    assert needle in one_line(r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1


def test_options_after_positionals_as_mount_does(bucket, emulator, tmp_path):
    mp = tmp_path / "mp"
    mp.mkdir()
    # mount(8) calls: gcsmount SRC DIR -o opts (daemon mode, returns when ready).
    r = run_cli([bucket.bucket + "/run", str(mp), "-o",
                 "rw,nodev,nosuid,_netdev,anonymous,endpoint=%s,spool_dir=%s"
                 % (emulator.url, tmp_path / "spool")],
                env={"GCSMOUNT_NO_METADATA_PROBE": "1"})
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mp))
        with open(mp / "f", "w") as f:
            f.write("daemon")
        assert bucket.get("run/f") == b"daemon"
    finally:
        os.system("fusermount3 -u %s" % mp)


def expect_mount_failure(args, needle, tmp_path, env=None, wrapper=()):
    mp = tmp_path / "mp"
    mp.mkdir(exist_ok=True)
    e = {"GCSMOUNT_NO_METADATA_PROBE": "1"}
    e.update(env or {})
    r = run_cli(["-f"] + args + [str(mp)], env=e, timeout=60, wrapper=wrapper)
    assert r.returncode == 1, (r.returncode, r.stderr)
    line = one_line(r.stderr)
    assert needle.lower() in line.lower(), r.stderr
    assert not is_mounted(str(mp))
    return line


def test_wrong_bucket(emulator, tmp_path):
    expect_mount_failure(["-o", "anonymous,endpoint=" + emulator.url, "gs://no-such-bucket"],
                         "no-such-bucket", tmp_path)


def test_unreachable_endpoint(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    line = expect_mount_failure(["-o", "anonymous,endpoint=http://127.0.0.1:%d" % port,
                                 "gs://bkt"], "127.0.0.1:%d" % port, tmp_path)
    assert "reach" in line
    # A password in the endpoint's URL (a proxy's, say) is never printed.
    line = expect_mount_failure(["-o", "anonymous,endpoint=http://me:s3cret@127.0.0.1:%d/"
                                 % port, "gs://bkt"], "http://127.0.0.1:%d" % port, tmp_path)
    assert "s3cret" not in line and "me:" not in line


def test_wrong_bucket_names_the_endpoint_without_its_password(emulator, tmp_path):
    url = emulator.url.replace("://", "://me:s3cret@")
    line = expect_mount_failure(["-o", "anonymous,endpoint=" + url, "gs://no-such-bucket"],
                                "no-such-bucket", tmp_path)
    assert "s3cret" not in line and emulator.url in line


def test_missing_mountpoint(emulator, bucket, tmp_path):
    r = run_cli(["-f", "-o", "anonymous,endpoint=" + emulator.url, "gs://" + bucket.bucket,
                 str(tmp_path / "nope")])
    assert r.returncode == 1
    assert "mountpoint" in one_line(r.stderr) and "No such file" in r.stderr


def ec_key_pem():
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.mark.parametrize("content,needle", [
    (None, "No such file"),
    ("{not json", "JSON"),
    (json.dumps({"type": "service_account", "client_email": "a@b"}), "private_key"),
    (json.dumps({"type": "service_account", "client_email": "a@b",
                 "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
     "PEM"),
    (lambda: json.dumps({"type": "service_account", "client_email": "a@b",
                         "private_key": ec_key_pem()}), "not RSA"),
    (json.dumps({"type": "external_account", "audience": "x"}), "not supported"),
], ids=["missing", "not-json", "no-private-key", "bad-pem", "ec-key", "external-account"])
def test_bad_key_file(emulator, bucket, tmp_path, content, needle):
    key = tmp_path / "key.json"
    if callable(content):
        content = content()
    if content is not None:
        key.write_text(content)
    line = expect_mount_failure(["-o", "key_file=%s,endpoint=%s" % (key, emulator.url),
                                 "gs://" + bucket.bucket], needle, tmp_path)
    assert "private_key\":" not in line and "PRIVATE KEY" not in line
    assert str(key) in line


# Root reads any file: to meet a key file it cannot read, gcsmount runs without
# the capabilities that bypass file modes (it keeps CAP_SYS_ADMIN, for FUSE).
NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_unreadable_key_file(emulator, bucket, tmp_path):
    sa = make_service_account_key(emulator.token_url)
    emulator.client().register_service_account(sa)
    key = tmp_path / "key.json"
    key.write_text(json.dumps(sa))
    key.chmod(0)
    wrapper = NO_DAC if os.geteuid() == 0 else []
    if wrapper and not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop root's file-mode override")
    line = expect_mount_failure(["-o", "key_file=%s,endpoint=%s" % (key, emulator.url),
                                 "gs://" + bucket.bucket], "not readable", tmp_path,
                                wrapper=wrapper)
    assert "key_file=%s" % key in line and "permission denied" in line
    # The same key made readable mounts under the same wrapper: the mode was the cause.
    key.chmod(0o600)
    mp = tmp_path / "mp"
    r = subprocess.Popen(wrapper + [BIN, "-f", "-o", "key_file=%s,endpoint=%s,spool_dir=%s"
                                    % (key, emulator.url, tmp_path / "spool"),
                                    "gs://" + bucket.bucket, str(mp)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, GCSMOUNT_NO_METADATA_PROBE="1"))
    deadline = time.time() + 20
    while not is_mounted(str(mp)) and r.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    mounted = is_mounted(str(mp))
    subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True)
    rc = r.wait(30)
    assert mounted and rc == 0, r.stderr.read()


@pytest.mark.parametrize("how", ["key_file", "GC_KEY_PATH"])
def test_key_path_is_a_directory(emulator, bucket, tmp_path, how):
    keydir = tmp_path / "secret"
    keydir.mkdir()
    opts = "endpoint=" + emulator.url
    env = {}
    if how == "key_file":
        opts += ",key_file=%s" % keydir
    else:
        env = {"GC_KEY_PATH": str(keydir)}
    line = expect_mount_failure(["-o", opts, "gs://" + bucket.bucket], "is a directory",
                                tmp_path, env=env)
    assert "%s=%s" % (how, keydir) in line


def test_names_gcs_cannot_hold(mnt):
    with pytest.raises(OSError) as e:
        open(mnt.p("bad\nname"), "w")
    assert e.value.errno == errno.EINVAL
    deep = mnt.path
    with pytest.raises(OSError) as e:
        for i in range(10):
            deep = os.path.join(deep, "d" * 120)
            os.mkdir(deep)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        open(os.path.join(mnt.path.encode(), b"\xff\xfe.bin"), "wb")
    assert e.value.errno == errno.EINVAL


def test_upload_error_reaches_close(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["retry_deadline=1", "shutdown_timeout=2"])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503",
                        "count": -1}])
    f = open(m.p("doomed"), "wb")
    f.write(b"data")
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EIO
    assert bucket.faults()[0]["met"] >= 2  # retried before giving up
    assert not bucket.exists("run/doomed")
    assert "HTTP 503" in m.read_log()
    # The bucket stays out of reach through the shutdown. Not lost: the data
    # stays in the spool, the exit status says so, and the next mount uploads it.
    assert m.stop() == 3
    # Named: by the shutdown's own try, or as still uploading at its deadline
    # when a background try was under way at the signal.
    assert re.search(r"doomed.*stays in the spool", m.read_log())
    bucket.clear_faults()
    assert not bucket.exists("run/doomed")
    m.start()
    wait_for_object(bucket, "run/doomed")
    assert bucket.get("run/doomed") == b"data"


def test_a_failed_close_is_tried_again_until_the_bucket_takes_it(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["retry_deadline=1"])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503",
                        "count": -1}])
    with pytest.raises(OSError) as e:
        with open(m.p("ckpt"), "wb") as f:
            f.write(b"weights")
    assert e.value.errno == errno.EIO
    # Meanwhile the mount shows the file as it was written.
    assert os.path.getsize(m.p("ckpt")) == 7
    with open(m.p("ckpt"), "rb") as f:
        assert f.read() == b"weights"
    assert "ckpt" in os.listdir(m.path)
    deadline = time.time() + 10
    while "(try 1 after its close failed; next in 2s)" not in m.read_log():
        assert time.time() < deadline, m.read_log()
        time.sleep(0.1)
    assert not bucket.exists("run/ckpt")
    bucket.clear_faults()
    # The next try (2 s after the first failed) finds the bucket back.
    wait_for_object(bucket, "run/ckpt", timeout=15)
    assert bucket.get("run/ckpt") == b"weights"
    assert re.search(r"run/ckpt: uploaded on try [2-4] after its close failed", m.read_log())
    with open(m.p("ckpt"), "rb") as f:
        assert f.read() == b"weights"
    assert m.stop() == 0


def test_a_failed_close_is_tried_again_at_shutdown(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["retry_deadline=4"])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503",
                        "count": -1}])
    with pytest.raises(OSError):
        with open(m.p("last"), "wb") as f:
            f.write(b"final")
    bucket.clear_faults()
    # Stopped before the background's first try (4 s on): the shutdown makes it.
    assert m.stop() == 0
    assert bucket.get("run/last") == b"final"
    assert "stays in the spool" not in m.read_log()


def test_files_held_for_retries_are_bounded_by_the_open_file_limit(bucket, mount_factory):
    """Each file held for retries keeps its spool file open: a quarter of the open-file
    limit at most (64 of 256 here). The rest stay in the spool for the next mount."""
    m = mount_factory(bucket, "run", opts=["retry_deadline=1"], start=False)
    argv = m.argv
    m.argv = lambda: ["prlimit", "--nofile=256:256", "--"] + argv()
    m.start()
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-400",
                        "count": -1}])
    for k in range(70):
        with pytest.raises(OSError):
            with open(m.p("f%02d" % k), "wb") as f:
                f.write(b"%d" % k)
    deadline = time.time() + 10
    while "64 files whose close failed are held for retries" not in m.read_log():
        assert time.time() < deadline, m.read_log()
        time.sleep(0.1)
    bucket.clear_faults()
    deadline = time.time() + 20
    while len(bucket.list(prefix="run/")[0]) < 64:
        assert time.time() < deadline, m.read_log()
        time.sleep(0.2)
    assert m.stop() == 3   # the six past the bound were named, for the next mount
    m.start()
    deadline = time.time() + 20
    while len(bucket.list(prefix="run/")[0]) < 70:
        assert time.time() < deadline, m.read_log()
        time.sleep(0.2)
    for k in range(70):
        assert bucket.get("run/f%02d" % k) == b"%d" % k
    assert m.stop() == 0


def _left_in_the_spool(bucket, mount_factory, retry_deadline):
    """A mount whose close failed and that stopped while the bucket was out of reach,
    started again with the bucket still out of reach: its recovery fails too."""
    m = mount_factory(bucket, "run", opts=["retry_deadline=%d" % retry_deadline,
                                           "shutdown_timeout=2"])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503",
                        "count": -1}])
    with pytest.raises(OSError):
        with open(m.p("left"), "wb") as f:
            f.write(b"from the last run")
    assert m.stop() == 3
    m.start()
    deadline = time.time() + 30
    while "could not finish the upload left in the spool" not in m.read_log():
        assert time.time() < deadline, m.read_log()
        time.sleep(0.1)
    assert not bucket.exists("run/left")
    return m


def test_what_an_earlier_run_left_is_tried_again_until_the_bucket_takes_it(bucket,
                                                                           mount_factory):
    m = _left_in_the_spool(bucket, mount_factory, 1)
    bucket.clear_faults()
    wait_for_object(bucket, "run/left", timeout=15)
    assert bucket.get("run/left") == b"from the last run"
    assert m.stop() == 0


def test_what_an_earlier_run_left_is_tried_again_at_shutdown(bucket, mount_factory):
    m = _left_in_the_spool(bucket, mount_factory, 4)
    bucket.clear_faults()
    # Stopped before the background's next try (4 s on): the shutdown makes it.
    assert m.stop() == 0, m.read_log()
    assert bucket.get("run/left") == b"from the last run"


def test_a_file_whose_close_failed_can_be_rewritten_or_removed(bucket, mount_factory):
    m = mount_factory(bucket, "run", opts=["retry_deadline=1"])
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503",
                        "count": -1}])
    for name in ("rewritten", "removed"):
        with pytest.raises(OSError):
            with open(m.p(name), "wb") as f:
                f.write(b"first version")
    bucket.clear_faults()
    with open(m.p("rewritten"), "wb") as f:
        f.write(b"second")
    os.unlink(m.p("removed"))
    assert bucket.get("run/rewritten") == b"second"
    time.sleep(3)  # past the tries the failed closes had scheduled
    assert bucket.get("run/rewritten") == b"second"
    assert not bucket.exists("run/removed")
    assert not os.path.exists(m.p("removed"))
    log = m.read_log()
    assert "changed in the bucket" not in log, log
    assert m.stop() == 0


def test_transient_errors_retried(bucket, mnt):
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503", "count": 2}])
    with open(mnt.p("survives"), "wb") as f:
        f.write(b"ok")
    assert bucket.faults()[0]["met"] == 2
    assert bucket.get("run/survives") == b"ok"


def wait_for_kept(m, name):
    """The spool file a conflict kept for object `name`, as the log names it."""
    rx = re.compile(re.escape(name) + r": not uploaded, the object changed in the bucket; "
                    r"what was written here (?:from byte \d+ on )?is kept in (\S+\.data)")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = rx.search(m.read_log())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError("no conflict kept for %s in the log:\n%s" % (name, m.read_log()))


def test_conflict_is_reported_not_clobbered(bucket, mnt):
    with open(mnt.p("c"), "w") as f:
        f.write("mine")
    f = open(mnt.p("c"), "r+")
    bucket.put("run/c", b"someone else's")
    f.write("MINE")
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.ESTALE
    assert bucket.get("run/c") == b"someone else's"
    assert "precondition" in mnt.read_log()
    # Whether the write itself was refused (the old bytes it needed were gone) or
    # taken and refused at close depends on timing; taken, it is kept, and the
    # exit says so.
    rc = mnt.stop()
    assert rc == 0 or (rc == 3 and "is kept in" in mnt.read_log()), (rc, mnt.read_log())


def test_a_file_losing_a_conflict_is_kept_in_the_spool(bucket, mnt):
    """Written here and accepted, then another writer's object took the name
    before the close: the close fails with ESTALE and does not overwrite it, and
    what was written here is not lost: the spool keeps it, the log says where,
    and the mount's exit says something stayed behind."""
    f = open(mnt.p("c"), "wb")
    f.write(b"MINE" * 1000)
    f.flush()                                  # accepted into the spool
    bucket.put("run/c", b"someone else's")
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.ESTALE
    assert bucket.get("run/c") == b"someone else's"
    kept = wait_for_kept(mnt, "run/c")
    with open(kept, "rb") as g:
        assert g.read() == b"MINE" * 1000
    st = run_cli(["status", mnt.path])
    assert st.returncode == 1 and re.search(r"\bconflict\s+c$", st.stdout, re.M), st.stdout
    assert mnt.stop() == 3
    # The next mount leaves it where it is (uploading it would be the clobber
    # refused here) and says so again, until someone removes it.
    mnt.start()
    with open(mnt.p("c"), "rb") as g:
        assert g.read() == b"someone else's"
    assert mnt.stop() == 3
    assert mnt.read_log().count("is kept in " + kept) == 2
    assert bucket.get("run/c") == b"someone else's"
    os.unlink(kept)
    os.unlink(kept[:-len(".data")] + ".journal")
    mnt.start()
    assert mnt.stop() == 0


def test_corrupt_upload_rejected(bucket, mount_factory):
    m = mount_factory(bucket, "run")
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "corrupt-upload",
                        "count": 1}])
    f = open(m.p("corrupt"), "wb")
    f.write(b"x" * 1000)
    with pytest.raises(OSError):
        f.close()
    assert bucket.faults()[0]["met"] == 1
    assert not bucket.exists("run/corrupt")
    # Kept (the bytes on disk are sound) and tried again: by the shutdown here.
    assert m.stop() == 0
    assert bucket.get("run/corrupt") == b"x" * 1000


def test_name_lengths_at_their_limits(bucket, mnt):
    """A component is at most 255 bytes (what a directory entry can carry, and
    what statvfs says); a whole object name at most 1,024 bytes, as GCS holds."""
    assert os.statvfs(mnt.path).f_namemax == 255
    for make in (lambda p: open(p, "wb").close(), os.mkdir):
        with pytest.raises(OSError) as e:
            make(mnt.p("n" * 256))
        assert e.value.errno == errno.ENAMETOOLONG
    with open(mnt.p("n" * 255), "wb") as f:
        f.write(b"255")
    assert bucket.get("run/" + "n" * 255) == b"255"
    # "run/" + four directories of 200 bytes + a name: 1,024 bytes in all.
    d = mnt.path
    for k in range(4):
        d = os.path.join(d, str(k) * 200)
        os.mkdir(d)
    with open(os.path.join(d, "f" * 216), "wb") as f:
        f.write(b"1024")
    full = "run/" + "/".join(str(k) * 200 for k in range(4)) + "/" + "f" * 216
    assert len(full) == 1024 and bucket.get(full) == b"1024"
    os.rename(os.path.join(d, "f" * 216), os.path.join(d, "g" * 216))
    assert bucket.get(full.replace("f" * 216, "g" * 216)) == b"1024"
    with pytest.raises(OSError) as e:
        os.mkdir(os.path.join(d, "e" * 216))   # its "e.../" would be 1,025 bytes
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        open(os.path.join(d, "f" * 217), "wb")
    assert e.value.errno == errno.ENAMETOOLONG


def test_names_a_directory_cannot_show_are_logged(bucket, mnt):
    bucket.put("run/ok", b"1")
    bucket.put("run/" + "L" * 300, b"2")       # GCS holds it; no dirent can
    bucket.put("run/a//b", b"3")               # an empty component
    assert sorted(os.listdir(mnt.p())) == ["a", "ok"]
    assert "run/" + "L" * 300 in mnt.read_log()
    assert os.listdir(mnt.p("a")) == []
    assert "cannot be shown (a component empty, '.', '..' or over 255 bytes), such as " \
        "'run/a//'" in mnt.read_log()


def test_sizes_past_the_largest_object_are_efbig(bucket, mnt):
    """GCS holds objects up to 5 TiB: a file cannot grow past that (EFBIG), and a
    write across the limit is cut short there, as at a file size limit."""
    limit = 5 << 40
    fd = os.open(mnt.p("big"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"abc")
        for grow in (lambda: os.ftruncate(fd, limit + 1),
                     lambda: os.pwrite(fd, b"x", limit)):
            with pytest.raises(OSError) as e:
                grow()
            assert e.value.errno == errno.EFBIG
        assert os.pwrite(fd, b"wxyz", limit - 2) == 2
        os.ftruncate(fd, 3)
    finally:
        os.close(fd)
    assert bucket.get("run/big") == b"abc"
    with pytest.raises(OSError) as e:
        os.truncate(mnt.p("big"), limit + 1)
    assert e.value.errno == errno.EFBIG
