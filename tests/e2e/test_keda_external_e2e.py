"""Real KEDA drives an InferenceService in `mode: external` through its scale subresource.

KEDA's operator and metrics adapter (the upstream binaries, hack/build-tools keda) run on
the test bed (tideserve_testbed.keda); a ScaledObject with KEDA's Prometheus scaler reads
Triton's queue (nv_inference_pending_request_count) from the test bed's real Prometheus,
scraping a real Triton under tritonclient load. KEDA activates 0 -> 1 itself; above one
replica the real HPA controller in kube-controller-manager scales on KEDA's external metric,
served through the aggregation layer. tideserve's autoscaler loop (external mode) only makes
the predictor Deployment follow spec.replicas: it never writes spec.replicas.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures, keda, procs

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.render import names

pytestmark = pytest.mark.e2e

MAX = 3


@pytest.fixture(scope="module")
def keda_running(kube: fixtures.Kube) -> Iterator[dict[str, Any]]:
    with keda.started(kube.state_dir) as st:
        yield st


def spec_replicas(kube: fixtures.Kube, namespace: str, name: str) -> int:
    body = kube.get_json(f"{resource.PLURAL}.{resource.GROUP}", "-n", namespace, name)
    return int(body["spec"].get("replicas", -1))


def deployment_replicas(kube: fixtures.Kube, namespace: str, name: str) -> int:
    body = kube.get_json("deployment", "-n", namespace, names.predictor(name))
    return int(body["spec"]["replicas"])


def replicas_managers(kube: fixtures.Kube, namespace: str, name: str) -> set[str]:
    body = kube.get_json(
        f"{resource.PLURAL}.{resource.GROUP}", "-n", namespace, name, "--show-managed-fields"
    )
    return {
        m["manager"]
        for m in body["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    fixtures.eventually(lambda: check() or None, timeout=timeout, what=what, interval=0.5)
    return time.monotonic() - start


def external_metric(kube: fixtures.Kube, namespace: str, name: str) -> float:
    """KEDA's metric for the ScaledObject as the HPA controller reads it: through the
    API server's aggregation layer, from the adapter, from the operator's scaler."""
    path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/s0-prometheus"
            f"?labelSelector=scaledobject.keda.sh%2Fname%3D{name}")  # fmt: skip
    items = json.loads(kube.kubectl("get", "--raw", path).stdout)["items"]
    value = str(items[0]["value"])
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def scaled_object(namespace: str, name: str, prometheus_url: str) -> dict[str, Any]:
    query = f'sum(nv_inference_pending_request_count{{namespace="{namespace}",name="{name}"}})'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": resource.API_VERSION, "kind": resource.KIND, "name": name,
            },
            "minReplicaCount": 0, "maxReplicaCount": MAX,
            "pollingInterval": 2, "cooldownPeriod": 10,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 5},
            }}},
            "triggers": [{
                "type": "prometheus",
                "metadata": {"serverAddress": prometheus_url, "query": query,
                             "threshold": "2", "activationThreshold": "0.5"},
            }],
        },
    }  # fmt: skip


def test_keda_scales_an_external_inferenceservice_up_from_zero_and_back(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
    keda_running: dict[str, Any],
) -> None:
    name = "tiny"
    # 100 ms per batch of up to 8: 32 closed-loop clients keep ~24 requests queued.
    server = start_triton(
        labels={"namespace": namespace, "name": name, "pod": f"{name}-predictor-0"},
        delay_ms=100,
    )
    kube.apply(fixtures.isvc(
        name, namespace, model={"name": "tiny", "storageUri": "pvc://models/tiny"},
        resources={"accelerator": "cpu", "cpu": "1", "memory": "1Gi"},
        scaling={"mode": "external", "minReplicas": 0, "maxReplicas": MAX}, replicas=0,
    ))  # fmt: skip
    labels = names.selector_labels(name)
    kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": names.predictor(name),
                     "labels": names.common_labels(name)},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "triton", "image": "tritonserver:e2e"}]}}},
    }, "--server-side", f"--field-manager={resource.FIELD_MANAGER}")  # fmt: skip
    # The scale subresource's selector (the reconciler writes it; its own tests cover that):
    # the HPA controller refuses a target without one. status.replicas stays 0 (no reconciler
    # here): the HPA's desired count does not use it, but the averageValue it reports in
    # status.currentMetrics divides by it (shown as -9223372036854775808m), so that is not read.
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    kube.kubectl("patch", f"{resource.PLURAL}.{resource.GROUP}", "-n", namespace, name,
                 "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": {"selector": selector, "replicas": 0}}))  # fmt: skip
    fixtures.eventually(
        lambda: prometheus.query(f'nv_inference_pending_request_count{{namespace="{namespace}"}}'),
        30, "Triton scraped",
    )  # fmt: skip
    kube_api.configure(str(kube.kubeconfig))
    settings = settings_mod.Settings(
        prometheus_url=prometheus.url, tick_seconds=1.0, watch_namespaces=(namespace,)
    )
    kube.apply(scaled_object(namespace, name, prometheus.url))
    try:
        with fixtures.autoscaler(settings):
            wait(lambda: kube.get_json("scaledobject", "-n", namespace, name)
                 .get("status", {}).get("hpaName"), 60, "KEDA's HPA")  # fmt: skip
            assert spec_replicas(kube, namespace, name) == 0  # idle: KEDA leaves it at zero
            with fixtures.load(server, concurrency=32) as done:
                up1 = wait(lambda: spec_replicas(kube, namespace, name) >= 1, 60, "activation")
                up_max = wait(lambda: spec_replicas(kube, namespace, name) == MAX, 90,
                              "HPA on KEDA's external metric to maxReplicaCount")  # fmt: skip
                wait(lambda: deployment_replicas(kube, namespace, name) == MAX, 20,
                     "the Deployment following spec.replicas")  # fmt: skip
                at_max = replicas_managers(kube, namespace, name)
                # KEDA's metric through the aggregation layer: the queue Prometheus sees.
                current = external_metric(kube, namespace, name)
                hpa = kube.get_json("hpa", "-n", namespace, f"keda-hpa-{name}")
            assert done[0] > 0
            down0 = wait(lambda: spec_replicas(kube, namespace, name) == 0, 180, "back to 0")
            wait(lambda: deployment_replicas(kube, namespace, name) == 0, 20, "Deployment at 0")
        assert current > 2  # above the ScaledObject's threshold, hence MAX
        active = {c["type"]: c for c in hpa["status"]["conditions"]}["ScalingActive"]
        assert active["reason"] == "ValidMetricFound", active
        assert hpa["spec"]["metrics"][0]["type"] == "External"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == resource.KIND
        ours = {resource.FIELD_MANAGER, resource.AUTOSCALER_FIELD_MANAGER}
        # At MAX the last writer of spec.replicas is the HPA controller (through /scale).
        # A 0 written through /scale leaves no owner (the Scale object omits a zero), so at
        # the end only "none of ours" can be checked.
        assert at_max, "nobody owns spec.replicas at MAX"
        assert not at_max & ours, at_max
        assert not replicas_managers(kube, namespace, name) & ours
        print(f"\nKEDA: activation {up1:.1f}s, +{up_max:.1f}s to {MAX}; load stop -> 0 in "
              f"{down0:.1f}s; spec.replicas at {MAX} written by {sorted(at_max)}; "
              f"external metric at {MAX}: {current:g}")  # fmt: skip
    finally:
        # While KEDA runs: its finalizer must go before the namespace does.
        kube.kubectl("delete", "scaledobject", "-n", namespace, name, "--timeout=60s",
                     check=False, timeout=90)  # fmt: skip
    assert procs.alive(keda_running["keda-operator"]), "the KEDA operator exited"
