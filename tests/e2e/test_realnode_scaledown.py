"""A scale-down under traffic loses no request, on pods that really run (the test bed's
real node: containerd, kubelet, kube-proxy).

Triton stops accepting connections on SIGTERM; kube-proxy stops sending to the pod only
when the endpoint's removal reaches it, a moment later. Measured live before the
predictor's preStop pause: one scale-down from 3 to 1 under traffic refused 51 requests
(hack/bench-live). Here an InferenceService in `mode: external` is taken from 3 replicas
to 1 through its scale subresource while closed-loop clients, one connection per request,
post through the ClusterIP of the Service users call (its EndpointSlice is the operator's
route: pod watch, reconcile, slice, kube-proxy); not one request may fail.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, images, procs, realpods

from tideserve.api import resource
from tideserve.render import names

pytestmark = [pytest.mark.e2e, pytest.mark.real_node]

NAME = "drain"
DELAY_MS = 20  # per batch of up to 8: the clients keep every replica busy, none overloaded


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with realpods.namespace(kube, "scaledown") as name:
        yield name


def pods(kube: fixtures.Kube, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get_json(
        "pods", "-n", namespace, "-l", f"serving.tideserve.io/inferenceservice={NAME}"
    )["items"]
    return items


def ready(kube: fixtures.Kube, namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(kube, namespace)
        if realpods.pod_ready_seconds(p) is not None and not p["metadata"].get("deletionTimestamp")
    ]


def _answered(url: str) -> bool:
    try:
        r = httpx.post(url, json=realpods.infer_body(1.0), timeout=10)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def test_a_scale_down_under_traffic_refuses_no_request(
    kube: fixtures.Kube,
    namespace: str,
    prometheus: fixtures.Prometheus,
    processes: Callable[..., subprocess.Popen[bytes]],
) -> None:
    with realpods.model_volume(kube, namespace, DELAY_MS) as storage_uri:
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
        kube.apply(
            fixtures.isvc(
                NAME,
                namespace,
                model={"name": realpods.MODEL, "storageUri": storage_uri},
                runtime={"image": images.ref("triton")},
                resources={"accelerator": "cpu", "cpu": "100m", "memory": "1Gi"},
                scaling={"mode": "external", "minReplicas": 1, "maxReplicas": 3},
                replicas=3,
            )
        )
        fixtures.eventually(lambda: len(ready(kube, namespace)) == 3, 240, "3 Ready pods", 1)
        # The Service users call: its EndpointSlice (the route) is the operator's, written
        # from the pods' readiness and termination (no activator here: always the pods).
        ip = realpods.cluster_ip(kube, namespace, NAME)
        url = f"http://{ip}:{names.HTTP_PORT}/v2/models/{realpods.MODEL}/infer"
        fixtures.eventually(
            lambda: len(
                kube.get_json("endpointslice", names.route(NAME), "-n", namespace).get(
                    "endpoints") or []
            ) == 3,
            60, "the route at 3 pods",
        )  # fmt: skip
        # kube-proxy programs the Service's rules a moment after the slice: until 30
        # requests in a row are answered (each a new connection, a random endpoint).
        fixtures.eventually(lambda: all(_answered(url) for _ in range(30)), 60, "the route", 1)
        with realpods.load(url, 8, {}) as counts:
            fixtures.eventually(lambda: counts[0] >= 200, 60, "traffic on the replicas", 0.5)
            assert counts[1] == 0, f"requests failed before the scale-down: {counts}"
            kube.kubectl(
                "scale", f"{resource.PLURAL}.{resource.GROUP}", NAME,
                "-n", namespace, "--replicas=1",
            )  # fmt: skip
            fixtures.eventually(lambda: len(pods(kube, namespace)) == 1, 120, "2 pods gone", 1)
            before = counts[0]
            fixtures.eventually(lambda: counts[0] >= before + 100, 60, "traffic on the last", 0.5)
            time.sleep(1)
        answered, failed = counts
    print(f"\nscale-down 3 -> 1 under traffic: {answered} answered, {failed} failed")
    assert failed == 0, f"{failed} requests failed around the scale-down ({answered} answered)"
