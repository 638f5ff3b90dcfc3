"""Helpers for tests whose pods really run on the real node (node.py): a namespace
that opts in under restricted Pod Security, a model repository on a PersistentVolume,
requests and load through a Service's ClusterIP (kube-proxy), and queue time from
Prometheus. Only tests import this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import pathlib
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from tideserve_testbed import fixtures, node, procs, prometheus, triton

MODEL = "tiny"


def create_namespace(kube: fixtures.Kube, name: str) -> None:
    """A namespace whose pods all go to the real node, enforcing restricted Pod Security."""
    fixtures.install_crds(kube)
    kube.apply({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "annotations": node.opt_in_annotations(),
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    })  # fmt: skip


@contextlib.contextmanager
def namespace(kube: fixtures.Kube, prefix: str) -> Iterator[str]:
    """create_namespace, deleted afterwards waiting for its pods to go (they hold real
    processes)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    create_namespace(kube, name)
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--timeout=120s", check=False, timeout=150)


def create_model_volume(
    kube: fixtures.Kube, namespace: str, delay_ms: int, repo: pathlib.Path
) -> str:
    """The test model (its per-batch "GPU time" a sleep of delay_ms) copied under repo, on
    a hostPath PersistentVolume `<namespace>-models` bound to claim `models`; returns the
    storageUri (pvc://models). repo must be readable by Triton's non-root user."""
    repo.mkdir(parents=True, exist_ok=True)
    repo.chmod(0o755)
    model_dir = triton._repository_with_delay(repo / "repo", delay_ms)
    for path in [model_dir, *model_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    pv = f"{namespace}-models"
    kube.apply([
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": str(model_dir), "type": "Directory"},
                  "claimRef": {"namespace": namespace, "name": "models"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "models", "namespace": namespace},
         "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}},
    ])  # fmt: skip
    return "pvc://models"


@contextlib.contextmanager
def model_volume(kube: fixtures.Kube, namespace: str, delay_ms: int) -> Iterator[str]:
    """create_model_volume in a temporary directory, removed afterwards with its PV."""
    repo = pathlib.Path(tempfile.mkdtemp(prefix="tideserve-models-"))
    try:
        yield create_model_volume(kube, namespace, delay_ms, repo)
    finally:
        kube.kubectl("delete", "pv", f"{namespace}-models", "--wait=false", check=False)
        shutil.rmtree(repo, ignore_errors=True)


def publish_activator(kube: fixtures.Kube, namespace: str, host: str, port: int) -> None:
    """The activator's Service: no selector (it runs on the host), one endpoint on the
    node's bridge, so kube-proxy routes to it as to a pod."""
    kube.apply([
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "activator", "namespace": namespace},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "activator-host", "namespace": namespace,
                      "labels": {"kubernetes.io/service-name": "activator"}},
         "addressType": "IPv4",
         "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
         "endpoints": [{"addresses": [host], "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "namespace": namespace,
                                      "name": "activator-host"}}]},
    ])  # fmt: skip


def infer_body(value: float) -> dict[str, Any]:
    return {"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [value]}]}


def cluster_ip(kube: fixtures.Kube, namespace: str, service: str) -> str:
    ip: str = kube.get_json("service", service, "-n", namespace)["spec"]["clusterIP"]
    return ip


@contextlib.contextmanager
def load(url: str, concurrency: int, headers: dict[str, str]) -> Iterator[list[int]]:
    """Closed-loop clients posting to url until the block ends, in a thread of their own
    (the test waits meanwhile); yields [answered, failed] as they accrue.

    One connection per request: kube-proxy balances connections, not requests, so
    keep-alive clients would all stay on the pod they first reached and new replicas
    would get nothing (measured: 3 Ready pods, every request on the first one). Plain
    asyncio streams, not an HTTP client library: on two cores the clients must cost far
    less than the load they make."""
    counts = [0, 0]
    stop = threading.Event()
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "", parsed.port or 80

    def request(i: int) -> bytes:
        body = json.dumps(infer_body(float(i))).encode()
        head = {"Host": parsed.netloc, **headers, "Content-Type": "application/json",
                "Content-Length": str(len(body)), "Connection": "close"}  # fmt: skip
        lines = [f"POST {parsed.path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def client(i: int) -> None:
        raw = request(i)
        while not stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
                writer.write(raw)
                response = await asyncio.wait_for(reader.read(), 30)
                writer.close()
                counts[0 if response.startswith(b"HTTP/1.1 200") else 1] += 1
            except (OSError, TimeoutError):
                counts[1] += 1
                await asyncio.sleep(0.1)

    async def main() -> None:
        await asyncio.gather(*(client(i) for i in range(concurrency)))

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=40)


def queue_ms(prom_url: str, namespace: str, name: str, window: str = "5s") -> float | None:
    """Mean queue wait per request over the last window, all replicas, from Triton's own
    counters as Prometheus scraped them from the pods."""
    sel = f'namespace="{namespace}",name="{name}"'
    rows = prometheus.query(
        prom_url,
        f"sum(rate(nv_inference_queue_duration_us{{{sel}}}[{window}]))"
        f" / sum(rate(nv_inference_request_success{{{sel}}}[{window}])) / 1000",
    )
    if not rows:
        return None
    value = float(rows[0]["value"][1])
    return None if math.isnan(value) else value  # NaN: no request in the window


def pod_ready_seconds(pod: dict[str, Any]) -> float | None:
    """Pod created -> Ready, from the API server's own timestamps (1 s resolution)."""
    conds = {c["type"]: c for c in pod.get("status", {}).get("conditions", [])}
    ready = conds.get("Ready")
    if not ready or ready["status"] != "True":
        return None
    created = _ts(pod["metadata"]["creationTimestamp"])
    return _ts(ready["lastTransitionTime"]) - created


def _ts(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def gateway_port() -> tuple[str, int]:
    """An address on the node's bridge (where pods and kube-proxy reach the host)."""
    return node.GATEWAY, procs.free_port()
