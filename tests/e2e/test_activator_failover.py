"""The activator when things go away: the replica it forwards to (re-hold), and itself
(SIGTERM drain). A real kube-apiserver, real Triton processes, the activator as a real
process; status is written the way the reconciler would write it.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tideserve_testbed import fixtures, harness

pytestmark = pytest.mark.e2e

NAMESPACE = f"tideserve-activator-failover-{os.getpid()}"
CLIENT_TIMEOUT = httpx.Timeout(90.0, connect=5.0)


@pytest.fixture(scope="module")
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with fixtures.crd_namespace(kube, "", NAMESPACE) as name:
        yield name


@pytest.fixture
def run_activator(
    kube: fixtures.Kube, namespace: str, tmp_path: Any
) -> Iterator[Callable[..., harness.Activator]]:
    """Start activators whose every endpoint's upstream is `triton`; each is killed
    (SIGKILL) at the end and its log file closed."""
    started: list[tuple[harness.Activator, Any, pathlib.Path]] = []

    def run(triton: fixtures.Triton, endpoints: tuple[str, ...], *extra: str) -> harness.Activator:
        log_path = tmp_path / f"activator-{len(started)}.log"
        log = log_path.open("wb")
        try:
            process = harness.Activator(
                kube, NAMESPACE, dict.fromkeys(endpoints, triton), log, *extra
            )
        except BaseException:
            log.close()
            raise
        started.append((process, log, log_path))
        return process

    try:
        yield run
    finally:
        for process, log, log_path in started:
            process.stop(signal.SIGKILL)
            log.close()
            sys.stderr.write(log_path.read_text()[-3000:])


def create_endpoint(
    kube: fixtures.Kube, name: str, *, ready: int, deadline: int = 120, max_held: int = 1000
) -> None:
    kube.apply(harness.endpoint_at_zero(name, NAMESPACE, max_held=max_held, deadline=deadline))
    set_ready(kube, name, ready)


def set_ready(kube: fixtures.Kube, name: str, ready: int) -> None:
    status = {"status": {"replicas": ready, "readyReplicas": ready}}
    kube.kubectl(
        "patch", "inferenceservices.serving.tideserve.io", name, "-n", NAMESPACE,
        "--subresource=status", "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip


async def infer(client: httpx.AsyncClient, url: str, name: str, value: float) -> httpx.Response:
    return await harness.infer(client, url, harness.endpoint_header(NAMESPACE, name), value)


output = harness.output


def grpc_infer(activator: harness.Activator, name: str, value: float) -> list[list[float]]:
    client = grpcclient.InferenceServerClient(activator.grpc)
    tensor = grpcclient.InferInput("INPUT0", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.array([[value, 0]], dtype=np.float32))
    headers = {"x-tideserve-endpoint": f"{NAMESPACE}/{name}"}
    result = client.infer("tiny", [tensor], headers=headers, client_timeout=90)
    data: list[list[float]] = result.as_numpy("OUTPUT0").tolist()
    return data


def restart(start_triton: Callable[..., fixtures.Triton], gone: fixtures.Triton) -> fixtures.Triton:
    """A replica again at the same address (the predictor Service's, in a cluster)."""
    ports = {
        f"{kind}_port": int(url.rsplit(":", 1)[1].split("/")[0])
        for kind, url in (
            ("http", gone.http_url),
            ("grpc", gone.grpc_url),
            ("metrics", gone.metrics_url),
        )
    }
    return start_triton(**ports)


# ---- re-hold: the replica went away between the ready check and the forward ----------------


async def test_http_request_to_a_replica_that_went_away_is_held_until_one_is_back(
    kube: fixtures.Kube,
    start_triton: Callable[..., fixtures.Triton],
    run_activator: Callable[..., harness.Activator],
) -> None:
    replica = start_triton()
    create_endpoint(kube, "resthold", ready=1)
    activator = run_activator(replica, ("resthold",))
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        fixtures.eventually(lambda: activator.model_ready("resthold"), 30, "model probed ready")
        assert output(await infer(http, activator.url, "resthold", 1)) == [2.0, 1.0]
        # The replica goes away; the status still says ready (the watch lags, or the pod
        # died after its last readiness probe).
        fixtures.stop_triton(replica.name)
        pending = asyncio.create_task(infer(http, activator.url, "resthold", 41))
        await asyncio.to_thread(activator.wait_held, "resthold", 1)
        assert not pending.done()
        restart(start_triton, replica)
        response = await asyncio.wait_for(pending, 90)
    assert output(response) == [42.0, 1.0]
    assert "X-Tideserve-Held-Seconds" in response.headers


async def test_grpc_unavailable_from_a_replica_that_went_away_is_held_until_one_is_back(
    kube: fixtures.Kube,
    start_triton: Callable[..., fixtures.Triton],
    run_activator: Callable[..., harness.Activator],
) -> None:
    replica = start_triton()
    create_endpoint(kube, "grpchold", ready=1)
    activator = run_activator(replica, ("grpchold",))
    fixtures.eventually(lambda: activator.model_ready("grpchold"), 30, "model probed ready")
    assert await asyncio.to_thread(grpc_infer, activator, "grpchold", 1) == [[2.0, 1.0]]
    fixtures.stop_triton(replica.name)
    pending = asyncio.create_task(asyncio.to_thread(grpc_infer, activator, "grpchold", 41))
    await asyncio.to_thread(activator.wait_held, "grpchold", 1)
    assert not pending.done()
    restart(start_triton, replica)
    assert await asyncio.wait_for(pending, 90) == [[42.0, 1.0]]


# ---- SIGTERM: drain instead of dropping what is held ------------------------------------------


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/v2/health/ready", timeout=2)
    except httpx.ConnectError:
        return True
    return False


async def test_sigterm_drains_held_requests_to_a_replica_that_becomes_ready(
    kube: fixtures.Kube, triton: fixtures.Triton, run_activator: Callable[..., harness.Activator]
) -> None:
    create_endpoint(kube, "drainready", ready=0)
    activator = run_activator(triton, ("drainready",), "--drain-seconds=90")
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        held = [asyncio.create_task(infer(http, activator.url, "drainready", i)) for i in range(10)]
        grpc_held = asyncio.create_task(asyncio.to_thread(grpc_infer, activator, "drainready", 100))
        await asyncio.to_thread(activator.wait_held, "drainready", 11)
        activator.terminate()
        # Readiness fails and the listener closes; /demand still shows the held requests
        # (so the autoscaler still wakes the endpoint).
        fixtures.eventually(lambda: activator.readyz() == 503, 30, "readiness to fail")
        fixtures.eventually(lambda: refuses_connections(activator.url), 30, "listener closed")
        assert activator.held("drainready") == 11
        assert not any(r.done() for r in held)
        set_ready(kube, "drainready", 1)
        responses = await asyncio.wait_for(asyncio.gather(*held), 90)
        assert await asyncio.wait_for(grpc_held, 90) == [[101.0, 1.0]]
    assert [output(r) for r in responses] == [[i + 1.0, 1.0] for i in range(10)]
    assert await asyncio.to_thread(activator.proc.wait, 30) == 0


async def test_sigterm_answers_what_is_still_held_503_when_the_drain_period_ends(
    kube: fixtures.Kube, triton: fixtures.Triton, run_activator: Callable[..., harness.Activator]
) -> None:
    create_endpoint(kube, "drainnone", ready=0)
    activator = run_activator(triton, ("drainnone",), "--drain-seconds=2")
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        held = [asyncio.create_task(infer(http, activator.url, "drainnone", i)) for i in range(5)]
        await asyncio.to_thread(activator.wait_held, "drainnone", 5)
        started = time.monotonic()
        activator.terminate()
        responses = await asyncio.wait_for(asyncio.gather(*held), 60)
        elapsed = time.monotonic() - started
    assert {r.status_code for r in responses} == {503}
    assert all(r.headers["Retry-After"] == "1" for r in responses)
    # Not before the drain period is over (the bound is the flag's; the upper one is loose).
    assert 1.9 <= elapsed < 60
    assert await asyncio.to_thread(activator.proc.wait, 30) == 0
