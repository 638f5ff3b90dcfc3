"""Container images for the real node, built here and imported into its containerd.

No registry is reachable, so nothing is pulled: a Debian base made by debootstrap,
then buildah runs the repository's own Dockerfile (the operator/activator image, with
PYTHON_IMAGE pointed at that base), hack/images/triton/Containerfile (Triton on CPU) and
hack/images/aws-cli/Containerfile (the s3:// fetch step's AWS CLI), plus the pause
image from the pause.c of the pinned Kubernetes release. Each image is named and cached
by a hash of everything it is built from:
  ~/.cache/tideserve/images/<name>-<hash>.tar   (docker-archive, imported with ctr)
so a second `hack/cluster up` builds nothing. buildah keeps its layers in
~/.cache/tideserve/images/storage.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from tideserve_testbed import procs

DIR = procs.CACHE / "images"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ["python3", "python3-venv", "python3-pip", "python-is-python3",
                 "libpython3.11", "ca-certificates", "passwd", "curl", "unzip"]  # fmt: skip
PYTRITON_VERSION = "0.7.0"
TRITON_DIR = procs.REPO / "hack" / "images" / "triton"
AWSCLI_DIR = procs.REPO / "hack" / "images" / "aws-cli"
K8S_TOOLS = procs.REPO / "hack" / "tools" / "k8s-node"
# The host's CA bundle is mounted (never copied) into build steps that reach PyPI.
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:12]


def _tree(root: pathlib.Path) -> bytes:
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and ".egg-info" not in str(p))  # fmt: skip
    return b"".join(str(p.relative_to(root)).encode() + p.read_bytes() for p in files)


def _pause_source() -> pathlib.Path:
    out = subprocess.run(
        ["go", "list", "-m", "-json", "k8s.io/kubernetes"], cwd=K8S_TOOLS,
        capture_output=True, text=True, check=False, env=dict(os.environ, GOTOOLCHAIN="local"),
    )  # fmt: skip
    if out.returncode != 0:
        raise procs.StartupError(f"go list k8s.io/kubernetes failed: {out.stderr}")
    src = pathlib.Path(json.loads(out.stdout)["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    if not src.exists():
        subprocess.run(["go", "mod", "download", "k8s.io/kubernetes"], cwd=K8S_TOOLS, check=True)
    return src


def awscli_version() -> str:
    """The AWS CLI release hack/lib/bootstrap.sh installs on the host (one pin for both)."""
    for line in (procs.REPO / "hack" / "lib" / "bootstrap.sh").read_text().splitlines():
        if line.startswith("AWSCLI_VERSION="):
            return line.partition("=")[2].strip()
    raise procs.StartupError("AWSCLI_VERSION not found in hack/lib/bootstrap.sh")


@functools.cache
def keys() -> dict[str, str]:
    """name -> content hash of each image (the base's hash is part of the others')."""
    base = _digest(SUITE.encode(), " ".join(BASE_PACKAGES).encode())
    sources = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
    return {
        "python": base,
        "pause": _digest(_pause_source().read_bytes()),
        "triton": _digest(base.encode(), PYTRITON_VERSION.encode(), _tree(TRITON_DIR)),
        "aws-cli": _digest(base.encode(), awscli_version().encode(), _tree(AWSCLI_DIR)),
        "tideserve": _digest(
            base.encode(),
            *((procs.REPO / f).read_bytes() for f in sources),
            _tree(procs.REPO / "operator"),
        ),
    }


def ref(name: str, key: str | None = None) -> str:
    return f"localhost/tideserve/{name}:{key or keys()[name]}"


def _buildah(*args: str, log: pathlib.Path) -> str:
    cmd = ["buildah", f"--root={DIR / 'storage'}", f"--runroot={DIR / 'run'}",
           "--storage-driver=overlay", *args]  # fmt: skip
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=out, text=True, check=False)
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise procs.StartupError(f"buildah {args[0]} failed; see {log}:\n{procs.tail(log)}")
    return proc.stdout.strip()


def _in_storage(image: str, log: pathlib.Path) -> bool:
    cmd = ["buildah", f"--root={DIR / 'storage'}", f"--runroot={DIR / 'run'}",
           "--storage-driver=overlay", "inspect", "--type=image", image]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def _from_rootfs(rootfs: pathlib.Path, image: str, log: pathlib.Path, config: list[str]) -> None:
    ctr = _buildah("from", "--quiet", "scratch", log=log)
    try:
        mnt = _buildah("mount", ctr, log=log)
        subprocess.run(f"tar -C {rootfs} -cf - . | tar -C {mnt} -xf -", shell=True, check=True)  # noqa: S602
        _buildah("umount", ctr, log=log)
        if config:
            _buildah("config", *config, ctr, log=log)
        _buildah("commit", "--quiet", ctr, image, log=log)
    finally:
        _buildah("rm", ctr, log=log)


def _build_python(key: str, log: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory(dir=DIR) as tmp:
        rootfs = pathlib.Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
               SUITE, str(rootfs), MIRROR]  # fmt: skip
        with open(log, "a") as out:
            if subprocess.run(cmd, stdout=out, stderr=out, check=False).returncode != 0:
                raise procs.StartupError(f"debootstrap failed; see {log}:\n{procs.tail(log)}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        env = ["--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "--env=LANG=C.UTF-8", "--cmd=python3"]  # fmt: skip
        _from_rootfs(rootfs, ref("python", key), log, env)


def _build_pause(key: str, log: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory(dir=DIR) as tmp:
        root = pathlib.Path(tmp) / "rootfs"
        root.mkdir()
        cmd = ["gcc", "-Os", "-static", "-o", str(root / "pause"), str(_pause_source())]
        if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
            raise procs.StartupError(f"{' '.join(cmd)} failed (gcc, libc6-dev installed?)")
        _from_rootfs(root, ref("pause", key), log, ['--entrypoint=["/pause"]', "--user=65535"])


def _bud(context: pathlib.Path, containerfile: pathlib.Path, image: str, log: pathlib.Path,
         build_args: dict[str, str]) -> None:  # fmt: skip
    args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
    _buildah("bud", "--quiet", "--pull-never", "--network=host", "--isolation=chroot",
             f"--volume={HOST_CA}:{HOST_CA}:ro", *args, f"--tag={image}",
             f"--file={containerfile}", str(context), log=log)  # fmt: skip


def _prune(name: str, key: str, log: pathlib.Path) -> None:
    """Older builds of an image (every change to operator/ makes a new one): their
    archives and their tags in buildah's store; shared layers stay."""
    for old in DIR.glob(f"{name}-*.tar"):
        if old.name != f"{name}-{key}.tar":
            old.unlink()
    listed = _buildah("images", "--format={{.Name}}:{{.Tag}}", log=log).split()
    mine = f"localhost/tideserve/{name}:"
    stale = [i for i in listed if i.startswith(mine) and i != ref(name, key)]
    if stale:
        _buildah("rmi", *stale, log=log)


def ensure(names: list[str] | None = None) -> dict[str, pathlib.Path]:
    """Build what is missing; return name -> archive path."""
    for tool in ("buildah", "debootstrap", "gcc"):
        if shutil.which(tool) is None:
            raise procs.StartupError(f"images: {tool} not found (hack/lib/bootstrap.sh has it)")
    DIR.mkdir(parents=True, exist_ok=True)
    k = keys()
    wanted = names or ["pause", "triton", "tideserve", "aws-cli"]
    out = {n: DIR / f"{n}-{k[n]}.tar" for n in wanted}
    if all(p.exists() for p in out.values()):
        return out
    log = DIR / "build.log"
    with open(DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = ref("python", k["python"])
        for name in wanted:
            if out[name].exists():
                continue
            t0 = time.monotonic()
            if name != "pause" and not _in_storage(base, log):
                procs.log(f"images: building the Debian base {base} (debootstrap, ~2 min)")
                _build_python(k["python"], log)
            image = ref(name, k[name])
            procs.log(f"images: building {image}")
            if name == "pause":
                _build_pause(k[name], log)
            elif name == "triton":
                _bud(TRITON_DIR, TRITON_DIR / "Containerfile", image, log,
                     {"BASE": base, "PYTRITON_VERSION": PYTRITON_VERSION})  # fmt: skip
            elif name == "aws-cli":
                _bud(AWSCLI_DIR, AWSCLI_DIR / "Containerfile", image, log,
                     {"BASE": base, "AWSCLI_VERSION": awscli_version()})  # fmt: skip
            else:
                _bud(procs.REPO, procs.REPO / "Dockerfile", image, log, {"PYTHON_IMAGE": base})
            tmp = out[name].with_name(f".{out[name].name}.tmp")
            tmp.unlink(missing_ok=True)
            _buildah("push", "--quiet", image, f"docker-archive:{tmp}:{image}", log=log)
            tmp.replace(out[name])
            procs.log(f"images: {image} built in {time.monotonic() - t0:.0f}s")
            _prune(name, k[name], log)
    return out


def import_all(d: pathlib.Path, sock: pathlib.Path) -> None:
    """Import into the node's containerd (namespace k8s.io) each image it lacks."""
    ls = ["ctr", f"--address={sock}", "--namespace=k8s.io", "images", "ls", "--quiet"]
    present = set(subprocess.run(ls, capture_output=True, text=True, check=False).stdout.split())
    for name, archive in ensure().items():
        if ref(name) in present:
            continue
        t0 = time.monotonic()
        cmd = ["ctr", f"--address={sock}", "--namespace=k8s.io", "images", "import", str(archive)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise procs.StartupError(f"ctr images import {archive} failed: {proc.stderr}")
        procs.log(f"imported {ref(name)} into the real node ({time.monotonic() - t0:.1f}s)")
    current = {ref(n) for n in ensure()}
    stale = [i for i in present if i.startswith("localhost/tideserve/") and i not in current]
    if stale:  # earlier builds: the store is kept across `up`s, so it would only grow
        rm = ["ctr", f"--address={sock}", "--namespace=k8s.io", "images", "rm", *stale]
        subprocess.run(rm, capture_output=True, check=False)
    procs.write_json(d / "node" / "images.json", {n: ref(n) for n in ensure()})
