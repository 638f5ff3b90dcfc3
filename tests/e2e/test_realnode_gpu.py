"""GPU and MIG replicas on the real node: its device plugin (hack/tools/deviceplugin)
advertises nvidia.com/gpu and nvidia.com/mig-1g.10gb, so the scheduler's accounting, the
kubelet's admission and its device allocation are the real thing; the pods run on CPU.

The operator runs as a host process (test_realnode_chart.py runs it as the chart's pods).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures, images, node, procs, realpods

pytestmark = [pytest.mark.e2e, pytest.mark.real_node]

GPUS = node.DEVICES["nvidia.com/gpu"]
MIG = "nvidia.com/mig-1g.10gb"


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with realpods.namespace(kube, "gpu") as name:
        yield name


def pods(kube: fixtures.Kube, namespace: str, isvc: str) -> list[dict[str, Any]]:
    sel = f"serving.tideserve.io/inferenceservice={isvc}"
    items: list[dict[str, Any]] = kube.get_json("pods", "-n", namespace, "-l", sel)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if realpods.pod_ready_seconds(p) is not None]


def unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's message when it could not place the pod."""
    for c in pod.get("status", {}).get("conditions", []):
        if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
            message: str = c.get("message", "")
            return message
    return None


def visible_devices(kube: fixtures.Kube, namespace: str, pod: dict[str, Any]) -> str:
    """What the device plugin's Allocate put into the container's environment."""
    name = pod["metadata"]["name"]
    out = kube.kubectl("exec", "-n", namespace, name, "--", "printenv", "NVIDIA_VISIBLE_DEVICES")
    return out.stdout.strip()


def isvc(name: str, namespace: str, storage_uri: str, replicas: int, **hw: Any) -> dict[str, Any]:
    return fixtures.isvc(
        name,
        namespace,
        model={"name": realpods.MODEL, "storageUri": storage_uri},
        runtime={"image": images.ref("triton")},
        resources={"cpu": "100m", "memory": "1Gi", **hw},
        scaling={"minReplicas": replicas, "maxReplicas": replicas},
    )


def test_gpu_and_mig_replicas_get_the_real_nodes_devices_and_no_more(
    kube: fixtures.Kube,
    namespace: str,
    prometheus: fixtures.Prometheus,
    processes: Callable[..., subprocess.Popen[bytes]],
) -> None:
    with realpods.model_volume(kube, namespace, delay_ms=20) as storage_uri:
        processes(
            "operator",
            ["run", "--bind", "127.0.0.1", "--namespace", namespace],
            {
                "KUBECONFIG": str(kube.kubeconfig),
                "TIDESERVE_TICK_SECONDS": "1",
                "TIDESERVE_PROMETHEUS_URL": prometheus.url,
                "TIDESERVE_METRICS_PORT": str(procs.free_port()),
                "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
            },
        )
        applied = time.monotonic()
        # One GPU per replica, one replica more than the node has GPUs.
        kube.apply(
            isvc("gpu", namespace, storage_uri, GPUS + 1, accelerator="gpu", gpu={"count": 1})
        )
        kube.apply(isvc("mig", namespace, storage_uri, 1, accelerator="mig",
                        mig={"profile": "1g.10gb"}))  # fmt: skip

        running = fixtures.eventually(
            lambda: len(r := ready(pods(kube, namespace, "gpu"))) == GPUS and r,
            180,
            f"{GPUS} Ready GPU pods",
            interval=0.5,
        )
        print(f"\nGPU InferenceService applied -> {GPUS} pods Ready: "
              f"{time.monotonic() - applied:.1f} s")  # fmt: skip
        for pod in running:
            assert pod["spec"]["nodeName"] == node.NAME
            limits = pod["spec"]["containers"][0]["resources"]["limits"]
            assert limits["nvidia.com/gpu"] == "1", limits
        # Each got its own device from the plugin's Allocate, none invented.
        devices = sorted(visible_devices(kube, namespace, p) for p in running)
        assert devices == [f"tideserve-gpu-{i}" for i in range(GPUS)], devices
        # The replica beyond the node's GPUs is refused by the scheduler's accounting.
        names = {p["metadata"]["name"] for p in running}
        [pending] = [p for p in pods(kube, namespace, "gpu") if p["metadata"]["name"] not in names]
        message = fixtures.eventually(
            lambda: unschedulable(kube.get_json("pod", pending["metadata"]["name"], "-n",
                                                namespace)),
            60,
            "the extra GPU replica unschedulable",
        )  # fmt: skip
        assert "Insufficient nvidia.com/gpu" in message, message

        [mig] = fixtures.eventually(
            lambda: ready(pods(kube, namespace, "mig")), 120, "a Ready MIG pod", interval=0.5
        )
        assert mig["spec"]["nodeName"] == node.NAME
        assert mig["spec"]["containers"][0]["resources"]["limits"][MIG] == "1"
        assert visible_devices(kube, namespace, mig) in {"tideserve-mig-1g.10gb-0",
                                                         "tideserve-mig-1g.10gb-1"}  # fmt: skip
        alloc = kube.get_json("node", node.NAME)["status"]["allocatable"]
        assert (alloc["nvidia.com/gpu"], alloc[MIG]) == (str(GPUS), str(node.DEVICES[MIG]))
