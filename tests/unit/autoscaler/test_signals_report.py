"""The thin adapters' pure parts: Prometheus rows -> Signals, activator URLs, status."""

from __future__ import annotations

import datetime

import pytest

from tideserve.autoscaler import assemble, policy, report, signals

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)


def row(ns: str, name: str, value: str) -> dict[str, object]:
    return {"metric": {"namespace": ns, "name": name}, "value": [1000.0, value]}


def test_queries_are_one_per_signal_grouped_by_namespace_and_name() -> None:
    assert set(signals.QUERIES) == {"pending", "queue_us", "rate", "sampled_at"}
    for query in signals.QUERIES.values():
        assert "by (namespace, name)" in query


def test_rows_combine_into_signals_per_endpoint() -> None:
    results = {
        "pending": [row("a", "m", "6"), row("b", "n", "0")],
        "queue_us": [row("a", "m", "25000"), row("b", "n", "NaN")],
        "rate": [row("a", "m", "40"), row("b", "n", "0")],
        "sampled_at": [row("a", "m", "990"), row("b", "n", "900")],
    }
    table = signals.combine(results, {("a", "m"): 2, ("c", "z"): 5}, evaluated_at=1000.0)
    assert table[("a", "m")] == policy.Signals(8.0, 0.025, 40.0, 2, 10.0)
    assert table[("b", "n")] == policy.Signals(0.0, 0.0, 0.0, 0, 100.0)
    # Held at the activator with no Triton series (at zero): demand all the same.
    assert table[("c", "z")] == policy.Signals(None, None, None, 5, 0.0)


def test_rows_without_the_endpoint_labels_are_ignored() -> None:
    results = {"pending": [{"metric": {"pod": "x"}, "value": [1, "3"]}]}
    assert signals.combine(results, {}, 1.0) == {}


def test_demand_urls_from_ready_activator_pods() -> None:
    slices = [
        {
            "ports": [{"name": "http", "port": 8080}, {"name": "control", "port": 9090}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                {"addresses": ["fd00::3"]},
            ],
        }
    ]
    assert signals.demand_urls(slices) == [
        "http://10.0.0.1:9090/demand",
        "http://[fd00::3]:9090/demand",
    ]


def decision(desired: int = 3, kind: str = "ScaleUp", **extra: object) -> policy.Decision:
    return policy.Decision(desired, "queue 37 > 4/replica x 3 -> 10", kind, **extra)  # type: ignore[arg-type]


def test_status_carries_the_autoscaler_fields_and_conditions() -> None:
    off = decision(0, "Schedule", window="night", off_until=NOW)
    status = report.status(
        off,
        metrics=(True, "SignalsFresh", "ok"),
        scaling=None,
        previous=None,
        generation=4,
        now=NOW,
    )
    assert status["desiredReplicas"] == 0
    assert status["activeSchedule"] == "night"
    assert status["offUntil"] == "2026-11-23T12:00:00Z"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["ScaledToZero"]["status"] == "True"
    assert conditions["ScaledToZero"]["reason"] == "Schedule"
    assert conditions["MetricsAvailable"]["observedGeneration"] == 4


def test_status_is_unchanged_when_only_the_clock_moved() -> None:
    first = report.status(
        decision(),
        metrics=(False, "PrometheusUnavailable", "x"),
        scaling=None,
        previous=None,
        generation=1,
        now=NOW,
    )
    later = report.status(
        decision(),
        metrics=(False, "PrometheusUnavailable", "x"),
        scaling=None,
        previous=first,
        generation=1,
        now=NOW + datetime.timedelta(minutes=5),
    )
    assert not report.changed(first, later)
    assert later["conditions"][0]["lastTransitionTime"] == "2026-11-23T12:00:00Z"
    recovered = report.status(
        decision(),
        metrics=(True, "SignalsFresh", "ok"),
        scaling=None,
        previous=first,
        generation=1,
        now=NOW,
    )
    assert report.changed(first, recovered)


def test_metrics_condition_words() -> None:
    assert report.metrics_condition(None, prometheus_ok=False)[:2] == (
        False,
        "PrometheusUnavailable",
    )
    stale = policy.Signals(1, 0, 1, 0, age_s=120)
    assert report.metrics_condition(stale, prometheus_ok=True)[:2] == (False, "SignalsStale")
    assert report.metrics_condition(signals.NO_SERIES, prometheus_ok=True)[:2] == (True, "NoSeries")


def test_one_endpoint_assembled_as_the_simulator_calls_it() -> None:
    # The simulator passes its scrape here; combine() is this per endpoint.
    got = assemble.endpoint(
        pending=3.0, queue_time_s=0.2, rate=0.0, sampled_at=95.0, held=4, evaluated_at=100.0
    )
    assert got == policy.Signals(7.0, 0.0, 0.0, 4, 5.0)
    none = assemble.endpoint(
        pending=None, queue_time_s=None, rate=None, sampled_at=None, held=2, evaluated_at=1.0
    )
    assert none == policy.Signals(None, None, None, 2, 0.0)
    nan = assemble.endpoint(
        pending=1.0, queue_time_s=float("nan"), rate=2.0, sampled_at=1.0, held=0, evaluated_at=1.0
    )
    assert nan.queue_time_s is None
    assert signals.combine is assemble.combine
