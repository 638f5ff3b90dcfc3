"""Steps 5 and 6 of a decision (see policy.py): demand to a stabilized, rate-limited
recommendation with panic mode, then the idle floor and scale to zero. Pure."""

from __future__ import annotations

import dataclasses
import datetime

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import learned, limits, schedules
from tideserve.autoscaler import profile as profile_lib
from tideserve.autoscaler import state as state_lib


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes}m" if not rest else f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h" if not minutes else f"{hours}h{minutes}m"


def scale(
    scaling: spec_api.ScalingSpec,
    *,
    knobs: learned.Knobs,
    demand: demand_lib.Demand,
    current: int,
    ready: int,
    now: datetime.datetime,
    state: state_lib.PolicyState,
    up_only: bool = False,
) -> tuple[state_lib.Decision, state_lib.PolicyState]:
    """Demand -> recommendation: panic mode, tolerance band, stabilization, rate limits."""
    behavior = scaling.behavior
    short = limits.mean(state.needs, now, behavior.panic_window_seconds)
    stable = limits.mean(state.needs, now, behavior.stable_window_seconds)
    base = max(ready, 1)
    if short >= behavior.panic_threshold * base and short > current:
        state = dataclasses.replace(
            state, panic_since=state.panic_since or now, panic_triggered=now
        )
    elif state.panic_triggered is not None and (
        (now - state.panic_triggered).total_seconds() >= behavior.stable_window_seconds
    ):
        state = dataclasses.replace(state, panic_since=None, panic_triggered=None)

    band = behavior.tolerance
    # Up on the latest tick (a queue growing now is not averaged away), down on the
    # stable window's average.
    latest = state.needs[-1][1]
    if latest > current * (1 + band):
        recommendation = demand_lib.replicas(latest)
    elif max(stable, latest) < current * (1 - band):
        # Never below the latest need: just after a rise the average still remembers
        # the quieter past, and scaling down on it would undo the scale up.
        recommendation = demand_lib.replicas(max(stable, latest))
    else:
        recommendation = current
    started = state.started or now
    if (now - started).total_seconds() < behavior.stable_window_seconds or up_only:
        # Just (re)started: the history that would justify releasing replicas is gone.
        # Waking on the held count alone: it says nothing about what the replicas will
        # serve once Ready, so it may add replicas, never release them.
        recommendation = max(recommendation, current)
    if state.panic_since is not None:
        # Panic: scale up only, straight to what the burst asks for.
        target = max(current, recommendation)
        state = dataclasses.replace(
            state, recommendations=(*state.recommendations, limits.Recommendation(now, target))
        )
        if target > current:
            factor = short / base
            reason = f"panic: {demand.text}, {factor:.1f}x ready capacity -> {target}"
            return state_lib.Decision(target, reason, "Panic"), state
        return state_lib.Decision(
            current, f"panic: hold {current} ({demand.text})", "Stable"
        ), state

    state = dataclasses.replace(
        state,
        recommendations=(*state.recommendations, limits.Recommendation(now, recommendation)),
    )
    down, why = learned.down_window_now(knobs, state.observed, demand.active, now)
    target, held_by = limits.stabilize(knobs.up_window_s, down, state.recommendations, current, now)
    if held_by and why and "scale-up" not in held_by:
        held_by += f" ({why})"
    target, limited_by = limits.rate_limit(behavior, state.events, current, target, now)
    kind = "ScaleUp" if target > current else "ScaleDown" if target < current else "Stable"
    reason = f"{demand.text} -> {recommendation}"
    if up_only:
        reason = f"waking on {demand.pending:.0f} held: {reason}"
    if held_by:
        reason += f", {held_by}"
    if limited_by:
        reason += f", {limited_by}"
    return state_lib.Decision(target, reason, kind), state


# Of the last profile.HOURS_KEPT hours, those in which a minute must have brought more than
# the minutes around it to be prepared for.
PERIODIC_HOURS = 3


def periodic(
    scaling: spec_api.ScalingSpec,
    *,
    decision: state_lib.Decision,
    current: int,
    now: datetime.datetime,
    state: state_lib.PolicyState,
) -> state_lib.Decision:
    """Ready for what comes every hour: replicas for a minute of the hour that brings more
    than the minutes around it, hour after hour (timers, cron jobs), asked for a cold start
    (and a minute) before it starts and kept until it ends. Sized on what one replica
    serves at the target (measured, not a lower bound), at the level of the last ten
    minutes times the minute's ratio plus its spread; a minute whose extra is inside the
    tolerance band is not acted on, nor a need inside it; at most twice the decision it
    raises, within the scale-up rate limits. Runs after the idle step: never wakes or
    holds an endpoint that is going to zero, and never scales down."""
    capacity = state.capacity.per_replica
    hour = state.observed.hour
    level = profile_lib.level(hour)
    if (
        current == 0
        or decision.desired == 0
        or not capacity
        or not state.capacity.measured
        or level is None
    ):
        return decision
    behavior = scaling.behavior
    band = behavior.tolerance
    cold = learned.cold_start_s(state.observed) or learned.DEFAULT_COLD_S
    this_minute = now.replace(second=0, microsecond=0)
    best: tuple[int, datetime.datetime, float, float] | None = None
    # A cold start ahead, and a minute more: the ask waits for a tick, the start may be slow.
    ahead = cold + 60.0
    for k in range(int(ahead // 60) + 2):
        at = this_minute + datetime.timedelta(minutes=k)
        if (at - now).total_seconds() > ahead:
            break
        learned_ratio = profile_lib.ratio_at(hour, at)
        # A minute that comes back every hour: above the minutes around it by more than the
        # tolerance band and by more than its spread over the hours, and above them in most
        # of the last hours (bursts that came once or twice at that minute leave a wide
        # spread or a gap).
        if (
            learned_ratio is None
            or learned_ratio[0] <= 1.0 + band
            or learned_ratio[0] - learned_ratio[1] <= 1.0
            or profile_lib.hours_above(hour, at) < PERIODIC_HOURS
        ):
            continue
        # Sized for the minute's usual size and its usual spread over the hours; a guess
        # never more than doubles the decision it raises.
        high = learned_ratio[0] + learned_ratio[1]
        wanted = level * high / capacity
        if wanted <= decision.desired * (1.0 + band):
            continue
        need = min(2 * decision.desired, demand_lib.replicas(wanted))
        if best is None or need > best[0]:
            best = (need, at, learned_ratio[0], high)
    if best is None or best[0] <= decision.desired:
        return decision
    need, at, ratio, high = best
    target, limited_by = limits.rate_limit(behavior, state.events, current, need, now)
    if target <= decision.desired:
        return decision
    seen = hour.seen[at.minute]
    hours = f"{seen}+" if seen >= profile_lib.MAX_SEEN else f"{seen}"
    reason = (
        f"minute :{at.minute:02d} of the hour usually brings {ratio:.1f}x the minutes around "
        f"it, up to {high:.1f}x (learned over {hours} h): up to {level * high:.1f}/s expected "
        f"at {at.strftime('%H:%MZ')}, {capacity:.1f}/s per replica -> {need}"
    )
    if limited_by:
        reason += f", {limited_by}"
    if decision.kind == "Panic":
        return dataclasses.replace(decision, desired=target, reason=f"{decision.reason}; {reason}")
    kind = "ScaleUp" if target > current else "ScaleDown" if target < current else "Stable"
    return dataclasses.replace(decision, desired=target, reason=reason, kind=kind)


def idle(
    scaling: spec_api.ScalingSpec,
    *,
    knobs: learned.Knobs,
    bounds: schedules.Bounds,
    demand: demand_lib.Demand,
    decision: state_lib.Decision,
    current: int,
    held: int,
    now: datetime.datetime,
    state: state_lib.PolicyState,
) -> state_lib.Decision:
    """Scale to zero after the idle period when the floor is 0; else keep at least one."""
    if bounds.min_replicas > 0:
        return decision
    if demand.active or held > 0:
        if decision.desired == 0:
            return dataclasses.replace(
                decision, desired=1, reason=decision.reason + ", in use: min 1"
            )
        return decision
    # A prewarm restarts the idle timer (not the gap being measured: it is no traffic).
    since = state.last_active or now
    if state.prewarmed_at is not None:
        since = max(since, state.prewarmed_at)
    idle_s = (now - since).total_seconds()
    if idle_s >= knobs.idle_s:
        expected = learned.expected_in_cold_start(state.observed, now)
        if expected is not None and expected >= learned.PREWARM_ARRIVALS:
            # The time of day usually brings traffic: a wake would make it wait.
            return state_lib.Decision(
                max(1, min(decision.desired, current)),
                f"idle {duration(idle_s)}, but ~{expected:.1f} requests usually arrive "
                "within a cold start at this time of day: min 1",
                "Stable",
            )
        # Only when the idle period is learned: a pinned scaleToZero.idleSeconds wins.
        usual = learned.usual_rate(state.observed, now) if knobs.idle_learned else None
        if usual is not None and usual >= learned.warm_rate(state.observed):
            # Requests usually come often enough now that waiting warm for the next one
            # costs less than the wake it would make.
            wake = 1.0 / learned.warm_rate(state.observed)
            return state_lib.Decision(
                max(1, min(decision.desired, current)),
                f"idle {duration(idle_s)}, but ~{usual * 3600:.0f} requests/h usually arrive "
                f"at this time of day, more than one per wake's cost ({duration(wake)}): min 1",
                "Stable",
            )
        return state_lib.Decision(
            0, f"idle {duration(idle_s)}{_why_zero(knobs, state)} -> 0", "Idle"
        )
    if decision.desired == 0:
        left = knobs.idle_s - idle_s
        return state_lib.Decision(
            1,
            f"idle {duration(idle_s)}, zero in {duration(left)}: min 1",
            decision.kind if current != 1 else "Stable",
        )
    return decision


def _why_zero(knobs: learned.Knobs, state: state_lib.PolicyState) -> str:
    """The learned idle period in words: how long, and what a wake costs in requests."""
    observed = state.observed
    if not knobs.idle_learned or not observed.gaps:
        return ""
    misses = learned.wake_misses(observed)
    cost = "" if misses is None else f"; a wake makes ~{misses:.1f} requests wait"
    if misses is not None:
        # What the floor prices (learned.sleep_after_s): the misses past the budget.
        over = learned.misses_over_budget(observed, knobs.attainment)
        if misses - over >= 0.05:
            cost += f", ~{over:.1f} past the miss budget of attainment {knobs.attainment:.4g}"
    return (
        f" (keep warm {duration(knobs.idle_s)}, learned from {len(observed.gaps)} idle gaps{cost})"
    )
