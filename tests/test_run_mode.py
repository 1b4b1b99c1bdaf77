"""gcsmount run: mount, run the command, forward signals, save outputs,
unmount, and exit with the command's status."""

import os
import re
import signal
import subprocess
import time

from mountlib import BIN, is_mounted


def run(emulator, bucket, tmp_path, prefix, cmd, opts=(), env=None, wait=True):
    mnt = tmp_path / "outputs"
    o = ["endpoint=" + emulator.url, "anonymous", "spool_dir=%s" % (tmp_path / "spool")]
    o += list(opts)
    e = dict(os.environ, GCSMOUNT_NO_METADATA_PROBE="1")
    e.update(env or {})
    argv = [BIN, "run", "-o", ",".join(o), "gs://%s/%s" % (bucket.bucket, prefix), str(mnt),
            "--"] + cmd
    p = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True)
    if not wait:
        return p, mnt
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err, mnt


def test_runs_command_and_returns_its_status(emulator, bucket, tmp_path):
    rc, out, err, mnt = run(emulator, bucket, tmp_path, "runs/$RUN_ID",
                            ["sh", "-c", 'echo "$0" > "$1/out.txt"; head -c 3000000 /dev/urandom '
                             '> "$1/blob"; echo done; exit 7', "hello", str(tmp_path / "outputs")],
                            env={"RUN_ID": "r42"})
    assert rc == 7, err
    assert out.strip() == "done"
    # The outputs are in the bucket when it returns, and the mount is gone.
    assert bucket.get("runs/r42/out.txt") == b"hello\n"
    assert int(bucket.stat("runs/r42/blob")["size"]) == 3000000
    assert not is_mounted(str(mnt))


def test_forwards_sigterm(emulator, bucket, tmp_path):
    mnt = tmp_path / "outputs"
    script = ('trap \'echo graceful > "%s/term.txt"; exit 0\' TERM; '
              'echo ready > "%s/ready"; while :; do sleep 0.1; done' % (mnt, mnt))
    p, mnt = run(emulator, bucket, tmp_path, "t", ["sh", "-c", script], wait=False)
    deadline = time.time() + 30
    while not bucket.exists("t/ready") and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert bucket.get("t/term.txt") == b"graceful\n"


def test_signal_death_is_128_plus(emulator, bucket, tmp_path):
    rc, out, err, mnt = run(emulator, bucket, tmp_path, "k", ["sh", "-c", "kill -KILL $$"])
    assert rc == 128 + 9


def test_unsaved_outputs_are_a_distinct_status(emulator, bucket, tmp_path):
    # Every upload fails: the command's close sees EIO (and ignores it), and so
    # does the shutdown's try; the data stays in the spool, and run says so with
    # its own status.
    bucket.set_faults([{"kind": "object.insert.multipart", "action": "return-503",
                        "count": 10000}])
    mnt = tmp_path / "outputs"
    try:
        rc, out, err, mnt = run(emulator, bucket, tmp_path, "u",
                                ["sh", "-c", 'echo x > "%s/late" || true' % mnt],
                                opts=["retry_deadline=1", "shutdown_timeout=2"])
    finally:
        bucket.clear_faults()
    assert rc == 75, err
    assert "were not all saved" in err
    assert re.search(r"u/late.*stays in the spool", err), err


def test_missing_command_and_usage(emulator, bucket, tmp_path):
    rc, out, err, mnt = run(emulator, bucket, tmp_path, "m", ["/no/such/program"])
    assert rc == 127 and "cannot run" in err
    r = subprocess.run([BIN, "run", "gs://b/p", str(tmp_path / "x")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([BIN, "run", "gs://b/$NOPE_UNSET_VAR", str(tmp_path / "x"), "--", "true"],
                       capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 2 and "NOPE_UNSET_VAR" in r.stderr
