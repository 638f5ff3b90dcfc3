"""What repeats every hour: the minute-of-hour profile and the step that prepares for it."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand, learned, limits, policy, profile, recommend

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


def test_minutes_without_a_tick_are_unknown_not_silent() -> None:
    h = _hours({}, hours=1)
    assert len(h.recent) == profile.KEPT_MINUTES
    # Three minutes without a tick (metrics held, the operator down): the count starts
    # over, nothing is folded for them.
    later = T0 + datetime.timedelta(hours=1, minutes=3)
    h2 = profile.observe_minutes(h, 1.0, later)
    assert h2.recent == () and profile.level(h2) is None
    assert h2.ratios == h.ratios and h2.above == h.above
    # A clock that went back: the same.
    h3 = profile.observe_minutes(h, 1.0, T0 + datetime.timedelta(minutes=30))
    assert h3.recent == () and h3.ratios == h.ratios


def test_ticks_far_apart_learn_nothing() -> None:
    # Steady 8/s seen every 90 s: each tick's arrivals would all land in one minute and
    # the minutes between look empty; none of it is learned.
    h = profile.HourProfile()
    now = T0
    while now < T0 + datetime.timedelta(hours=5):
        h = profile.observe_minutes(h, 8.0 * 90, now)
        now += datetime.timedelta(seconds=90)
    assert profile.level(h) is None
    assert all(profile.ratio_at(h, T0.replace(minute=m)) is None for m in range(60))


def _learned(per_minute: dict[int, float], capacity: float = 12.0, measured: bool = True):
    """State whose minute-of-hour profile learned 5 hours of 100 requests a minute (about
    1.7/s) except `per_minute`, and whose replicas serve `capacity`/s."""
    return policy.PolicyState(
        capacity=demand.Capacity(per_replica=capacity, measured=measured),
        observed=learned.Observed(cold_starts=(60.0,), hour=_hours(per_minute, hours=5)),
    )


SPEC = spec_api.ScalingSpec.model_validate({"minReplicas": 0, "maxReplicas": 10})
AT_58 = T0 + datetime.timedelta(hours=5, minutes=58, seconds=30)  # 90 s before :00


def _periodic(state, desired: int = 1, current: int = 1, at=AT_58, kind="Stable", spec=SPEC):
    before = policy.Decision(desired, "queue 0 < 4/replica x 1 -> 1", kind)
    return recommend.periodic(spec, decision=before, current=current, now=at, state=state)


def test_the_ask_starts_a_cold_start_and_a_minute_ahead_and_ends_with_the_minute() -> None:
    state = _learned({0: 1500.0}, capacity=10.0)  # 15x at :00: 25/s expected, 3 replicas
    assert _periodic(state).desired == 2  # capped at twice the decision
    assert _periodic(state, desired=2, current=2).desired == 3
    too_early = T0 + datetime.timedelta(hours=5, minutes=57, seconds=55)  # 125 s ahead
    assert _periodic(state, at=too_early).desired == 1
    during = T0 + datetime.timedelta(hours=6, seconds=40)
    assert _periodic(state, at=during).desired == 2
    after = T0 + datetime.timedelta(hours=6, minutes=1, seconds=5)
    assert _periodic(state, at=after).desired == 1


def test_the_kind_says_which_way_the_replicas_move() -> None:
    state = _learned({0: 1500.0}, capacity=10.0)
    assert _periodic(state, desired=1, current=1).kind == "ScaleUp"
    # Five running, the demand asks for two, the minute for three: still a scale-down.
    down = _periodic(state, desired=2, current=5)
    assert (down.desired, down.kind) == (3, "ScaleDown")
    same = _periodic(state, desired=2, current=3)
    assert (same.desired, same.kind) == (3, "Stable")
    panic = _periodic(state, desired=2, current=2, kind="Panic")
    assert panic.kind == "Panic" and "minute :00" in panic.reason


def test_what_is_not_acted_on() -> None:
    timer = {0: 1500.0}
    # An unmeasured capacity is a lower bound: sizing on it would overshoot.
    assert _periodic(_learned(timer, measured=False)).desired == 1
    # Above the minutes around it in only 2 of the last 4 hours.
    h = profile.HourProfile()
    now = T0
    while now < T0 + datetime.timedelta(hours=5):
        count = 1500.0 if now.minute == 0 and now.hour in (12, 13, 14) else 100.0
        h = profile.observe_minutes(h, count / 12.0, now)
        now += TICK
    assert profile.hours_above(h, T0) == 2
    state = _periodic(
        policy.PolicyState(
            capacity=demand.Capacity(per_replica=12.0, measured=True),
            observed=learned.Observed(cold_starts=(60.0,), hour=h),
        )
    )
    assert state.desired == 1
    # A minute only a little above the others (inside the 10 % tolerance band).
    assert _periodic(_learned({0: 108.0}, capacity=1.0)).desired == 1
    # A need inside the band of what the decision already has.
    assert _periodic(_learned({0: 150.0}, capacity=2.4), desired=1).desired == 1
    # Going to zero (the idle step decided): never held up or woken.
    assert _periodic(_learned(timer), desired=0, current=1).desired == 0


def test_the_scale_up_rate_limits_apply() -> None:
    spec = spec_api.ScalingSpec.model_validate(
        {
            "minReplicas": 0,
            "maxReplicas": 10,
            "behavior": {
                "scaleUp": {"maxPercent": 1, "maxReplicasChange": 1, "periodSeconds": 600}
            },
        }
    )
    state = _learned({0: 1500.0}, capacity=10.0)
    got = _periodic(state, desired=2, current=2, spec=spec)
    assert got.desired == 3  # asked 3 (twice 2 would be 4; 25/s needs 3): one more is allowed
    recent = (limits.ScaleEvent(AT_58 - datetime.timedelta(seconds=60), 1, 2),)
    state = dataclasses.replace(state, events=recent)
    assert _periodic(state, desired=2, current=2, spec=spec).desired == 2


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
