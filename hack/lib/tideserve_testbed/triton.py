"""Real Triton servers on CPU, from the tritonserver binary in the nvidia-pytriton wheel.

Each server is recorded in <state>/tritons/<name>.json so that the CLI, other
pytest sessions and `hack/cluster down` can find and stop it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from typing import Any

from tideserve_testbed import procs, prometheus

MODEL_REPOSITORY = procs.REPO / "hack" / "testbed" / "triton-models"
DEFAULT_MODEL = "tiny"

_PROBE = """
import json, os, sys, sysconfig, pytriton
from importlib.metadata import version
print(json.dumps({
    "pytriton": os.path.dirname(pytriton.__file__),
    "version": version("nvidia-pytriton"),
    "py": f"{sys.version_info[0]}.{sys.version_info[1]}",
    "libdir": sysconfig.get_config_var("LIBDIR"),
    "bindir": os.path.dirname(sys.executable),
}))
"""


def python() -> str:
    """The interpreter whose site-packages hold nvidia-pytriton (the project venv)."""
    venv = procs.REPO / ".venv" / "bin" / "python"
    return os.environ.get("TIDESERVE_PYTHON") or (str(venv) if venv.exists() else "python3")


def _install() -> dict[str, Any]:
    """Locate the wheel's server and lay out a backend dir with the matching stub.

    The Python backend looks for triton_python_backend_stub next to its own .so,
    and the wheel ships one stub per Python version, so (like pytriton itself) we
    assemble backends/python once per wheel version and interpreter version.
    """
    cache_file = procs.CACHE / "triton" / "install.json"
    info = procs.read_json(cache_file)
    if info.get("python") != python() or not pathlib.Path(info.get("backends", "/-")).is_dir():
        proc = subprocess.run([python(), "-c", _PROBE], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise procs.StartupError(
                f"cannot find nvidia-pytriton with {python()} (pip install nvidia-pytriton):\n"
                f"{proc.stderr}"
            )
        info = json.loads(proc.stdout)
        info["python"] = python()
        src = pathlib.Path(info["pytriton"]) / "tritonserver"
        dest = procs.CACHE / "triton" / f"pytriton-{info['version']}-py{info['py']}" / "backends"
        if not (dest / "python" / "triton_python_backend_stub").exists():
            tmp = dest.with_name(".backends.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src / "backends", tmp)
            shutil.copy2(
                src / "python_backend_stubs" / info["py"] / "triton_python_backend_stub",
                tmp / "python" / "triton_python_backend_stub",
            )
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        info["backends"] = str(dest)
        info["server"] = str(src / "bin" / "tritonserver")
        info["libs"] = str(pathlib.Path(info["pytriton"]).parent / "nvidia_pytriton.libs")
        procs.write_json(cache_file, info)
    return info


def _env(info: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    # The stub links the system libpython (not shipped in the wheel): point the
    # loader at the interpreter's own lib dir, plus the wheel's bundled libs.
    libs = [info["libs"], info["libdir"], env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
    env["PATH"] = f"{info['bindir']}:{env.get('PATH', '')}"
    return env


def record_path(name: str, d: pathlib.Path | None = None) -> pathlib.Path:
    return (d or procs.state_dir()) / "tritons" / f"{name}.json"


def _ready(rec: dict[str, Any]) -> bool:
    return procs.http_get(f"{rec['http_url']}/v2/health/ready", 1.0)[0] == 200


def start(
    name: str,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    model_repository: pathlib.Path | None = None,
    delay_ms: int | None = None,
    labels: dict[str, str] | None = None,
    d: pathlib.Path | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Start (or reuse, if already running) Triton `name`; return its record.

    labels, if given, registers the metrics endpoint with Prometheus; it must hold
    namespace, name and pod (the labels the in-cluster scrape attaches). delay_ms
    sets the tiny model's time per batch (default 20 ms), i.e. the server's capacity.
    """
    d = d or procs.state_dir()
    path = record_path(name, d)
    rec = procs.read_json(path)
    if procs.alive(rec.get("proc")):
        return rec
    info = _install()
    if delay_ms is not None:
        model_repository = _repository_with_delay(d / "tritons" / f"{name}-models", delay_ms)
    ports = {
        "http": http_port or procs.free_port(),
        "grpc": grpc_port or procs.free_port(),
        "metrics": metrics_port or procs.free_port(),
    }
    cmd = [
        info["server"],
        f"--model-repository={model_repository or MODEL_REPOSITORY}",
        f"--backend-directory={info['backends']}",
        "--http-address=127.0.0.1", f"--http-port={ports['http']}",
        "--grpc-address=127.0.0.1", f"--grpc-port={ports['grpc']}",
        "--metrics-address=127.0.0.1", f"--metrics-port={ports['metrics']}",
        "--allow-metrics=true", "--allow-gpu-metrics=false", "--metrics-interval-ms=1000",
        "--metrics-config=summary_latencies=true",
        "--exit-on-error=true", "--strict-readiness=true", "--exit-timeout-secs=3",
        # Unique shared-memory names so several servers can run side by side.
        f"--backend-config=python,shm-region-prefix-name=tideserve_{name}_{ports['http']}_",
        "--metrics-config=summary_latencies=true",  # p99 summaries, as render/deployment.py
    ]  # fmt: skip
    procs.log(f"starting triton {name} (http {ports['http']}, metrics {ports['metrics']})")
    proc = procs.start(f"triton-{name}", cmd, d / "logs" / f"triton-{name}.log", env=_env(info))
    rec = {
        "name": name,
        "proc": proc,
        "http_url": f"http://127.0.0.1:{ports['http']}",
        "grpc_url": f"127.0.0.1:{ports['grpc']}",
        "metrics_url": f"http://127.0.0.1:{ports['metrics']}/metrics",
        "metrics_address": f"127.0.0.1:{ports['metrics']}",
        "ports": ports,
        "model": DEFAULT_MODEL,
        "labels": labels or {},
    }
    procs.write_json(path, rec)
    procs.wait_for(f"triton {name} /v2/health/ready", lambda: _ready(rec), timeout, proc)
    if labels:
        register(rec, labels, d)
    return rec


def _repository_with_delay(dest: pathlib.Path, delay_ms: int) -> pathlib.Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(MODEL_REPOSITORY, dest, ignore=shutil.ignore_patterns("__pycache__"))
    config = dest / DEFAULT_MODEL / "config.pbtxt"
    text = config.read_text()
    marker = 'key: "DELAY_MS"\n  value: { string_value: "20" }'
    if marker not in text:
        raise procs.StartupError(f"{config}: DELAY_MS parameter not found")
    config.write_text(text.replace(marker, marker.replace('"20"', f'"{int(delay_ms)}"')))
    return dest


def register(rec: dict[str, Any], labels: dict[str, str], d: pathlib.Path | None = None) -> None:
    extra = {k: v for k, v in labels.items() if k not in ("namespace", "name", "pod")}
    prometheus.register(
        f"triton-{rec['name']}",
        rec["metrics_address"],
        namespace=labels["namespace"],
        name=labels["name"],
        pod=labels["pod"],
        d=d,
        extra_labels=extra,
    )


def stop(name: str, d: pathlib.Path | None = None) -> bool:
    path = record_path(name, d)
    rec = procs.read_json(path)
    prometheus.unregister(f"triton-{name}", d)
    running = procs.alive(rec.get("proc"))
    if running:
        procs.log(f"stopping triton {name} (pid {rec['proc']['pid']})")
        procs.stop(rec["proc"], timeout=10)
    path.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(f"{name}-models"), ignore_errors=True)
    return running


def running(d: pathlib.Path | None = None) -> list[dict[str, Any]]:
    out = []
    for path in sorted(((d or procs.state_dir()) / "tritons").glob("*.json")):
        rec = procs.read_json(path)
        rec["alive"] = procs.alive(rec.get("proc"))
        out.append(rec)
    return out
