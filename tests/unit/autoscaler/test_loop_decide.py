"""The loop's pure decide step, one endpoint and its record per call: external mode,
status only on change, holds, learned figures kept across ticks and restarts."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from tideserve.api import spec as spec_api
from tideserve.autoscaler import loop, policy, signals

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


FRESH = policy.Signals(0.0, 0.0, 1.0, 0, 1.0)


def with_cold_starts(record: loop.Record, cold_starts: tuple[float, ...]) -> loop.Record:
    """The record after the policy observed these cold starts."""
    observed = dataclasses.replace(record.state.observed, cold_starts=cold_starts)
    return dataclasses.replace(record, state=dataclasses.replace(record.state, observed=observed))


def test_external_mode_copies_spec_replicas() -> None:
    ep = endpoint({"mode": "external"}, current=2, replicas=5)
    action, _ = loop.decide(ep, None, loop.signals_of(ep.key, {}, None), NOW)
    assert action.scale
    assert action.decision.desired == 5
    assert action.decision.kind == "External"
    assert action.status is not None and action.status["desiredReplicas"] == 5


def test_external_mode_caps_spec_replicas_at_max_replicas() -> None:
    # The CRD refuses replicas above maxReplicas in external mode; an object stored before
    # that rule must still not scale to what it says.
    ep = endpoint({"mode": "external", "maxReplicas": 4}, current=2, replicas=4)
    ep = dataclasses.replace(ep, spec=ep.spec.model_copy(update={"replicas": 2**31 - 1}))
    action, _ = loop.decide(ep, None, loop.signals_of(ep.key, {}, None), NOW)
    assert action.decision.desired == 4
    assert "capped at scaling.maxReplicas 4" in action.decision.reason


def test_status_is_not_rewritten_when_nothing_changed() -> None:
    ep = endpoint({"minReplicas": 1}, current=1)
    first, record = loop.decide(ep, None, FRESH, NOW)
    assert first.status is not None and not first.scale
    again = endpoint({"minReplicas": 1}, current=1, status=first.status)
    second, _ = loop.decide(again, record, FRESH, NOW + datetime.timedelta(seconds=5))
    assert second.status is None


def test_prometheus_down_holds_and_says_so() -> None:
    ep = endpoint({"minReplicas": 0, "scaleToZero": {"idleSeconds": 0}}, current=3)
    sig = loop.signals_of(ep.key, None, {})
    action, _ = loop.decide(ep, None, sig, NOW, prometheus_ok=False)
    assert not action.scale
    assert action.decision.kind == "Hold"
    assert action.status is not None
    conditions = {c["type"]: c for c in action.status["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "False"
    assert conditions["MetricsAvailable"]["reason"] == "PrometheusUnavailable"


def test_held_requests_wake_an_endpoint_even_without_prometheus() -> None:
    ep = endpoint({"minReplicas": 0}, current=0)
    fallback = {("ns", "m"): policy.Signals(None, None, None, held=2, age_s=float("inf"))}
    sig = loop.signals_of(ep.key, None, fallback)
    action, _ = loop.decide(ep, None, sig, NOW, prometheus_ok=False)
    assert action.scale
    assert (action.decision.desired, action.decision.kind) == (1, "Wake")


def test_an_endpoint_without_series_reads_as_no_series() -> None:
    assert loop.signals_of(("ns", "m"), {}, None) is signals.NO_SERIES


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


def test_first_sight_restores_what_status_learned_says() -> None:
    scaling = {"minReplicas": 1}
    slo = {"queueTimeMs": 500}
    ep = endpoint(scaling, current=2, status={"learned": LEARNED})
    ep = loop.Endpoint(
        ep.key, ep.body, ep.spec.model_copy(update={"slo": spec_api.SloSpec(**slo)}), 2, 2
    )
    first, record = loop.decide(ep, None, FRESH, NOW)
    assert record.state.observed.cold_starts == (40.0, 44.0)
    assert record.state.capacity.peak == 3.0
    assert first.status is not None and first.status["learned"] == LEARNED
    # A second restart, reading what the first wrote: nothing to write.
    body = {**ep.body, "status": first.status}
    second, again = loop.decide(loop.Endpoint(ep.key, body, ep.spec, 2, 2), None, FRESH, NOW)
    assert second.status is None
    assert again.state.observed == record.state.observed


def test_learned_figures_reach_the_status_at_once_then_once_a_minute() -> None:
    ep = endpoint({"minReplicas": 1}, current=1)
    first, record = loop.decide(ep, None, FRESH, NOW)
    assert first.status is not None and "learned" not in first.status
    tick = datetime.timedelta(seconds=5)
    ep = endpoint({"minReplicas": 1}, current=1, status=first.status)
    second, record = loop.decide(ep, with_cold_starts(record, (20.0,)), FRESH, NOW + tick)
    assert second.status is not None and second.status["learned"]["coldStartsSeconds"] == [20.0]
    record = with_cold_starts(record, (20.0, 30.0))
    ep = endpoint({"minReplicas": 1}, current=1, status=second.status)
    third, record = loop.decide(ep, record, FRESH, NOW + 2 * tick)
    assert third.status is None  # within the minute
    later, _ = loop.decide(ep, record, FRESH, NOW + 2 * tick + 60 * tick / 5)
    assert later.status is not None
    assert later.status["learned"]["coldStartsSeconds"] == [20.0, 30.0]


def test_a_crd_that_prunes_status_learned_costs_a_write_a_minute_not_a_tick() -> None:
    # Helm does not upgrade CRDs: an old schema drops status.learned from every write.
    first, record = loop.decide(endpoint({"minReplicas": 1}, current=1), None, FRESH, NOW)
    record = with_cold_starts(record, (20.0,))
    assert first.status is not None
    writes = []
    for tick in range(1, 25):  # two minutes of 5 s ticks
        pruned = {k: v for k, v in first.status.items() if k != "learned"}
        ep = endpoint({"minReplicas": 1}, current=1, status=pruned)
        at = NOW + datetime.timedelta(seconds=5 * tick)
        action, record = loop.decide(ep, record, FRESH, at)
        if action.status is not None:
            assert action.status["learned"]["coldStartsSeconds"] == [20.0]
            writes.append(tick)
    assert writes == [1, 13]


def test_a_new_model_or_hardware_learns_again_from_scratch() -> None:
    ep = endpoint({"minReplicas": 1}, current=1, status={"learned": LEARNED})
    first, record = loop.decide(ep, None, FRESH, NOW)
    assert not first.relearn and record.state.observed.cold_starts == (40.0, 44.0)
    moved = endpoint({"minReplicas": 1}, current=1, status={"accelerator": "gpu:NVIDIA-L4"})
    second, record = loop.decide(moved, record, FRESH, NOW + datetime.timedelta(seconds=5))
    assert second.relearn
    assert record.state.observed.cold_starts == ()


def test_the_record_passed_in_is_never_changed() -> None:
    ep = endpoint({"minReplicas": 0, "scaleToZero": {"idleSeconds": 0}}, current=3)
    _, record = loop.decide(ep, None, FRESH, NOW)
    before = dataclasses.replace(record)
    loop.decide(ep, record, FRESH, NOW + datetime.timedelta(seconds=30))
    assert record == before
