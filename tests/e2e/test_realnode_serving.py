"""The mission on replicas that really run: Triton pods on the test bed's real node
(containerd + runc + kubelet + CNI + kube-proxy), from images built here.

The operator (`tideserve run`) and the activator run as processes on the host; the
activator listens on the node's bridge and is published as a Service, so requests
reach it, like the Triton pods, through kube-proxy. An InferenceService becomes a
Triton pod that loads its model from a PersistentVolume and passes its real probes;
requests through the Service's ClusterIP are answered; a load step raises the queue,
the autoscaler adds pods, real capacity brings the queue time back under a bound above
the autoscaler's target (it settles around its target);
idle, the endpoint goes to zero; a request through the Service is then held by the
activator, the endpoint wakes, and the request is answered.

The figures the README quotes are printed (run with -s to see them).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, images, node, procs, realpods

from tideserve.render import names

pytestmark = [pytest.mark.e2e, pytest.mark.real_node]

NAME = "real"
DELAY_MS = 100  # the model's "GPU time" per batch of up to 8: ~80 requests/s per replica
# The autoscaler's target, and the bound the test holds the queue to before and after
# scaling. Not the same number: a target-tracking autoscaler settles around its target
# (inside its tolerance band), so "under the target" is a coin toss at steady state
# (measured: 78-80 ms against a target of 80, and once a timeout at 2 replicas).
TARGET_QUEUE_MS = 60.0
SLO_QUEUE_MS = 100.0
BEHAVIOR = {
    "stableWindowSeconds": 6,
    "panicWindowSeconds": 3,
    "scaleUp": {"stabilizationSeconds": 0, "maxPercent": 200, "maxReplicasChange": 2,
                "periodSeconds": 2},
    "scaleDown": {"stabilizationSeconds": 4, "maxPercent": 100, "maxReplicasChange": 4,
                  "periodSeconds": 2},
}  # fmt: skip


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with realpods.namespace(kube, "realnode") as name:
        yield name


@pytest.fixture
def figures() -> Iterator[dict[str, Any]]:
    """What the test measured, printed even when it fails (pytest -s shows it)."""
    measured: dict[str, Any] = {}
    try:
        yield measured
    finally:
        print("\nreal-node figures:")
        for key, value in measured.items():
            print(f"  {key}: {value}")


def pods(kube: fixtures.Kube, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get_json(
        "pods", "-n", namespace, "-l", f"serving.tideserve.io/inferenceservice={NAME}"
    )["items"]
    return items


def ready_pods(kube: fixtures.Kube, namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(kube, namespace)
        if realpods.pod_ready_seconds(p) is not None and not p["metadata"].get("deletionTimestamp")
    ]


def status(kube: fixtures.Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get_json("inferenceservices.serving.tideserve.io", NAME, "-n", namespace)
    result: dict[str, Any] = obj.get("status") or {}
    return result


def test_real_pods_serve_scale_out_under_load_and_wake_from_zero_through_the_service(
    kube: fixtures.Kube,
    namespace: str,
    prometheus: fixtures.Prometheus,
    processes: Callable[..., subprocess.Popen[bytes]],
    figures: dict[str, Any],
) -> None:
    host, http_port = realpods.gateway_port()
    control_port = procs.free_port()
    with realpods.model_volume(kube, namespace, DELAY_MS) as storage_uri:
        processes(
            "operator",
            ["run", "--bind", "127.0.0.1", "--namespace", namespace],
            {
                "KUBECONFIG": str(kube.kubeconfig),
                "TIDESERVE_TICK_SECONDS": "1",
                "TIDESERVE_PROMETHEUS_URL": prometheus.url,
                "TIDESERVE_ACTIVATOR_URL": f"http://{host}:{control_port}",
                "TIDESERVE_ACTIVATOR_SERVICE": f"{namespace}/activator",
                "TIDESERVE_METRICS_PORT": str(procs.free_port()),
                "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
            },
        )
        realpods.publish_activator(kube, namespace, host, http_port)
        applied = time.monotonic()
        kube.apply(
            fixtures.isvc(
                NAME,
                namespace,
                model={"name": realpods.MODEL, "storageUri": storage_uri},
                runtime={"image": images.ref("triton")},
                resources={"accelerator": "cpu", "cpu": "100m", "memory": "1Gi"},
                scaling={
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "target": {"type": "queueTime", "value": TARGET_QUEUE_MS},
                    "scaleToZero": {"idleSeconds": 5, "wakeDeadlineSeconds": 180},
                    "behavior": BEHAVIOR,
                },
            )
        )

        # 1. A Triton pod on the real node, Ready through its own probes.
        [pod] = fixtures.eventually(lambda: ready_pods(kube, namespace), 180, "a Ready pod")
        figures["first pod: apply -> Ready (s, wall clock)"] = round(time.monotonic() - applied, 1)
        figures["first pod: created -> Ready (s, API timestamps)"] = realpods.pod_ready_seconds(pod)
        assert pod["spec"]["nodeName"] == node.NAME
        [triton] = pod["spec"]["containers"]
        assert triton["command"] == ["tritonserver"]
        assert "--model-control-mode=explicit" in triton["args"]
        assert f"--load-model={realpods.MODEL}" in triton["args"]
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= triton.keys()
        [state] = pod["status"]["containerStatuses"]
        assert state["ready"] and state["restartCount"] == 0, state
        assert pod["status"]["podIP"].startswith(node.GATEWAY.rsplit(".", 2)[0])

        # 2. Requests through the Service (ClusterIP -> kube-proxy -> the pod).
        service_ip = realpods.cluster_ip(kube, namespace, NAME)
        url = f"http://{service_ip}:{names.HTTP_PORT}/v2/models/{realpods.MODEL}/infer"
        # The Host a client resolving the Service's DNS name sends (there is no cluster
        # DNS here); the activator tells endpoints apart by it.
        by_name = {"Host": f"{NAME}.{namespace}.svc.cluster.local:{names.HTTP_PORT}"}
        # The route follows the pod's readiness (the operator's EndpointSlice, then
        # kube-proxy's rules): retried until it answers, and that delay is a figure too.
        ready_at = time.monotonic()
        r = fixtures.eventually(
            lambda: _answered(url, 41.0, by_name), 60, "an answer through the Service", interval=0.2
        )
        figures["pod Ready -> first answer through the Service (s)"] = round(
            time.monotonic() - ready_at, 1
        )
        assert r.json()["outputs"][0]["data"] == [42.0]

        # The activator, upstream of which is the predictor Service, through kube-proxy.
        predictor_ip = realpods.cluster_ip(kube, namespace, f"{NAME}-predictor")
        processes(
            "activator",
            [
                "activator", f"--host={host}", f"--http-port={http_port}", "--grpc-port=0",
                f"--control-port={control_port}", f"--namespace={namespace}",
                f"--upstream={namespace}/{NAME}=http://{predictor_ip}:{names.HTTP_PORT}",
            ],
            {"KUBECONFIG": str(kube.kubeconfig)},
        )  # fmt: skip

        # 3. A load step: the queue rises on one replica; more pods bring it back down.
        with realpods.load(url, 24, by_name) as counts:
            before = fixtures.eventually(
                lambda: _queue_when(prometheus.url, namespace, lambda q: q > SLO_QUEUE_MS),
                60,
                "the queue time on one replica to exceed the bound",
                interval=1,
            )
            figures["queue time at 1 replica under the load step (ms)"] = round(before[0], 1)
            scaled = time.monotonic()
            fixtures.eventually(
                lambda: len(ready_pods(kube, namespace)) >= 2, 180, "a second Ready pod", 1
            )
            figures["load step -> 2nd pod Ready (s)"] = round(time.monotonic() - scaled, 1)
            after = fixtures.eventually(
                lambda: (
                    _queue_when(prometheus.url, namespace, lambda q: q < SLO_QUEUE_MS)
                    if len(ready_pods(kube, namespace)) >= 2
                    else None
                ),
                120,
                "the queue time back under the bound with more replicas",
                interval=1,
            )
            figures["replicas Ready after scaling"] = len(ready_pods(kube, namespace))
            figures["queue time after scaling (ms)"] = round(after[0], 1)
        assert counts[0] > 0 and counts[1] == 0, counts

        # 4. Idle: to zero (the floor lowered), every pod gone from the node.
        kube.kubectl(
            "patch", "inferenceservices.serving.tideserve.io", NAME, "-n", namespace,
            "--type=merge", "-p", '{"spec":{"scaling":{"minReplicas":0}}}',
        )  # fmt: skip
        fixtures.eventually(
            lambda: status(kube, namespace).get("replicas") == 0 and not pods(kube, namespace),
            180,
            "the endpoint at zero with no pod left",
            interval=1,
        )
        fixtures.eventually(
            lambda: any(
                e["name"] == NAME and e["readyReplicas"] == 0
                for e in httpx.get(f"http://{host}:{control_port}/endpoints", timeout=5).json()[
                    "endpoints"
                ]
            ),
            30,
            "the activator to see the endpoint at zero",
        )

        # 5. A request through the Service at zero: held by the activator, answered.
        woke = time.monotonic()
        r = httpx.post(url, json=realpods.infer_body(6.0), headers=by_name, timeout=180)
        figures["wake from zero through the Service: request in -> answered (s)"] = round(
            time.monotonic() - woke, 1
        )
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [7.0]
        assert "X-Tideserve-Held-Seconds" in r.headers
        [pod] = ready_pods(kube, namespace)
        assert pod["spec"]["nodeName"] == node.NAME


def _answered(url: str, value: float, headers: dict[str, str]) -> httpx.Response | None:
    try:
        r = httpx.post(url, json=realpods.infer_body(value), headers=headers, timeout=10)
    except httpx.ConnectError:  # no route yet (kube-proxy rejects: no ready endpoint)
        return None
    return r if r.status_code == 200 else None


def _queue_when(prom_url: str, namespace: str, ok: Callable[[float], bool]) -> tuple[float] | None:
    """(queue ms,) once ok(it) holds: a tuple, so that a queue of 0.0 counts as true."""
    q = realpods.queue_ms(prom_url, namespace, NAME)
    return (q,) if q is not None and ok(q) else None
