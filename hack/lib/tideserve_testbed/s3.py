"""An S3-compatible object store for the test bed: versitygw (hack/build-tools s3) on a
POSIX directory, with one root account whose SigV4 signatures it verifies, and the AWS
CLI (hack/lib/bootstrap.sh ensure_awscli, $TIDESERVE_AWSCLI) to talk to it.

Each `server` is its own process on its own port and directory, stopped and removed on
exit; tests that need pods to reach it bind it to an address the pod network routes to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

from tideserve_testbed import procs

REGION = "us-east-1"


@dataclasses.dataclass(frozen=True)
class Store:
    url: str  # http://host:port
    access_key: str
    secret_key: str

    def credentials(self) -> dict[str, str]:
        """What a model's storageSecretRef Secret holds for this store (the fetch step's
        environment): the keys, the region, and the endpoint the AWS CLI should use."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.url,
        }


def aws_cli() -> str:
    path = os.environ.get("TIDESERVE_AWSCLI") or shutil.which("aws")
    if not path:
        raise procs.StartupError("the AWS CLI is missing: hack/test installs it (TIDESERVE_AWSCLI)")
    return path


def aws(
    store: Store, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the AWS CLI against the store as its root account (env overrides)."""
    full = {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()} | store.credentials()
    return subprocess.run(
        [aws_cli(), *args], env=full | (env or {}), capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@contextlib.contextmanager
def server(host: str = "127.0.0.1") -> Iterator[Store]:
    """versitygw serving a fresh directory on host:<free port>; stopped and removed after."""
    binary = procs.BIN_DIR / "versitygw"
    if not binary.exists():
        raise procs.StartupError(f"{binary} missing: run hack/build-tools s3")
    root = pathlib.Path(tempfile.mkdtemp(prefix="tideserve-s3-"))
    port = procs.free_port()
    store = Store(f"http://{host}:{port}", "tideserve", secrets.token_hex(16))
    env = {"PATH": "/usr/bin:/bin", "ROOT_ACCESS_KEY_ID": store.access_key,
           "ROOT_SECRET_ACCESS_KEY": store.secret_key}  # fmt: skip
    cmd = [str(binary), "--port", f"{host}:{port}", "--region", REGION, "--quiet",
           "posix", "--nometa", str(root / "data")]  # fmt: skip
    (root / "data").mkdir()
    proc = procs.start("versitygw", cmd, root / "versitygw.log", env=env)
    try:
        procs.wait_for("versitygw", lambda: _listening(host, port), 30, proc)
        yield store
    finally:
        procs.stop(proc)
        shutil.rmtree(root, ignore_errors=True)
