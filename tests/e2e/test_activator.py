"""The activator end to end: a real kube-apiserver, a real Triton, the activator as a
subprocess. Status is written through the status subresource the way the reconciler and
the autoscaler would (readyReplicas, offUntil, conditions); the operator is not running.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tideserve_testbed import fixtures, harness

pytestmark = pytest.mark.e2e

NAMESPACE = f"tideserve-activator-{os.getpid()}"
CLIENT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


# Endpoint names used below; each test owns one, so the tests stay independent.
ENDPOINTS = (
    "wake200", "order", "capped", "nonode", "notloaded", "offhours", "killed", "termed",
    "grpcwake", "grpcbymodel", "ready",
)  # fmt: skip


def start_activator(kube: fixtures.Kube, triton: fixtures.Triton, log: Any) -> harness.Activator:
    """Every endpoint in the test namespace resolves to the one local Triton. A short
    SIGTERM drain: the restart test expects held requests answered soon."""
    upstreams = dict.fromkeys(ENDPOINTS, triton)
    return harness.Activator(kube, NAMESPACE, upstreams, log, TIDESERVE_ACTIVATOR_DRAIN_SECONDS="2")


@pytest.fixture(scope="module")
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with fixtures.crd_namespace(kube, "", NAMESPACE) as name:
        yield name


@pytest.fixture(scope="module")
def activator(
    kube: fixtures.Kube, triton: fixtures.Triton, namespace: str, tmp_path_factory: Any
) -> Iterator[harness.Activator]:
    log_path = tmp_path_factory.mktemp("activator") / "activator.log"
    with log_path.open("wb") as log:
        process = start_activator(kube, triton, log)
        try:
            yield process
        finally:
            process.stop()
            sys.stderr.write(log_path.read_text()[-3000:])


def create_endpoint(
    kube: fixtures.Kube,
    name: str,
    *,
    model: str = "tiny",
    max_held: int = 1000,
    deadline: int = 120,
    status: dict[str, Any] | None = None,
) -> None:
    kube.apply(
        harness.endpoint_at_zero(name, NAMESPACE, model=model, max_held=max_held, deadline=deadline)
    )
    set_status(kube, name, {"replicas": 0, "readyReplicas": 0, **(status or {})})


def set_status(kube: fixtures.Kube, name: str, status: dict[str, Any]) -> None:
    """What the reconciler/autoscaler would write (merge patch on the status subresource)."""
    kube.kubectl(
        "patch", "inferenceservices.serving.tideserve.io", name, "-n", NAMESPACE,
        "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }


async def infer(client: httpx.AsyncClient, url: str, name: str, value: float) -> httpx.Response:
    return await harness.infer(client, url, harness.host_header(NAMESPACE, name), value)


output = harness.output
infer_body = harness.infer_body


def client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    return httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits)


def seconds_histogram_count(text: str, metric: str, name: str) -> float:
    pattern = rf'^{metric}_count\{{[^}}]*name="{name}"[^}}]*\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_200_concurrent_requests_at_zero_are_all_answered_after_the_wake(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    create_endpoint(kube, "wake200")
    async with client() as http:
        requests = [
            asyncio.create_task(infer(http, activator.url, "wake200", i)) for i in range(200)
        ]
        await asyncio.to_thread(activator.wait_held, "wake200", 200)
        assert activator.demand()["wake200"]["oldestHeldSeconds"] >= 0
        assert "tideserve_activator_held_requests" in activator.metrics()
        assert not any(r.done() for r in requests)
        set_status(kube, "wake200", {"replicas": 1, "readyReplicas": 1})
        responses = await asyncio.wait_for(asyncio.gather(*requests), 60)
    assert [output(r) for r in responses] == [[i + 1.0, 1.0] for i in range(200)]
    assert all("X-Tideserve-Held-Seconds" in r.headers for r in responses)
    assert activator.held("wake200") == 0
    text = activator.metrics()
    assert seconds_histogram_count(text, "tideserve_activator_cold_start_seconds", "wake200") == 1
    assert re.search(r'requests_total\{code="200",name="wake200".*\} 200\.0', text)


async def test_held_requests_are_forwarded_in_arrival_order(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    create_endpoint(kube, "order")
    async with client() as http:
        requests = []
        for i in range(20):
            requests.append(asyncio.create_task(infer(http, activator.url, "order", i)))
            await asyncio.to_thread(activator.wait_held, "order", i + 1)
        set_status(kube, "order", {"replicas": 1, "readyReplicas": 1})
        responses = await asyncio.wait_for(asyncio.gather(*requests), 60)
    assert [output(r)[0] for r in responses] == [i + 1.0 for i in range(20)]
    assert [int(r.headers["X-Tideserve-Held-Seq"]) for r in responses] == list(range(20))
    forward = [int(r.headers["X-Tideserve-Forward-Seq"]) for r in responses]
    assert forward == sorted(forward)


async def test_requests_over_the_cap_get_429_with_retry_after_and_the_rest_are_answered(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    create_endpoint(kube, "capped", max_held=10)
    async with client() as http:
        held = [asyncio.create_task(infer(http, activator.url, "capped", i)) for i in range(10)]
        await asyncio.to_thread(activator.wait_held, "capped", 10)
        over = await asyncio.gather(*(infer(http, activator.url, "capped", 99) for _ in range(20)))
        assert {r.status_code for r in over} == {429}
        assert all(int(r.headers["Retry-After"]) > 0 for r in over)
        assert "maxHeldRequests 10" in over[0].json()["error"]
        set_status(kube, "capped", {"replicas": 1, "readyReplicas": 1})
        answered = await asyncio.wait_for(asyncio.gather(*held), 60)
    assert [output(r)[0] for r in answered] == [i + 1.0 for i in range(10)]


async def test_a_wake_that_cannot_complete_gets_503_after_the_deadline_with_the_reason(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    why = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu"
    create_endpoint(
        kube,
        "nonode",
        deadline=3,
        status={"conditions": [condition("Progressing", "True", "WaitingForNode", why)]},
    )
    async with client() as http:
        started = time.monotonic()
        responses = await asyncio.gather(
            *(infer(http, activator.url, "nonode", i) for i in range(5))
        )
        elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 10
    assert {r.status_code for r in responses} == {503}
    assert all(int(r.headers["Retry-After"]) > 0 for r in responses)
    error = responses[0].json()["error"]
    assert error == (
        f"endpoint {NAMESPACE}/nonode did not become ready within 3 s: "
        f"Progressing WaitingForNode: {why}"
    )
    assert activator.held("nonode") == 0


async def test_a_ready_replica_whose_model_is_not_ready_gets_no_traffic(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    # Triton answers /v2/models/absent/ready with 400: the replica is "ready", the model
    # is not. Users must see the activator's clear 503, never Triton's "model not ready".
    create_endpoint(
        kube, "notloaded", model="absent", deadline=3, status={"replicas": 1, "readyReplicas": 1}
    )
    async with client() as http:
        response = await infer(http, activator.url, "notloaded", 1)
    assert response.status_code == 503
    assert response.json()["error"].endswith("within 3 s: model absent not ready")


async def test_hard_off_window_answers_503_at_once_with_the_end_time(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    ends = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(hours=2)
    ends_text = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    create_endpoint(kube, "offhours", status={"offUntil": ends_text})
    fixtures.eventually(
        lambda: (
            httpx.post(
                f"{activator.url}/v2/models/tiny/infer",
                json=infer_body(1),
                headers={"X-Tideserve-Endpoint": f"{NAMESPACE}/offhours"},
            ).status_code
            == 503
        ),
        10,
        "the activator to see offUntil",
    )
    async with client() as http:
        started = time.monotonic()
        response = await infer(http, activator.url, "offhours", 1)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert response.status_code == 503
    assert 7190 <= int(response.headers["Retry-After"]) <= 7200
    assert response.json()["offUntil"] == ends_text
    assert ends_text in response.json()["error"]


async def test_pass_through_when_ready_adds_no_hold(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    create_endpoint(kube, "ready", status={"replicas": 1, "readyReplicas": 1})
    async with client() as http:
        first = await asyncio.wait_for(infer(http, activator.url, "ready", 41), 10)
        second = await infer(http, activator.url, "ready", 1)
    assert output(first) == [42.0, 1.0]
    assert output(second) == [2.0, 1.0]
    assert "X-Tideserve-Held-Seconds" not in second.headers
    assert second.headers["Content-Type"] == "application/json"


async def test_large_tensors_pass_through_both_ways(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    # About 2.5 MB each way: above the activator's 1 MiB buffering limit, so the response
    # is streamed, and above aiohttp's default 1 MiB request limit.
    create_endpoint(kube, "ready", status={"replicas": 1, "readyReplicas": 1})
    values = [float(i % 1000) for i in range(300_000)]
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, len(values)], "datatype": "FP32", "data": values}
        ]
    }
    async with client() as http:
        response = await http.post(
            f"{activator.url}/v2/models/tiny/infer",
            json=body,
            headers={"X-Tideserve-Endpoint": f"{NAMESPACE}/ready"},
        )
    assert response.status_code == 200, response.text[:300]
    assert output(response) == [v + 1 for v in values]


async def test_grpc_unary_infer_is_held_and_forwarded(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    create_endpoint(kube, "grpcwake")

    def call() -> Any:
        grpc = grpcclient.InferenceServerClient(activator.grpc)
        tensor = grpcclient.InferInput("INPUT0", [1, 2], "FP32")
        tensor.set_data_from_numpy(np.array([[5, 6]], dtype=np.float32))
        headers = {"x-tideserve-endpoint": f"{NAMESPACE}/grpcwake"}
        return grpc.infer("tiny", [tensor], headers=headers, client_timeout=60).as_numpy("OUTPUT0")

    pending = asyncio.create_task(asyncio.to_thread(call))
    await asyncio.to_thread(activator.wait_held, "grpcwake", 1)
    set_status(kube, "grpcwake", {"replicas": 1, "readyReplicas": 1})
    result = await asyncio.wait_for(pending, 60)
    assert result.tolist() == [[6.0, 7.0]]


async def test_grpc_call_without_endpoint_metadata_is_routed_by_its_model_name(
    kube: fixtures.Kube, activator: harness.Activator
) -> None:
    # Only this endpoint serves a model named "onlyhere" (Triton does not have it, so the
    # wake cannot complete): the call is held for it and refused after its deadline.
    create_endpoint(kube, "grpcbymodel", model="onlyhere", deadline=2)
    fixtures.eventually(
        lambda: activator.knows("grpcbymodel"), 10, "the activator to list grpcbymodel"
    )

    def call() -> Exception:
        grpc = grpcclient.InferenceServerClient(activator.grpc)
        try:
            grpc.is_model_ready("onlyhere", client_timeout=30)
        except Exception as error:
            return error
        raise AssertionError("a model that never loads cannot be ready")

    error = await asyncio.to_thread(call)
    assert "UNAVAILABLE" in str(error)
    assert f"endpoint {NAMESPACE}/grpcbymodel did not become ready within 2 s" in str(error)


@pytest.mark.parametrize(("name", "sig"), [("killed", signal.SIGKILL), ("termed", signal.SIGTERM)])
async def test_activator_restart_while_holding_gives_retryable_errors_never_a_hang(
    kube: fixtures.Kube,
    triton: fixtures.Triton,
    namespace: str,
    tmp_path: Any,
    name: str,
    sig: int,
) -> None:
    create_endpoint(kube, name)
    with (tmp_path / "activator.log").open("wb") as log:
        doomed = start_activator(kube, triton, log)
        try:
            async with client() as http:
                requests = [
                    asyncio.create_task(infer(http, doomed.url, name, i)) for i in range(20)
                ]
                await asyncio.to_thread(doomed.wait_held, name, 20)
                started = time.monotonic()
                doomed.stop(sig)
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*requests, return_exceptions=True), 15
                )
                elapsed = time.monotonic() - started
        finally:
            doomed.stop(signal.SIGKILL)
    assert elapsed < 12
    if sig == signal.SIGKILL:
        # The connection drops: a transport error the client can retry, not a timeout.
        assert all(isinstance(o, httpx.TransportError) for o in outcomes), outcomes
        assert not any(isinstance(o, httpx.TimeoutException) for o in outcomes)
    else:
        # A graceful stop that cannot complete its drain (the endpoint stays at zero)
        # answers every held request with a retryable 503.
        assert all(isinstance(o, httpx.Response) for o in outcomes), outcomes
        responses = [o for o in outcomes if isinstance(o, httpx.Response)]
        assert {r.status_code for r in responses} == {503}
        assert all(r.headers["Retry-After"] == "1" for r in responses)
    # The retry against a fresh activator succeeds once the endpoint is ready.
    with (tmp_path / "activator2.log").open("wb") as log:
        fresh = start_activator(kube, triton, log)
        try:
            set_status(kube, name, {"replicas": 1, "readyReplicas": 1})
            async with client() as http:
                retried = await asyncio.wait_for(infer(http, fresh.url, name, 7), 30)
        finally:
            fresh.stop()
    assert output(retried) == [8.0, 1.0]
