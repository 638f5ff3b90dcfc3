"""Scale from zero with everything real and nothing played by the test: the operator
(`tideserve run`: reconciler + autoscaler) and the activator as subprocesses, a real
API server with kwok running the predictor pods, Prometheus scraping a real Triton that
stands for the endpoint's replica.

The endpoint idles to zero on its own; 50 concurrent requests then reach the activator,
which holds them and reports demand on /demand; the autoscaler wakes the endpoint within a
tick; the reconciler reports the ready replica; the activator checks the model and
releases every request, in order, with Triton's answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, procs

pytestmark = pytest.mark.e2e

ROOT = procs.REPO
BIN = ROOT / ".venv" / "bin" / "tideserve"
NAME = "full"
FAST_BEHAVIOR = {
    "stableWindowSeconds": 4,
    "panicWindowSeconds": 2,
    "scaleUp": {"stabilizationSeconds": 0, "maxPercent": 100, "maxReplicasChange": 4,
                "periodSeconds": 2},
    "scaleDown": {"stabilizationSeconds": 2, "maxPercent": 100, "maxReplicasChange": 4,
                  "periodSeconds": 2},
}  # fmt: skip


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/inferenceservices.serving.tideserve.io",
    )  # fmt: skip
    name = f"act-op-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def processes(tmp_path: Any) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(label: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{label}.log").open("wb")
        proc = subprocess.Popen(
            [str(BIN), *args], stdout=log, stderr=subprocess.STDOUT, env=os.environ | env
        )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name} (tail)\n{log.read_text()[-2500:]}")


def status(kube: fixtures.Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get_json("inferenceservices.serving.tideserve.io", NAME, "-n", namespace)
    result: dict[str, Any] = obj.get("status") or {}
    return result


async def test_requests_at_zero_wake_the_endpoint_through_the_operator_and_are_all_answered(
    kube: fixtures.Kube,
    namespace: str,
    start_triton: Callable[..., fixtures.Triton],
    processes: Callable[..., subprocess.Popen[bytes]],
) -> None:
    # The endpoint's replica, as Prometheus sees it (idle: no requests, nothing queued).
    server = start_triton(labels={"namespace": namespace, "name": NAME, "pod": f"{NAME}-0"})
    http_port, control_port = procs.free_port(), procs.free_port()
    processes(
        "activator",
        [
            "activator", "--host=127.0.0.1", f"--http-port={http_port}", "--grpc-port=0",
            f"--control-port={control_port}", f"--namespace={namespace}",
            f"--upstream={namespace}/{NAME}={server.http_url}",
        ],
        {"KUBECONFIG": str(kube.kubeconfig)},
    )  # fmt: skip
    processes(
        "operator",
        ["run", "--bind", "127.0.0.1", "--namespace", namespace],
        {
            "KUBECONFIG": str(kube.kubeconfig),
            "TIDESERVE_TICK_SECONDS": "1",
            "TIDESERVE_ACTIVATOR_URL": f"http://127.0.0.1:{control_port}",
            "TIDESERVE_METRICS_PORT": str(procs.free_port()),
            "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
        },
    )
    kube.apply(
        {
            "apiVersion": "serving.tideserve.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                # Fetched by an init container (which kwok "runs"): no volume to provide.
                "model": {"name": "tiny", "storageUri": "https://models.example.com/tiny.tar.gz"},
                "resources": {"accelerator": "cpu", "cpu": "1", "memory": "1Gi"},
                "scaling": {
                    "minReplicas": 0,
                    "maxReplicas": 3,
                    "scaleToZero": {"idleSeconds": 3, "wakeDeadlineSeconds": 120},
                    "behavior": FAST_BEHAVIOR,
                },
            },
        }
    )
    # Idle: the autoscaler takes it to zero, the reconciler reports no ready replica.
    fixtures.eventually(
        lambda: (
            status(kube, namespace).get("replicas") == 0
            and not status(kube, namespace).get("readyReplicas")
        ),
        150,
        "the endpoint to idle to zero",
        interval=1,
    )
    control = f"http://127.0.0.1:{control_port}"
    fixtures.eventually(
        lambda: any(
            e["name"] == NAME and e["readyReplicas"] == 0
            for e in httpx.get(f"{control}/endpoints", timeout=5).json()["endpoints"]
        ),
        30,
        "the activator to see the endpoint at zero",
    )

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=httpx.Timeout(150, connect=5), limits=limits) as http:
        requests = [
            asyncio.create_task(
                http.post(
                    f"http://127.0.0.1:{http_port}/v2/models/tiny/infer",
                    json={
                        "inputs": [
                            {"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [i]}
                        ]
                    },
                    headers={"Host": f"{NAME}.{namespace}.svc.cluster.local:80"},
                )
            )
            for i in range(50)
        ]
        responses = await asyncio.wait_for(asyncio.gather(*requests), 150)
        metrics = (await http.get(f"{control}/metrics")).text

    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses][:3]
    assert [r.json()["outputs"][0]["data"] for r in responses] == [[i + 1.0] for i in range(50)]
    assert all("X-Tideserve-Held-Seconds" in r.headers for r in responses)
    woke = status(kube, namespace)
    assert woke.get("readyReplicas", 0) >= 1
    assert (
        f'tideserve_activator_cold_start_seconds_count{{name="{NAME}",namespace="{namespace}"}} 1.0'
        in metrics
    )
