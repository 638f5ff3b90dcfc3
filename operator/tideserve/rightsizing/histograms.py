"""Exponentially decaying histograms, as in the Kubernetes VPA recommender (pure).

Buckets grow geometrically (first bucket 0.01 cores or 10 MB, each 5% wider than the
last), so a percentile is accurate to a few percent at any scale. A sample's weight halves
every `half_life` seconds of age, so last week's peak still counts but counts less than
today's. Percentiles return the bucket's upper edge: rounding up is the safe side of a
resource request.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

Sample = tuple[float, float]  # (unix time in seconds, value)

DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class Buckets:
    first: float
    ratio: float
    max_value: float

    @property
    def count(self) -> int:
        return self.index(self.max_value) + 1

    def start(self, index: int) -> float:
        return self.first * (self.ratio**index - 1) / (self.ratio - 1)

    def index(self, value: float) -> int:
        if value <= 0:
            return 0
        index = math.floor(math.log(1 + value * (self.ratio - 1) / self.first, self.ratio))
        # Guard float error at exact boundaries.
        if self.start(index + 1) <= value:
            index += 1
        return index


CPU = Buckets(first=0.01, ratio=1.05, max_value=1000.0)  # cores
MEMORY = Buckets(first=1e7, ratio=1.05, max_value=1e12)  # bytes


@dataclasses.dataclass(frozen=True)
class Histogram:
    buckets: Buckets
    weights: Mapping[int, float]

    @property
    def total(self) -> float:
        return sum(self.weights.values())

    @property
    def empty(self) -> bool:
        return self.total <= 0


def build(
    samples: Iterable[Sample], buckets: Buckets, now: float, half_life: float = DAY
) -> Histogram:
    """A histogram of the samples, each weighted 2^(-age / half_life) at `now`."""
    weights: dict[int, float] = {}
    last = buckets.count - 1
    for time, value in samples:
        if not math.isfinite(value) or value < 0:
            continue
        weight = 2.0 ** (-max(0.0, now - time) / half_life)
        index = min(buckets.index(value), last)
        weights[index] = weights.get(index, 0.0) + weight
    return Histogram(buckets=buckets, weights=weights)


def percentile(histogram: Histogram, fraction: float) -> float:
    """The value below which `fraction` of the weight lies (bucket upper edge); 0 if empty."""
    if histogram.empty:
        return 0.0
    target = fraction * histogram.total
    indexes = sorted(histogram.weights)
    cumulative = 0.0
    chosen = indexes[-1]
    for index in indexes:
        cumulative += histogram.weights[index]
        if cumulative >= target * (1 - 1e-12):
            chosen = index
            break
    if chosen >= histogram.buckets.count - 1:
        return histogram.buckets.start(chosen)
    return histogram.buckets.start(chosen + 1)


def peaks(samples: Iterable[Sample], interval: float = DAY) -> list[Sample]:
    """One sample per `interval`: the highest value in it, at that interval's last time.

    VPA feeds memory as one peak per day: memory that was needed once a day is needed.
    """
    best: dict[int, Sample] = {}
    for time, value in samples:
        if not math.isfinite(value):
            continue
        key = math.floor(time / interval)
        seen = best.get(key)
        if seen is None:
            best[key] = (time, value)
        else:
            best[key] = (max(seen[0], time), max(seen[1], value))
    return [best[k] for k in sorted(best)]
