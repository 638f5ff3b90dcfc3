"""CPU, memory and GPU-memory needs per replica from observed usage (pure).

In the spirit of the VPA recommender: exponentially decaying histograms (half-life 24 h),
CPU at the 90th percentile, memory at the 90th percentile of daily peaks, a 15% safety
margin, floors of 25m and 250Mi, and after an OOM kill at least max(+20%, +100Mi) over the
memory it died at. GPU memory is the peak plus headroom: a model either fits in a slice or
it does not, so there is no percentile to trade off.

Memory's margin follows its risk: a memory that grows (a leak: daily peaks rising day
after day) or steps (a new model version: a jump that lasts) is sized for the latest peak
grown by what the same growth would add over `memory_horizon_seconds`, times the largest
lasting step seen. A flat memory keeps VPA's figure, so the extra cost falls only on the
endpoints that showed the risk.

Hysteresis lives here too: `stabilize` keeps the previous figure unless the new one moved by
more than `Policy.hysteresis`, so noise never turns into a rolling update.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

from tideserve.rightsizing import histograms, quantities

Sample = histograms.Sample

# memory_floor_margin's default, chosen on the bench's tuning seeds (101-105): see
# docs/benchmarks/rightsizing.md.
FLOOR_MARGIN = 0.4


@dataclasses.dataclass(frozen=True)
class Oom:
    """A replica was OOM-killed at `time` while limited to `memory_bytes`."""

    time: float
    memory_bytes: float


@dataclasses.dataclass(frozen=True)
class Usage:
    """Per-replica usage series (one sample per replica per scrape), plus OOM kills."""

    cpu_cores: Sequence[Sample] = ()
    memory_bytes: Sequence[Sample] = ()
    gpu_memory_bytes: Sequence[Sample] = ()
    gpu_utilization: Sequence[Sample] = ()  # fraction 0..1 of the replica's accelerator
    ooms: Sequence[Oom] = ()


@dataclasses.dataclass(frozen=True)
class Policy:
    half_life_seconds: float = histograms.DAY
    cpu_percentile: float = 0.9
    memory_percentile: float = 0.9
    memory_peak_interval_seconds: float = histograms.DAY
    safety_margin: float = 0.15
    min_cpu_cores: float = 0.025
    min_memory_bytes: float = 250 * quantities.MIB
    oom_bump_ratio: float = 1.2
    oom_bump_min_bytes: float = 100 * quantities.MIB
    gpu_memory_headroom: float = 0.2
    # Memory that grew or stepped during the window is sized for this far ahead: as long
    # again as the history the window keeps (the same growth, once more).
    memory_horizon_seconds: float = 8 * histograms.DAY
    # Day-over-day growth below this (a fraction per day) is noise, not a leak; a lasting
    # jump below `memory_step_threshold` is not a step.
    memory_leak_threshold: float = 0.002
    memory_step_threshold: float = 1.05
    # Every endpoint's memory is at least the window's highest daily peak times (1 + this):
    # a first-ever step (a new model version) shows in no history, and memory is a small
    # part of a replica's price next to its accelerator, while a kill drops requests.
    memory_floor_margin: float = FLOOR_MARGIN
    # A figure changes only when it moves by more than this fraction (or an OOM says so)
    # and by more than an absolute step: near zero one histogram bucket is wider than 10%,
    # and 20m of CPU is not worth an Event, let alone a rolling update.
    hysteresis: float = 0.10
    min_cpu_step_cores: float = 0.05
    min_memory_step_bytes: float = 64 * quantities.MIB
    # Fewer samples than this and the figure is left alone: no data is not zero usage.
    min_samples: int = 3


DEFAULT_POLICY = Policy()


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The largest request a replica may get (catalog limit, largest node's allocatable)."""

    max_cpu_cores: float = math.inf
    max_memory_bytes: float = math.inf


@dataclasses.dataclass(frozen=True)
class Sizing:
    """Per-replica needs; None where there is not enough data to say."""

    cpu_cores: float | None = None
    memory_bytes: float | None = None
    gpu_memory_bytes: float | None = None
    notes: tuple[str, ...] = ()
    # Memory was raised over the previous figure by an OOM kill: hysteresis must not hold it.
    oom_raised: bool = False


@dataclasses.dataclass(frozen=True)
class Growth:
    """How memory's daily peaks moved over the window."""

    leak_per_day: float = 0.0  # typical day-over-day growth, fraction
    step: float = 1.0  # the largest jump that lasted (ratio), 1.0 when none
    latest_peak: float = 0.0

    def risky(self, policy: Policy) -> bool:
        return (
            self.leak_per_day > policy.memory_leak_threshold
            or self.step > policy.memory_step_threshold
        )


def memory_growth(daily: Sequence[Sample]) -> Growth:
    """Leak (median day-over-day ratio of daily peaks) and step (a jump that still held the
    next day; a one-day spike is the percentile's business, not a step) from daily peaks.
    The window's first day is partial (it may miss the day's peak), so it is left out; so
    may be today, so the latest peak is the higher of the last two days'."""
    values = [v for _, v in daily if v > 0]
    if len(values) >= 4:
        values = values[1:]
    if len(values) < 3:
        return Growth(latest_peak=max(values[-2:], default=0.0))
    ratios = sorted(b / a for a, b in itertools.pairwise(values))
    median = ratios[len(ratios) // 2]
    lasting = [
        min(values[i], values[i + 1]) / values[i - 1] / max(median, 1.0)
        for i in range(1, len(values) - 1)
    ]
    return Growth(
        leak_per_day=max(0.0, median - 1.0),
        step=max(1.0, *lasting),
        latest_peak=max(values[-2:]),
    )


def oom_floor(oom: Oom, policy: Policy = DEFAULT_POLICY) -> float:
    """Memory a replica needs after being killed at `oom.memory_bytes`."""
    return max(
        oom.memory_bytes * policy.oom_bump_ratio, oom.memory_bytes + policy.oom_bump_min_bytes
    )


def cpu_need(
    samples: Sequence[Sample], now: float, policy: Policy = DEFAULT_POLICY
) -> float | None:
    if len(samples) < policy.min_samples:
        return None
    histogram = histograms.build(samples, histograms.CPU, now, policy.half_life_seconds)
    target = histograms.percentile(histogram, policy.cpu_percentile)
    return max(policy.min_cpu_cores, target * (1 + policy.safety_margin))


def memory_need(
    samples: Sequence[Sample],
    ooms: Sequence[Oom],
    now: float,
    policy: Policy = DEFAULT_POLICY,
) -> float | None:
    recent_ooms = [o for o in ooms if now - o.time <= 8 * policy.memory_peak_interval_seconds]
    floor = max((oom_floor(o, policy) for o in recent_ooms), default=0.0)
    if len(samples) < policy.min_samples:
        return max(floor, policy.min_memory_bytes) if floor else None
    daily = histograms.peaks(samples, policy.memory_peak_interval_seconds)
    histogram = histograms.build(daily, histograms.MEMORY, now, policy.half_life_seconds)
    target = histograms.percentile(histogram, policy.memory_percentile)
    need = target * (1 + policy.safety_margin)
    top = max((v for _, v in daily), default=0.0)
    need = max(need, top * (1 + policy.memory_floor_margin))
    growth = memory_growth(daily)
    if growth.risky(policy):
        days = policy.memory_horizon_seconds / policy.memory_peak_interval_seconds
        ahead = growth.latest_peak * (1 + growth.leak_per_day) ** days * growth.step
        # A first-ever step may come on top of the growth foreseen: the floor's margin.
        margin = max(policy.safety_margin, policy.memory_floor_margin)
        need = max(need, ahead * (1 + margin))
    return max(policy.min_memory_bytes, need, floor)


def gpu_memory_need(samples: Sequence[Sample], policy: Policy = DEFAULT_POLICY) -> float | None:
    values = [v for _, v in samples if math.isfinite(v)]
    if len(values) < policy.min_samples or max(values) <= 0:
        return None
    return max(values) * (1 + policy.gpu_memory_headroom)


def size(
    usage: Usage, now: float, bounds: Bounds = Bounds(), policy: Policy = DEFAULT_POLICY
) -> Sizing:
    """Per-replica CPU, memory and GPU memory needs, capped at `bounds`."""
    notes: list[str] = []
    cpu = cpu_need(usage.cpu_cores, now, policy)
    memory = memory_need(usage.memory_bytes, usage.ooms, now, policy)
    oom_raised = False
    if usage.ooms and memory is not None:
        worst = max(usage.ooms, key=lambda o: o.memory_bytes)
        notes.append(f"OOM-killed at {quantities.memory(worst.memory_bytes)}")
        oom_raised = memory >= oom_floor(worst, policy)
    if cpu is not None and cpu > bounds.max_cpu_cores:
        notes.append(
            f"CPU need {quantities.cpu(cpu)} capped at {quantities.cpu(bounds.max_cpu_cores)}"
        )
        cpu = bounds.max_cpu_cores
    if memory is not None and memory > bounds.max_memory_bytes:
        notes.append(
            f"memory need {quantities.memory(memory)} capped at "
            f"{quantities.memory(bounds.max_memory_bytes)}"
        )
        memory = bounds.max_memory_bytes
    return Sizing(
        cpu_cores=cpu,
        memory_bytes=memory,
        gpu_memory_bytes=gpu_memory_need(usage.gpu_memory_bytes, policy),
        notes=tuple(notes),
        oom_raised=oom_raised,
    )


def moved(old: float | None, new: float | None, threshold: float, step: float = 0.0) -> bool:
    """Whether `new` differs from `old` by more than `threshold` (a fraction of old) and `step`."""
    if old is None or new is None:
        return new is not None and old is None
    if old <= 0:
        return new > 0
    return abs(new - old) > max(threshold * old, step)


def stabilize(previous: Sizing | None, new: Sizing, policy: Policy = DEFAULT_POLICY) -> Sizing:
    """`new`, except that figures within the hysteresis band keep their previous value.

    A figure with no new data keeps its previous value too: a Prometheus gap is not a
    reason to forget what was learned. Memory raised by an OOM kill is taken at once,
    whatever the band: a replica that died will die again.
    """
    if previous is None:
        return new

    def pick(old: float | None, fresh: float | None, step: float) -> float | None:
        if fresh is None:
            return old
        return fresh if moved(old, fresh, policy.hysteresis, step) else old

    memory_step = policy.min_memory_step_bytes
    memory = pick(previous.memory_bytes, new.memory_bytes, memory_step)
    if new.oom_raised and new.memory_bytes is not None:
        memory = max(new.memory_bytes, previous.memory_bytes or 0.0)
    return dataclasses.replace(
        new,
        cpu_cores=pick(previous.cpu_cores, new.cpu_cores, policy.min_cpu_step_cores),
        memory_bytes=memory,
        gpu_memory_bytes=pick(previous.gpu_memory_bytes, new.gpu_memory_bytes, memory_step),
    )
