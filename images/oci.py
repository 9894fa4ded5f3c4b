#!/usr/bin/env python3
"""Writes a Rill container image as an OCI image layout and an OCI archive,
without a container daemon or image builder (Python standard library only).

The image is what the final stage of its Dockerfile describes: that stage
must start `FROM scratch` and copy one directory, assembled by
images/rootfs.sh, to `/`; that directory becomes the image's single layer.
The stage's other instructions (USER, WORKDIR, ENV, LABEL, EXPOSE,
ENTRYPOINT, CMD, STOPSIGNAL, ARG) become the image configuration, so the
Dockerfile is the one description of each image and this script and a real
image builder produce the same image metadata. Any other instruction in the
final stage is refused rather than ignored.

The output is reproducible: entries are sorted, every mtime is --epoch,
owners are numeric with no names, gzip has no timestamp or file name, JSON
is written with sorted keys. Building twice from the same rootfs gives the
same manifest digest.

    oci.py --dockerfile images/broker/Dockerfile --rootfs DIR \\
        --name rill/broker --tag 0.1.0 --out DIR [--build-arg K=V]... \\
        [--epoch SECONDS] [--gzip-level 0-9]

writes DIR/rill-<image>-<tag>.oci/ (the layout; <image> is the last element
of --name) and DIR/rill-<image>-<tag>.oci.tar (the same layout as one tar
file, for `skopeo copy oci-archive:...` and `ctr images import`) and prints
one line with the digests.
"""

import argparse
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import stat
import tarfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# Go's GOARCH names, which OCI uses, for what the host reports.
ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}



class DockerfileError(Exception):
    pass


# ---------------------------------------------------------------------------
# Dockerfile: the final stage's instructions -> image configuration


def instructions(text):
    """(keyword, arguments, source line) per instruction, with continuation
    lines joined and comment lines dropped, as the Dockerfile frontend does."""
    out = []
    pending = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if pending is None:
            if not stripped:
                continue
            pending = ""
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        pending += stripped
        keyword, _, rest = pending.strip().partition(" ")
        out.append((keyword.upper(), rest.strip(), pending.strip()))
        pending = None
    if pending:
        raise DockerfileError("the last instruction ends with a line continuation")
    return out


VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def substitute(value, variables):
    """$NAME and ${NAME} from ARG and ENV values; ${NAME:-...} forms are not
    supported and are refused."""
    if "${" in value and re.search(r"\$\{[^}]*[:?+-]", value):
        raise DockerfileError(f"unsupported variable form in {value!r}")

    def replace(match):
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise DockerfileError(f"${name} is not defined (ARG or ENV)")
        return variables[name]

    return VARIABLE.sub(replace, value)


def key_values(rest, keyword):
    """KEY=VALUE pairs of ENV and LABEL (quotes as in a shell)."""
    words = shlex.split(rest, posix=True)
    if words and "=" not in words[0]:
        if keyword != "ENV":
            raise DockerfileError(f"{keyword} needs KEY=VALUE pairs")
        return [(words[0], " ".join(words[1:]))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileError(f"{keyword}: {word!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


def exec_form(rest, keyword):
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerfileError(f'{keyword} must use the exec form ["..."] (no shell in a scratch image)')
    return value


def image_config(dockerfile_text, build_args):
    """The image configuration, the copy source and the history that the
    Dockerfile's final stage describes."""
    global_args = {}
    stages = []  # (name, [(keyword, rest, line)])
    for keyword, rest, line in instructions(dockerfile_text):
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append((name, words[0], []))
        elif not stages:
            if keyword != "ARG":
                raise DockerfileError(f"only ARG may come before the first FROM, not {keyword}")
            name, _, default = rest.partition("=")
            global_args[name] = build_args.get(name, default)
        else:
            stages[-1][2].append((keyword, rest, line))
    if not stages:
        raise DockerfileError("no FROM")
    _, base, final = stages[-1]
    earlier = {name for name, _, _ in stages[:-1] if name}
    if base != "scratch":
        raise DockerfileError(f"the final stage must be FROM scratch, not {base}")

    variables = {}
    env = {}  # insertion-ordered, like the image's Env
    config = {}
    labels = {}
    ports = {}
    copy_source = None
    history = []
    for keyword, rest, line in final:
        empty_layer = True
        if keyword == "ARG":
            name, sep, default = rest.partition("=")
            if name in build_args:
                variables[name] = build_args[name]
            elif sep:
                variables[name] = substitute(default, {**variables, **env})
            elif name in global_args:
                variables[name] = global_args[name]
            else:
                raise DockerfileError(f"ARG {name} has no value")
            continue  # ARG leaves no history entry
        scope = {**variables, **env}
        if keyword == "COPY":
            words = rest.split()
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            stage_flags = [f for f in flags if f.startswith("--from=")]
            if copy_source is not None:
                raise DockerfileError("the final stage may COPY only once")
            if len(flags) != 1 or len(stage_flags) != 1 or paths[1:] != ["/"] or len(paths) != 2:
                raise DockerfileError(f"the final stage's COPY must be `COPY --from=<stage> <dir>/ /`, not {line!r}")
            if stage_flags[0][len("--from="):] not in earlier:
                raise DockerfileError(f"COPY {stage_flags[0]}: no such build stage")
            copy_source = paths[0]
            empty_layer = False
        elif keyword == "ENV":
            for key, value in key_values(rest, "ENV"):
                env[key] = substitute(value, {**variables, **env})
        elif keyword == "LABEL":
            for key, value in key_values(rest, "LABEL"):
                labels[key] = substitute(value, scope)
        elif keyword == "USER":
            config["User"] = substitute(rest, scope)
        elif keyword == "WORKDIR":
            workdir = substitute(rest, scope)
            if not workdir.startswith("/"):
                raise DockerfileError("WORKDIR must be absolute")
            config["WorkingDir"] = workdir
        elif keyword == "EXPOSE":
            for port in substitute(rest, scope).split():
                if "/" not in port:
                    port += "/tcp"
                ports[port] = {}
        elif keyword == "ENTRYPOINT":
            config["Entrypoint"] = exec_form(rest, keyword)
        elif keyword == "CMD":
            config["Cmd"] = exec_form(rest, keyword)
        elif keyword == "STOPSIGNAL":
            config["StopSignal"] = substitute(rest, scope)
        else:
            raise DockerfileError(f"{keyword} is not supported in the final stage by the daemonless build")
        entry = {"created_by": line}
        if empty_layer:
            entry["empty_layer"] = True
        history.append(entry)
    if copy_source is None:
        raise DockerfileError("the final stage copies nothing")
    if env:
        config["Env"] = [f"{k}={v}" for k, v in env.items()]
    if labels:
        config["Labels"] = labels
    if ports:
        config["ExposedPorts"] = ports
    return config, copy_source, history


# ---------------------------------------------------------------------------
# Reproducible tar and blobs


class HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, inner):
        self.inner = inner
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha256.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def flush(self):
        self.inner.flush()

    def digest(self):
        return "sha256:" + self.sha256.hexdigest()


def tree_entries(root):
    """Every path under root, relative, parents before children, sorted."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            paths.append(name if rel == "." else os.path.join(rel, name))
    return sorted(paths)


def write_tree_tar(root, fileobj, epoch, owner_from_stat):
    """A tar of root's contents with fixed mtimes and numeric owners. With
    owner_from_stat the owners are the files' own (rootfs.sh sets them);
    otherwise everything is 0:0 (the layout archive)."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in tree_entries(root):
            path = os.path.join(root, rel)
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.mtime = epoch
            info.uid, info.gid = (st.st_uid, st.st_gid) if owner_from_stat else (0, 0)
            info.uname = info.gname = ""
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                raise ValueError(f"{path}: only directories, files and symlinks go into an image")


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path):
        self.path = path
        self.blobs = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobs)

    def add_bytes(self, media_type, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_json(self, media_type, value):
        return self.add_bytes(media_type, canonical_json(value))

    def add_layer(self, rootfs, epoch, gzip_level):
        """Packs rootfs as a gzip layer; returns (descriptor, diff_id)."""
        tmp = os.path.join(self.path, "layer.tmp")
        with open(tmp, "wb") as raw:
            blob = HashingWriter(raw)
            # mtime=0 and no file name: the gzip header carries no timestamp.
            with gzip.GzipFile(filename="", mode="wb", fileobj=blob, compresslevel=gzip_level, mtime=0) as gz:
                plain = HashingWriter(gz)
                write_tree_tar(rootfs, plain, epoch, owner_from_stat=True)
        digest = blob.digest()
        os.replace(tmp, os.path.join(self.blobs, digest[7:]))
        return {"mediaType": MEDIA_LAYER_GZIP, "digest": digest, "size": blob.size}, plain.digest()


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build(args):
    build_args = dict(a.split("=", 1) for a in args.build_arg)
    with open(args.dockerfile, encoding="utf-8") as f:
        runtime_config, copy_source, history = image_config(f.read(), build_args)

    arch = ARCHITECTURES.get(platform.machine())
    if arch is None:
        raise SystemExit(f"oci.py: unknown architecture {platform.machine()}")
    created = datetime.datetime.fromtimestamp(args.epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for entry in history:
        entry["created"] = created

    short = "rill-" + args.name.rsplit("/", 1)[-1]
    base = f"{short}-{args.tag}"
    os.makedirs(args.out, exist_ok=True)
    layout_dir = os.path.join(args.out, base + ".oci")
    archive = layout_dir + ".tar"
    shutil.rmtree(layout_dir, ignore_errors=True)

    layout = Layout(layout_dir)
    layer, diff_id = layout.add_layer(args.rootfs, args.epoch, args.gzip_level)
    config = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": runtime_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": history,
    }
    config_desc = layout.add_json(MEDIA_CONFIG, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc,
        "layers": [layer],
    }
    manifest_desc = layout.add_json(MEDIA_MANIFEST, manifest)
    reference = args.name if "." in args.name.split("/", 1)[0] else "docker.io/" + args.name
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                **manifest_desc,
                "platform": {"architecture": arch, "os": "linux"},
                "annotations": {
                    # containerd (ctr images import, kind load, nerdctl) and
                    # docker load name the image from this one...
                    "io.containerd.image.name": f"{reference}:{args.tag}",
                    # ...skopeo and umoci (oci-archive:<file>:<tag>) from this.
                    "org.opencontainers.image.ref.name": args.tag,
                },
            }
        ],
    }
    with open(os.path.join(layout_dir, "index.json"), "wb") as f:
        f.write(canonical_json(index))
    with open(os.path.join(layout_dir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))

    tmp = archive + ".tmp"
    with open(tmp, "wb") as f:
        write_tree_tar(layout_dir, f, args.epoch, owner_from_stat=False)
    os.replace(tmp, archive)

    print(
        f"{args.name}:{args.tag}  manifest {manifest_desc['digest']}  config {config_desc['digest']}"
        f"  layer {layer['size'] / 1e6:.1f} MB  {archive}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dockerfile", required=True)
    parser.add_argument("--rootfs", required=True, help="the directory the final stage copies to /")
    parser.add_argument("--name", required=True, help="image repository, e.g. rill/broker")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--out", required=True, help="directory for the layout and the archive")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epoch", type=int, default=0, help="timestamp of every file and of the image (seconds)")
    parser.add_argument("--gzip-level", type=int, default=6, choices=range(10), metavar="0-9")
    args = parser.parse_args()
    try:
        build(args)
    except DockerfileError as e:
        raise SystemExit(f"oci.py: {args.dockerfile}: {e}")


if __name__ == "__main__":
    main()
