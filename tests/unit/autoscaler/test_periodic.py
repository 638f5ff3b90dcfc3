"""What repeats every hour: the minute-of-hour profile and the step that prepares for it."""

from __future__ import annotations

import datetime

import pytest

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand, learned, policy, profile

T0 = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
TICK = datetime.timedelta(seconds=5)


def _hours(per_minute: dict[int, float], hours: int, base: float = 100.0) -> profile.HourProfile:
    """`hours` of traffic counted tick by tick: `base` requests a minute, except the minutes
    of the hour in `per_minute`."""
    h = profile.HourProfile()
    now = T0
    while now < T0 + datetime.timedelta(hours=hours):
        count = per_minute.get(now.minute, base)
        h = profile.observe_minutes(h, count / 12.0, now)
        now += TICK
    return h


def test_a_timer_on_the_hour_is_learned_and_steady_minutes_are_not() -> None:
    h = _hours({0: 300.0, 30: 200.0}, hours=5)
    on_the_hour = profile.ratio_at(h, T0.replace(minute=0))
    half_past = profile.ratio_at(h, T0.replace(minute=30))
    steady = profile.ratio_at(h, T0.replace(minute=17))
    assert on_the_hour is not None and half_past is not None and steady is not None
    # Against the mean of the five minutes on each side (100 requests each).
    assert on_the_hour == pytest.approx((3.0, 0.0), abs=1e-6)
    assert half_past == pytest.approx((2.0, 0.0), abs=1e-6)
    assert steady == pytest.approx((1.0, 0.0), abs=1e-6)
    assert profile.hours_above(h, T0.replace(minute=0)) == profile.HOURS_KEPT
    assert profile.hours_above(h, T0.replace(minute=17)) == 0
    assert profile.level(h) == pytest.approx(100 / 60)


def test_a_rise_through_the_day_is_not_a_pattern() -> None:
    # Requests grow by 1 % a minute for five hours (a morning ramp): every minute brings
    # more than the ones before it, but not more than the ones around it.
    h = profile.HourProfile()
    now = T0
    while now < T0 + datetime.timedelta(hours=5):
        minutes = (now - T0).total_seconds() / 60
        h = profile.observe_minutes(h, 100.0 * 1.01**minutes / 12.0, now)
        now += TICK
    for minute in range(60):
        mean, spread = profile.ratio_at(h, T0.replace(minute=minute)) or (0.0, 0.0)
        assert mean == pytest.approx(1.0, abs=0.01)
        assert mean - spread <= 1.0


def test_nothing_is_known_before_three_hours() -> None:
    h = _hours({0: 300.0}, hours=2)
    assert profile.ratio_at(h, T0.replace(minute=0)) is None


def test_a_burst_that_came_once_leaves_a_wide_spread() -> None:
    # 5x at minute :07 in the second hour only, then four ordinary hours.
    h = profile.HourProfile()
    now = T0
    while now < T0 + datetime.timedelta(hours=6):
        burst = now.minute == 7 and now.hour == 13
        h = profile.observe_minutes(h, (500.0 if burst else 100.0) / 12.0, now)
        now += TICK
    mean, spread = profile.ratio_at(h, T0.replace(minute=7)) or (0.0, 0.0)
    assert mean > 1.2
    assert mean - spread <= 1.0  # not "above the minutes before it hour after hour"
    assert profile.hours_above(h, T0.replace(minute=7)) == 0  # four ordinary hours since


def test_minutes_without_a_tick_are_silent_if_few_and_unknown_if_many() -> None:
    h = _hours({}, hours=1)
    assert len(h.recent) == profile.KEPT_MINUTES
    # Three minutes missed: counted as silent ones.
    later = T0 + datetime.timedelta(hours=1, minutes=3)
    h2 = profile.observe_minutes(h, 1.0, later)
    assert h2.recent[-3:] == (0.0, 0.0, 0.0)
    # An hour missed (the operator was down): the level starts over.
    h3 = profile.observe_minutes(h, 1.0, T0 + datetime.timedelta(hours=2, minutes=1))
    assert h3.recent == () and profile.level(h3) is None


def _run(
    rate_at_minute: dict[int, float], until: datetime.datetime
) -> tuple[policy.Decision, list[policy.Decision]]:
    """One endpoint from T0 to `until`: arrivals per second by the minute of the hour (8/s
    otherwise), each Ready replica (Ready at once) serving 12/s at most, the rest queued.
    Returns the decision at `until` and every decision of the last hour."""
    spec = spec_api.ScalingSpec.model_validate({"minReplicas": 0, "maxReplicas": 10})
    state = policy.PolicyState(
        capacity=demand.Capacity(per_replica=12.0, measured=True),
        observed=learned.Observed(cold_starts=(60.0,)),
    )
    current, now, queue, last = 1, T0, 0.0, []
    decision = None
    dt = TICK.total_seconds()
    while now <= until:
        arriving = queue + rate_at_minute.get(now.minute, 8.0) * dt
        served = min(arriving, 12.0 * current * dt)
        queue = arriving - served
        sig = policy.Signals(
            pending=queue, queue_time_s=0.0, request_rate=served / dt, held=0, age_s=1
        )
        decision, state = policy.decide(spec, sig, current, current, now, state)
        current = decision.desired
        if until - now <= datetime.timedelta(hours=1):
            last.append(decision)
        now += TICK
    assert decision is not None
    return decision, last


def test_replicas_are_asked_for_a_cold_start_before_the_timer_and_say_why() -> None:
    # 8/s, and 20/s in minute :00 (what two replicas serve, not one).
    before = T0 + datetime.timedelta(hours=4, minutes=59)
    decision, _ = _run({0: 20.0}, before)
    assert decision.desired == 2
    assert "minute :00 of the hour usually brings" in decision.reason
    assert "(learned over 4 h)" in decision.reason and "-> 2" in decision.reason


def test_a_guess_never_more_than_doubles_what_runs() -> None:
    # 8/s, and 100/s in minute :00: nine replicas' worth, asked for as two ahead of it.
    decision, _ = _run({0: 100.0}, T0 + datetime.timedelta(hours=4, minutes=59))
    assert "minute :00" in decision.reason
    assert decision.desired == 2


def test_steady_traffic_asks_for_nothing_ahead() -> None:
    _, last = _run({}, T0 + datetime.timedelta(hours=4, minutes=59))
    assert all(d.desired == 1 for d in last)
    assert not any("of the hour" in d.reason for d in last)
