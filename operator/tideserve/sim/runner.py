"""Run one policy over one workload and measure it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tideserve.sim import dataplane, endpoint, models, traffic


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    description: str
    traces: tuple[traffic.Trace, ...]
    model: models.ModelClass
    slo: models.Slo
    max_replicas: int
    config: endpoint.SimConfig

    @property
    def duration_s(self) -> float:
        return max(t.duration_s for t in self.traces)

    @property
    def cold_s(self) -> float:
        return models.cold_start_s(self.model, self.config.node_provision_s)

    @property
    def warmup_s(self) -> float:
        """The start left out of the "after warm-up" figures: a tenth of the run, at most
        an hour (every policy starts with nothing Ready and nothing learned)."""
        return min(3600.0, 0.1 * self.duration_s)

    @property
    def warmup_until(self) -> float:
        """The warm-up counts from the first request (a trace may open with silence)."""
        first = min((float(t.arrivals[0]) for t in self.traces if len(t.arrivals)), default=0.0)
        return first + self.warmup_s


# Builds a fresh (stateful) policy for one endpoint of a workload.
PolicyFactory = Callable[[Workload, traffic.Trace], endpoint.Policy]


@dataclasses.dataclass(frozen=True)
class Candidate:
    family: str  # tideserve | hpa | keda | kpa | keepalive | oracle
    label: str
    build: PolicyFactory


@dataclasses.dataclass(frozen=True)
class Result:
    family: str
    label: str
    requests: int
    met: int
    timed_out: int
    refused: int
    p50_s: float
    p99_s: float
    cold_starts: int
    hit_cold: int
    wake_p99_s: float
    gpu_s: float
    idle_at_zero: float  # fraction of long silences spent at 0 replicas
    actions_per_hour: float
    kinds: dict[str, int]
    # Per minute, summed over endpoints: replicas asked for (for plots).
    replicas_per_minute: tuple[float, ...]
    seed: int = 0
    # The same figures for requests arriving after the warm-up and GPU time after it.
    warm_requests: int = 0
    warm_met: int = 0
    warm_gpu_s: float = 0.0

    @property
    def attainment(self) -> float:
        return self.met / self.requests if self.requests else 1.0

    @property
    def warm_attainment(self) -> float:
        return self.warm_met / self.warm_requests if self.warm_requests else 1.0

    def point(self, warm: bool) -> tuple[float, float]:
        """(GPU-seconds, attainment) with the warm-up (False) or after it (True)."""
        if warm:
            return self.warm_gpu_s, self.warm_attainment
        return self.gpu_s, self.attainment


def _zero_fraction(
    arrivals: npt.NDArray[np.float64],
    timeline: list[tuple[float, int, int]],
    duration_s: float,
    min_gap_s: float,
) -> tuple[float, float]:
    """(seconds at 0 replicas inside silences >= min_gap_s, total such seconds)."""
    edges = np.concatenate(([0.0], arrivals, [duration_s]))
    gaps = np.diff(edges)
    long_idx = np.nonzero(gaps >= min_gap_s)[0]
    if len(long_idx) == 0:
        return 0.0, 0.0
    times = np.array([t for t, _, _ in timeline] + [duration_s])
    counts = np.array([c for _, c, _ in timeline])
    zero_s = 0.0
    total = 0.0
    for i in long_idx:
        a, b = float(edges[i]), float(edges[i + 1])
        total += b - a
        lo = max(0, int(np.searchsorted(times, a, side="right")) - 1)
        hi = int(np.searchsorted(times, b, side="left"))
        for k in range(lo, min(hi, len(counts))):
            if counts[k] == 0:
                zero_s += max(0.0, min(b, times[k + 1]) - max(a, times[k]))
    return zero_s, total


def _per_minute(
    timeline: list[tuple[float, int, int]], duration_s: float
) -> npt.NDArray[np.float64]:
    minutes = int(np.ceil(duration_s / 60.0))
    out = np.zeros(minutes)
    times = [t for t, _, _ in timeline] + [duration_s]
    for k, (t, c, _) in enumerate(timeline):
        lo, hi = int(t // 60), int(min(times[k + 1], duration_s) // 60)
        out[lo : min(hi + 1, minutes)] = np.maximum(out[lo : min(hi + 1, minutes)], c)
    return out


def run(
    workload: Workload, candidate: Candidate, idle_gap_s: float = 600.0, seed: int = 0
) -> Result:
    requests = met = timed_out = refused = cold = hit = actions = 0
    warm_requests = warm_met = 0
    gpu = zero_s = silent_s = warm_gpu = 0.0
    warmup = workload.warmup_until
    latencies: list[npt.NDArray[np.float64]] = []
    wake: list[npt.NDArray[np.float64]] = []
    kinds: dict[str, int] = {}
    per_minute = np.zeros(int(np.ceil(workload.duration_s / 60.0)))
    for trace in workload.traces:
        policy = candidate.build(workload, trace)
        ep = endpoint.Endpoint(
            trace.arrivals,
            trace.work,
            trace.duration_s,
            workload.model,
            workload.slo,
            policy,
            workload.config,
        )
        out = ep.run()
        plane = out.plane
        outcome = np.frombuffer(bytes(plane.outcome), dtype=np.uint8)
        ok = dataplane.met_slo(plane, trace.arrivals)
        served = outcome == dataplane.SERVED
        e2e = (plane.finish - trace.arrivals)[served]
        at_zero = np.frombuffer(bytes(plane.at_zero), dtype=np.uint8) == 1
        requests += len(trace.arrivals)
        met += int(ok.sum())
        after = trace.arrivals >= warmup
        warm_requests += int(after.sum())
        warm_met += int((ok & after).sum())
        timed_out += int((outcome == dataplane.TIMED_OUT).sum())
        refused += int((outcome == dataplane.REFUSED).sum())
        latencies.append(e2e)
        wake.append((plane.finish - trace.arrivals)[served & at_zero])
        hit += int(at_zero.sum())
        cold += len(out.replicas)
        end = trace.duration_s
        for r in out.replicas:
            stop = end if r.removed_at is None else min(r.removed_at, end)
            gpu += max(0.0, stop - r.requested_at)
            warm_gpu += max(0.0, stop - max(r.requested_at, warmup))
        z, s = _zero_fraction(trace.arrivals, out.timeline, end, idle_gap_s)
        zero_s += z
        silent_s += s
        actions += out.actions
        for k, v in out.kinds.items():
            kinds[k] = kinds.get(k, 0) + v
        pm = _per_minute(out.timeline, end)
        per_minute[: len(pm)] += pm
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    wk = np.concatenate(wake) if wake else np.zeros(0)

    def pct(a: npt.NDArray[np.float64], q: float) -> float:
        return float(np.percentile(a, q)) if len(a) else float("nan")

    return Result(
        family=candidate.family,
        label=candidate.label,
        requests=requests,
        met=met,
        timed_out=timed_out,
        refused=refused,
        p50_s=pct(lat, 50),
        p99_s=pct(lat, 99),
        cold_starts=cold,
        hit_cold=hit,
        wake_p99_s=pct(wk, 99),
        gpu_s=gpu,
        idle_at_zero=zero_s / silent_s if silent_s > 0 else float("nan"),
        actions_per_hour=actions / (workload.duration_s / 3600.0),
        kinds=kinds,
        replicas_per_minute=tuple(float(x) for x in per_minute),
        seed=seed,
        warm_requests=warm_requests,
        warm_met=warm_met,
        warm_gpu_s=warm_gpu,
    )
