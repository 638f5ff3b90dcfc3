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
7. what comes every hour: replicas a cold start ahead of a minute of the hour that
   brings more than the minutes around it, hour after hour (recommend.periodic), up
   only, never at or to zero;
8. schedule bounds (window min/max, prewarm) last: they are hard ("Schedule").
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import learned, limits, recommend, schedules
from tideserve.autoscaler import profile as profile_lib
from tideserve.autoscaler import state as state_lib

# Signals older than this are not trusted: the policy holds.
STALE_AFTER_S = 60.0


Signals = state_lib.Signals
Decision = state_lib.Decision
PolicyState = state_lib.PolicyState


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


def _start(state: PolicyState, current: int, ready: int, now: datetime.datetime) -> PolicyState:
    """Fresh state after a start or restart: seeded so the first ticks never scale down
    (the current count counts as a recommendation for the scale-down window) and the
    idle timer starts now. After a restart with idle gaps restored from the status (the
    timers are not kept there), an idle gap may have just ended: a returning burst's
    replicas are held as they would have been (learned.down_window_now)."""
    if state.started is not None:
        if state.ready != ready:
            return dataclasses.replace(state, ready=ready, ready_since=now)
        return state
    observed = state.observed
    if observed.gaps and observed.gap_end is None:
        observed = dataclasses.replace(observed, gap_end=now)
    return dataclasses.replace(
        state,
        observed=observed,
        started=now,
        recommendations=(limits.Recommendation(now, current),),
        last_active=now,
        ready=ready,
        ready_since=now,  # unknown since when: count from now
    )


def _prune(
    state: PolicyState,
    knobs: learned.Knobs,
    behavior: spec_api.BehaviorSpec,
    now: datetime.datetime,
) -> PolicyState:
    keep = max(
        behavior.stable_window_seconds,
        knobs.down_window_s,
        knobs.up_window_s,
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


def _gap(state: PolicyState, active: bool, now: datetime.datetime) -> learned.Observed:
    """An idle gap ends when traffic resumes after a quiet spell."""
    if not active or state.last_active is None:
        return state.observed
    return learned.gap_ended(state.observed, (now - state.last_active).total_seconds(), now)


def _record(
    state: PolicyState, current: int, ready: int, decision: Decision, now: datetime.datetime
) -> PolicyState:
    if decision.desired == current:
        return state
    event = limits.ScaleEvent(now, current, decision.desired)
    observed = learned.scaled(state.observed, current, ready, decision.desired, now)
    return dataclasses.replace(state, events=(*state.events, event), observed=observed)


def decide(
    scaling: spec_api.ScalingSpec,
    signals: Signals | None,
    current: int,
    ready: int,
    now: datetime.datetime,
    state: PolicyState,
    slo: spec_api.SloSpec | None = None,
) -> tuple[Decision, PolicyState]:
    """Desired replicas for one endpoint at `now`, and the state for its next tick.

    `slo` (the InferenceService's spec.slo) lets fields the user left out be derived
    from the objective (learned.py).
    """
    state = _start(state, current, ready, now)
    state = dataclasses.replace(
        state, observed=learned.observe(state.observed, current, ready, now)
    )
    knobs = learned.knobs(scaling, slo, state.capacity, state.observed)
    state = _prune(state, knobs, scaling.behavior, now)
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
        return decision, _record(state, current, ready, decision, now)

    signals = _clean(signals)
    held = signals.held if signals is not None else 0
    waking = waking_on_held(signals, current, ready)
    if not usable(signals, current) and not waking:
        # Unknown arrivals: the next count starts afresh instead of spreading a rate
        # over the blind spell.
        state = dataclasses.replace(state, counter=profile_lib.Counter())
        return _hold(
            scaling,
            signals=signals,
            current=current,
            ready=ready,
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
        knobs.target,
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
        observed=_gap(state, demand.active or held > 0, now),
    )
    arrived, counter = profile_lib.arrivals(state.counter, signals.request_rate, held, now)
    state = dataclasses.replace(
        state, counter=counter, observed=learned.counted(state.observed, arrived, now)
    )

    if current == 0:
        if not demand.active:
            decision = _prewarm(state, now) or Decision(0, "idle at 0", "Stable")
            decision = _bounded(decision, bounds, current)
            if decision.desired > 0:
                state = dataclasses.replace(
                    state,
                    prewarmed_at=now,
                    recommendations=(limits.Recommendation(now, decision.desired),),
                )
                return decision, _record(state, current, ready, decision, now)
            return decision, state
        wake = max(1, demand_lib.replicas(demand.need))
        decision = _bounded(
            Decision(wake, f"wake: {held} held, {demand.text} -> {wake}", "Wake"), bounds, current
        )
        state = dataclasses.replace(
            state, recommendations=(limits.Recommendation(now, decision.desired),)
        )
        return decision, _record(state, current, ready, decision, now)

    decision, state = recommend.scale(
        scaling,
        knobs=knobs,
        demand=demand,
        current=current,
        ready=ready,
        now=now,
        state=state,
        up_only=waking,
    )
    decision = recommend.idle(
        scaling,
        knobs=knobs,
        bounds=bounds,
        demand=demand,
        decision=decision,
        current=current,
        held=held,
        now=now,
        state=state,
    )
    decision = recommend.periodic(scaling, decision=decision, current=current, now=now, state=state)
    decision = _bounded(decision, bounds, current)
    return decision, _record(state, current, ready, decision, now)


def _prewarm(state: PolicyState, now: datetime.datetime) -> Decision | None:
    """At zero with nothing waiting: wake a cold start ahead of the time of day that
    usually brings traffic (the endpoint's own profile), else None."""
    expected = learned.expected_in_cold_start(state.observed, now)
    if expected is None or expected < learned.PREWARM_ARRIVALS:
        return None
    cold = learned.cold_start_s(state.observed) or learned.DEFAULT_COLD_S
    days = profile_lib.days(state.observed.profile)
    at = now + datetime.timedelta(seconds=cold)
    reason = (
        f"prewarm: ~{expected * 3600 / cold:.0f} requests/h usually arrive at "
        f"{at.strftime('%H:%MZ')} (learned over {days} day{'s' if days != 1 else ''}); "
        f"a cold start ({recommend.duration(cold)}) would make ~{expected:.1f} wait -> 1"
    )
    return Decision(1, reason, "Wake")


def _hold(
    scaling: spec_api.ScalingSpec,
    *,
    signals: Signals | None,
    current: int,
    ready: int,
    held: int,
    bounds: schedules.Bounds,
    now: datetime.datetime,
    state: PolicyState,
) -> tuple[Decision, PolicyState]:
    """No trustworthy signals: keep what runs (the schedule still applies)."""
    if signals is None or not math.isfinite(signals.age_s):
        why = "no metrics"
    elif signals.age_s > STALE_AFTER_S:
        why = f"metrics stale {recommend.duration(signals.age_s)}"
    else:
        why = "no metrics from the replicas"
    # Unknown is not idle: the idle timer restarts once signals return.
    state = dataclasses.replace(state, last_active=now, last_pending=None)
    # At zero, requests waiting anywhere (held, or queued in a stale last sample) wake it:
    # one replica is the cheap side of not knowing.
    waiting = max(float(held), (signals.pending or 0.0) if signals is not None else 0.0)
    if current == 0 and waiting > 0:
        decision = _bounded(
            Decision(1, f"wake: {waiting:.0f} waiting ({why}) -> 1", "Wake"), bounds, current
        )
    else:
        decision = _bounded(Decision(current, f"{why}: hold {current}", "Hold"), bounds, current)
    if decision.desired != current:
        state = dataclasses.replace(
            state, recommendations=(limits.Recommendation(now, decision.desired),)
        )
    return decision, _record(state, current, ready, decision, now)
