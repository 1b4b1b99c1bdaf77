"""Packaging: the Kubernetes specs, the man page, and the Debian package.

The YAML and man page checks are quick. The package test (slow) builds the
.deb with packaging/build-deb.sh, runs lintian on it, installs it with dpkg
and mounts the emulator through mount(8), as `mount -t fuse.gcsmount` and as
an fstab line.
"""

import glob
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(TESTS_DIR)
K8S = os.path.join(TOP, "packaging", "kubernetes")
MANPAGE = os.path.join(TOP, "packaging", "gcsmount.1")
DEFAULT_SHUTDOWN_TIMEOUT = 25
KEY_PATH_A = "/plx-context/.gc/gc-secret.json"
KEY_VARS = ("GC_KEY_PATH", "GOOGLE_KEY_PATH", "GOOGLE_APPLICATION_CREDENTIALS",
            "GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT")


# ---------------------------------------------------------------- Kubernetes

def load_docs(name):
    with open(os.path.join(K8S, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def yaml_files():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.y*ml")))


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, "want one %s, have %d" % (kind, len(found))
    return found[0]


def pod_of(name):
    return one(load_docs(name), "Pod")


def container(pod):
    cs = pod["spec"]["containers"]
    assert len(cs) == 1, "one container: the mount is the container's own"
    return cs[0]


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def volume(pod, name):
    vs = [v for v in pod["spec"].get("volumes", []) if v["name"] == name]
    assert len(vs) == 1, "volume %r" % name
    return vs[0]


def mount_opts(cmd):
    """The -o values of a gcsmount command line, as a dict."""
    opts = {}
    for i, a in enumerate(cmd[:cmd.index("--")]):
        if a == "-o":
            for kv in cmd[i + 1].split(","):
                k, _, v = kv.partition("=")
                opts[k] = v
    return opts


# Field names the specs may use: a typo in one fails here, since no cluster
# is at hand to reject it. None: any scalar value; [X]: a list of X.
ANY = None
META = {"name": ANY, "namespace": ANY, "labels": dict, "annotations": dict}
KEYREF = {"name": ANY, "key": ANY, "optional": ANY}
ENV = {"name": ANY, "value": ANY, "valueFrom": {
    "fieldRef": {"fieldPath": ANY, "apiVersion": ANY},
    "secretKeyRef": KEYREF, "configMapKeyRef": KEYREF}}
SECCTX = {"privileged": ANY, "allowPrivilegeEscalation": ANY, "runAsUser": ANY,
          "capabilities": {"add": [ANY], "drop": [ANY]},
          "appArmorProfile": {"type": ANY, "localhostProfile": ANY},
          "seccompProfile": {"type": ANY, "localhostProfile": ANY}}
CONTAINER = {"name": ANY, "image": ANY, "imagePullPolicy": ANY, "command": [ANY],
             "args": [ANY], "workingDir": ANY, "env": [ENV], "securityContext": SECCTX,
             "resources": {"limits": dict, "requests": dict},
             "volumeMounts": [{"name": ANY, "mountPath": ANY, "readOnly": ANY,
                               "subPath": ANY, "mountPropagation": ANY}]}
ITEMS = [{"key": ANY, "path": ANY, "mode": ANY}]
VOLUME = {"name": ANY,
          "secret": {"secretName": ANY, "items": ITEMS, "defaultMode": ANY},
          "configMap": {"name": ANY, "items": ITEMS, "defaultMode": ANY},
          "emptyDir": {"medium": ANY, "sizeLimit": ANY},
          "hostPath": {"path": ANY, "type": ANY}}
SCHEMA = {
    "Pod": {"apiVersion": ANY, "kind": ANY, "metadata": META, "spec": {
        "restartPolicy": ANY, "terminationGracePeriodSeconds": ANY,
        "serviceAccountName": ANY, "nodeSelector": dict, "securityContext": dict,
        "containers": [CONTAINER], "volumes": [VOLUME]}},
    "ConfigMap": {"apiVersion": ANY, "kind": ANY, "metadata": META, "data": dict},
    "ServiceAccount": {"apiVersion": ANY, "kind": ANY, "metadata": META},
}


def check_fields(value, schema, where):
    if schema is ANY:
        assert not isinstance(value, (dict, list)), "%s: want a scalar" % where
    elif schema is dict:
        assert isinstance(value, dict), "%s: want a mapping" % where
    elif isinstance(schema, list):
        assert isinstance(value, list), "%s: want a list" % where
        for i, v in enumerate(value):
            check_fields(v, schema[0], "%s[%d]" % (where, i))
    else:
        assert isinstance(value, dict), "%s: want a mapping" % where
        for k, v in value.items():
            assert k in schema, "%s: unknown field %r" % (where, k)
            check_fields(v, schema[k], "%s.%s" % (where, k))


def test_kubernetes_specs_present():
    files = yaml_files()
    assert set(files) >= {"pod-secret-volume.yaml", "pod-keyfile-dict.yaml",
                          "pod-key-path-configmap.yaml", "pod-workload-identity.yaml"}
    assert os.path.exists(os.path.join(K8S, "Dockerfile"))
    assert os.path.exists(os.path.join(K8S, "README.md"))


@pytest.mark.parametrize("name", yaml_files())
def test_kubernetes_fields_known(name):
    for doc in load_docs(name):
        assert doc.get("apiVersion") == "v1", name
        assert doc.get("kind") in SCHEMA, name
        check_fields(doc, SCHEMA[doc["kind"]], "%s:%s" % (name, doc["kind"]))


@pytest.mark.parametrize("name", yaml_files())
def test_pod_runs_gcsmount_run(name):
    """The command is `gcsmount run -o ... gs://BUCKET/... DIR -- CMD...`."""
    pod = pod_of(name)
    c = container(pod)
    cmd = c["command"]
    assert cmd[:2] == ["gcsmount", "run"], cmd
    assert "--" in cmd and len(cmd) > cmd.index("--") + 1, cmd
    positional = []
    head = cmd[2:cmd.index("--")]
    i = 0
    while i < len(head):
        if head[i] == "-o":
            i += 2
            continue
        positional.append(head[i])
        i += 1
    assert len(positional) == 2, positional
    assert positional[0].startswith("gs://") and positional[1].startswith("/"), positional
    env = env_of(c)
    for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(cmd)):
        assert var in env, "$(%s) is not in the container's env" % var
    spool = mount_opts(cmd).get("spool_dir")
    if spool:
        assert spool in [m["mountPath"] for m in c.get("volumeMounts", [])], spool


@pytest.mark.parametrize("name", yaml_files())
def test_pod_grace_period_covers_shutdown(name):
    pod = pod_of(name)
    opts = mount_opts(container(pod)["command"])
    timeout = float(opts.get("shutdown_timeout") or DEFAULT_SHUTDOWN_TIMEOUT)
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 30 and grace > timeout, (grace, timeout)


@pytest.mark.parametrize("name", yaml_files())
def test_pod_can_mount_fuse(name):
    """privileged, or CAP_SYS_ADMIN plus /dev/fuse from a hostPath or a device plugin."""
    pod = pod_of(name)
    c = container(pod)
    sc = c.get("securityContext", {})
    if sc.get("privileged") is True:
        return
    assert "SYS_ADMIN" in sc.get("capabilities", {}).get("add", []), name
    assert sc.get("appArmorProfile", {}).get("type") == "Unconfined", name
    devs = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/dev/fuse"]
    if devs:
        hp = volume(pod, devs[0]["name"]).get("hostPath", {})
        assert hp.get("path") == "/dev/fuse" and hp.get("type") == "CharDevice", hp
    else:
        limits = c.get("resources", {}).get("limits", {})
        assert any("fuse" in k for k in limits), "no /dev/fuse for %s" % name


def test_pod_a_secret_volume_at_plx_context():
    pod = pod_of("pod-secret-volume.yaml")
    c = container(pod)
    paths = []
    for m in c["volumeMounts"]:
        sec = volume(pod, m["name"]).get("secret")
        if sec:
            for item in sec.get("items", []):
                paths.append(os.path.join(m["mountPath"], item["path"]))
    assert KEY_PATH_A in paths, paths
    assert not set(env_of(c)) & set(KEY_VARS), "an env var would win over the file"


def test_pod_b_keyfile_dict_from_secret():
    c = container(pod_of("pod-keyfile-dict.yaml"))
    ref = env_of(c)["GC_KEYFILE_DICT"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] and ref["key"], ref


def test_pod_c_key_path_from_configmap():
    docs = load_docs("pod-key-path-configmap.yaml")
    pod, cm = one(docs, "Pod"), one(docs, "ConfigMap")
    c = container(pod)
    ref = env_of(c)["GC_KEY_PATH"]["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == cm["metadata"]["name"]
    key_path = cm["data"][ref["key"]]
    secret_files = []
    for m in c["volumeMounts"]:
        sec = volume(pod, m["name"]).get("secret")
        if sec:
            secret_files += [os.path.join(m["mountPath"], i["path"]) for i in sec["items"]]
    assert key_path in secret_files, (key_path, secret_files)
    assert key_path != KEY_PATH_A


def test_pod_d_workload_identity_without_key():
    docs = load_docs("pod-workload-identity.yaml")
    pod, sa = one(docs, "Pod"), one(docs, "ServiceAccount")
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    gsa = sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert gsa.endswith(".iam.gserviceaccount.com"), gsa
    c = container(pod)
    assert not set(env_of(c)) & set(KEY_VARS)
    assert not [v for v in pod["spec"].get("volumes", []) if "secret" in v]


def test_dockerfile_bookworm_with_package():
    with open(os.path.join(K8S, "Dockerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f.startswith("debian:bookworm") for f in froms), froms
    assert "packaging/build-deb.sh" in text
    assert re.search(r"apt-get install .*\n?.*gcsmount_\*\.deb", text)


# ------------------------------------------------------------------ man page

def readme_options():
    """Option names from the README's option table (`name=...` or `name`)."""
    with open(os.path.join(TOP, "README.md")) as f:
        text = f.read()
    names = []
    for row in re.findall(r"^\| (`.*?) \|", text, re.M):
        for cell in re.findall(r"`([^`]*)`", row):
            for word in cell.replace(",", " ").split():
                name = word.split("=")[0]
                if re.fullmatch(r"[a-z_]+", name):
                    names.append(name)
    return names


def render_man():
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (Debian package groff-base)")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rLL=200n", "-P-cbou", MANPAGE],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    return r.stdout.replace("\u2010", "-").replace("\u2212", "-")


def test_manpage_renders_with_every_section():
    out = render_man()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CREDENTIALS", "FILES",
                    "EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"):
        assert re.search(r"^%s$" % section, out, re.M), section
    assert "gcsmount - mount a Google Cloud Storage bucket prefix" in out


def test_manpage_documents_every_readme_option():
    names = readme_options()
    assert {"endpoint", "key_file", "shutdown_timeout", "allow_other"} <= set(names)
    options = render_man().split("\nCREDENTIALS\n")[0].split("\nOPTIONS\n")[1]
    missing = [n for n in names if not re.search(r"\b%s\b" % n, options)]
    assert not missing, "options in README.md, not in gcsmount.1: %s" % missing


def test_manpage_credentials_exit_status_environment_examples():
    out = render_man()
    creds = out.split("\nCREDENTIALS\n")[1].split("\nFILES\n")[0]
    order = ["key_file", "GC_KEY_PATH", "GOOGLE_KEY_PATH", "GOOGLE_APPLICATION_CREDENTIALS",
             "GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT", "/plx-context/.gc/gc-secret.json",
             "application-default", "metadata server", "anonymous"]
    at = [creds.find(w) for w in order]
    assert -1 not in at and at == sorted(at), dict(zip(order, at))
    status = out.split("\nEXIT STATUS\n")[1].split("\nENVIRONMENT\n")[0]
    assert re.findall(r"^\s+([0-9])\s", status, re.M) == ["0", "1", "2", "3"], status
    env = out.split("\nENVIRONMENT\n")[1].split("\nEXAMPLES\n")[0]
    for var in ("STORAGE_EMULATOR_HOST",) + KEY_VARS + ("GCE_METADATA_HOST",):
        assert var in env, var
    examples = out.split("\nEXAMPLES\n")[1]
    for needle in ("mount -t fuse.gcsmount", "_netdev,nofail,x-systemd.automount",
                   "gcsmount run", "fusermount3 -u"):
        assert needle in examples, needle
    assert "/var/cache/gcsmount" in out.split("\nFILES\n")[1]


# ------------------------------------------------------------ Debian package

def read_version():
    with open(os.path.join(TOP, "VERSION")) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def deb():
    for tool in ("dpkg-buildpackage", "dh", "lintian"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed (packaging/install-deps.sh installs "
                        "dpkg-dev, debhelper and lintian)" % tool)
    r = subprocess.run([os.path.join(TOP, "packaging", "build-deb.sh")], cwd=TOP,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    debs = glob.glob(os.path.join(TOP, "build", "deb", "gcsmount_%s_*.deb" % read_version()))
    assert len(debs) == 1, debs
    return debs[0]


def dpkg(*args):
    for _ in range(60):  # another apt/dpkg may hold the lock for a while
        r = subprocess.run(["dpkg"] + list(args), capture_output=True, text=True)
        if r.returncode == 0 or "lock" not in r.stderr:
            return r
        time.sleep(2)
    return r


@pytest.fixture(scope="module")
def installed(deb):
    if os.geteuid() != 0:
        pytest.skip("installing the package needs root")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    st = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "gcsmount"],
                        capture_output=True, text=True).stdout
    was_installed = "install ok installed" in st
    r = dpkg("-i", deb)
    assert r.returncode == 0, r.stdout + r.stderr
    yield deb
    if not was_installed:
        dpkg("-r", "gcsmount")


@pytest.mark.slow
def test_deb_contents_and_lintian(deb):
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True).stdout
    assert re.search(r" \./usr/bin/gcsmount$", listing, re.M), listing
    assert re.search(r" \./(usr/)?sbin/mount\.fuse\.gcsmount -> mount\.fuse3$", listing, re.M)
    assert "./usr/share/man/man1/gcsmount.1.gz" in listing
    info = subprocess.run(["dpkg-deb", "-f", deb, "Version", "Depends"], capture_output=True,
                          text=True, check=True).stdout
    assert "Version: %s" % read_version() in info and "fuse3" in info, info
    r = subprocess.run(["lintian", "--allow-root", deb], capture_output=True, text=True,
                       timeout=300)
    errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
    assert not errors, r.stdout
    assert r.returncode in (0, 2) or not r.stderr.strip(), r.stderr


def gcsmount_pids(mnt):
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"gcsmount" and mnt.encode() in argv:
            pids.append(int(os.path.basename(d)))
    return pids


def mount_env():
    env = {k: v for k, v in os.environ.items()
           if k not in KEY_VARS + ("STORAGE_EMULATOR_HOST", "GCE_METADATA_HOST")}
    env["GCSMOUNT_NO_METADATA_PROBE"] = "1"
    return env


def mounted_write_unmount(cmd, mnt, bucket, name):
    """Mount with cmd (mount(8)), write a file, check it in the bucket, umount."""
    from mountlib import is_mounted
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=mount_env(),
                       stdin=subprocess.DEVNULL)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert is_mounted(mnt)
        data = ("through mount(8): %s\n" % name).encode() * 1000
        with open(os.path.join(mnt, name), "wb") as f:
            f.write(data)
        assert bucket.get("run/" + name) == data
        assert name in os.listdir(mnt)
        pids = gcsmount_pids(mnt)
        assert pids, "no gcsmount process serves %s" % mnt
        r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 30
        while gcsmount_pids(mnt) and time.time() < deadline:
            time.sleep(0.1)
        assert not gcsmount_pids(mnt), "gcsmount still running after umount"
    finally:
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], capture_output=True)


@pytest.mark.slow
def test_installed_package_mounts_through_mount8(installed, emulator, bucket, tmp_path):
    assert os.path.realpath("/sbin/mount.fuse.gcsmount").endswith("/mount.fuse3")
    r = subprocess.run(["/usr/bin/gcsmount", "--version"], capture_output=True, text=True)
    assert r.stdout.strip() == "gcsmount " + read_version(), r
    if shutil.which("man"):
        r = subprocess.run(["man", "-w", "gcsmount"], capture_output=True, text=True)
        assert r.stdout.strip().endswith("/man1/gcsmount.1.gz"), r

    mnt = str(tmp_path / "mnt")
    spool = str(tmp_path / "spool")
    os.makedirs(mnt)
    opts = "endpoint=%s,anonymous,spool_dir=%s" % (emulator.url, spool)

    # mount -t fuse.gcsmount BUCKET/PREFIX DIR -o OPTS
    mounted_write_unmount(["mount", "-t", "fuse.gcsmount", bucket.bucket + "/run", mnt,
                           "-o", opts], mnt, bucket, "by-mount-t.txt")

    # An fstab line with the options a boot-time mount carries.
    fstab = tmp_path / "fstab"
    fstab.write_text("gs://%s/run %s fuse.gcsmount _netdev,nofail,x-systemd.automount,%s 0 0\n"
                     % (bucket.bucket, mnt, opts))
    mounted_write_unmount(["mount", "--fstab", str(fstab), mnt], mnt, bucket, "by-fstab.txt")
