"""Seeded traffic generators for the shapes that matter to an autoscaler.

Every generator draws from its own numpy Generator seeded by the caller, so a seed
fixes the trace bit for bit. Arrivals are seconds from the start of the trace, sorted;
`work` (optional) is each request's size relative to the mean (LLM token counts).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0


@dataclasses.dataclass(frozen=True)
class Trace:
    name: str
    arrivals: FloatArray
    duration_s: float
    work: FloatArray | None = None

    def __post_init__(self) -> None:
        if len(self.arrivals) and np.any(np.diff(self.arrivals) < 0):
            raise ValueError("arrivals must be sorted")

    def per_minute(self) -> FloatArray:
        bins = np.arange(0.0, self.duration_s + 60.0, 60.0)
        counts, _ = np.histogram(self.arrivals, bins=bins)
        return counts.astype(np.float64)


def from_rates(name: str, rates: FloatArray, step_s: float, rng: np.random.Generator) -> FloatArray:
    """Poisson arrivals with a piecewise-constant rate (requests/s per step)."""
    counts = rng.poisson(np.maximum(rates, 0.0) * step_s)
    starts = np.repeat(np.arange(len(rates), dtype=np.float64) * step_s, counts)
    arrivals: FloatArray = starts + rng.random(len(starts)) * step_s
    arrivals.sort()
    return arrivals


def diurnal(
    seed: int, hours: float = 24.0, peak_rps: float = 10.0, night: tuple[float, float] = (0, 6)
) -> Trace:
    """A working day: silent night, ramp to a midday peak, evening tail; minute noise.

    The shape is a squared sine over the waking hours (Azure Functions' diurnal apps
    look like this, with their nightly troughs at zero for many apps).
    """
    rng = np.random.default_rng(seed)
    step = 10.0
    t = np.arange(0.0, hours * 3600.0, step)
    hour = (t / 3600.0) % 24.0
    start, end = night[1], 24.0 + night[0]
    phase = np.clip((hour - start) / (end - start), 0.0, 1.0)
    shape = np.sin(math.pi * phase) ** 2
    awake = (hour >= night[1]) | (hour < night[0])
    # Slow multiplicative noise (per 10 minutes) so two days are not identical.
    noise = rng.gamma(25.0, 1 / 25.0, size=len(t) // 60 + 1).repeat(60)[: len(t)]
    rates = peak_rps * shape * noise * awake
    return Trace("diurnal", from_rates("diurnal", rates, step, rng), hours * 3600.0)


def bursty(
    seed: int,
    hours: float = 24.0,
    peak_rps: float = 40.0,
    mean_on_s: float = 300.0,
    off_median_s: float = 900.0,
) -> Trace:
    """On/off traffic: bursts of a few minutes, gaps from seconds to hours (lognormal)."""
    rng = np.random.default_rng(seed)
    step = 1.0
    n = int(hours * 3600.0 / step)
    rates = np.zeros(n)
    t = 0.0
    while t < n:
        gap = float(rng.lognormal(math.log(off_median_s), 1.2))
        t += gap
        on = float(rng.exponential(mean_on_s))
        level = peak_rps * float(rng.uniform(0.3, 1.0))
        lo, hi = int(t), min(n, int(t + on))
        rates[lo:hi] = level
        t += on
    return Trace("bursty", from_rates("bursty", rates, step, rng), hours * 3600.0)


def steps_and_spikes(seed: int, hours: float = 6.0, base_rps: float = 4.0) -> Trace:
    """Steady base load with x10 steps (10 s ramps) and 30 s x10 spikes, random times."""
    rng = np.random.default_rng(seed)
    step = 1.0
    n = int(hours * 3600.0)
    rates = np.full(n, base_rps)
    for _ in range(max(1, int(hours))):
        s = int(rng.uniform(0, max(1, n - 1200)))
        length = int(rng.uniform(300, 1200))
        ramp = np.linspace(base_rps, 10 * base_rps, 10)
        rates[s : s + 10] = ramp
        rates[s + 10 : s + length] = 10 * base_rps
    for _ in range(max(1, int(2 * hours))):
        s = int(rng.uniform(0, max(1, n - 30)))
        rates[s : s + 30] = np.maximum(rates[s : s + 30], 10 * base_rps)
    return Trace("steps", from_rates("steps", rates, step, rng), hours * 3600.0)


def popularity(seed: int, endpoints: int, zipf_s: float = 1.2) -> FloatArray:
    """Heavy-tailed shares of traffic per endpoint (Zipf), shuffled, summing to 1."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, endpoints + 1, dtype=np.float64)
    share = ranks**-zipf_s
    share /= share.sum()
    rng.shuffle(share)
    return share


def many_endpoints(
    seed: int, endpoints: int = 8, hours: float = 24.0, total_peak_rps: float = 30.0
) -> list[Trace]:
    """Endpoints with Zipf popularity; each diurnal or bursty, so most are often idle."""
    shares = popularity(seed, endpoints)
    traces = []
    for i, share in enumerate(shares):
        sub = seed * 1000 + i
        if i % 2 == 0:
            tr = diurnal(sub, hours, peak_rps=total_peak_rps * float(share))
        else:
            tr = bursty(sub, hours, peak_rps=2.5 * total_peak_rps * float(share))
        traces.append(dataclasses.replace(tr, name=f"ep{i:02d}"))
    return traces


def llm_work(seed: int, n: int, sigma: float = 0.8) -> FloatArray:
    """Request sizes relative to the mean, lognormal like generated-token counts."""
    rng = np.random.default_rng(seed)
    w = rng.lognormal(-(sigma**2) / 2.0, sigma, size=n)
    result: FloatArray = np.clip(w, 0.05, 8.0)
    return result
