#!/usr/bin/env python3
"""Checks a Rill image archive written by scripts/build-images.sh against what
Kubernetes, the chart and the operator expect of it. Run by
scripts/test-images.sh; prints one `ok`/`FAIL`/`skip` line per check and
exits non-zero when any check fails.

    verify.py --archive OUT/rill-broker-0.1.0.oci.tar --image broker \\
        --bin-dir BIN --work DIR

What it pins, independently of images/oci.py:
- the archive is an OCI image layout: oci-layout, index.json, every blob
  named by its sha256 and of the size its descriptor says, media types, no
  missing or stray blobs, the layer's diff_id is the sha256 of the
  uncompressed tar;
- the configuration: numeric non-root User 65532:65532 (the uid/gid the
  chart and the operator's pod spec run as), Entrypoint the binary, the
  exposed ports, PATH (the operator runs the broker as `rill-broker`), the
  data directory, OCI labels (version, source and licence from Cargo.toml),
  and the Dockerfile's version default equals Cargo.toml's;
- the layer: the binaries at /usr/local/bin, mode 0755, owned by root,
  byte-identical to the build's; the libraries are exactly the ELF
  interpreter and the DT_NEEDED closure of the binaries; /etc/passwd and /etc/group name 65532; /var/lib/rill is a
  directory owned by 65532:65532; everything else root-owned, no
  setuid/setgid; sorted entries with one fixed mtime;
- (as root) the image runs: its layer is unpacked, and the binaries are
  started in it with chroot as the image's user, with its Env, WorkingDir
  and Entrypoint, so they load only the image's libraries. The broker
  serves /healthz and stores records the rill CLI of the image produced and
  consumed back in /var/lib/rill; the operator's --help names
  rill/broker:<version> as its default broker image;
- with skopeo and umoci installed: skopeo reads the archive and converts it
  to a docker-archive, umoci unpacks it to a runtime bundle whose process
  runs as 65532 with the entrypoint.
"""

import argparse
import calendar
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import time
import tomllib
import traceback
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The numeric user of both images: the chart's operator Deployment and the
# operator's broker StatefulSet run as this uid/gid.
UID = GID = 65532
DATA_DIR = "var/lib/rill"
EXPECT = {
    "broker": {
        "entrypoint": ["/usr/local/bin/rill-broker"],
        "binaries": ["rill-broker", "rill"],
        # Kafka, client gRPC, replication gRPC, HTTP.
        "ports": {"9092/tcp", "9093/tcp", "9094/tcp", "9644/tcp"},
        "workdir": "/var/lib/rill",
        "env": {"RILL_DATA_DIR": "/var/lib/rill"},
        "data_dir": True,
    },
    "operator": {
        "entrypoint": ["/usr/local/bin/rill-operator"],
        "binaries": ["rill-operator"],
        # HTTP (chart service.httpPort), controller gRPC (service.controllerPort).
        "ports": {"8080/tcp", "9095/tcp"},
        "workdir": "/",
        "env": {},
        "data_dir": False,
    },
}
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}

# How long the broker in the image may take to print RILL_READY, to stop
# after SIGTERM, and a CLI command to finish.
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
CLI_TIMEOUT_S = 30


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def run(self, name, fn, *args):
        try:
            fn(*args)
        except AssertionError as e:
            self.failed += 1
            print(f"FAIL {name}")
            for line in str(e).splitlines() or ["(assertion failed)"]:
                print(f"     {line}")
        except Exception:
            self.failed += 1
            print(f"FAIL {name}")
            for line in traceback.format_exc().splitlines():
                print(f"     {line}")
        else:
            self.passed += 1
            print(f"ok   {name}")

    def skip(self, name, why):
        self.skipped += 1
        print(f"skip {name}: {why}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def elf_dynamic(path):
    """(PT_INTERP or None, [DT_NEEDED names]) of a 64-bit little-endian ELF
    file, read from its program headers and dynamic section."""
    with open(path, "rb") as f:
        header = f.read(64)
        assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
        assert header[4] == 2 and header[5] == 1, f"{path}: only 64-bit little-endian ELF is checked"
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        interp, dynamic, loads = None, None, []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type == 3:  # PT_INTERP
                f.seek(p_offset)
                interp = f.read(p_filesz).rstrip(b"\0").decode()
            elif p_type == 2:  # PT_DYNAMIC
                dynamic = (p_offset, p_filesz)
            elif p_type == 1:  # PT_LOAD
                loads.append((p_vaddr, p_offset, p_filesz))
        if dynamic is None:
            return interp, []
        f.seek(dynamic[0])
        raw = f.read(dynamic[1])
        entries = [struct.unpack_from("<qQ", raw, i) for i in range(0, len(raw) - 15, 16)]
        strtab = next(v for tag, v in entries if tag == 5)  # DT_STRTAB, a virtual address
        base = next(off + strtab - vaddr for vaddr, off, size in loads if vaddr <= strtab < vaddr + size)
        needed = []
        for tag, value in entries:
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                f.seek(base + value)
                needed.append(f.read(256).split(b"\0", 1)[0].decode())
        return interp, needed


class HashingReader:
    def __init__(self, inner):
        self.inner = inner
        self.sha256 = hashlib.sha256()

    def read(self, n=-1):
        data = self.inner.read(n)
        self.sha256.update(data)
        return data


class Image:
    """The archive, read and (as root) unpacked once; the checks look at it."""

    def __init__(self, archive, work):
        self.archive = archive
        self.layout = os.path.join(work, "layout")
        self.rootfs = os.path.join(work, "rootfs")
        os.makedirs(self.layout)
        with tarfile.open(archive) as tar:
            self.archive_names = tar.getnames()
            tar.extractall(self.layout, filter="data")
        self.index = self.json("index.json")
        self.manifest_desc = self.index["manifests"][0]
        self.manifest = self.blob_json(self.manifest_desc["digest"])
        self.config = self.blob_json(self.manifest["config"]["digest"])
        self.layer_desc = self.manifest["layers"][0]
        self.unpack_layer()

    def json(self, rel):
        with open(os.path.join(self.layout, rel), "rb") as f:
            return json.load(f)

    def blob_path(self, digest):
        algorithm, _, hexdigest = digest.partition(":")
        assert algorithm == "sha256", f"digest {digest} is not sha256"
        return os.path.join(self.layout, "blobs", "sha256", hexdigest)

    def blob_json(self, digest):
        with open(self.blob_path(digest), "rb") as f:
            return json.load(f)

    def unpack_layer(self):
        """Reads every layer entry (with the sha256 of each file) and, as
        root, writes them to self.rootfs with their modes and owners."""
        as_root = os.geteuid() == 0
        self.entries = []  # (name, TarInfo, sha256 or None), in tar order
        os.makedirs(self.rootfs)
        os.chmod(self.rootfs, 0o755)
        with open(self.blob_path(self.layer_desc["digest"]), "rb") as raw:
            plain = HashingReader(gzip.GzipFile(fileobj=raw, mode="rb"))
            with tarfile.open(fileobj=plain, mode="r|") as tar:
                for info in tar:
                    name = info.name.rstrip("/")
                    assert not name.startswith("/") and ".." not in name.split("/"), f"unsafe entry {info.name}"
                    target = os.path.join(self.rootfs, name)
                    digest = None
                    if info.isdir():
                        os.makedirs(target, exist_ok=True)
                    elif info.isreg():
                        h = hashlib.sha256()
                        src = tar.extractfile(info)
                        with open(target, "wb") as out:
                            while chunk := src.read(1 << 20):
                                h.update(chunk)
                                out.write(chunk)
                        digest = "sha256:" + h.hexdigest()
                    elif info.issym():
                        os.symlink(info.linkname, target)
                    else:
                        raise AssertionError(f"{info.name}: unexpected entry type {info.type!r}")
                    if as_root and not info.issym():
                        os.chown(target, info.uid, info.gid)
                    if not info.issym():
                        os.chmod(target, info.mode)
                    self.entries.append((name, info, digest))
            # The tar reader stops at the end-of-archive blocks; the diff_id
            # covers every byte.
            while plain.read(1 << 20):
                pass
        self.diff_id = "sha256:" + plain.sha256.hexdigest()
        self.by_name = {name: (info, digest) for name, info, digest in self.entries}

    def read_file(self, name):
        with open(os.path.join(self.rootfs, name), encoding="utf-8") as f:
            return f.read()


def workspace():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]


# ---------------------------------------------------------------------------
# Layout


def check_layout(img):
    assert img.json("oci-layout") == {"imageLayoutVersion": "1.0.0"}, img.json("oci-layout")
    assert img.index.get("schemaVersion") == 2, img.index
    assert img.index.get("mediaType") == MEDIA_INDEX, img.index.get("mediaType")
    assert len(img.index["manifests"]) == 1, "one manifest per image archive"


def check_descriptors(img):
    descriptors = [
        (img.manifest_desc, MEDIA_MANIFEST),
        (img.manifest["config"], MEDIA_CONFIG),
        (img.layer_desc, MEDIA_LAYER_GZIP),
    ]
    assert img.manifest.get("schemaVersion") == 2 and img.manifest.get("mediaType") == MEDIA_MANIFEST, img.manifest
    assert len(img.manifest["layers"]) == 1, "one layer"
    for desc, media_type in descriptors:
        assert desc["mediaType"] == media_type, f"{desc['digest']}: media type {desc['mediaType']}, expected {media_type}"
        path = img.blob_path(desc["digest"])
        assert os.path.isfile(path), f"blob {desc['digest']} is missing"
        assert os.path.getsize(path) == desc["size"], f"{desc['digest']}: size {os.path.getsize(path)}, descriptor says {desc['size']}"


def check_blob_digests(img):
    blobs = os.path.join(img.layout, "blobs", "sha256")
    referenced = {img.manifest_desc["digest"], img.manifest["config"]["digest"], img.layer_desc["digest"]}
    present = {"sha256:" + name for name in os.listdir(blobs)}
    assert present == referenced, f"stray blobs {sorted(present - referenced)}, missing {sorted(referenced - present)}"
    for digest in sorted(present):
        assert sha256_file(img.blob_path(digest)) == digest, f"blob {digest} does not hash to its name"
    assert set(n.rstrip("/") for n in img.archive_names) == {
        "oci-layout", "index.json", "blobs", "blobs/sha256", *(f"blobs/sha256/{d[7:]}" for d in present)
    }, f"unexpected archive entries: {sorted(img.archive_names)}"


def check_diff_id(img):
    diff_ids = img.config["rootfs"]["diff_ids"]
    assert img.config["rootfs"]["type"] == "layers"
    assert diff_ids == [img.diff_id], f"diff_ids {diff_ids}, uncompressed layer is {img.diff_id}"
    layers_in_history = [h for h in img.config["history"] if not h.get("empty_layer")]
    assert len(layers_in_history) == 1, f"history has {len(layers_in_history)} layer entries for 1 layer"


def check_names(img, image, version):
    annotations = img.manifest_desc.get("annotations", {})
    assert annotations.get("org.opencontainers.image.ref.name") == version, annotations
    assert annotations.get("io.containerd.image.name") == f"docker.io/rill/{image}:{version}", annotations
    assert os.path.basename(img.archive) == f"rill-{image}-{version}.oci.tar", img.archive
    platform_ = img.manifest_desc.get("platform", {})
    assert platform_ == {"architecture": img.config["architecture"], "os": "linux"}, platform_


# ---------------------------------------------------------------------------
# Configuration


def check_platform(img):
    arch = ARCHITECTURES.get(platform.machine(), platform.machine())
    assert img.config["os"] == "linux" and img.config["architecture"] == arch, (img.config["os"], img.config["architecture"])


def check_user(img):
    user = img.config["config"].get("User", "")
    assert re.fullmatch(r"\d+:\d+", user), f"User {user!r} is not numeric uid:gid (runAsNonRoot needs a numeric user)"
    assert user == f"{UID}:{GID}", f"User {user}, expected {UID}:{GID}"


def check_entrypoint(img, expect):
    cfg = img.config["config"]
    assert cfg.get("Entrypoint") == expect["entrypoint"], cfg.get("Entrypoint")
    assert "Cmd" not in cfg, f"Cmd {cfg['Cmd']}"


def check_ports(img, expect):
    ports = set(img.config["config"].get("ExposedPorts", {}))
    assert ports == expect["ports"], f"ExposedPorts {sorted(ports)}, expected {sorted(expect['ports'])}"


def image_env(img):
    return dict(e.split("=", 1) for e in img.config["config"].get("Env", []))


def check_env(img, expect):
    env = image_env(img)
    path = env.get("PATH", "").split(":")
    assert "/usr/local/bin" in path, f"PATH {env.get('PATH')!r} lacks /usr/local/bin"
    for key, value in expect["env"].items():
        assert env.get(key) == value, f"{key}={env.get(key)!r}, expected {value!r}"
    assert img.config["config"].get("WorkingDir") == expect["workdir"], img.config["config"].get("WorkingDir")


def check_labels(img, image, version):
    labels = img.config["config"].get("Labels", {})
    ws = workspace()
    expected = {
        "org.opencontainers.image.title": f"rill-{image}",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": ws["repository"],
        "org.opencontainers.image.licenses": ws["license"],
    }
    for key, value in expected.items():
        assert labels.get(key) == value, f"{key}={labels.get(key)!r}, expected {value!r}"


def check_dockerfile_version(image, version):
    with open(os.path.join(ROOT, "images", image, "Dockerfile"), encoding="utf-8") as f:
        defaults = re.findall(r"^ARG RILL_VERSION=(\S+)$", f.read(), re.M)
    assert defaults == [version], f"images/{image}/Dockerfile ARG RILL_VERSION={defaults}, Cargo.toml says {version}"


# ---------------------------------------------------------------------------
# Layer


def check_layer_order(img):
    names = [name for name, _, _ in img.entries]
    assert len(names) == len(set(names)), "duplicate entries"
    assert names == sorted(names), "entries are not sorted"
    seen = set()
    for name in names:
        parent = os.path.dirname(name)
        assert not parent or parent in seen, f"{name} comes before its directory"
        seen.add(name)
    epoch = calendar.timegm(time.strptime(img.config["created"], "%Y-%m-%dT%H:%M:%SZ"))
    mtimes = {info.mtime for _, info, _ in img.entries}
    assert mtimes == {epoch}, f"mtimes {sorted(mtimes)[:5]}, expected all {epoch} (config created {img.config['created']})"


def check_binaries(img, expect, bin_dir):
    for binary in expect["binaries"]:
        name = f"usr/local/bin/{binary}"
        assert name in img.by_name, f"/{name} is not in the layer"
        info, digest = img.by_name[name]
        assert info.isreg(), f"/{name} is not a regular file"
        assert info.mode == 0o755, f"/{name} mode {oct(info.mode)}, expected 0o755"
        assert (info.uid, info.gid) == (0, 0), f"/{name} owned by {info.uid}:{info.gid}"
        built = sha256_file(os.path.join(bin_dir, binary))
        assert digest == built, f"/{name} is {digest}, the build's {binary} is {built}"
    entry = expect["entrypoint"][0].lstrip("/")
    assert entry in img.by_name, f"entrypoint /{entry} is not in the layer"


def check_libraries(img, expect, bin_dir):
    """The layer's libraries are exactly the ELF interpreter and the DT_NEEDED
    closure of the binaries, each found once in the loader's directories."""
    lib_dirs = sorted({
        os.path.dirname(name) for name, info, _ in img.entries
        if info.isreg() and re.match(r"(usr/)?lib(64|32)?/", name)
    })
    shipped = {name for name, info, _ in img.entries if info.isreg() and os.path.dirname(name) in lib_dirs}
    wanted = set()
    todo = [os.path.join(bin_dir, b) for b in expect["binaries"]]
    while todo:
        path = todo.pop()
        interp, needed = elf_dynamic(path)
        if interp:
            assert interp.lstrip("/") in shipped, f"{os.path.basename(path)} needs the loader {interp}, which is not in the layer"
            wanted.add(interp.lstrip("/"))
        for soname in needed:
            matches = [f"{d}/{soname}" for d in lib_dirs if f"{d}/{soname}" in shipped]
            assert len(matches) == 1, f"{os.path.basename(path)} needs {soname}: found {matches or 'nowhere'} in the layer"
            if matches[0] not in wanted:
                wanted.add(matches[0])
                todo.append(os.path.join(img.rootfs, matches[0]))
    assert shipped == wanted, f"libraries nothing loads: {sorted(shipped - wanted)}"


def check_passwd(img):
    passwd = [line.split(":") for line in img.read_file("etc/passwd").splitlines()]
    group = [line.split(":") for line in img.read_file("etc/group").splitlines()]
    users = [p for p in passwd if p[2:4] == [str(UID), str(GID)]]
    assert len(users) == 1 and users[0][0] == "rill", f"/etc/passwd has no single rill:x:{UID}:{GID} entry: {passwd}"
    assert any(p[0] == "root" and p[2] == "0" for p in passwd), "/etc/passwd has no root entry"
    assert any(g[2] == str(GID) for g in group), f"/etc/group has no group {GID}"


def check_ownership(img, expect):
    for name, info, _ in img.entries:
        assert not info.mode & (stat.S_ISUID | stat.S_ISGID), f"/{name} is setuid/setgid"
        owned = expect["data_dir"] and name == DATA_DIR
        if not owned:
            assert (info.uid, info.gid) == (0, 0), f"/{name} owned by {info.uid}:{info.gid}, expected root"
    tmp, _ = img.by_name["tmp"]
    assert tmp.isdir() and tmp.mode == 0o1777, f"/tmp mode {oct(tmp.mode)}"
    if expect["data_dir"]:
        info, _ = img.by_name.get(DATA_DIR, (None, None))
        assert info is not None and info.isdir(), f"/{DATA_DIR} is not a directory in the layer"
        assert (info.uid, info.gid) == (UID, GID), f"/{DATA_DIR} owned by {info.uid}:{info.gid}"
        assert info.mode & 0o700 == 0o700, f"/{DATA_DIR} mode {oct(info.mode)}: the owner cannot write"
    else:
        assert DATA_DIR not in img.by_name, f"/{DATA_DIR} in an image without data"


def check_license_files(img):
    names = set(img.by_name)
    for name in names:
        if re.fullmatch(r"lib/[^/]+/libc\.so\.6", name):
            assert "usr/share/doc/libc6/copyright" in names, "glibc is shipped without its copyright file"


# ---------------------------------------------------------------------------
# Chart and operator agree with the image


def check_chart(image, version):
    chart = os.path.join(ROOT, "charts", "rill")
    with open(os.path.join(chart, "Chart.yaml"), encoding="utf-8") as f:
        app = re.search(r'^appVersion:\s*"?([^"\s]+)"?\s*$', f.read(), re.M)
    assert app and app.group(1) == version, f"Chart.yaml appVersion {app and app.group(1)}, Cargo.toml {version}"
    with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
        values = f.read()
    assert re.search(rf"^\s+repository: rill/{image}\s*$", values, re.M), f"values.yaml has no repository: rill/{image}"
    source = "templates/deployment.yaml" if image == "operator" else None
    if source:
        with open(os.path.join(chart, source), encoding="utf-8") as f:
            text = f.read()
        assert f"runAsUser: {UID}" in text and f"runAsGroup: {GID}" in text, f"{source} does not run as {UID}:{GID}"
    else:
        path = os.path.join(ROOT, "operator", "src", "stream_cluster", "build", "statefulset.rs")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert f"BROKER_UID: i64 = {UID};" in text, "the operator's broker pods do not run as the image's uid"
        assert '"/var/lib/rill"' in text, "the operator mounts broker data elsewhere than /var/lib/rill"


# ---------------------------------------------------------------------------
# Running the image (root: chroot + setuid)


def resolve(img, command):
    """What a container runtime executes for a command: absolute, or the
    first executable match in the image's PATH."""
    if "/" in command:
        return command
    for directory in image_env(img).get("PATH", "").split(":"):
        candidate = os.path.join(directory, command)
        path = os.path.join(img.rootfs, candidate.lstrip("/"))
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return candidate
    raise AssertionError(f"{command} is not found in the image's PATH")


def start(img, argv, extra_env=None, **kwargs):
    """Starts argv inside the unpacked image, as its user, with its Env and
    WorkingDir, like a container runtime does (without namespaces)."""
    uid, gid = (int(x) for x in img.config["config"]["User"].split(":"))
    workdir = img.config["config"].get("WorkingDir", "/")
    env = {**image_env(img), **(extra_env or {})}
    rootfs = img.rootfs

    def enter():
        os.chroot(rootfs)
        os.chdir(workdir)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return subprocess.Popen(
        [resolve(img, argv[0]), *argv[1:]], env=env, preexec_fn=enter, close_fds=True, **kwargs
    )


def run(img, argv, extra_env=None, timeout=CLI_TIMEOUT_S, stdin=None):
    proc = start(img, argv, extra_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(stdin, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\nstdout: {out.decode()[-2000:]}\nstderr: {err.decode()[-2000:]}"
    return out.decode()


def check_runs_version(img, expect, version):
    for binary in expect["binaries"]:
        out = run(img, [binary, "--version"])
        assert out.strip() == f"{binary} {version}", f"{binary} --version printed {out.strip()!r}"


def check_operator_help(img, version):
    out = run(img, [img.config["config"]["Entrypoint"][0], "--help"])
    assert f"rill/broker:{version}" in out, f"rill-operator --help does not name rill/broker:{version} as the default broker image"


def check_broker_serves(img, work):
    """The entrypoint with the image's Env (RILL_DATA_DIR) and loopback
    ports: ready, healthy, and the image's rill CLI round-trips records
    that land in /var/lib/rill owned by the image's user."""
    data = os.path.join(img.rootfs, DATA_DIR)
    before = set(os.listdir(data))
    log = open(os.path.join(work, "broker.log"), "w+b")
    loopback = {
        "RILL_LISTEN_ADDR": "127.0.0.1:0",
        "RILL_KAFKA_ADDR": "127.0.0.1:0",
        "RILL_REPLICATION_ADDR": "127.0.0.1:0",
        "RILL_HTTP_ADDR": "127.0.0.1:0",
    }
    broker = start(img, img.config["config"]["Entrypoint"], loopback, stdout=subprocess.PIPE, stderr=log)
    try:
        ready = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        os.set_blocking(broker.stdout.fileno(), False)
        buffered = b""
        while ready is None and time.monotonic() < deadline:
            if broker.poll() is not None:
                break
            chunk = broker.stdout.read()
            if chunk:
                buffered += chunk
                ready = next((l for l in buffered.decode().splitlines() if l.startswith("RILL_READY")), None)
            else:
                time.sleep(0.1)
        if ready is None:
            log.seek(0)
            raise AssertionError(f"broker did not print RILL_READY (exit {broker.poll()}); log:\n{log.read().decode()[-3000:]}")
        fields = dict(f.split("=", 1) for f in ready.split()[1:])
        with urllib.request.urlopen(f"http://{fields['http']}/healthz", timeout=5) as resp:
            assert resp.status == 200, f"/healthz answered {resp.status}"
        cli = {"RILL_BROKER": fields["client"]}
        run(img, ["rill", "topic", "create", "image-check", "--partitions", "1"], cli)
        run(img, ["rill", "produce", "image-check"], cli, stdin=b"one\ntwo\nthree\n")
        out = run(img, ["rill", "consume", "image-check", "--from", "earliest", "--max", "3"], cli)
        assert out.split() == ["one", "two", "three"], f"consumed {out!r}"
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            code = broker.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            broker.kill()
            raise AssertionError("broker did not stop on SIGTERM")
        log.close()
    assert code == 0, f"broker exited {code} after SIGTERM"
    created = set(os.listdir(data)) - before
    assert created, f"the broker wrote nothing to /{DATA_DIR}"
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            assert (st.st_uid, st.st_gid) == (UID, GID), f"{os.path.join(dirpath, name)} owned by {st.st_uid}:{st.st_gid}"


# ---------------------------------------------------------------------------
# Other tools


def tool(*argv):
    proc = subprocess.run(argv, capture_output=True)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
    return proc.stdout


def check_skopeo(img, image, version, work):
    ref = f"oci-archive:{img.archive}:{version}"
    raw = tool("skopeo", "inspect", "--raw", ref)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == img.manifest_desc["digest"], "skopeo reads another manifest"
    cfg = json.loads(tool("skopeo", "inspect", "--config", ref))
    assert cfg["config"]["User"] == f"{UID}:{GID}", cfg["config"].get("User")
    # What `docker load` users get from the documented conversion.
    out = os.path.join(work, "docker-archive.tar")
    tool("skopeo", "copy", "--quiet", ref, f"docker-archive:{out}:rill/{image}:{version}")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    # skopeo writes the normalised name; docker load shows it as rill/<image>.
    assert manifest[0]["RepoTags"] == [f"docker.io/rill/{image}:{version}"], manifest[0].get("RepoTags")


def check_umoci(img, expect, version, work):
    layout = img.layout
    bundle = os.path.join(work, "bundle")
    argv = ["umoci", "unpack", "--image", f"{layout}:{version}", bundle]
    if os.geteuid() != 0:
        argv.insert(2, "--rootless")
    tool(*argv)
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as f:
        spec = json.load(f)
    process = spec["process"]
    assert (process["user"]["uid"], process["user"]["gid"]) == (UID, GID), process["user"]
    assert process["args"] == expect["entrypoint"], process["args"]
    assert process["cwd"] == expect["workdir"], process["cwd"]
    binary = os.path.join(bundle, "rootfs", expect["entrypoint"][0].lstrip("/"))
    assert os.stat(binary).st_mode & 0o777 == 0o755, oct(os.stat(binary).st_mode)
    if expect["data_dir"] and os.geteuid() == 0:
        st = os.stat(os.path.join(bundle, "rootfs", DATA_DIR))
        assert (st.st_uid, st.st_gid) == (UID, GID), f"umoci unpacked /{DATA_DIR} as {st.st_uid}:{st.st_gid}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", required=True)
    parser.add_argument("--image", required=True, choices=sorted(EXPECT))
    parser.add_argument("--bin-dir", required=True, help="the binaries the image was built from")
    parser.add_argument("--work", required=True, help="an empty scratch directory")
    args = parser.parse_args()
    expect = EXPECT[args.image]
    version = workspace()["version"]
    checks = Checks()
    label = f"{args.image}:"

    try:
        img = Image(args.archive, args.work)
    except Exception:
        traceback.print_exc()
        print(f"FAIL {label} archive readable as an OCI layout with one manifest and one layer")
        return 1

    checks.run(f"{label} oci-layout and index.json", check_layout, img)
    checks.run(f"{label} descriptors: media types and sizes", check_descriptors, img)
    checks.run(f"{label} every blob hashes to its digest, none stray", check_blob_digests, img)
    checks.run(f"{label} diff_id is the uncompressed layer's sha256", check_diff_id, img)
    checks.run(f"{label} index names the image rill/{args.image}:{version}", check_names, img, args.image, version)
    checks.run(f"{label} platform linux/{img.config.get('architecture')}", check_platform, img)
    checks.run(f"{label} User is numeric non-root {UID}:{GID}", check_user, img)
    checks.run(f"{label} Entrypoint {expect['entrypoint'][0]}", check_entrypoint, img, expect)
    checks.run(f"{label} ExposedPorts {' '.join(sorted(expect['ports']))}", check_ports, img, expect)
    checks.run(f"{label} Env PATH and WorkingDir", check_env, img, expect)
    checks.run(f"{label} OCI labels from Cargo.toml", check_labels, img, args.image, version)
    checks.run(f"{label} Dockerfile's RILL_VERSION default is {version}", check_dockerfile_version, args.image, version)
    checks.run(f"{label} chart and operator use this image's name and user", check_chart, args.image, version)
    checks.run(f"{label} layer entries sorted, parents first, one mtime", check_layer_order, img)
    checks.run(f"{label} binaries 0755, root-owned, identical to the build's", check_binaries, img, expect, args.bin_dir)
    checks.run(f"{label} libraries: exactly the ELF interpreter and DT_NEEDED closure", check_libraries, img, expect, args.bin_dir)
    checks.run(f"{label} /etc/passwd and /etc/group name {UID}", check_passwd, img)
    checks.run(f"{label} owners: root except the data directory; /tmp 1777", check_ownership, img, expect)
    checks.run(f"{label} copyright files of shipped libraries", check_license_files, img)

    if os.geteuid() == 0:
        checks.run(f"{label} binaries run in the image as {UID} (--version)", check_runs_version, img, expect, version)
        if args.image == "operator":
            checks.run(f"{label} rill-operator --help defaults to rill/broker:{version}", check_operator_help, img, version)
        else:
            checks.run(f"{label} broker serves from the image; rill CLI round trip; data owned by {UID}",
                       check_broker_serves, img, args.work)
    else:
        checks.skip(f"{label} running the image", "needs root for chroot")

    if shutil.which("skopeo"):
        checks.run(f"{label} skopeo reads the archive and converts it to a docker-archive",
                   check_skopeo, img, args.image, version, args.work)
    else:
        checks.skip(f"{label} skopeo", "not installed (apt-get install skopeo)")
    if shutil.which("umoci"):
        checks.run(f"{label} umoci unpacks a runtime bundle as {UID} with the entrypoint",
                   check_umoci, img, expect, version, args.work)
    else:
        checks.skip(f"{label} umoci", "not installed (apt-get install umoci)")

    print(f"{label} {checks.passed} passed, {checks.failed} failed, {checks.skipped} skipped")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
