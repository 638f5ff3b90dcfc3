"""SLO-first keep-warm and the time-of-day profile: properties of the new policy behaviour."""

from __future__ import annotations

import dataclasses
import datetime
import itertools

import hypothesis
import pytest
from hypothesis import strategies as st

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand, learned, learned_status, policy, profile

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 11, 23, 0, 0, tzinfo=datetime.UTC)
TICK = datetime.timedelta(seconds=5)

gap_s = st.floats(learned.MIN_GAP_S, 86_400)
arrivals = st.floats(0, 5_000)
entries = st.lists(st.tuples(gap_s, arrivals, arrivals), min_size=learned.MIN_GAPS, max_size=48)
colds = st.floats(1, 900)


def observed(items: list[tuple[float, float, float]], cold: float) -> learned.Observed:
    return learned.Observed(
        cold_starts=(cold,),
        gaps=tuple(g for g, _, _ in items),
        gap_wake=tuple(m for _, m, _ in items),
        gap_cycle=tuple(n for _, _, n in items),
    )


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(entries, colds, st.floats(0.5, 0.9999))
def test_keep_warm_is_zero_or_an_observed_gap(items, cold, attainment) -> None:
    obs = observed(items, cold)
    assert learned.keep_warm_s(obs, attainment) in {0.0, *obs.gaps}


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(entries, colds, st.floats(1.0, 20.0))
def test_more_requests_waiting_on_a_wake_never_shorten_keep_warm(items, cold, factor) -> None:
    more = [(g, m * factor, n) for g, m, n in items]
    assert learned.keep_warm_s(observed(more, cold)) >= learned.keep_warm_s(observed(items, cold))


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(entries, colds, st.floats(0.5, 0.999), st.floats(0.0, 0.5))
def test_a_higher_attainment_objective_never_shortens_keep_warm(items, cold, a, more) -> None:
    stricter = min(0.9999, a + more * (1 - a))
    obs = observed(items, cold)
    assert learned.keep_warm_s(obs, stricter) >= learned.keep_warm_s(obs, a)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    st.lists(st.floats(0, 1.0), min_size=learned.MIN_GAPS, max_size=48), st.floats(1, 300)
)
def test_an_endpoint_used_one_request_at_a_time_far_apart_sleeps_at_once(wakes, cold) -> None:
    # Gaps of an hour or more, at most one request waiting on each wake.
    items = [(3600.0 + 60 * i, m, 1.0) for i, m in enumerate(wakes)]
    assert learned.keep_warm_s(observed(items, cold)) == 0.0


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    st.lists(st.floats(learned.MIN_GAP_S, 120), min_size=learned.MIN_GAPS, max_size=48),
    st.floats(30, 300),
)
def test_short_gaps_ending_in_bursts_are_kept_warm_through(gaps, cold) -> None:
    # Every gap shorter than a cold start and a burst of 50 requests after each.
    items = [(g, 50.0, 500.0) for g in gaps]
    assert learned.keep_warm_s(observed(items, cold)) == max(gaps)


def test_the_wake_count_is_what_arrives_within_a_cold_start_after_the_gap() -> None:
    obs = learned.Observed(cold_starts=(60.0,))
    obs = learned.counted(obs, 7.0, T0)  # before the gap: the cycle's
    obs = learned.gap_ended(obs, 600.0, T0 + datetime.timedelta(seconds=600))
    for s in (605, 630, 660):  # inside the cold start after it
        obs = learned.counted(obs, 10.0, T0 + datetime.timedelta(seconds=s))
    obs = learned.counted(obs, 99.0, T0 + datetime.timedelta(seconds=700))  # after it
    assert obs.gap_wake == (30.0,) and obs.gap_cycle == (7.0,) and obs.counted == 129.0


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 500), st.floats(1, 120)), max_size=60)
)
def test_arrivals_count_held_requests_once(ticks) -> None:
    """Requests held through a wake and then served are counted when held, not again."""
    counter, now, total_in, held_max = profile.Counter(), T0, 0.0, 0
    for rate, held, dt in ticks:
        now += datetime.timedelta(seconds=dt)
        got, counter = profile.arrivals(counter, rate, held, now)
        assert got >= 0 and counter.credit >= 0
        total_in += got
        held_max = max(held_max, held)
    served = sum(r * dt for r, _, dt in ticks[1:])
    grown = sum(max(0, b[1] - a[1]) for a, b in itertools.pairwise(ticks))
    # Timedeltas keep microseconds: a rate of 1000/s gains up to 1e-3 per tick.
    assert total_in <= served + grown + 1e-3 * len(ticks)


def _day_of_traffic(obs: learned.Observed, day: int, busy: range) -> learned.Observed:
    for minute in range(0, 24 * 60, 5):
        at = T0 + datetime.timedelta(days=day, minutes=minute)
        obs = learned.counted(obs, 100.0 if minute // 60 in busy else 0.0, at)
    return obs


def test_the_profile_learns_when_the_mornings_start() -> None:
    obs = learned.Observed(cold_starts=(60.0,))
    for day in range(3):
        obs = _day_of_traffic(obs, day, range(8, 18))
    assert profile.days(obs.profile) == 3
    morning = T0 + datetime.timedelta(days=3, hours=8)
    night = T0 + datetime.timedelta(days=3, hours=3)
    assert profile.rate_at(obs.profile, morning) == pytest.approx(100 / 300, rel=0.01)
    assert profile.rate_at(obs.profile, night) == 0.0
    # A cold start ahead of the morning, the profile expects its requests.
    before = morning - datetime.timedelta(seconds=60)
    assert (learned.expected_in_cold_start(obs, before) or 0) >= learned.PREWARM_ARRIVALS
    assert learned.expected_in_cold_start(obs, night) == 0.0


def test_a_quiet_night_endpoint_is_prewarmed_before_its_morning_and_says_why() -> None:
    obs = learned.Observed(cold_starts=(60.0,))
    for day in range(2):
        obs = _day_of_traffic(obs, day, range(8, 18))
    state = dataclasses.replace(policy.PolicyState(), observed=obs)
    spec = spec_api.ScalingSpec(min_replicas=0, max_replicas=4)
    nothing = policy.Signals(pending=None, queue_time_s=None, request_rate=None, held=0, age_s=1)
    now = T0 + datetime.timedelta(days=2, hours=7, minutes=50)
    current, woke_at, decision = 0, None, None
    while now < T0 + datetime.timedelta(days=2, hours=8):
        decision, state = policy.decide(spec, nothing, current, current, now, state)
        if decision.desired > current and woke_at is None:
            woke_at = now
        current = decision.desired
        now += TICK
    assert woke_at is not None and decision is not None
    lead = (T0 + datetime.timedelta(days=2, hours=8) - woke_at).total_seconds()
    assert 60 <= lead <= 60 + 2 * TICK.total_seconds()  # one cold start ahead, no earlier
    assert current == 1
    # At 03:00 the same endpoint stays at zero.
    night = T0 + datetime.timedelta(days=2, hours=3)
    quiet, _ = policy.decide(spec, nothing, 0, 0, night, state)
    assert quiet.desired == 0


def test_the_new_figures_survive_a_restart() -> None:
    obs = learned.Observed(cold_starts=(60.0,))
    obs = _day_of_traffic(obs, 0, range(8, 18))
    for i in range(learned.MIN_GAPS):
        obs = learned.gap_ended(obs, 100.0 + i, T0 + datetime.timedelta(days=1, minutes=i))
        obs = learned.counted(obs, 3.0, T0 + datetime.timedelta(days=1, minutes=i, seconds=5))
    state = dataclasses.replace(policy.PolicyState(), observed=obs)
    spec = spec_api.ScalingSpec(min_replicas=0)
    shown = learned_status.snapshot(state, spec, None)
    assert shown is not None and shown.requests_per_slot and shown.idle_gap_arrivals
    back = learned_status.restore(learned_status.parse(learned_status.dump(shown)))
    assert back.observed.gap_wake == obs.gap_wake
    assert back.observed.profile.per_slot == pytest.approx(obs.profile.per_slot, abs=0.05)
    assert learned.keep_warm_s(back.observed) == learned.keep_warm_s(obs)


# -- the break-even floor and the time-of-day rate (sleep_after_s, warm_rate) -------------


def test_a_wake_costs_its_cold_start_and_its_waiting_requests_at_the_miss_price() -> None:
    # 60 s cold start, 1.5 requests waiting on each wake at 10 cold starts each.
    assert learned.break_even_s(60.0, 1.5) == pytest.approx(60.0 * (1 + 10 * 1.5))
    assert learned.break_even_s(60.0, 0.0) == 60.0
    assert learned.break_even_s(60.0, -3.0) == 60.0


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(entries, colds, st.floats(0.5, 0.9999))
def test_sleep_after_is_keep_warm_raised_to_a_wakes_cost_never_past_the_hold_cap(
    items, cold, attainment
) -> None:
    obs = observed(items, cold)
    keep = learned.keep_warm_s(obs, attainment)
    sleep = learned.sleep_after_s(obs, attainment)
    assert sleep >= keep
    assert sleep <= max(keep, float(learned.MAX_HOLD_S))
    if keep == 0.0:
        # An endpoint whose gaps are not worth covering still sleeps at once.
        assert sleep == 0.0
    else:
        waiting = sum(m for _, m, _ in items) / len(items)
        allowed = learned.WAKE_SHARE * (1 - attainment) * sum(n for _, _, n in items) / len(items)
        wake = learned.break_even_s(cold, waiting - allowed)
        assert sleep >= min(wake, float(learned.MAX_HOLD_S))
        assert sleep == max(keep, min(wake, float(learned.MAX_HOLD_S)))


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(entries, colds, st.floats(0.5, 0.999), st.floats(0.0, 0.5))
def test_a_higher_attainment_objective_never_shortens_sleep_after(items, cold, a, more) -> None:
    stricter = min(0.9999, a + more * (1 - a))
    obs = observed(items, cold)
    assert learned.sleep_after_s(obs, stricter) >= learned.sleep_after_s(obs, a)


def test_wakes_the_miss_budget_allows_are_not_priced_by_the_floor() -> None:
    # Bursts of ~1,000 requests, pauses of a minute or two inside them and hours between
    # them; each wake makes 8 requests wait. At 99 % half the budget is 0.5 % of a cycle:
    # 5 requests a wake may miss, 3 over it. The floor prices those 3, not all 8.
    items = [(g, 8.0, 1000.0) for g in (60.0, 90.0, 120.0, 20_000.0, 80.0, 30_000.0)]
    obs = observed(items, 60.0)
    keep = learned.keep_warm_s(obs, 0.99)
    assert 0.0 < keep < 60.0 * (1 + 10 * 3)
    assert learned.misses_over_budget(obs, 0.99) == pytest.approx(3.0)
    assert learned.sleep_after_s(obs, 0.99) == pytest.approx(60.0 * (1 + 10 * 3))
    # At 99.9 % the budget is 0.5 a wake: 7.5 requests over it.
    assert learned.misses_over_budget(obs, 0.999) == pytest.approx(7.5)
    assert learned.sleep_after_s(obs, 0.999) == pytest.approx(60.0 * (1 + 10 * 7.5))
    # A status from an older operator may hold more gaps than counts: the newest of each
    # are paired (the counts belong to the newest gaps), never the oldest gaps.
    longer = dataclasses.replace(obs, gaps=(5.0e4, 6.0e4, *obs.gaps))
    assert learned.misses_over_budget(longer, 0.99) == pytest.approx(3.0)
    fewer = dataclasses.replace(obs, gap_cycle=obs.gap_cycle[2:], gap_wake=(0.0, *obs.gap_wake[1:]))
    # The last four: wakes of 8 against a budget of 5 each; the zeroed wake is older.
    assert learned.misses_over_budget(fewer, 0.99) == pytest.approx(3.0)
    # Wakes within the budget: nothing to price, and no gap worth covering: it sleeps at once.
    light = observed([(g, 4.0, 1000.0) for g, _, _ in items], 60.0)
    assert learned.misses_over_budget(light, 0.99) == 0.0
    assert learned.sleep_after_s(light, 0.99) == 0.0


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(entries, colds, st.floats(1.0, 20.0))
def test_more_requests_waiting_on_a_wake_never_shorten_sleep_after(items, cold, factor) -> None:
    more = [(g, m * factor, n) for g, m, n in items]
    assert learned.sleep_after_s(observed(more, cold)) >= learned.sleep_after_s(
        observed(items, cold)
    )


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    st.lists(st.floats(0, 1.0), min_size=learned.MIN_GAPS, max_size=48), st.floats(1, 300)
)
def test_far_apart_single_requests_still_sleep_at_once_after_the_floor(wakes, cold) -> None:
    items = [(3600.0 + 60 * i, m, 1.0) for i, m in enumerate(wakes)]
    assert learned.sleep_after_s(observed(items, cold)) == 0.0


def test_until_gaps_are_counted_sleep_after_is_keep_warm() -> None:
    few = learned.Observed(cold_starts=(60.0,), gaps=(100.0, 200.0))
    assert learned.sleep_after_s(few) == learned.keep_warm_s(few) == learned.DEFAULT_IDLE_S


def test_the_idle_period_in_force_has_the_floor_and_the_burst_hold_does_not() -> None:
    # Short gaps, each followed by a few requests: keep_warm covers them (120 s), and a
    # wake costs 60 s x (1 + 10 x 2.75) = 1710 s: 3 requests wait on it, 0.25 of them
    # (0.5 % of a 50-request cycle) within the 99 % objective's budget.
    items = [(g, 3.0, 50.0) for g in (60.0, 90.0, 120.0, 100.0, 80.0)]
    obs = observed(items, 60.0)
    spec = spec_api.ScalingSpec(min_replicas=0)
    k = learned.knobs(spec, None, demand.Capacity(), obs)
    assert learned.keep_warm_s(obs) == 120.0
    assert k.idle_s == pytest.approx(1710.0) and k.idle_learned
    assert k.down_window_s == 120


def _profiled(per_hour: float, cold: float = 60.0) -> learned.Observed:
    """Two days of `per_hour` requests in every 5-minute tick, all day."""
    obs = learned.Observed(cold_starts=(cold,))
    for minute in range(0, 2 * 24 * 60 + 5, 5):
        obs = learned.counted(obs, per_hour / 12, T0 + datetime.timedelta(minutes=minute))
    return obs


def _idle_decision(obs: learned.Observed, idle_seconds: int | None = None) -> policy.Decision:
    """One tick long past the idle period (learned unless pinned), one replica up,
    nothing arriving."""
    now = T0 + datetime.timedelta(days=2, hours=12)
    spec = spec_api.ScalingSpec(
        min_replicas=0, scale_to_zero=spec_api.ScaleToZeroSpec(idle_seconds=idle_seconds)
    )
    state = dataclasses.replace(
        policy.PolicyState(),
        observed=obs,
        started=now - datetime.timedelta(hours=1),
        last_active=now - datetime.timedelta(minutes=30),
    )
    quiet = policy.Signals(pending=0, queue_time_s=0.0, request_rate=0.0, held=0, age_s=1)
    decision, _ = policy.decide(spec, quiet, 1, 1, now, state)
    return decision


def test_an_idle_replica_is_kept_while_requests_usually_come_more_often_than_a_wake_costs() -> None:
    wake = learned.break_even_s(60.0, 1.0)  # 660 s: one request per 11 minutes
    often = _idle_decision(_profiled(2 * 3600 / wake))
    assert often.desired == 1
    assert "requests/h usually arrive at this time of day" in often.reason
    assert "11m" in often.reason
    rare = _idle_decision(_profiled(0.5 * 3600 / wake))
    assert rare.desired == 0 and rare.kind == "Idle"


def test_a_pinned_idle_period_is_not_overridden_by_the_time_of_day_keep_warm() -> None:
    # scaleToZero.idleSeconds set: "an explicit value always wins" (learned.py).
    wake = learned.break_even_s(60.0, 1.0)
    pinned = _idle_decision(_profiled(2 * 3600 / wake), idle_seconds=60)
    assert pinned.desired == 0 and pinned.kind == "Idle", pinned.reason


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(st.floats(0.0, 60.0), st.floats(10.0, 300.0))
def test_warm_rate_decides_keep_or_drop(per_hour, cold) -> None:
    obs = _profiled(per_hour, cold)
    usual = learned.usual_rate(obs, T0 + datetime.timedelta(days=2, hours=12))
    assert usual is not None
    assert usual == pytest.approx(per_hour / 3600, rel=1e-6, abs=1e-12)
    expect_warm = usual >= learned.warm_rate(obs) or (
        (learned.expected_in_cold_start(obs, T0) or 0) >= learned.PREWARM_ARRIVALS
    )
    assert (_idle_decision(obs).desired == 1) == expect_warm


# -- the burst hold applies around idle gaps, not through steady traffic ----------------

_BURSTS = [(g, 3.0, 50.0) for g in (200.0, 250.0, 300.0, 280.0, 260.0)]


def _hold_knobs(obs: learned.Observed) -> learned.Knobs:
    return learned.knobs(spec_api.ScalingSpec(min_replicas=0), None, demand.Capacity(), obs)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(st.floats(0, 20_000), st.booleans())
def test_the_scale_down_window_is_the_burst_hold_or_the_steady_one(since, active) -> None:
    obs = dataclasses.replace(observed(_BURSTS, 60.0), gap_end=T0)
    k = _hold_knobs(obs)
    assert k.down_window_s == 300 and k.steady_down_window_s == 120
    now = T0 + datetime.timedelta(seconds=since)
    window, why = learned.down_window_now(k, obs, active, now)
    if active and since > k.down_window_s:
        assert (window, why) == (k.steady_down_window_s, "")
    else:
        assert window == k.down_window_s
        assert "kept as long as an idle endpoint is kept warm" in why


def test_an_explicit_or_short_hold_is_the_only_window() -> None:
    obs = observed(_BURSTS, 60.0)
    spec = spec_api.ScalingSpec(min_replicas=0)
    down = spec.behavior.scale_down.model_copy(update={"stabilization_seconds": 30})
    spec = spec.model_copy(
        update={"behavior": spec.behavior.model_copy(update={"scale_down": down})}
    )
    pinned = learned.knobs(spec, None, demand.Capacity(), obs)
    assert learned.down_window_now(pinned, obs, True, T0 + TICK * 1000) == (30, "")
    few = learned.Observed(cold_starts=(60.0,))
    k = _hold_knobs(few)
    assert learned.down_window_now(k, few, False, T0) == (k.down_window_s, "")


def test_steady_traffic_long_after_the_last_gap_releases_replicas_on_the_steady_window() -> None:
    """Gaps seen in the morning (a 300 s hold learned from them) do not hold every replica
    300 s through the working day that follows: replicas above the need go after the
    steady window (two cold starts); right after a gap they are still held."""
    cap = demand.Capacity(per_replica=1.0, measured=True, peak=1.0)
    spec = spec_api.ScalingSpec(min_replicas=0, max_replicas=20)

    def run(gap_end: datetime.datetime) -> tuple[int, str]:
        obs = dataclasses.replace(observed(_BURSTS, 60.0), gap_end=gap_end)
        state = policy.PolicyState(capacity=cap, observed=obs)
        now = T0
        busy = policy.Signals(pending=0, queue_time_s=0.0, request_rate=8.0, held=0, age_s=1)
        light = policy.Signals(pending=0, queue_time_s=0.0, request_rate=2.0, held=0, age_s=1)
        decision, state = policy.decide(spec, busy, 8, 8, now, state)
        for _ in range(4 * 60 // 5):  # load drops to a quarter: 240 s of it
            now += TICK
            decision, state = policy.decide(
                spec, light, decision.desired, decision.desired, now, state
            )
        return decision.desired, decision.reason

    after_gap, why = run(T0 - datetime.timedelta(seconds=10))
    assert after_gap == 8 and "an idle gap ended" in why
    steady, _ = run(T0 - datetime.timedelta(hours=3))
    assert steady < 8


def test_a_restart_holds_a_returning_bursts_replicas_as_after_a_gap() -> None:
    """The gap's end is a timer, not in the status: an operator restarted (or a standby
    taking over) with the idle gaps restored treats now as a gap's end, so replicas a
    burst brought back are held by the learned hold, not released on the steady window."""
    obs = observed(_BURSTS, 60.0)
    state = policy.PolicyState(
        capacity=demand.Capacity(per_replica=1.0, measured=True, peak=1.0), observed=obs
    )
    spec = spec_api.ScalingSpec(min_replicas=0, max_replicas=20)
    k = learned.knobs(spec, None, state.capacity, obs)
    assert k.down_window_s > k.steady_down_window_s
    busy = policy.Signals(pending=0, queue_time_s=0.0, request_rate=8.0, held=0, age_s=1)
    light = policy.Signals(pending=0, queue_time_s=0.0, request_rate=2.0, held=0, age_s=1)
    decision, state = policy.decide(spec, busy, 8, 8, T0, state)
    assert state.observed.gap_end == T0
    now = T0
    for _ in range(4 * 60 // 5):  # load drops to a quarter: 240 s of it
        now += TICK
        decision, state = policy.decide(spec, light, decision.desired, decision.desired, now, state)
    assert decision.desired == 8 and "an idle gap ended" in decision.reason
    _, first_start = policy.decide(spec, busy, 8, 8, T0, policy.PolicyState())
    assert first_start.observed.gap_end is None  # no gaps seen yet: nothing to hold for
