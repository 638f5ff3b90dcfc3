"""Prometheus (Debian's package) on loopback, scraping Triton targets registered at runtime.

Targets are file_sd entries, one JSON file per target in <state>/prometheus/targets/,
labelled namespace / name (the InferenceService) / pod like the in-cluster scrape.
Writing or deleting a file is all it takes; Prometheus notices within a second.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import urllib.parse
from typing import Any

from tideserve_testbed import procs

TEMPLATE = procs.REPO / "hack" / "testbed" / "prometheus.yml.in"


def binary() -> str:
    found = os.environ.get("TIDESERVE_PROMETHEUS_BIN") or shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        procs.log("prometheus not found; installing Debian's package (apt-get install prometheus)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
            check=True,
            env=env,
        )
        found = shutil.which("prometheus")
    if not found:
        raise procs.StartupError(
            "prometheus binary not found: `apt-get install prometheus` "
            "or set TIDESERVE_PROMETHEUS_BIN"
        )
    return found


def targets_dir(d: pathlib.Path | None = None) -> pathlib.Path:
    return (d or procs.state_dir()) / "prometheus" / "targets"


def url(state: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{state['ports']['prometheus']}"


def up(d: pathlib.Path, state: dict[str, Any], reachable_from_pods: bool = False) -> bool:
    """Start Prometheus unless running; return whether it was started. reachable_from_pods:
    listen beyond loopback, so the operator's pods on the real node query it at the node's
    bridge address (Debian's 2.42 takes one listen address only)."""
    ports = state.setdefault("ports", {})
    comps = state.setdefault("components", {})
    if procs.alive(comps.get("prometheus")):
        return False
    if comps.get("prometheus"):
        procs.log("prometheus is not running; its log ends with:")
        print(procs.tail(comps["prometheus"]["log"]), flush=True)
    port = ports.setdefault("prometheus", procs.free_port())
    pdir = d / "prometheus"
    targets_dir(d).mkdir(parents=True, exist_ok=True)
    config = (
        TEMPLATE.read_text()
        .replace("@TARGETS_DIR@", str(targets_dir(d)))
        .replace("@POD_SD_PORT@", str(ports.setdefault("pod-sd", procs.free_port())))
    )
    (pdir / "prometheus.yml").write_text(config)
    cmd = [
        binary(),
        f"--config.file={pdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={pdir / 'data'}",
        # Beyond loopback only with a real node (the chart's operator pods query it); no
        # lifecycle or admin API, so nobody else on the network can stop or change it.
        f"--web.listen-address={'0.0.0.0' if reachable_from_pods else '127.0.0.1'}:{port}",  # noqa: S104
        "--storage.tsdb.retention.time=1d",
    ]
    procs.log("starting prometheus")
    proc = procs.start("prometheus", cmd, d / "logs" / "prometheus.log")
    comps["prometheus"] = proc
    procs.write_json(d / "state.json", state)
    procs.wait_for("prometheus /-/ready", lambda: _get(f"{url(state)}/-/ready")[0] == 200, 30, proc)
    return True


def _get(u: str) -> tuple[int, bytes]:
    return procs.http_get(u, 5.0)


def register(
    target_id: str,
    address: str,
    *,
    namespace: str,
    name: str,
    pod: str,
    d: pathlib.Path | None = None,
    extra_labels: dict[str, str] | None = None,
) -> pathlib.Path:
    """Add a scrape target (host:port of a Triton metrics endpoint)."""
    labels = {"namespace": namespace, "name": name, "pod": pod, **(extra_labels or {})}
    return register_labels(target_id, address, labels, d)


def register_labels(
    target_id: str, address: str, labels: dict[str, str], d: pathlib.Path | None = None
) -> pathlib.Path:
    """Add a scrape target with exactly these target labels."""
    path = targets_dir(d) / f"{target_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # a dotfile, outside the *.json glob
    tmp.write_text(json.dumps([{"targets": [address], "labels": labels}]))
    tmp.replace(path)
    return path


def unregister(target_id: str, d: pathlib.Path | None = None) -> None:
    (targets_dir(d) / f"{target_id}.json").unlink(missing_ok=True)


def query(base_url: str, promql: str) -> list[dict[str, Any]]:
    """Instant query; returns the result vector (list of {metric, value})."""
    q = urllib.parse.urlencode({"query": promql})
    _, body = _get(f"{base_url}/api/v1/query?{q}")
    data = json.loads(body)
    if data.get("status") != "success":
        raise RuntimeError(f"prometheus query {promql!r} failed: {data}")
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def active_targets(base_url: str) -> list[dict[str, Any]]:
    _, body = _get(f"{base_url}/api/v1/targets?state=active")
    targets: list[dict[str, Any]] = json.loads(body)["data"]["activeTargets"]
    return targets


def down(state: dict[str, Any]) -> None:
    proc: dict[str, Any] | None = state.get("components", {}).get("prometheus")
    if proc and procs.alive(proc):
        procs.log(f"stopping prometheus (pid {proc['pid']})")
        procs.stop(proc)
