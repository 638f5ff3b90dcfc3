"""One endpoint's failure costs that endpoint only: it holds its replicas and gets
ScalingActive=False (DecisionFailed) and a Warning, the others decide as usual."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideserve import settings as settings_mod
from tideserve.api import spec as spec_api
from tideserve.autoscaler import loop, policy, report, schedules

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
FRESH = policy.Signals(3.0, 1.0, 1.0, 0, 1.0)


class Boom(RuntimeError):
    """The injected failure."""


def endpoint(index: int, window: str = "day") -> loop.Endpoint:
    spec = {
        "model": {"name": "m", "storageUri": "pvc://models/m"},
        "scaling": {
            "minReplicas": 1,
            "maxReplicas": 8,
            "schedules": [{"name": window, "start": "08:00", "end": "20:00", "minReplicas": 2}],
        },
    }
    body = {
        "metadata": {"namespace": "ns", "name": f"e{index}", "uid": f"u{index}", "generation": 1},
        "spec": spec,
        "status": {"replicas": 1},
    }
    parsed = spec_api.InferenceServiceSpec.model_validate(spec)
    return loop.Endpoint(("ns", f"e{index}"), body, parsed, 1, 1)


class Signals(dict[loop.Key, policy.Signals]):
    """The signal table, failing for some endpoints (a broken series, say)."""

    def __init__(self, keys: list[loop.Key], failing: set[loop.Key]) -> None:
        super().__init__({key: FRESH for key in keys})
        self.failing = failing

    def get(self, key: loop.Key, default: Any = None) -> Any:
        if key in self.failing:
            raise Boom(f"signals of {key}")
        return super().get(key, default)


def _failing_where(original: Callable[..., Any], broken: Callable[..., bool]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if broken(*args, **kwargs):
            raise Boom("injected")
        return original(*args, **kwargs)

    return wrapper


@pytest.fixture
def autoscaler() -> Iterator[loop.Autoscaler]:
    yield loop.Autoscaler(settings_mod.Settings(prometheus_url="http://127.0.0.1:9"))


STAGES = ("signals", "decision", "status", "learned", "basis")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(1, 12),
    failing=st.sets(st.integers(0, 11), max_size=6),
    stage=st.sampled_from(STAGES),
)
def test_failures_injected_per_endpoint_cost_only_those_endpoints(
    monkeypatch: pytest.MonkeyPatch, count: int, failing: set[int], stage: str
) -> None:
    autoscaler = loop.Autoscaler(settings_mod.Settings(prometheus_url="http://127.0.0.1:9"))
    endpoints = [endpoint(i) for i in range(count)]
    bad = {e.key for e in endpoints if int(e.key[1][1:]) in failing}
    bad_specs = [e.spec.scaling for e in endpoints if e.key in bad]
    table: dict[loop.Key, policy.Signals] = {e.key: FRESH for e in endpoints}
    with monkeypatch.context() as patch:
        if stage == "signals":
            table = Signals([e.key for e in endpoints], bad)
        elif stage == "decision":
            patch.setattr(
                policy,
                "decide",
                _failing_where(policy.decide, lambda s, *_: any(s is b for b in bad_specs)),
            )
        elif stage == "status":
            bad_status = [e.body["status"] for e in endpoints if e.key in bad]
            patch.setattr(
                report,
                "status",
                _failing_where(
                    report.status, lambda *_, **k: any(k["previous"] is b for b in bad_status)
                ),
            )
        elif stage == "learned":
            bad_parsed = [e.spec for e in endpoints if e.key in bad]
            patch.setattr(
                loop,
                "_snapshot",
                _failing_where(loop._snapshot, lambda _, s, *__: any(s is b for b in bad_parsed)),
            )
        else:
            bad_parsed = [e.spec for e in endpoints if e.key in bad]
            patch.setattr(
                loop,
                "_basis",
                _failing_where(loop._basis, lambda _, s, *__: any(s is b for b in bad_parsed)),
            )
        actions = autoscaler._decide(endpoints, table, None, NOW)
    assert [a.endpoint.key for a in actions] == [e.key for e in endpoints]
    for action in actions:
        if action.endpoint.key in bad:
            assert action.decision.kind == report.DECISION_FAILED
            assert not action.scale  # replicas held
            assert action.status is not None and action.warning is not None
            condition = action.status["conditions"][-1]
            assert (condition["type"], condition["status"], condition["reason"]) == (
                "ScalingActive",
                "False",
                "DecisionFailed",
            )
            assert "Boom" in condition["message"]
        else:
            assert action.decision.kind != report.DECISION_FAILED
            assert action.warning is None
            assert action.decision.desired >= 2  # the day window's floor: really decided


def test_a_bad_object_among_100_good_ones_costs_only_itself_every_tick(
    autoscaler: loop.Autoscaler, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window the schedule code chokes on (a bug, or an object admitted by an older CRD).
    real = schedules.open_occurrence

    def occurrence(window: Any, now: datetime.datetime) -> Any:
        if window.name == "broken":
            raise Boom("schedule code failed")
        return real(window, now)

    monkeypatch.setattr(schedules, "open_occurrence", occurrence)
    good = [endpoint(i) for i in range(100)]
    bad = endpoint(100, window="broken")
    everyone = [*good[:50], bad, *good[50:]]
    table = {e.key: FRESH for e in everyone}
    warnings = 0
    for tick in range(5):
        now = NOW + datetime.timedelta(seconds=5 * tick)
        actions = {a.endpoint.key: a for a in autoscaler._decide(everyone, table, None, now)}
        decided = [k for k, a in actions.items() if a.decision.kind != report.DECISION_FAILED]
        assert sorted(decided) == sorted(e.key for e in good)
        failed = actions[bad.key]
        assert failed.decision.kind == report.DECISION_FAILED and not failed.scale
        warnings += failed.warning is not None
        # The status write lands: the next tick reads it back.
        everyone = [_with_status(e, actions[e.key].status) for e in everyone]
    assert warnings == 1  # one Warning for the failure, not one per tick


def _with_status(e: loop.Endpoint, status: dict[str, Any] | None) -> loop.Endpoint:
    if status is None:
        return e
    return loop.Endpoint(e.key, e.body | {"status": status}, e.spec, e.current, e.ready)


def test_a_recovered_endpoint_loses_the_condition(autoscaler: loop.Autoscaler) -> None:
    e = endpoint(0)
    failed = report.failed(Boom("x"), previous={}, generation=1, now=NOW)
    recovered = _with_status(e, failed)
    (action,) = autoscaler._decide([recovered], {e.key: FRESH}, None, NOW)
    assert action.status is not None  # written: the condition goes away
    assert "ScalingActive" not in {c["type"] for c in action.status["conditions"]}
