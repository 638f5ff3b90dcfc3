"""Knobs the user left out, derived from what the policy has seen of the endpoint. Pure.

The API leaves these fields optional and says so in their descriptions; an explicit
value always wins.

- Queue-depth target (R3): a queue of q per replica waits about q / c seconds when a
  replica serves c requests/s. With spec.slo.queueTimeMs = W set and c measured (the
  replicas were saturated for a whole rate window, demand.learn; c is the peak a
  replica served), the target is c x W x 0.4: the queue whose mean wait is 40 % of the
  objective, which bounds 99 % of waits, not their mean (half, the first proposal, met
  98.0-99.1 % on the bench's diurnal LLM; 0.4 met 98.0-99.4 % for 7 % more GPU time).
  A fixed depth is a different wait for every model (4 queued is 1.6 s on a 2.5 req/s
  LLM and 5 ms on a ResNet).
- Scale-down stabilization (R2): twice the cold start observed on this endpoint (from
  a scale-up until the ready count reaches it), within 60-300 s. The HPA's 300 s
  suits pods that start in seconds; a GPU replica held 300 s past its need costs
  several times what a restart costs when it loads in under a minute.
- Idle period (R4): ski rental over the endpoint's own idle gaps (keep_warm_s).
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand as demand_lib

# The target when the spec leaves it out and nothing better is known.
DEFAULT_TARGET = 4.0
# A derived queue-depth target never goes below this: under it one queued request on
# one replica of many would read as far over target.
MIN_QUEUE_TARGET = 0.5
# Which part of the queue-time objective the mean queue wait may use.
SLO_SHARE = 0.4


def target(
    spec: spec_api.TargetSpec, slo: spec_api.SloSpec | None, capacity: demand_lib.Capacity
) -> demand_lib.Target:
    """The target in force: the spec's value, else derived from the SLO, else 4."""
    if spec.value is not None:
        return demand_lib.Target(spec.type, spec.value)
    queue_ms = slo.queue_time_ms if slo is not None else None
    if (
        spec.type == spec_api.TargetType.QUEUE_DEPTH
        and queue_ms is not None
        and capacity.measured
        and capacity.peak
    ):
        depth = capacity.peak * queue_ms / 1000.0 * SLO_SHARE
        return demand_lib.Target(spec.type, max(MIN_QUEUE_TARGET, depth))
    return demand_lib.Target(spec.type, DEFAULT_TARGET)


# -- scale-down stabilization from the observed cold start (R2) -----------------------

# Scale-ups remembered until Ready, and cold starts kept for the median.
COLD_SAMPLES = 8
# The scale-down window is this many cold starts, within these bounds. Holding a
# replica one more window costs the window in GPU-seconds; starting it again costs a
# cold start and the requests that wait through it.
COLD_STARTS_PER_WINDOW = 2.0
MIN_DOWN_WINDOW_S = 60
MAX_DOWN_WINDOW_S = 300


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the policy has seen of the endpoint's own timing. `Observed()` to start."""

    # Scale-ups whose replicas are not all Ready yet: (asked at, replicas asked for).
    starting: tuple[tuple[datetime.datetime, int], ...] = ()
    cold_starts: tuple[float, ...] = ()  # seconds from a scale-up to Ready, newest last
    gaps: tuple[float, ...] = ()  # idle gaps (no traffic, pending or held), newest last


def observe(observed: Observed, current: int, ready: int, now: datetime.datetime) -> Observed:
    """This tick's replica counts: scale-ups that reached Ready become cold-start samples;
    those cut short by a scale-down (more asked for than now exist) are forgotten."""
    if not observed.starting:
        return observed
    done = tuple((now - at).total_seconds() for at, n in observed.starting if n <= ready)
    waiting = tuple((at, n) for at, n in observed.starting if ready < n <= current)
    if not done and len(waiting) == len(observed.starting):
        return observed
    samples = (*observed.cold_starts, *done)[-COLD_SAMPLES:]
    return dataclasses.replace(observed, starting=waiting, cold_starts=samples)


def scaled(
    observed: Observed, current: int, ready: int, desired: int, now: datetime.datetime
) -> Observed:
    """Remember a scale-up until its replicas are Ready."""
    if desired <= current or desired <= ready:
        return observed
    starting = (*observed.starting, (now, desired))[-COLD_SAMPLES:]
    return dataclasses.replace(observed, starting=starting)


def cold_start_s(observed: Observed) -> float | None:
    """The median observed cold start (None until one was seen)."""
    if not observed.cold_starts:
        return None
    return statistics.median(observed.cold_starts)


def down_window(rules: spec_api.ScalingRules, observed: Observed) -> int:
    """scaleDown.stabilizationSeconds, else two cold starts within 60-300 s (300 unseen)."""
    if rules.stabilization_seconds is not None:
        return rules.stabilization_seconds
    cold = cold_start_s(observed)
    if cold is None:
        return MAX_DOWN_WINDOW_S
    window = round(COLD_STARTS_PER_WINDOW * cold)
    return min(MAX_DOWN_WINDOW_S, max(MIN_DOWN_WINDOW_S, window))


# -- idle period from the endpoint's own idle gaps (R4) ---------------------------------

# Idle gaps remembered, and how many before they are trusted over the default.
GAP_SAMPLES = 48
MIN_GAPS = 4
# Shorter quiet spells are the rate window catching up, not gaps between uses.
MIN_GAP_S = 10.0
# The default idle period (scaleToZero.idleSeconds' old default) until gaps are known.
DEFAULT_IDLE_S = 900.0
# Cold start assumed before one is observed.
DEFAULT_COLD_S = 60.0
# What a wake from zero costs, in cold starts of GPU time: the restart itself plus the
# requests that arrive during it and miss their objective, which no GPU-second buys back.
WAKE_COST_COLD_STARTS = 10.0


def gap_ended(observed: Observed, idle_s: float) -> Observed:
    """Traffic resumed after `idle_s` seconds without any: one more idle gap."""
    if idle_s < MIN_GAP_S:
        return observed
    return dataclasses.replace(observed, gaps=(*observed.gaps, idle_s)[-GAP_SAMPLES:])


def keep_warm_s(observed: Observed) -> float:
    """How long to keep an idle endpoint's replicas before dropping to zero.

    Ski rental over the endpoint's own idle gaps (a histogram in the sense of "Serverless
    in the Wild", ATC'20): keeping warm for K costs min(gap, K) per gap, and a gap longer
    than K costs a wake on top (WAKE_COST_COLD_STARTS cold starts). K is the candidate
    (0 or an observed gap) with the least total cost over the remembered gaps: when gaps
    usually end within a few cold starts, K covers them; after longer ones the endpoint
    drops to zero at once.
    """
    if len(observed.gaps) < MIN_GAPS:
        return DEFAULT_IDLE_S
    wake = WAKE_COST_COLD_STARTS * (cold_start_s(observed) or DEFAULT_COLD_S)
    gaps = sorted(observed.gaps)
    # K = 0 first, then each gap in turn: the gaps up to K cost themselves, the rest K
    # and a wake each (one pass, this runs per endpoint per tick).
    best, best_cost = 0.0, len(gaps) * wake
    covered = 0.0
    for i, keep in enumerate(gaps, start=1):
        covered += keep
        cost = covered + (len(gaps) - i) * (keep + wake)
        if cost < best_cost:
            best, best_cost = keep, cost
    return best


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The settings in force for one tick: the spec's, with omitted ones derived."""

    target: demand_lib.Target
    up_window_s: int
    down_window_s: int
    idle_s: float  # scale to zero after this long idle (floor 0)
    idle_learned: bool  # idle_s comes from the idle gaps, not scaleToZero.idleSeconds


def knobs(
    scaling: spec_api.ScalingSpec,
    slo: spec_api.SloSpec | None,
    capacity: demand_lib.Capacity,
    observed: Observed,
) -> Knobs:
    behavior = scaling.behavior
    explicit_idle = scaling.scale_to_zero.idle_seconds
    return Knobs(
        target=target(scaling.target, slo, capacity),
        up_window_s=behavior.scale_up.stabilization_seconds or 0,
        down_window_s=down_window(behavior.scale_down, observed),
        idle_s=float(explicit_idle) if explicit_idle is not None else keep_warm_s(observed),
        idle_learned=explicit_idle is None,
    )
