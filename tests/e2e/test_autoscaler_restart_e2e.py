"""What the autoscaler learned survives a restart: status.learned on the real API server.

A real Triton (CPU) under load, a real Prometheus scraping it, a real API server (kwok
runs the pods). The loop runs in-process as the operator runs it, learns the endpoint's
cold start and per-replica peak (so the queue target is derived from spec.slo, not 4,
and the scale-down window from the cold start, not 300 s), and writes them to
status.learned. Then it stops, and a new autoscaler (a restart, or a standby taking
over) starts from that status instead of the defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tideserve_testbed import fixtures
from tideserve_testbed import prometheus as testbed_prometheus

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.api import spec as spec_api
from tideserve.autoscaler import learned, learned_status, loop
from tideserve.render import names

pytestmark = pytest.mark.e2e

ISVC = f"{resource.PLURAL}.{resource.GROUP}"
NAME = "tiny"
SCALING = {
    "minReplicas": 1,
    "maxReplicas": 4,
    # No target value and no scale-down stabilization: both are derived (learned.py).
    "target": {"type": "queueDepth"},
    "behavior": {
        "stableWindowSeconds": 5,
        "panicWindowSeconds": 2,
        "scaleUp": {"stabilizationSeconds": 0, "maxPercent": 100, "maxReplicasChange": 4,
                    "periodSeconds": 5},
        "scaleDown": {"maxPercent": 100, "maxReplicasChange": 1, "periodSeconds": 5},
    },
}  # fmt: skip
SLO = {"queueTimeMs": 2000}


def learned_status_of(kube: fixtures.Kube, namespace: str) -> dict[str, Any]:
    body = kube.get_json(ISVC, "-n", namespace, NAME)
    return dict((body.get("status") or {}).get("learned") or {})


def test_a_restarted_autoscaler_derives_what_it_learned_before(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
) -> None:
    kube_api.configure(str(kube.kubeconfig))
    # 100 ms per batch of up to 8: ~80 requests/s; 32 clients keep ~24 queued, at or
    # above the default target of 4 per replica even at the 4 replicas allowed.
    server = start_triton(
        labels={"namespace": namespace, "name": NAME, "pod": f"{NAME}-predictor-0"},
        delay_ms=100,
    )
    kube.apply(fixtures.isvc(NAME, namespace, scaling=SCALING, slo=SLO))
    labels = names.selector_labels(NAME)
    kube.apply({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": names.predictor(NAME),
                     "labels": names.common_labels(NAME)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "triton", "image": "tritonserver:e2e"}]},
            },
        },
    }, "--server-side", f"--field-manager={resource.FIELD_MANAGER}")  # fmt: skip
    fixtures.eventually(
        lambda: testbed_prometheus.query(
            prometheus.url, f'nv_inference_pending_request_count{{namespace="{namespace}"}}'
        ),
        60,
        "Triton scraped",
    )
    settings = settings_mod.Settings(
        prometheus_url=prometheus.url, tick_seconds=1.0, watch_namespaces=(namespace,)
    )

    with fixtures.autoscaler(settings), fixtures.load(server, concurrency=32):
        # A scale up whose replicas became Ready is a cold start; a whole rate window
        # saturated at a settled replica count is a peak. The status gets them at once
        # and then at most once a minute (learned_status.MIN_WRITE_INTERVAL_S).
        fixtures.eventually(
            lambda: (
                (learnt := learned_status_of(kube, namespace)).get("coldStartsSeconds")
                and learnt.get("peakPerReplica")
            ),
            300,
            "a cold start and a peak in status.learned",
            interval=1.0,
        )
    before = learned_status_of(kube, namespace)
    print(f"\nlearned before the restart: {before}")
    assert before["target"] != learned.DEFAULT_TARGET
    assert before["scaleDownWindowSeconds"] < learned.MAX_DOWN_WINDOW_S

    async def restart() -> loop.Autoscaler:
        again = loop.Autoscaler(settings)
        try:
            await again.tick()
        finally:
            await again.close()
        return again

    again = asyncio.run(restart())
    state = again.records[(namespace, NAME)].state
    body = kube.get_json(ISVC, "-n", namespace, NAME)
    spec = spec_api.InferenceServiceSpec.model_validate(body["spec"])
    basis = learned_status.basis_of(spec, (body.get("status") or {}).get("accelerator"))
    knobs = learned.knobs(spec.scaling, spec.slo, state.capacity, state.observed)
    # The restarted policy derives what the status says, not 4 / 300 s / 900 s ...
    assert knobs.target.value == pytest.approx(before["target"], rel=0.01)
    assert knobs.down_window_s == before["scaleDownWindowSeconds"]
    assert round(knobs.idle_s) == before["idleSeconds"]
    # ... from the same figures, so what it would write is what the status holds.
    shown = learned_status.dump(learned_status.snapshot(state, spec.scaling, spec.slo, basis))
    assert shown == before
    assert learned_status_of(kube, namespace) == before

    # A new model version: a replica's speed and cold start are learned again, at once in
    # the running autoscaler, and by the next one from the basis in the status; the idle
    # gaps (the traffic's) are kept.
    async def new_model_version() -> loop.Autoscaler:
        running = loop.Autoscaler(settings)
        try:
            await running.tick()
            assert running.records[(namespace, NAME)].state.capacity.peak is not None
            kube.kubectl("patch", ISVC, "-n", namespace, NAME, "--type=merge", "-p",
                         '{"spec": {"model": {"storageUri": "pvc://models/tiny-v2"}}}')  # fmt: skip
            fixtures.eventually(
                lambda: "tiny-v2" in str(kube.get_json(ISVC, "-n", namespace, NAME)["spec"]),
                30, "the new model version in the spec",
            )  # fmt: skip
            await running.tick()
        finally:
            await running.close()
        return running

    rebased = asyncio.run(new_model_version()).records[(namespace, NAME)].state
    assert rebased.capacity.peak is None
    assert rebased.observed.cold_starts == ()
    assert rebased.observed.gaps == state.observed.gaps
    # The status still carries the old basis (written at most once a minute): a restart
    # now restores only the gaps from it.
    figures = learned_status.parse(learned_status_of(kube, namespace))
    body = kube.get_json(ISVC, "-n", namespace, NAME)
    now_basis = learned_status.basis_of(
        spec_api.InferenceServiceSpec.model_validate(body["spec"]),
        (body.get("status") or {}).get("accelerator"),
    )
    restored = learned_status.restore(figures, now_basis)
    assert restored.capacity.peak is None
    assert restored.observed.gaps == state.observed.gaps
