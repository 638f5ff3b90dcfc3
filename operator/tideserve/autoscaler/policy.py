"""The autoscaling policy: signals + spec + clock + history -> desired replicas + reason.

Pure and deterministic: the operator's loop, the unit tests and the simulator call the
same `decide`. It combines, in this order, each step able to only narrow or override
the previous one, and the decision records which step decided:

1. external mode: report only ("External");
2. a hard-off window (maxReplicas 0): zero at once ("Schedule");
3. missing or stale signals: hold the current replicas within the schedule bounds,
   never down, never to zero; a request held at zero still wakes it ("Hold"); while
   waking (replicas asked for, none Ready, so no Triton series) a fresh held count is
   a signal: demand sizes on it and its growth, up only;
4. at zero with demand: wake at once, no stabilization ("Wake");
5. demand (demand.estimate): up on the short panic-window average as soon as it leaves
   the tolerance band, down on the stable-window average; panic mode (short-window
   demand >= panicThreshold x ready) scales up past the rate limits and blocks scale
   down until a stable window passes without a trigger ("Panic"/"ScaleUp"/"ScaleDown");
   HPA-style stabilization and rate limits (limits.py);
6. idle: with a floor of 0, zero after scaleToZero.idleSeconds without requests,
   pending or held ones; with a floor of 0 and anything in flight, at least 1 ("Idle");
7. schedule bounds (window min/max, prewarm) last: they are hard ("Schedule").
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import limits, schedules

# Signals older than this are not trusted: the policy holds.
STALE_AFTER_S = 60.0


@dataclasses.dataclass(frozen=True)
class Signals:
    pending: float | None  # queued requests summed over replicas (+ activator held)
    queue_time_s: float | None  # mean queue time per request over the rate window
    request_rate: float | None  # successful requests/s over the rate window
    held: int  # requests held by the activator
    age_s: float  # staleness of the freshest sample


@dataclasses.dataclass(frozen=True)
class Decision:
    desired: int
    reason: str  # in words, with the numbers: "queue 37 > 4/replica x 3 -> 10"
    kind: str  # ScaleUp ScaleDown Panic Idle Wake Schedule Hold Stable External
    window: str | None = None  # schedule window in force (status.activeSchedule)
    off_until: datetime.datetime | None = None  # end of a hard-off window (status.offUntil)


@dataclasses.dataclass(frozen=True)
class PolicyState:
    """What one endpoint's policy remembers between ticks. `PolicyState()` to start."""

    started: datetime.datetime | None = None
    needs: tuple[tuple[datetime.datetime, float], ...] = ()  # per-tick demand, replicas
    recommendations: tuple[limits.Recommendation, ...] = ()
    events: tuple[limits.ScaleEvent, ...] = ()
    last_active: datetime.datetime | None = None  # last tick with traffic, pending or held
    panic_since: datetime.datetime | None = None
    panic_triggered: datetime.datetime | None = None  # last tick that met the threshold
    capacity: demand_lib.Capacity = dataclasses.field(default_factory=demand_lib.Capacity)
    ready: int | None = None
    ready_since: datetime.datetime | None = None
    last_pending: tuple[datetime.datetime, float] | None = None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _clean(signals: Signals | None) -> Signals | None:
    """Negative or non-finite values (a counter reset, a division by ~0) are unknown."""
    if signals is None:
        return None
    return Signals(
        pending=_finite(signals.pending),
        queue_time_s=_finite(signals.queue_time_s),
        request_rate=_finite(signals.request_rate),
        held=max(0, signals.held),
        age_s=signals.age_s if math.isfinite(signals.age_s) else math.inf,
    )


def usable(signals: Signals | None, current: int) -> bool:
    """Whether signals can be trusted (else the policy holds: MetricsAvailable=False).

    At zero no Triton series exist and that is normal; with replicas running, no
    series at all means they are not scraped (yet): unknown, not idle.
    """
    if signals is None or signals.age_s > STALE_AFTER_S:
        return False
    return current == 0 or signals.pending is not None or signals.request_rate is not None


def waking_on_held(signals: Signals | None, current: int, ready: int) -> bool:
    """Replicas are starting and the activator's fresh held count is the only demand.

    Nothing is Ready, so Prometheus has no Triton series (not usable()), but the held
    count grows at the arrival rate: sizing on it lets a burst that needs more than the
    first replica ask for them during the cold start instead of after it.
    """
    return (
        signals is not None
        and current > 0
        and ready == 0
        and signals.held > 0
        and signals.age_s <= STALE_AFTER_S
        and signals.pending is None
        and signals.request_rate is None
    )


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes}m" if not rest else f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h" if not minutes else f"{hours}h{minutes}m"


def _start(state: PolicyState, current: int, ready: int, now: datetime.datetime) -> PolicyState:
    """Fresh state after a start or restart: seeded so the first ticks never scale down
    (the current count counts as a recommendation for the scale-down window) and the
    idle timer starts now."""
    if state.started is not None:
        if state.ready != ready:
            return dataclasses.replace(state, ready=ready, ready_since=now)
        return state
    return dataclasses.replace(
        state,
        started=now,
        recommendations=(limits.Recommendation(now, current),),
        last_active=now,
        ready=ready,
        ready_since=now,  # unknown since when: count from now
    )


def _prune(
    state: PolicyState, behavior: spec_api.BehaviorSpec, now: datetime.datetime
) -> PolicyState:
    keep = max(
        behavior.stable_window_seconds,
        behavior.scale_down.stabilization_seconds,
        behavior.scale_up.stabilization_seconds,
        behavior.scale_down.period_seconds,
        behavior.scale_up.period_seconds,
    )

    cutoff = now - datetime.timedelta(seconds=keep)
    # Histories are in time order: drop from the front (this runs per endpoint per tick).
    return dataclasses.replace(
        state,
        needs=limits.since(state.needs, cutoff, lambda n: n[0]),
        recommendations=limits.since(state.recommendations, cutoff, lambda r: r.at),
        events=limits.since(state.events, cutoff, lambda e: e.at),
    )


def _bounded(decision: Decision, bounds: schedules.Bounds, current: int) -> Decision:
    """Apply the schedule/base bounds last, and say so when they changed the outcome."""
    desired = min(max(decision.desired, bounds.min_replicas), bounds.max_replicas)
    window = bounds.window or (f"{bounds.prewarm} (prewarm)" if bounds.prewarm else None)
    decision = dataclasses.replace(decision, window=window, off_until=bounds.off_until)
    if desired == decision.desired:
        return decision
    if bounds.prewarm and desired == bounds.min_replicas and desired > decision.desired:
        opens = bounds.prewarm_opens.strftime("%H:%MZ") if bounds.prewarm_opens else "soon"
        why = f"schedule {bounds.prewarm} prewarm (opens {opens}) min {desired}"
    elif bounds.window:
        side = "min" if desired > decision.desired else "max"
        why = f"schedule {bounds.window} ({bounds.time_zone}) {side} {desired}"
    else:
        side = "minReplicas" if desired > decision.desired else "maxReplicas"
        why = f"{side} {desired}"
    if desired < decision.desired:
        # A ceiling caps the demand: keep the demand's words, they say why it pushed.
        why = f"{decision.reason.split(', held at')[0]}, capped at {why}"
    kind = "Schedule" if (bounds.window or bounds.prewarm) else decision.kind
    if kind not in {"Schedule", "Hold"}:
        kind = "ScaleUp" if desired > current else "ScaleDown" if desired < current else "Stable"
    return dataclasses.replace(decision, desired=desired, reason=why, kind=kind)


def _record(
    state: PolicyState, current: int, decision: Decision, now: datetime.datetime
) -> PolicyState:
    if decision.desired == current:
        return state
    event = limits.ScaleEvent(now, current, decision.desired)
    return dataclasses.replace(state, events=(*state.events, event))


def decide(
    scaling: spec_api.ScalingSpec,
    signals: Signals | None,
    current: int,
    ready: int,
    now: datetime.datetime,
    state: PolicyState,
) -> tuple[Decision, PolicyState]:
    """Desired replicas for one endpoint at `now`, and the state for its next tick."""
    state = _prune(_start(state, current, ready, now), scaling.behavior, now)
    bounds = schedules.bounds(scaling.min_replicas, scaling.max_replicas, scaling.schedules, now)
    if scaling.mode == spec_api.ScalingMode.EXTERNAL:
        decision = Decision(current, "external scaler owns replicas", "External")
        decision = dataclasses.replace(decision, window=bounds.window, off_until=bounds.off_until)
        return decision, state
    if bounds.max_replicas == 0:
        decision = Decision(0, f"schedule {bounds.window} ({bounds.time_zone}) max 0", "Schedule")
        decision = dataclasses.replace(decision, window=bounds.window, off_until=bounds.off_until)
        # Nothing served while off: the idle timer restarts when the window closes.
        state = dataclasses.replace(state, last_active=now, panic_since=None, needs=())
        return decision, _record(state, current, decision, now)

    signals = _clean(signals)
    held = signals.held if signals is not None else 0
    waking = waking_on_held(signals, current, ready)
    if not usable(signals, current) and not waking:
        return _hold(
            scaling,
            signals=signals,
            current=current,
            held=held,
            bounds=bounds,
            now=now,
            state=state,
        )
    assert signals is not None

    pending = max(signals.pending or 0.0, float(held))
    growth = 0.0
    if state.last_pending is not None:
        dt = (now - state.last_pending[0]).total_seconds()
        if 0 < dt <= 3 * STALE_AFTER_S:
            growth = (pending - state.last_pending[1]) / dt
    rate = signals.request_rate or 0.0
    behavior = scaling.behavior
    demand = demand_lib.estimate(
        scaling.target,
        tolerance=behavior.tolerance,
        pending=pending,
        queue_time_s=signals.queue_time_s,
        rate=rate,
        growth=growth,
        ready=ready,
        current=current,
        capacity=state.capacity,
        rate_known=signals.request_rate is not None,
    )
    state = dataclasses.replace(
        state,
        last_pending=(now, pending),
        needs=(*state.needs, (now, demand.need)),
        capacity=demand_lib.learn(
            state.capacity,
            demand=demand,
            rate=rate,
            ready=ready,
            ready_since=state.ready_since,
            now=now,
        ),
        last_active=now if (demand.active or held > 0) else state.last_active,
    )

    if current == 0:
        if not demand.active:
            decision = Decision(0, "idle at 0", "Stable")
            return _bounded(decision, bounds, current), state
        wake = max(1, demand_lib.replicas(demand.need))
        decision = _bounded(
            Decision(wake, f"wake: {held} held, {demand.text} -> {wake}", "Wake"), bounds, current
        )
        state = dataclasses.replace(
            state, recommendations=(limits.Recommendation(now, decision.desired),)
        )
        return decision, _record(state, current, decision, now)

    decision, state = _scale(
        scaling, demand=demand, current=current, ready=ready, now=now, state=state, up_only=waking
    )
    decision = _idle(
        scaling,
        bounds=bounds,
        demand=demand,
        decision=decision,
        current=current,
        held=held,
        now=now,
        state=state,
    )
    decision = _bounded(decision, bounds, current)
    return decision, _record(state, current, decision, now)


def _scale(
    scaling: spec_api.ScalingSpec,
    *,
    demand: demand_lib.Demand,
    current: int,
    ready: int,
    now: datetime.datetime,
    state: PolicyState,
    up_only: bool = False,
) -> tuple[Decision, PolicyState]:
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
            return Decision(target, reason, "Panic"), state
        return Decision(current, f"panic: hold {current} ({demand.text})", "Stable"), state

    state = dataclasses.replace(
        state,
        recommendations=(*state.recommendations, limits.Recommendation(now, recommendation)),
    )
    target, held_by = limits.stabilize(behavior, state.recommendations, current, now)
    target, limited_by = limits.rate_limit(behavior, state.events, current, target, now)
    kind = "ScaleUp" if target > current else "ScaleDown" if target < current else "Stable"
    reason = f"{demand.text} -> {recommendation}"
    if up_only:
        reason = f"waking on {demand.pending:.0f} held: {reason}"
    if held_by:
        reason += f", {held_by}"
    if limited_by:
        reason += f", {limited_by}"
    return Decision(target, reason, kind), state


def _idle(
    scaling: spec_api.ScalingSpec,
    *,
    bounds: schedules.Bounds,
    demand: demand_lib.Demand,
    decision: Decision,
    current: int,
    held: int,
    now: datetime.datetime,
    state: PolicyState,
) -> Decision:
    """Scale to zero after the idle period when the floor is 0; else keep at least one."""
    if bounds.min_replicas > 0:
        return decision
    if demand.active or held > 0:
        if decision.desired == 0:
            return dataclasses.replace(
                decision, desired=1, reason=decision.reason + ", in use: min 1"
            )
        return decision
    idle_s = (now - (state.last_active or now)).total_seconds()
    if idle_s >= scaling.scale_to_zero.idle_seconds:
        return Decision(0, f"idle {_duration(idle_s)} -> 0", "Idle")
    if decision.desired == 0:
        left = scaling.scale_to_zero.idle_seconds - idle_s
        return Decision(
            1,
            f"idle {_duration(idle_s)}, zero in {_duration(left)}: min 1",
            decision.kind if current != 1 else "Stable",
        )
    return decision


def _hold(
    scaling: spec_api.ScalingSpec,
    *,
    signals: Signals | None,
    current: int,
    held: int,
    bounds: schedules.Bounds,
    now: datetime.datetime,
    state: PolicyState,
) -> tuple[Decision, PolicyState]:
    """No trustworthy signals: keep what runs (the schedule still applies)."""
    if signals is None or not math.isfinite(signals.age_s):
        why = "no metrics"
    elif signals.age_s > STALE_AFTER_S:
        why = f"metrics stale {_duration(signals.age_s)}"
    else:
        why = "no metrics from the replicas"
    # Unknown is not idle: the idle timer restarts once signals return.
    state = dataclasses.replace(state, last_active=now, last_pending=None)
    if current == 0 and held > 0:
        decision = _bounded(Decision(1, f"wake: {held} held ({why}) -> 1", "Wake"), bounds, current)
    else:
        decision = _bounded(Decision(current, f"{why}: hold {current}", "Hold"), bounds, current)
    if decision.desired != current:
        state = dataclasses.replace(
            state, recommendations=(limits.Recommendation(now, decision.desired),)
        )
    return decision, _record(state, current, decision, now)
