"""The autoscaler against the real things: a real Triton (CPU) under tritonclient load,
a real Prometheus scraping it with the namespace/name labels, a real API server holding
the InferenceService and its predictor Deployment (kwok runs the pods).

The loop runs in-process (tideserve.autoscaler.loop.run, as the operator starts it),
with a 1 s tick and short windows in the spec so each behaviour shows within a minute.
The predictor Deployment is created by the test (the reconciler's own tests cover
it); its replicas are written by the autoscaler only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, harness
from tideserve_testbed import prometheus as testbed_prometheus

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.render import names

pytestmark = pytest.mark.e2e

ISVC = f"{resource.PLURAL}.{resource.GROUP}"
# Short windows so a test sees each phase within seconds, not minutes.
FAST_BEHAVIOR = {
    "stableWindowSeconds": 5,
    "panicWindowSeconds": 2,
    "scaleUp": {"stabilizationSeconds": 0, "maxPercent": 100, "maxReplicasChange": 4,
                "periodSeconds": 5},
    "scaleDown": {"stabilizationSeconds": 5, "maxPercent": 100, "maxReplicasChange": 5,
                  "periodSeconds": 5},
}  # fmt: skip


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    kube_api.configure(str(kube.kubeconfig))
    with fixtures.crd_namespace(kube, "as-e2e") as name:
        yield name


def create_endpoint(
    kube: fixtures.Kube, namespace: str, name: str, scaling: dict[str, Any], replicas: int
) -> None:
    kube.apply(
        fixtures.isvc(
            name, namespace, model={"name": "tiny", "storageUri": "pvc://models/tiny"},
            resources={"accelerator": "cpu", "cpu": "1", "memory": "1Gi"}, scaling=scaling,
        )
    )  # fmt: skip
    apply_predictor(kube, namespace, name, replicas)


def apply_predictor(kube: fixtures.Kube, namespace: str, name: str, replicas: int | None) -> None:
    """The predictor Deployment as the reconciler applies it (manager "tideserve"):
    replicas only at creation, never afterwards."""
    labels = names.selector_labels(name)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "triton", "image": "tritonserver:e2e"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    kube.apply({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": names.predictor(name),
                     "labels": names.common_labels(name)},
        "spec": spec,
    }, "--server-side", f"--field-manager={resource.FIELD_MANAGER}")  # fmt: skip


def replicas(kube: fixtures.Kube, namespace: str, name: str) -> int:
    deployment = kube.get_json("deployment", "-n", namespace, names.predictor(name))
    return int(deployment["spec"]["replicas"])


def status(kube: fixtures.Kube, namespace: str, name: str) -> dict[str, Any]:
    body = kube.get_json(ISVC, "-n", namespace, name)
    return dict(body.get("status") or {})


def condition(kube: fixtures.Kube, namespace: str, name: str, kind: str) -> dict[str, Any]:
    for item in status(kube, namespace, name).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def wait_replicas(
    kube: fixtures.Kube, namespace: str, name: str, check: Callable[[int], bool],
    timeout: float, what: str,
) -> int:  # fmt: skip
    found = fixtures.eventually(
        lambda: (n,) if check(n := replicas(kube, namespace, name)) else None,
        timeout=timeout, what=what, interval=0.2,
    )  # fmt: skip
    return found[0]


def served(prometheus_url: str, namespace: str) -> bool:
    rows = testbed_prometheus.query(
        prometheus_url, f'nv_inference_pending_request_count{{namespace="{namespace}"}}'
    )
    return bool(rows)


def test_load_step_scales_up_then_down_after_stabilization_and_to_zero_when_idle(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
) -> None:
    name = "tiny"
    # 100 ms per batch of up to 8: ~80 requests/s; 32 clients keep ~24 queued.
    server = start_triton(
        labels={"namespace": namespace, "name": name, "pod": f"{name}-predictor-0"},
        delay_ms=100,
    )
    create_endpoint(kube, namespace, name, {
        "minReplicas": 0, "maxReplicas": 6, "target": {"type": "queueDepth", "value": 2},
        "scaleToZero": {"idleSeconds": 10}, "behavior": FAST_BEHAVIOR,
    }, replicas=1)  # fmt: skip
    fixtures.eventually(lambda: served(prometheus.url, namespace), 30, "Triton scraped")
    settings = settings_mod.Settings(
        prometheus_url=prometheus.url, tick_seconds=1.0, watch_namespaces=(namespace,)
    )
    with fixtures.autoscaler(settings):
        fixtures.eventually(
            lambda: condition(kube, namespace, name, "MetricsAvailable").get("status") == "True",
            20, "MetricsAvailable=True",
        )  # fmt: skip
        with fixtures.load(server, concurrency=32) as done:
            stepped = time.monotonic()
            wait_replicas(kube, namespace, name, lambda n: n > 1, 20, "a scale up")
            reaction = time.monotonic() - stepped
            wait_replicas(kube, namespace, name, lambda n: n == 6, 30, "max replicas")
            up = status(kube, namespace, name)
        assert done[0] > 0
        stopped = time.monotonic()
        wait_replicas(kube, namespace, name, lambda n: n < 6, 90, "a scale down")
        down_after = time.monotonic() - stopped
        wait_replicas(kube, namespace, name, lambda n: n == 0, 120, "scale to zero")
        zero_after = time.monotonic() - stopped
        fixtures.eventually(
            lambda: condition(kube, namespace, name, "ScaledToZero").get("status") == "True",
            10, "ScaledToZero=True",
        )  # fmt: skip
    print(f"\nload step -> first replica patch: {reaction:.1f}s; load stop -> first scale "
          f"down {down_after:.1f}s, -> zero {zero_after:.1f}s")  # fmt: skip
    assert reaction < 10  # a few 1 s ticks plus the 1 s scrape
    assert up["lastScaling"]["kind"] in {"ScaleUp", "Panic"}
    assert "queue" in up["lastScaling"]["reason"]
    assert up["desiredReplicas"] == 6
    final = status(kube, namespace, name)
    assert final["desiredReplicas"] == 0
    assert final["lastScaling"]["kind"] == "Idle"
    assert final["lastScaling"]["reason"].startswith("idle ")
    kinds = {e["reason"] for e in kube.events(namespace, name)}
    assert "Idle" in kinds
    assert kinds & {"ScaleUp", "Panic"}
    # One writer for replicas: the reconciler's next apply (without replicas) leaves
    # the autoscaler's value alone, because its manager no longer owns the field.
    body = kube.get_json(
        "deployment", "-n", namespace, names.predictor(name), "--show-managed-fields"
    )
    owned = {
        m["manager"]
        for m in body["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }
    assert resource.FIELD_MANAGER not in owned
    apply_predictor(kube, namespace, name, replicas=None)
    assert replicas(kube, namespace, name) == 0


def test_schedule_window_forces_zero_and_releases(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    name = "nightly"
    now = datetime.datetime.now(datetime.UTC)
    # Open now, closing at the next full minute at least 15 s away.
    end = (now + datetime.timedelta(seconds=75)).replace(second=0, microsecond=0)
    window = {"name": "off", "timeZone": "UTC", "start": now.strftime("%H:%M"),
              "end": end.strftime("%H:%M"), "maxReplicas": 0}  # fmt: skip
    create_endpoint(kube, namespace, name, {
        "minReplicas": 2, "maxReplicas": 4, "schedules": [window], "behavior": FAST_BEHAVIOR,
    }, replicas=2)  # fmt: skip
    settings = settings_mod.Settings(
        prometheus_url=prometheus.url, tick_seconds=1.0, watch_namespaces=(namespace,)
    )
    with fixtures.autoscaler(settings):
        wait_replicas(kube, namespace, name, lambda n: n == 0, 15, "the window's zero")
        off = fixtures.eventually(
            lambda: (s := status(kube, namespace, name)).get("offUntil") and s, 10, "offUntil"
        )
        assert off["offUntil"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert off["activeSchedule"] == "off"
        assert off["lastScaling"]["reason"] == "schedule off (UTC) max 0"
        assert condition(kube, namespace, name, "ScaledToZero")["reason"] == "Schedule"
        remaining = (end - datetime.datetime.now(datetime.UTC)).total_seconds()
        wait_replicas(kube, namespace, name, lambda n: n == 2, remaining + 15, "the release")
        released = datetime.datetime.now(datetime.UTC)
        after = fixtures.eventually(
            lambda: "offUntil" not in (s := status(kube, namespace, name)) and s, 10,
            "offUntil cleared",
        )  # fmt: skip
    assert released >= end
    assert "activeSchedule" not in after
    assert after["desiredReplicas"] == 2


def test_stopping_prometheus_holds_replicas_and_restarting_recovers(
    kube: fixtures.Kube,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
    tmp_path: pathlib.Path,
) -> None:
    # A Prometheus of this test's own (the shared one serves other tests): the same
    # Debian binary and config template, scraping the same kind of target.
    name = "tiny"
    labels = {"namespace": namespace, "name": name, "pod": f"{name}-predictor-0"}
    server = start_triton(delay_ms=100)
    state: dict[str, Any] = {}
    testbed_prometheus.up(tmp_path, state)
    try:
        url = testbed_prometheus.url(state)
        testbed_prometheus.register("triton", server.metrics_address, d=tmp_path, **labels)
        fixtures.eventually(lambda: served(url, namespace), 30, "Triton scraped")
        create_endpoint(kube, namespace, name, {
            "minReplicas": 0, "maxReplicas": 4, "target": {"type": "queueDepth", "value": 2},
            "scaleToZero": {"idleSeconds": 5}, "behavior": FAST_BEHAVIOR,
        }, replicas=1)  # fmt: skip
        settings = settings_mod.Settings(
            prometheus_url=url, tick_seconds=1.0, watch_namespaces=(namespace,)
        )
        with fixtures.autoscaler(settings):
            with fixtures.load(server, concurrency=32):
                wait_replicas(kube, namespace, name, lambda n: n == 4, 30, "max replicas")
            testbed_prometheus.down(state)
            fixtures.eventually(
                lambda: condition(kube, namespace, name, "MetricsAvailable").get("reason")
                == "PrometheusUnavailable",
                15, "MetricsAvailable=False",
            )  # fmt: skip
            assert condition(kube, namespace, name, "MetricsAvailable")["status"] == "False"
            # Far longer than stabilization + idle: without data nothing is released.
            fixtures.consistently(
                lambda: replicas(kube, namespace, name) == 4, 20, "4 replicas held"
            )
            assert status(kube, namespace, name)["lastScaling"]["to"] == 4

            testbed_prometheus.up(tmp_path, state)
            fixtures.eventually(
                lambda: condition(kube, namespace, name, "MetricsAvailable").get("status")
                == "True",
                30, "MetricsAvailable=True again",
            )  # fmt: skip
            wait_replicas(kube, namespace, name, lambda n: n == 0, 120, "idle to zero")
    finally:
        testbed_prometheus.down(state)


@contextlib.contextmanager
def activator(
    kube: fixtures.Kube, namespace: str, name: str, server: fixtures.Triton, log: pathlib.Path
) -> Iterator[harness.Activator]:
    """`tideserve activator` as a real process, `name` served by `server`."""
    with log.open("wb") as out:
        process = harness.Activator(kube, namespace, {name: server}, out, grpc=False)
        try:
            yield process
        finally:
            process.stop()


def infer_through(url: str, namespace: str, name: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v2/models/tiny/infer", json=harness.infer_body(1), timeout=60,
        headers=harness.host_header(namespace, name),
    )  # fmt: skip


def test_a_request_held_by_the_activator_wakes_the_endpoint_from_zero(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
    tmp_path: pathlib.Path,
) -> None:
    # The real activator holds the request (readyReplicas 0) and reports it on GET
    # /demand; the autoscaler polls that every tick and scales the Deployment 0 -> 1.
    # The test then writes readyReplicas as the reconciler would once the pod is Ready.
    name = "sleepy"
    server = start_triton()  # not scraped: at zero there are no Triton series
    create_endpoint(kube, namespace, name, {"minReplicas": 0, "behavior": FAST_BEHAVIOR},
                    replicas=0)  # fmt: skip
    kube.kubectl(
        "patch", ISVC, name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"replicas": 0, "readyReplicas": 0}}),
    )  # fmt: skip
    with activator(kube, namespace, name, server, tmp_path / "activator.log") as act:
        proxy = act.url
        settings = settings_mod.Settings(
            prometheus_url=prometheus.url, tick_seconds=1.0, watch_namespaces=(namespace,),
            activator_url=act.control,
        )  # fmt: skip
        with fixtures.autoscaler(settings), concurrent.futures.ThreadPoolExecutor(1) as pool:
            sent = time.monotonic()
            answer = pool.submit(infer_through, proxy, namespace, name)
            wait_replicas(kube, namespace, name, lambda n: n == 1, 15, "the wake")
            woke = time.monotonic() - sent
            assert act.held(name) == 1
            kube.kubectl(
                "patch", ISVC, name, "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"replicas": 1, "readyReplicas": 1}}),
            )  # fmt: skip
            response = answer.result(timeout=60)
    print(f"\nrequest held at zero -> replica patch: {woke:.2f}s")
    assert response.status_code == 200, response.text
    assert woke < 5
    final = status(kube, namespace, name)
    assert final["lastScaling"]["kind"] == "Wake"
    assert final["lastScaling"]["reason"].startswith("wake: 1 held")


def test_hard_off_window_makes_the_activator_refuse_until_it_ends(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
    tmp_path: pathlib.Path,
) -> None:
    # The autoscaler writes status.offUntil for a maxReplicas 0 window; the real
    # activator reads it and answers 503 with Retry-After instead of holding.
    name = "offhours"
    server = start_triton()
    now = datetime.datetime.now(datetime.UTC)
    end = (now + datetime.timedelta(minutes=3)).replace(second=0, microsecond=0)
    window = {"name": "night", "start": now.strftime("%H:%M"), "end": end.strftime("%H:%M"),
              "maxReplicas": 0}  # fmt: skip
    create_endpoint(kube, namespace, name, {"minReplicas": 1, "schedules": [window]}, replicas=1)
    with activator(kube, namespace, name, server, tmp_path / "activator.log") as act:
        proxy = act.url
        settings = settings_mod.Settings(
            prometheus_url=prometheus.url, tick_seconds=1.0, watch_namespaces=(namespace,),
            activator_url=act.control,
        )  # fmt: skip
        with fixtures.autoscaler(settings):
            wait_replicas(kube, namespace, name, lambda n: n == 0, 15, "the window's zero")
            fixtures.eventually(lambda: status(kube, namespace, name).get("offUntil"), 10,
                                "offUntil")  # fmt: skip
            response = fixtures.eventually(
                lambda: (r := infer_through(proxy, namespace, name)).status_code == 503 and r,
                20, "503 from the activator",
            )  # fmt: skip
    retry_after = int(response.headers["Retry-After"])
    left = (end - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert abs(retry_after - left) <= 5, (retry_after, left)
