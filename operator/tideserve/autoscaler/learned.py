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
- Idle period (R4): the endpoint's own idle gaps and what arrived after each, against
  the attainment objective (keep_warm_s), and once gaps are worth covering at all,
  never shorter than what a wake costs (sleep_after_s, the ski-rental break-even, its
  waiting requests priced past the objective's miss budget);
  prewarming, and staying warm while requests usually come more often than one per
  wake's cost (warm_rate), from its time-of-day profile.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics

from tideserve.api import spec as spec_api
from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import profile as profile_lib

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
    # Per gap (same order): requests that arrived within a cold start after it ended (what
    # a wake from zero would have made wait), and requests since the gap before it ended.
    gap_wake: tuple[float, ...] = ()
    gap_cycle: tuple[float, ...] = ()
    counted: float = 0.0  # requests since the last gap ended
    wake_from: datetime.datetime | None = None  # last gap's end, while its cold start runs
    gap_end: datetime.datetime | None = None  # last gap's end (a timer: not in the status)
    profile: profile_lib.Profile = dataclasses.field(default_factory=profile_lib.Profile)
    # What repeats every hour (timers, cron jobs): kept in memory only, relearned in a few
    # hours after a restart.
    hour: profile_lib.HourProfile = dataclasses.field(default_factory=profile_lib.HourProfile)


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


# -- idle period from the endpoint's own idle gaps and arrivals (R4) --------------------

# Idle gaps remembered, and how many before they are trusted over the default.
GAP_SAMPLES = 48
MIN_GAPS = 4
# Shorter quiet spells are the rate window catching up, not gaps between uses.
MIN_GAP_S = 10.0
# The default idle period (scaleToZero.idleSeconds' old default) until gaps are known.
DEFAULT_IDLE_S = 900.0
# Cold start assumed before one is observed.
DEFAULT_COLD_S = 60.0
# Without arrival counts (a status from an older operator): a wake priced at this many
# cold starts of GPU time.
WAKE_COST_COLD_STARTS = 10.0
# The part of the miss budget (1 - slo.attainment) that wakes from zero may use; the rest
# is left to queueing under load.
WAKE_SHARE = 0.5
# A request missed beyond that budget is worth this many cold starts of GPU time: high
# enough that a burst's first seconds are kept warm for, low enough that an endpoint used
# once an hour sleeps between uses (one miss an hour costs less than an hour warm).
MISS_PRICE_COLD_STARTS = 10.0


def gap_ended(observed: Observed, idle_s: float, now: datetime.datetime | None = None) -> Observed:
    """Traffic resumed after `idle_s` seconds without any: one more idle gap, and the
    count of what arrives in the cold start after it begins."""
    if idle_s < MIN_GAP_S:
        return observed
    n = GAP_SAMPLES
    return dataclasses.replace(
        observed,
        gaps=(*observed.gaps, idle_s)[-n:],
        gap_wake=(*observed.gap_wake, 0.0)[-n:],
        gap_cycle=(*observed.gap_cycle, observed.counted)[-n:],
        counted=0.0,
        wake_from=now,
        gap_end=now,
    )


def counted(observed: Observed, arrived: float, now: datetime.datetime) -> Observed:
    """This tick's arrivals: into the profile, the running count, and the open wake."""
    prof = profile_lib.observe(observed.profile, arrived, now)
    hour = profile_lib.observe_minutes(observed.hour, arrived, now)
    wake_from, wake = observed.wake_from, observed.gap_wake
    if wake_from is not None:
        cold = cold_start_s(observed) or DEFAULT_COLD_S
        if (now - wake_from).total_seconds() <= cold:
            if wake:
                wake = (*wake[:-1], wake[-1] + arrived)
        else:
            wake_from = None
    return dataclasses.replace(
        observed,
        profile=prof,
        hour=hour,
        counted=observed.counted + arrived,
        wake_from=wake_from,
        gap_wake=wake,
    )


def _ski_rental(gaps: list[float], wake: float) -> float:
    """Without arrival counts: keeping warm for K costs min(gap, K) per gap, and a gap
    longer than K a wake on top; the K of least total cost (0 or an observed gap)."""
    gaps = sorted(gaps)
    best, best_cost = 0.0, len(gaps) * wake
    covered = 0.0
    for i, keep in enumerate(gaps, start=1):
        covered += keep
        cost = covered + (len(gaps) - i) * (keep + wake)
        if cost < best_cost:
            best, best_cost = keep, cost
    return best


def keep_warm_s(observed: Observed, attainment: float = 0.99) -> float:
    """How long to keep an idle endpoint's replicas before dropping to zero.

    SLO first: each remembered gap g_i comes with the requests that arrived within a cold
    start after it (m_i, what a wake from zero makes miss) and the requests of its cycle
    (n_i). Keeping warm for K costs min(g_i, K) GPU-seconds per gap; a gap longer than K
    costs a cold start and its m_i misses. Misses up to WAKE_SHARE x (1 - attainment) x
    sum n_i are within the objective; beyond it each costs MISS_PRICE_COLD_STARTS cold
    starts. K is the candidate (0 or an observed gap) of least total cost, so gaps that
    end in a burst are kept warm through, and an endpoint whose uses come one at a time,
    far apart, sleeps at once.
    """
    if len(observed.gaps) < MIN_GAPS:
        return DEFAULT_IDLE_S
    cold = cold_start_s(observed) or DEFAULT_COLD_S
    k = min(len(observed.gaps), len(observed.gap_wake), len(observed.gap_cycle))
    if k < MIN_GAPS:
        return _ski_rental(list(observed.gaps), WAKE_COST_COLD_STARTS * cold)
    entries = sorted(
        zip(observed.gaps[-k:], observed.gap_wake[-k:], observed.gap_cycle[-k:], strict=True)
    )
    budget = WAKE_SHARE * (1.0 - attainment) * sum(n for _, _, n in entries)
    price = MISS_PRICE_COLD_STARTS * cold
    # K = 0: every gap a wake; then K = each gap in turn, covering it and those below.
    missed = sum(m for _, m, _ in entries)
    covered = 0.0
    best, best_cost = 0.0, len(entries) * cold + price * max(0.0, missed - budget)
    for i, (gap, m, _) in enumerate(entries, start=1):
        covered += gap
        missed -= m
        rest = len(entries) - i
        cost = covered + rest * (gap + cold) + price * max(0.0, missed - budget)
        if cost < best_cost:
            best, best_cost = gap, cost
    return best


def sleep_after_s(observed: Observed, attainment: float = 0.99) -> float:
    """How long an idle endpoint stays warm before dropping to zero: keep_warm_s, but once
    gaps are worth covering at all, never less than a wake costs (break_even_s, the
    requests it makes wait counted past the objective's miss budget).

    The best K over the remembered gaps follows their sample, which on traffic that
    changes through the day (quiet nights, busy afternoons) is often the wrong one for
    the next gap. The deterministic ski-rental rule (rent until renting has cost what
    buying does) is within 2x of the best choice made knowing the next gap, whatever it
    turns out to be. An endpoint whose gaps are not worth covering at all (keep_warm_s
    0) still sleeps at once. The replicas held above the need (knobs' down window) keep
    following keep_warm_s: the floor is about one replica's wake, not a burst's size.
    """
    best = keep_warm_s(observed, attainment)
    k = min(len(observed.gaps), len(observed.gap_wake), len(observed.gap_cycle))
    if best == 0.0 or k < MIN_GAPS:
        return best
    cold = cold_start_s(observed) or DEFAULT_COLD_S
    wake = min(float(MAX_HOLD_S), break_even_s(cold, misses_over_budget(observed, attainment)))
    return max(best, wake)


def misses_over_budget(observed: Observed, attainment: float = 0.99) -> float:
    """Requests a wake usually makes wait, less its share of the objective's miss budget
    (WAKE_SHARE x (1 - attainment) of the requests of a cycle, as in keep_warm_s): misses
    the objective allows are not priced. The budget is the same as keep_warm_s's: where
    the wakes fit it, the floor is one cold start (keep_warm_s still covers the gaps
    shorter than that, which cost less kept warm than woken, and is 0 otherwise)."""
    k = min(len(observed.gaps), len(observed.gap_wake), len(observed.gap_cycle))
    if k == 0:
        return 0.0
    waiting = sum(observed.gap_wake[-k:]) / k
    allowed = WAKE_SHARE * (1.0 - attainment) * sum(observed.gap_cycle[-k:]) / k
    return max(0.0, waiting - allowed)


def break_even_s(cold: float, wake_misses: float) -> float:
    """Idle seconds that cost what a wake does: its cold start's GPU time plus its
    requests that wait through the cold start, each priced at MISS_PRICE_COLD_STARTS
    cold starts."""
    return cold * (1.0 + MISS_PRICE_COLD_STARTS * max(0.0, wake_misses))


def wake_misses(observed: Observed) -> float | None:
    """Mean requests arriving within a cold start after a gap (None: not counted yet)."""
    k = min(len(observed.gaps), len(observed.gap_wake))
    if k == 0:
        return None
    return sum(observed.gap_wake[-k:]) / k


# A request or more expected within one cold start: not a time to be at zero.
PREWARM_ARRIVALS = 1.0


def expected_in_cold_start(observed: Observed, at: datetime.datetime) -> float | None:
    """Requests the time-of-day profile expects within one cold start from `at`."""
    cold = cold_start_s(observed) or DEFAULT_COLD_S
    rate = profile_lib.rate_at(observed.profile, at + datetime.timedelta(seconds=cold))
    return None if rate is None else rate * cold


def warm_rate(observed: Observed) -> float:
    """Requests/s above which an idle replica is cheaper kept than dropped: with requests
    arriving at rate r, staying warm until the next one costs 1/r GPU-seconds on average;
    dropping now costs a wake: a cold start and at least the request that wakes it,
    priced at MISS_PRICE_COLD_STARTS cold starts."""
    cold = cold_start_s(observed) or DEFAULT_COLD_S
    return 1.0 / break_even_s(cold, 1.0)


def usual_rate(observed: Observed, at: datetime.datetime) -> float | None:
    """Requests/s the time-of-day profile expects at `at` (None: that slot not seen yet)."""
    return profile_lib.rate_at(observed.profile, at)


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The settings in force for one tick: the spec's, with omitted ones derived."""

    target: demand_lib.Target
    up_window_s: int
    down_window_s: int
    idle_s: float  # scale to zero after this long idle (floor 0)
    idle_learned: bool  # idle_s comes from the idle gaps, not scaleToZero.idleSeconds
    # The scale-down window under steady traffic (no idle gap within down_window_s):
    # two cold starts, or the spec's. down_window_s holds replicas through idle gaps.
    steady_down_window_s: int
    # slo.attainment (the objective the idle period is priced against), for its reason.
    attainment: float = 0.99


def knobs(
    scaling: spec_api.ScalingSpec,
    slo: spec_api.SloSpec | None,
    capacity: demand_lib.Capacity,
    observed: Observed,
) -> Knobs:
    behavior = scaling.behavior
    explicit_idle = scaling.scale_to_zero.idle_seconds
    attainment = slo.attainment if slo is not None else 0.99
    learned_idle = keep_warm_s(observed, attainment)
    down = steady = down_window(behavior.scale_down, observed)
    if behavior.scale_down.stabilization_seconds is None and _counted(observed):
        # The replicas a burst needed are what its return needs: a wake of one replica
        # or of ten makes the same arrivals wait, so they are kept as long as one is.
        down = max(down, min(MAX_HOLD_S, round(learned_idle)))
    return Knobs(
        target=target(scaling.target, slo, capacity),
        up_window_s=behavior.scale_up.stabilization_seconds or 0,
        down_window_s=down,
        idle_s=(
            float(explicit_idle)
            if explicit_idle is not None
            else sleep_after_s(observed, attainment)
        ),
        idle_learned=explicit_idle is None,
        steady_down_window_s=steady,
        attainment=attainment,
    )


def down_window_now(
    knobs: Knobs, observed: Observed, active: bool, now: datetime.datetime
) -> tuple[int, str]:
    """The scale-down window for this tick, and why when it is not the steady one.

    Replicas are held as long as an idle endpoint is kept warm (knobs.down_window_s)
    because a burst that returns after a gap needs them again: that holds while the
    endpoint is idle and within that window after a gap ended. Traffic that has flowed
    without a gap for longer (a working day) is followed with the steady window (two
    cold starts): a replica released there is only restarted by a rise of the load,
    which the steady window already prices.
    """
    if knobs.down_window_s <= knobs.steady_down_window_s:
        return knobs.down_window_s, ""
    end = observed.gap_end
    since = None if end is None else (now - end).total_seconds()
    if active and (since is None or since > knobs.down_window_s):
        return knobs.steady_down_window_s, ""
    if not active:
        return knobs.down_window_s, "idle: kept as long as an idle endpoint is kept warm"
    assert since is not None
    return (
        knobs.down_window_s,
        f"an idle gap ended {_words(since)} ago: kept as long as an idle endpoint is kept warm",
    )


def _words(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    return f"{minutes}m" if minutes < 120 else f"{minutes // 60}h{minutes % 60:02d}m"


# The longest a learned keep-warm period holds replicas above the current need. Chosen on
# the bursty workload's seed 4 (1800 s: 80.4 % for 60.5 GPU-h; 4 h: 89.7 % for 89.5), not
# on the seeds the README reports.
MAX_HOLD_S = 14_400


def _counted(observed: Observed) -> bool:
    k = min(len(observed.gaps), len(observed.gap_wake), len(observed.gap_cycle))
    return k >= MIN_GAPS
