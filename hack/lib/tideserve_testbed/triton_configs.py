"""Load rendered Triton configs into a real Triton, one after another.

One `tritonserver` (the nvidia-pytriton wheel's, on CPU) in explicit model-control mode
over a scratch repository holding the test bed's "tiny" model. `load` does what a pod
does with a rendered override: runs the rendered merge script (from the ConfigMap) on
the model's config.pbtxt, then asks Triton to load the model and reports whether it did
(Triton's own words if not). GPU instance groups become CPU ones (no GPU here): the rest
of the config is what is checked.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tideserve_testbed import procs, triton

MODEL = triton.DEFAULT_MODEL


class Loader:
    def __init__(self, workdir: pathlib.Path, url: str) -> None:
        self.workdir = workdir
        self.url = url

    def load(self, config_map_data: Mapping[str, str]) -> tuple[bool, str]:
        """(loaded, Triton's message) for the model with this rendered override."""
        models, config = self.workdir / "models", self.workdir / "config"
        shutil.rmtree(models, ignore_errors=True)
        shutil.rmtree(config, ignore_errors=True)
        shutil.copytree(
            triton.MODEL_REPOSITORY, models, ignore=shutil.ignore_patterns("__pycache__")
        )
        config.mkdir()
        for key, text in config_map_data.items():
            (config / key).write_text(_on_this_machine(text) if key == "overrides.pbtxt" else text)
        merge = subprocess.run(
            [sys.executable, str(config / "merge.py"), MODEL, str(models), "-", str(config)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if merge.returncode != 0:
            return False, f"merge failed: {merge.stderr}"
        request = urllib.request.Request(  # noqa: S310 (loopback http)
            f"{self.url}/v2/repository/models/{MODEL}/load", data=b"{}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                ok = response.status == 200
                message = response.read().decode()
        except urllib.error.HTTPError as error:
            return False, error.read().decode()
        return ok, message


def _on_this_machine(overrides: str) -> str:
    """CPU instances (no GPU here), at most 2 (each is a Python process; which count
    Triton starts is not what is checked); the tiny model's backend, python (this Triton
    has no other: that the backend line parses is what is checked)."""
    cpu = overrides.replace("KIND_GPU", "KIND_CPU")
    cpu = re.sub(r'^backend: "[a-z]+"$', 'backend: "python"', cpu, flags=re.MULTILINE)
    return re.sub(r"count: ([0-9]+)", lambda m: f"count: {min(int(m[1]), 2)}", cpu)


def _live(url: str) -> bool:
    try:
        return procs.http_get(f"{url}/v2/health/live", 1.0)[0] == 200
    except OSError:
        return False


@contextmanager
def loader(workdir: pathlib.Path) -> Iterator[Loader]:
    """A Triton in explicit mode with the response cache on (so configs enabling it load)."""
    info = triton._install()
    http, grpc, metrics = procs.free_port(), procs.free_port(), procs.free_port()
    (workdir / "models").mkdir(parents=True, exist_ok=True)
    cmd = [
        info["server"], f"--model-repository={workdir / 'models'}",
        "--model-control-mode=explicit", f"--backend-directory={info['backends']}",
        f"--cache-directory={pathlib.Path(info['pytriton']) / 'tritonserver' / 'caches'}",
        "--cache-config=local,size=1048576",
        "--http-address=127.0.0.1", f"--http-port={http}",
        "--grpc-address=127.0.0.1", f"--grpc-port={grpc}",
        "--metrics-address=127.0.0.1", f"--metrics-port={metrics}",
        "--allow-gpu-metrics=false", "--exit-on-error=false",
        f"--backend-config=python,shm-region-prefix-name=tideserve_cfg_{os.getpid()}_",
    ]  # fmt: skip
    log_path = workdir / "triton.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=triton._env(info), stdout=log, stderr=log)
        url = f"http://127.0.0.1:{http}"
        try:
            deadline = time.monotonic() + 90
            while not _live(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise procs.StartupError(log_path.read_text()[-3000:])
                time.sleep(0.3)
            yield Loader(workdir, url)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
