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


def test_target_waits_a_share_of_the_slo_at_the_peak_rate() -> None:
    # 2.5 req/s per replica, 2 s objective: 2 queued per replica wait ~0.8 s (40 %).
    assert learned.SLO_SHARE == 0.4
    assert learned.target(DEPTH, SLO, MEASURED) == demand.Target(DEPTH.type, 2.0)


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


# -- R4: idle period from the endpoint's own idle gaps ----------------------------------


def with_gaps(*gaps: float, cold: float = 50.0) -> learned.Observed:
    return learned.Observed(cold_starts=(cold,), gaps=gaps)


def test_until_a_few_gaps_are_seen_the_idle_period_is_900() -> None:
    assert learned.keep_warm_s(with_gaps(100.0, 100.0, 100.0)) == learned.DEFAULT_IDLE_S


def test_gaps_that_end_within_a_few_cold_starts_are_kept_warm() -> None:
    # A wake costs 10 cold starts (500 s): keeping warm 120 s through each gap is cheaper.
    assert learned.keep_warm_s(with_gaps(60.0, 90.0, 120.0, 100.0, 80.0)) == 120.0


def test_after_long_gaps_the_endpoint_drops_to_zero_at_once() -> None:
    assert learned.keep_warm_s(with_gaps(3000.0, 5000.0, 4000.0, 7200.0)) == 0.0


def test_a_rare_short_gap_is_not_worth_keeping_warm_for() -> None:
    # Keeping 300 s through each of five long gaps costs more than the one wake it saves.
    assert learned.keep_warm_s(with_gaps(300.0, 3000.0, 5000.0, 4000.0, 7200.0, 6000.0)) == 0.0
    # 60 s is: it costs 5 x 60 s and saves a 500 s wake.
    assert learned.keep_warm_s(with_gaps(60.0, 3000.0, 5000.0, 4000.0, 7200.0, 6000.0)) == 60.0


def test_a_slower_cold_start_keeps_warm_longer() -> None:
    gaps = (300.0, 300.0, 3000.0, 4000.0)
    assert learned.keep_warm_s(with_gaps(*gaps, cold=10.0)) == 0.0
    assert learned.keep_warm_s(with_gaps(*gaps, cold=120.0)) == 300.0


def test_quiet_spells_shorter_than_the_minimum_are_not_gaps() -> None:
    assert learned.gap_ended(learned.Observed(), 5.0) == learned.Observed()
    assert learned.gap_ended(learned.Observed(), 45.0).gaps == (45.0,)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.floats(0, 86_400), max_size=120), st.floats(1, 900))
def test_keep_warm_is_an_observed_gap_zero_or_the_default(gaps: list[float], cold: float) -> None:
    observed = learned.Observed(cold_starts=(cold,))
    for gap in gaps:
        observed = learned.gap_ended(observed, gap)
    assert len(observed.gaps) <= learned.GAP_SAMPLES
    keep = learned.keep_warm_s(observed)
    assert keep in {0.0, learned.DEFAULT_IDLE_S, *observed.gaps}


def test_policy_learns_gaps_and_idles_to_zero_after_the_keep_warm_period() -> None:
    spec = spec_api.ScalingSpec(min_replicas=0, max_replicas=10)
    busy = policy.Signals(pending=0, queue_time_s=0.0, request_rate=5, held=0, age_s=1)
    quiet = policy.Signals(pending=0, queue_time_s=0.0, request_rate=0, held=0, age_s=1)
    state, now, current = policy.PolicyState(), T0, 1
    decision = None

    def run(signals: policy.Signals, seconds: int) -> policy.Decision:
        nonlocal state, now, current
        for _ in range(seconds // 5):
            decision, state = policy.decide(spec, signals, current, current, now, state)
            current = decision.desired
            now += TICK
        return decision

    # Four uses with 60 s pauses between them: short gaps, kept warm through.
    for _ in range(learned.MIN_GAPS):
        run(busy, 60)
        assert run(quiet, 60).desired >= 1
    run(busy, 60)
    assert len(state.observed.gaps) == learned.MIN_GAPS
    assert 0 < learned.keep_warm_s(state.observed) < learned.DEFAULT_IDLE_S
    # The idle period in force: at least a wake's cost (~300 requests wait on each).
    keep = learned.sleep_after_s(state.observed)
    assert learned.keep_warm_s(state.observed) < keep <= learned.MAX_HOLD_S
    quiet_for = 0
    while current > 0:
        decision = run(quiet, 5)
        quiet_for += 5
        assert quiet_for <= keep + 60  # the rate window: idle begins once it reads 0
    assert decision.kind == "Idle"
    assert "learned from 4 idle gaps" in decision.reason
    # What the floor priced: the waiting requests past the 99 % objective's budget.
    over = learned.misses_over_budget(state.observed, 0.99)
    assert 0 < over < learned.wake_misses(state.observed)
    assert f"~{over:.1f} past the miss budget of attainment 0.99" in decision.reason
    assert quiet_for >= keep


def test_an_explicit_idle_period_wins_over_the_gaps() -> None:
    spec = spec_api.ScalingSpec(
        min_replicas=0, scale_to_zero=spec_api.ScaleToZeroSpec(idle_seconds=600)
    )
    k = learned.knobs(spec, None, demand.Capacity(), with_gaps(3000.0, 5000.0, 4000.0, 7200.0))
    assert (k.idle_s, k.idle_learned) == (600.0, False)


# -- waking: the held backlog is drained fast ---------------------------------------------


def test_waking_sizes_the_held_backlog_over_the_wake_drain_time() -> None:
    estimate = demand.estimate(
        demand.Target(spec_api.TargetType.QUEUE_DEPTH, 4.0),
        tolerance=0.1,
        pending=600.0,
        queue_time_s=None,
        rate=0.0,
        growth=20.0,
        ready=0,
        current=1,
        capacity=demand.Capacity(10.0, measured=True, peak=10.0),
        rate_known=False,
    )
    # 20/s arriving plus 600 held over 30 s, at 10/s per replica.
    assert estimate.need == pytest.approx((20.0 + 600.0 / demand.WAKE_DRAIN_S) / 10.0)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    st.lists(st.sampled_from([30.0, 60.0, 120.0]) | st.floats(10, 20_000), min_size=4, max_size=48),
    st.floats(1, 600),
)
def test_keep_warm_minimises_the_ski_rental_cost(gaps: list[float], cold: float) -> None:
    observed = learned.Observed(cold_starts=(cold,), gaps=tuple(gaps))
    wake = learned.WAKE_COST_COLD_STARTS * cold

    def cost(keep: float) -> float:
        return sum(min(gap, keep) + (wake if gap > keep else 0.0) for gap in gaps)

    best = min(cost(keep) for keep in {0.0, *gaps})
    assert cost(learned.keep_warm_s(observed)) == pytest.approx(best)
