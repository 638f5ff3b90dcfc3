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
import contextlib
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, harness

pytestmark = pytest.mark.e2e

NAME = "full"


@pytest.fixture
def stack(tmp_path: pathlib.Path) -> Iterator[contextlib.ExitStack]:
    """What a test starts, stopped (and its log files closed) in reverse order; the logs'
    tails printed."""
    with contextlib.ExitStack() as started:
        try:
            yield started
        finally:
            started.close()
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
    stack: contextlib.ExitStack,
    tmp_path: pathlib.Path,
) -> None:
    # The endpoint's replica, as Prometheus sees it (idle: no requests, nothing queued).
    server = start_triton(labels={"namespace": namespace, "name": NAME, "pod": f"{NAME}-0"})
    log = stack.enter_context((tmp_path / "activator.log").open("wb"))
    activator = harness.Activator(kube, namespace, {NAME: server}, log, grpc=False)
    stack.callback(activator.stop)
    operator = harness.Operator(
        kube.kubeconfig,
        namespace,
        tmp_path / "operator.log",
        TIDESERVE_TICK_SECONDS="1",
        TIDESERVE_ACTIVATOR_URL=activator.control,
    )
    stack.enter_context(harness.running(operator))
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
                    "behavior": fixtures.FAST_BEHAVIOR,
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
    fixtures.eventually(
        lambda: any(e["name"] == NAME and e["readyReplicas"] == 0 for e in activator.endpoints()),
        30,
        "the activator to see the endpoint at zero",
    )

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=httpx.Timeout(150, connect=5), limits=limits) as http:
        requests = [
            asyncio.create_task(
                http.post(
                    f"{activator.url}/v2/models/tiny/infer",
                    json=harness.infer_body(i, width=1),
                    headers={"Host": f"{NAME}.{namespace}.svc.cluster.local:80"},
                )
            )
            for i in range(50)
        ]
        responses = await asyncio.wait_for(asyncio.gather(*requests), 150)
        metrics = activator.metrics()

    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses][:3]
    assert [r.json()["outputs"][0]["data"] for r in responses] == [[i + 1.0] for i in range(50)]
    assert all("X-Tideserve-Held-Seconds" in r.headers for r in responses)
    woke = status(kube, namespace)
    assert woke.get("readyReplicas", 0) >= 1
    assert (
        f'tideserve_activator_cold_start_seconds_count{{name="{NAME}",namespace="{namespace}"}} 1.0'
        in metrics
    )
