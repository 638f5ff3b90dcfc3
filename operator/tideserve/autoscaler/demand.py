"""How many replicas one tick's signals ask for, and what a replica can serve. Pure.

Two terms, combined with max():
- the queue term, HPA-like: the per-replica queue metric over its target, times the
  replicas (for queueDepth that is simply pending / target);
- the rate term: arrivals per second over what one replica serves with its queue at
  the target (the learned `capacity`). A queue-only controller oscillates, because a
  well-sized endpoint has an empty queue and an empty queue asks for zero replicas;
  the rate term remembers why the replicas are there.

Capacity is learned from the endpoint itself: when the queue sits at or above target
with a settled replica count, rate/ready is what a replica serves there (measured);
below target it is only a lower bound. Until something is measured, scaling down
probes one replica at a time, and only while the queue is well below target.
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from tideserve.api import spec as spec_api

# Ready replicas must be unchanged this long before rate/ready teaches capacity: the
# request rate is a Prometheus rate() over a window (signals.RATE_WINDOW_S) and still
# counts the replicas of before a change until the window has passed.
SETTLE_S = 45.0
# Below this request rate an endpoint counts as idle (one request in a 30 s window is 0.033/s).
ACTIVE_RATE = 1e-3
# A scale-down probe (without a measured capacity) needs the queue below this fraction
# of its target.
PROBE_FRACTION = 0.5
# No need is larger than this (the API caps maxReplicas at 10,000); guards the rounding.
MAX_REPLICAS = 1_000_000
# Above target, the backlog beyond target is worked off over this many seconds.
DRAIN_S = 60.0
# Waking (nothing Ready), the backlog is worked off over this instead: every replica
# asked for becomes Ready at about the same time, and until the held backlog is gone
# each fresh request queues behind it (FIFO) and misses too. Each extra replica costs
# one cold start and a scale-down window; each second of drain costs a second of
# arrivals. bench bursty seed 1, default spec: 60 s 74.8 % at 23.1 GPU-h, 30 s 79.5 %
# at 27.5, 15 s 81.0 % at 31.7 (docs/benchmarks/policy-requests.md).
WAKE_DRAIN_S = 30.0
# A probe releases this fraction of the replicas at most (a quarter down per step).
PROBE_STEP = 0.75
# The queue must have stayed at or above target this long (the Prometheus rate window,
# assemble.RATE_WINDOW_S) before rate/ready counts towards the peak.
SATURATED_FOR_S = 30.0
# How much of a new saturated measurement replaces the old one.
LEARN_WEIGHT = 0.5


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Requests/s one replica serves with its queue at the target."""

    per_replica: float | None = None
    measured: bool = False  # False: a lower bound from unsaturated periods
    # The most one replica was seen to serve after its queue had stayed at or above
    # target for a whole rate window (SATURATED_FOR_S). per_replica is what a replica
    # serves with its queue *at the target*, so a target derived from it
    # (learned.target) would feed on itself: a lower target, a lower measurement, a
    # lower target again. The peak only grows towards the replica's real throughput.
    peak: float | None = None
    saturated_since: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """The target in force this tick: the spec's, or the value derived for it (learned.py)."""

    type: spec_api.TargetType
    value: float


@dataclasses.dataclass(frozen=True)
class Demand:
    need: float  # replicas asked for, unrounded
    pending: float
    arrival: float  # requests/s arriving (served rate + queue growth)
    load: float  # the target metric's current value, per replica
    saturated: bool  # the queue is at or above target
    active: bool  # anything arriving, queued or held
    text: str  # the dominant term in words, without the "-> n"


def _queue_load(
    target: Target,
    *,
    pending: float,
    queue_time_s: float | None,
    arrival: float,
    ready: int,
    capacity: Capacity,
) -> tuple[float, float, str]:
    """(queue need in replicas, per-replica metric value, words)."""
    per = max(ready, 1)
    if target.type == spec_api.TargetType.QUEUE_TIME:
        millis = (queue_time_s or 0.0) * 1000.0
        if ready == 0:
            return (1.0 if pending > 0 else 0.0), millis, f"queue time {millis:.0f}ms"
        return per * millis / target.value, millis, f"queue time {millis:.0f}ms"
    if target.type == spec_api.TargetType.CONCURRENCY:
        # Triton exports queued requests, not in-flight ones: add one per busy replica,
        # estimated from the learned capacity. Unknown capacity counts none: counting
        # every ready replica as busy would ask for one more each tick, without end.
        busy = min(float(ready), arrival / capacity.per_replica) if capacity.per_replica else 0.0
        in_flight = pending + busy
        return in_flight / target.value, in_flight / per, f"concurrency {in_flight:.3g}"
    return pending / target.value, pending / per, f"queue {pending:.3g}"


def estimate(
    target: Target,
    *,
    tolerance: float,
    pending: float,
    queue_time_s: float | None,
    rate: float,
    growth: float,
    ready: int,
    current: int,
    capacity: Capacity,
    rate_known: bool = True,
) -> Demand:
    """The replicas this tick's signals ask for.

    Above target, a known per-replica rate sizes the answer: arrivals plus the excess
    backlog worked off over DRAIN_S, over what one replica serves, bounded above by the
    HPA-style ratio. Sizing on the backlog alone (pending / target) asks for a replica
    per few queued requests: after a burst, or a cold start during which requests
    piled up, that is many times what the arrivals need, and a scale-down window keeps
    them. Without any rate known the ratio stands, but while replicas are starting
    (ready < current, or waking from zero) the backlog is left to them.
    """
    queue_need, load, words = _queue_load(
        target,
        pending=pending,
        queue_time_s=queue_time_s,
        arrival=rate,
        ready=ready,
        capacity=capacity,
    )
    # Queue growth adds to the served rate only when the queue is past target (or
    # nothing serves yet): below it, tick-to-tick changes of a few requests are noise,
    # and scaling up on noise costs a cold start and a scale-down window each time.
    past_target = queue_need > max(ready, 1) or ready == 0
    arrival = rate + (max(0.0, growth) if past_target else 0.0)
    if target.type == spec_api.TargetType.CONCURRENCY:
        # Judged on the queue alone: the in-flight estimate uses the capacity, and
        # learning capacity from it would feed on itself.
        # Every replica busy (one in flight each) plus the queue reaches the target.
        saturated = (
            ready > 0
            and pending >= ready
            and (pending + ready) / ready >= target.value * (1.0 - tolerance)
        )
    else:
        saturated = ready > 0 and load >= target.value * (1.0 - tolerance)
    unit = "ms" if target.type == spec_api.TargetType.QUEUE_TIME else "/replica"
    compare = ">" if load > target.value else "<"
    text = f"{words} {compare} {target.value:g}{unit} x {ready}"

    serving = capacity.per_replica
    if saturated and rate > ACTIVE_RATE and not capacity.measured:
        # Busy replicas serve what they can: a better figure than a lower bound.
        serving = max(serving or 0.0, rate / ready)
    above = queue_need > max(ready, 1) * (1 + tolerance) or (ready == 0 and pending > 0)
    if above and serving:
        excess = pending * (1.0 - max(ready, 0) / queue_need) if queue_need > 0 else 0.0
        drain = WAKE_DRAIN_S if ready == 0 else DRAIN_S
        sized = (arrival + max(0.0, excess) / drain) / serving
        # Above target and not draining: at least a step past the tolerance band.
        floor = ready * (1 + tolerance) + 1e-6 if growth >= 0 and ready > 0 else float(ready)
        queue_part = min(queue_need, max(sized, floor))
        text = f"{text}, arrivals {arrival:.3g}/s at {serving:.3g}/s per replica"
    elif ready < current or current == 0:
        queue_part = min(queue_need, float(max(current, 1)))
    elif above and not rate_known:
        # No rate known yet (the replicas just became ready, their series are new):
        # at most double per tick until one is, rather than a replica per few queued.
        queue_part = min(queue_need, 2.0 * max(current, 1))
    else:
        queue_part = queue_need

    if capacity.per_replica:
        rate_need = arrival / capacity.per_replica
        if not capacity.measured:
            # A lower bound only holds replicas (more is the queue's call), and may be
            # far too low: probe down a step while the queue is well below target.
            rate_need = min(rate_need, float(ready))
            if ready > 1 and load < target.value * PROBE_FRACTION:
                rate_need = min(rate_need, probe(ready, tolerance))
    elif arrival > ACTIVE_RATE:
        # Nothing known about capacity: the rate alone never releases a replica,
        # except one probing step while the queue is well below target.
        low = load < target.value * PROBE_FRACTION
        rate_need = probe(ready, tolerance) if low and ready > 1 else float(ready)
    else:
        rate_need = 0.0
    if rate_need > queue_part and capacity.per_replica:
        text = f"rate {arrival:.3g}/s at {capacity.per_replica:.3g}/s per replica, {text}"
    need = max(queue_part, rate_need)
    active = pending > 0 or arrival > ACTIVE_RATE
    return Demand(need, pending, arrival, load, saturated, active, text)


def learn(
    capacity: Capacity,
    *,
    demand: Demand,
    rate: float,
    ready: int,
    ready_since: datetime.datetime | None,
    now: datetime.datetime,
) -> Capacity:
    """Update what a replica serves from a tick with a settled replica count."""
    since = (capacity.saturated_since or now) if demand.saturated and ready > 0 else None
    if since != capacity.saturated_since:
        capacity = dataclasses.replace(capacity, saturated_since=since)
    if ready <= 0 or rate <= ACTIVE_RATE or ready_since is None:
        return capacity
    if (now - ready_since).total_seconds() < SETTLE_S:
        return capacity
    observed = rate / ready
    if demand.saturated:
        peak = capacity.peak
        if since is not None and (now - since).total_seconds() >= SATURATED_FOR_S:
            # The rate window now covers saturated time only.
            peak = max(peak or 0.0, observed)
        if capacity.measured and capacity.per_replica:
            observed = LEARN_WEIGHT * observed + (1 - LEARN_WEIGHT) * capacity.per_replica
        return Capacity(observed, measured=True, peak=peak, saturated_since=since)
    if capacity.per_replica is None or observed > capacity.per_replica:
        return dataclasses.replace(capacity, per_replica=observed)
    return capacity


def probe(ready: int, tolerance: float) -> float:
    """One probing step down: a quarter, at least one replica, and past the tolerance band."""
    step = min(ready * PROBE_STEP, ready * (1 - tolerance) - 1e-6)
    return float(max(1, min(ready - 1, math.floor(step))))


def replicas(need: float) -> int:
    """Round a replica need up, forgiving float noise (3.0000001 is 3)."""
    if not math.isfinite(need):
        return MAX_REPLICAS
    return min(MAX_REPLICAS, max(0, math.ceil(need - 1e-9)))
