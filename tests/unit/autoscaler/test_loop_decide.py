"""The loop's decide step (no I/O): external mode, status only on change, holds."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from tideserve import settings as settings_mod
from tideserve.api import spec as spec_api
from tideserve.autoscaler import loop, policy

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)


def endpoint(
    scaling: dict[str, Any],
    current: int,
    replicas: int | None = None,
    status: dict[str, Any] | None = None,
) -> loop.Endpoint:
    spec = {"model": {"name": "m", "storageUri": "pvc://models/m"}, "scaling": scaling}
    if replicas is not None:
        spec["replicas"] = replicas
    body = {
        "metadata": {"namespace": "ns", "name": "m", "uid": "u", "generation": 1},
        "spec": spec,
        "status": status or {},
    }
    parsed = spec_api.InferenceServiceSpec.model_validate(spec)
    return loop.Endpoint(("ns", "m"), body, parsed, current, current)


@pytest.fixture
def autoscaler() -> loop.Autoscaler:
    return loop.Autoscaler(settings_mod.Settings(prometheus_url="http://127.0.0.1:9"))


def test_external_mode_copies_spec_replicas(autoscaler: loop.Autoscaler) -> None:
    ep = endpoint({"mode": "external"}, current=2, replicas=5)
    (action,) = autoscaler._decide([ep], {}, None, NOW)
    assert action.scale
    assert action.decision.desired == 5
    assert action.decision.kind == "External"
    assert action.status is not None and action.status["desiredReplicas"] == 5


def test_status_is_not_rewritten_when_nothing_changed(autoscaler: loop.Autoscaler) -> None:
    fresh = policy.Signals(0.0, 0.0, 1.0, 0, 1.0)
    ep = endpoint({"minReplicas": 1}, current=1)
    (first,) = autoscaler._decide([ep], {("ns", "m"): fresh}, None, NOW)
    assert first.status is not None and not first.scale
    again = endpoint({"minReplicas": 1}, current=1, status=first.status)
    (second,) = autoscaler._decide(
        [again], {("ns", "m"): fresh}, None, NOW + datetime.timedelta(seconds=5)
    )
    assert second.status is None


def test_prometheus_down_holds_and_says_so(autoscaler: loop.Autoscaler) -> None:
    ep = endpoint({"minReplicas": 0, "scaleToZero": {"idleSeconds": 0}}, current=3)
    (action,) = autoscaler._decide([ep], None, {}, NOW)
    assert not action.scale
    assert action.decision.kind == "Hold"
    assert action.status is not None
    conditions = {c["type"]: c for c in action.status["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "False"
    assert conditions["MetricsAvailable"]["reason"] == "PrometheusUnavailable"


def test_held_requests_wake_an_endpoint_even_without_prometheus(
    autoscaler: loop.Autoscaler,
) -> None:
    ep = endpoint({"minReplicas": 0}, current=0)
    fallback = {("ns", "m"): policy.Signals(None, None, None, held=2, age_s=float("inf"))}
    (action,) = autoscaler._decide([ep], None, fallback, NOW)
    assert action.scale
    assert (action.decision.desired, action.decision.kind) == (1, "Wake")


LEARNED = {
    "capacityPerReplica": 2.5,
    "capacityMeasured": True,
    "peakPerReplica": 3.0,
    "coldStartsSeconds": [40.0, 44.0],
    "coldStartSeconds": 42.0,
    "idleGapsSeconds": [30, 30, 30, 30, 5000],
    "target": 0.6,
    "scaleDownWindowSeconds": 84,
    "idleSeconds": 30,
}


def test_first_sight_restores_what_status_learned_says(autoscaler: loop.Autoscaler) -> None:
    fresh = policy.Signals(0.0, 0.0, 1.0, 0, 1.0)
    scaling = {"minReplicas": 1}
    slo = {"queueTimeMs": 500}
    ep = endpoint(scaling, current=2, status={"learned": LEARNED})
    ep = loop.Endpoint(
        ep.key, ep.body, ep.spec.model_copy(update={"slo": spec_api.SloSpec(**slo)}), 2, 2
    )
    (first,) = autoscaler._decide([ep], {("ns", "m"): fresh}, None, NOW)
    state = autoscaler.states[("ns", "m")]
    assert state.observed.cold_starts == (40.0, 44.0)
    assert state.capacity.peak == 3.0
    assert first.status is not None and first.status["learned"] == LEARNED
    # A second restart, reading what the first wrote: nothing to write.
    again = loop.Autoscaler(autoscaler.settings)
    body = {**ep.body, "status": first.status}
    (second,) = again._decide(
        [loop.Endpoint(ep.key, body, ep.spec, 2, 2)], {("ns", "m"): fresh}, None, NOW
    )
    assert second.status is None
    assert again.states[("ns", "m")].observed == state.observed


def test_learned_figures_reach_the_status_at_once_then_once_a_minute(
    autoscaler: loop.Autoscaler,
) -> None:
    fresh = policy.Signals(0.0, 0.0, 1.0, 0, 1.0)
    ep = endpoint({"minReplicas": 1}, current=1)
    (first,) = autoscaler._decide([ep], {("ns", "m"): fresh}, None, NOW)
    assert first.status is not None and "learned" not in first.status
    key = ("ns", "m")
    learnt = autoscaler.states[key].observed
    autoscaler.states[key] = dataclasses.replace(
        autoscaler.states[key], observed=dataclasses.replace(learnt, cold_starts=(20.0,))
    )
    tick = datetime.timedelta(seconds=5)
    ep = endpoint({"minReplicas": 1}, current=1, status=first.status)
    (second,) = autoscaler._decide([ep], {key: fresh}, None, NOW + tick)
    assert second.status is not None and second.status["learned"]["coldStartsSeconds"] == [20.0]
    autoscaler.states[key] = dataclasses.replace(
        autoscaler.states[key], observed=dataclasses.replace(learnt, cold_starts=(20.0, 30.0))
    )
    ep = endpoint({"minReplicas": 1}, current=1, status=second.status)
    (third,) = autoscaler._decide([ep], {key: fresh}, None, NOW + 2 * tick)
    assert third.status is None  # within the minute
    (later,) = autoscaler._decide([ep], {key: fresh}, None, NOW + 2 * tick + 60 * tick / 5)
    assert later.status is not None
    assert later.status["learned"]["coldStartsSeconds"] == [20.0, 30.0]


def test_a_crd_that_prunes_status_learned_costs_a_write_a_minute_not_a_tick(
    autoscaler: loop.Autoscaler,
) -> None:
    # Helm does not upgrade CRDs: an old schema drops status.learned from every write.
    fresh = policy.Signals(0.0, 0.0, 1.0, 0, 1.0)
    key = ("ns", "m")
    (first,) = autoscaler._decide(
        [endpoint({"minReplicas": 1}, current=1)], {key: fresh}, None, NOW
    )
    autoscaler.states[key] = dataclasses.replace(
        autoscaler.states[key],
        observed=dataclasses.replace(autoscaler.states[key].observed, cold_starts=(20.0,)),
    )
    assert first.status is not None
    writes = []
    for tick in range(1, 25):  # two minutes of 5 s ticks
        pruned = {k: v for k, v in first.status.items() if k != "learned"}
        ep = endpoint({"minReplicas": 1}, current=1, status=pruned)
        at = NOW + datetime.timedelta(seconds=5 * tick)
        (action,) = autoscaler._decide([ep], {key: fresh}, None, at)
        if action.status is not None:
            assert action.status["learned"]["coldStartsSeconds"] == [20.0]
            writes.append(tick)
    assert writes == [1, 13]
