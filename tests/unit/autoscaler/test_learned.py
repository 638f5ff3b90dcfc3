"""Knobs the user left out, derived from the SLO and from what the policy saw."""

from __future__ import annotations

import dataclasses
import datetime

import hypothesis
import pytest
from hypothesis import strategies as st

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand, learned, policy

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
TICK = datetime.timedelta(seconds=5)
DEPTH = spec_api.TargetSpec()  # queueDepth, value left out
SLO = spec_api.SloSpec(queue_time_ms=2000)
MEASURED = demand.Capacity(2.0, measured=True, peak=2.5)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


# -- R3: queue-depth target from spec.slo.queueTimeMs ------------------------------------


def test_target_waits_half_the_slo_at_the_peak_rate() -> None:
    # 2.5 req/s per replica, 2 s objective: 2.5 queued per replica wait ~1 s.
    assert learned.target(DEPTH, SLO, MEASURED) == demand.Target(DEPTH.type, 2.5)


def test_an_explicit_target_wins() -> None:
    explicit = spec_api.TargetSpec(value=4.0)
    assert learned.target(explicit, SLO, MEASURED).value == 4.0


@pytest.mark.parametrize(
    ("slo", "capacity"),
    [
        (None, MEASURED),
        (spec_api.SloSpec(latency_ms=100), MEASURED),
        (SLO, demand.Capacity(2.0, measured=False, peak=None)),
        (SLO, demand.Capacity()),
    ],
)
def test_without_an_slo_or_a_measured_peak_the_target_is_4(
    slo: spec_api.SloSpec | None, capacity: demand.Capacity
) -> None:
    assert learned.target(DEPTH, slo, capacity).value == learned.DEFAULT_TARGET


def test_other_target_types_keep_4() -> None:
    queue_time = spec_api.TargetSpec(type=spec_api.TargetType.QUEUE_TIME)
    assert learned.target(queue_time, SLO, MEASURED).value == learned.DEFAULT_TARGET


def test_a_tight_slo_never_drives_the_target_below_the_floor() -> None:
    tight = spec_api.SloSpec(queue_time_ms=1)
    assert learned.target(DEPTH, tight, MEASURED).value == learned.MIN_QUEUE_TARGET


def saturated(rate: float) -> demand.Demand:
    return demand.Demand(4.0, 8.0, rate, 4.0, saturated=True, active=True, text="")


def test_peak_counts_only_after_a_whole_rate_window_saturated() -> None:
    capacity = demand.Capacity()
    ready_since = at(-600)
    for second in range(0, 30, 5):
        capacity = demand.learn(
            capacity,
            demand=saturated(4.0),
            rate=4.0,
            ready=2,
            ready_since=ready_since,
            now=at(second),
        )
    assert capacity.measured and capacity.peak is None
    capacity = demand.learn(
        capacity, demand=saturated(5.0), rate=5.0, ready=2, ready_since=ready_since, now=at(30)
    )
    assert capacity.peak == 2.5


def test_peak_never_falls() -> None:
    capacity = demand.Capacity(2.0, measured=True, peak=3.0, saturated_since=at(-100))
    capacity = demand.learn(
        capacity, demand=saturated(2.0), rate=2.0, ready=2, ready_since=at(-600), now=at(0)
    )
    assert capacity.peak == 3.0
    assert capacity.per_replica is not None and capacity.per_replica < 2.0


# -- R2: scale-down window from the observed cold start ---------------------------------


def test_a_scale_up_becomes_a_cold_start_sample_when_ready_reaches_it() -> None:
    observed = learned.scaled(learned.Observed(), current=1, ready=1, desired=3, now=at(0))
    observed = learned.observe(observed, current=3, ready=2, now=at(40))
    assert observed.cold_starts == ()
    observed = learned.observe(observed, current=3, ready=3, now=at(75))
    assert observed.cold_starts == (75.0,)
    assert observed.starting == ()


def test_a_scale_up_cut_short_by_a_scale_down_is_forgotten() -> None:
    observed = learned.scaled(learned.Observed(), current=1, ready=1, desired=4, now=at(0))
    observed = learned.observe(observed, current=2, ready=1, now=at(20))
    assert observed == learned.Observed()


def test_scale_downs_and_already_ready_counts_are_not_scale_ups() -> None:
    assert learned.scaled(learned.Observed(), 3, 3, 2, at(0)) == learned.Observed()
    assert learned.scaled(learned.Observed(), 2, 4, 3, at(0)) == learned.Observed()


@pytest.mark.parametrize(
    ("colds", "window"), [((), 300), ((75.0,), 150), ((10.0, 12.0), 60), ((400.0,), 300)]
)
def test_down_window_is_two_cold_starts_within_60_to_300(
    colds: tuple[float, ...], window: int
) -> None:
    rules = spec_api.BehaviorSpec().scale_down
    assert learned.down_window(rules, learned.Observed(cold_starts=colds)) == window


def test_an_explicit_down_window_wins() -> None:
    rules = spec_api.ScalingRules(
        stabilization_seconds=600, max_percent=100, max_replicas_change=4, period_seconds=15
    )
    assert learned.down_window(rules, learned.Observed(cold_starts=(30.0,))) == 600


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)), max_size=60)
)
def test_down_window_stays_within_bounds_and_memory_stays_bounded(
    ticks: list[tuple[int, int, int]],
) -> None:
    observed = learned.Observed()
    rules = spec_api.BehaviorSpec().scale_down
    for i, (current, ready, desired) in enumerate(ticks):
        now = at(5 * i)
        observed = learned.observe(observed, current, min(ready, current), now)
        observed = learned.scaled(observed, current, min(ready, current), desired, now)
        assert 60 <= learned.down_window(rules, observed) <= 300
        assert len(observed.starting) <= learned.COLD_SAMPLES
        assert len(observed.cold_starts) <= learned.COLD_SAMPLES


def test_policy_scales_down_after_twice_the_observed_cold_start() -> None:
    spec = spec_api.ScalingSpec(max_replicas=20)
    state = policy.PolicyState()
    now, current, ready = T0, 2, 2
    busy = policy.Signals(pending=40, queue_time_s=1.0, request_rate=20, held=0, age_s=1)
    quiet = policy.Signals(pending=0, queue_time_s=0.0, request_rate=5, held=0, age_s=1)

    def tick(signals: policy.Signals) -> policy.Decision:
        nonlocal state, now, current
        decision, state = policy.decide(spec, signals, current, ready, now, state)
        current = decision.desired
        now += TICK
        return decision

    for _ in range(24):  # past the start-up grace, replicas starting for 40 s
        tick(busy)
    asked = current
    assert asked > 2
    for _ in range(8):
        tick(busy)
    ready = asked
    tick(busy)
    assert learned.cold_start_s(state.observed) is not None
    cold = learned.cold_start_s(state.observed)
    assert cold is not None
    window = learned.down_window(spec.behavior.scale_down, state.observed)
    assert window == max(60, min(300, round(2 * cold)))
    decision = tick(quiet)
    assert f"by the {window}s" in decision.reason or decision.desired == current
    kinds = [tick(quiet).kind for _ in range(window // 5 + 2)]
    assert "ScaleDown" in kinds


def test_policy_state_starts_with_nothing_observed() -> None:
    assert dataclasses.replace(policy.PolicyState()).observed == learned.Observed()
