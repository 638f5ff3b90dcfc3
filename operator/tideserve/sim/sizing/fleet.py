"""A synthetic fleet of models and what each exports while it runs on its initial spec.

Users over-buy, as they do: whole A100/H100/L4 GPUs, 4-8 cores, 16-32 GiB. Each model gets
a class (truth.SPEED), a true GPU-memory need, latency curve, SLO, traffic with a daily
cycle and week-over-week growth, CPU that follows the load per replica, and host memory
with daily peaks, a rare spike, leaks, recurring steps (a team that ships new versions)
and rare first-time steps nobody could foresee.

What an endpoint exports is what the shipped operator reads: per-pod CPU, memory, GPU
memory, GPU utilisation (non-linear in load, per class), per-pod and total request rate,
the p99 from Triton's latency summary, and the autoscaler's learned capacity per replica
(status.learned) when the endpoint ever needed more than one replica.
"""

from __future__ import annotations

import dataclasses
import math
import random

from tideserve.api import spec as spec_api
from tideserve.rightsizing import catalog as catalog_mod
from tideserve.rightsizing import quantities
from tideserve.sim.sizing import truth as truth_mod

GIB = quantities.GIB
STEP = 300.0
DAY = 86400.0
TRAIN_DAYS = 8
EVAL_DAYS = 8
T0 = 1_793_491_200.0  # 2026-11-01 00:00 UTC
# The running autoscaler keeps each replica at this fraction of saturation (its queue
# target); what it learns as capacity per replica is the rate there.
OPERATING_RHO = 0.6

Points = list[tuple[float, float]]


@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    size: str
    truth: truth_mod.Truth
    slo_ms: float
    peak_rps: float  # first week's peak; the second week's is peak_rps * growth
    growth: float
    cpu_base: float
    cpu_per_rps: float
    mem_base: float
    mem_spike: float
    mem_leak: float  # per day, fraction of base
    steps: tuple[tuple[float, float], ...]  # (day, ratio): from that day memory x ratio
    initial: spec_api.ResourcesSpec
    declares: bool  # the team declared profiles (measured by hand, with probe noise)

    def memory(self, day: float) -> float:
        ratio = math.prod(r for d, r in self.steps if d <= day)
        return self.mem_base * (1 + self.mem_leak * day) * ratio


def initial_option(m: Model) -> str:
    return f"gpu:{m.initial.gpu.product}" if m.initial.gpu else "cpu"


def _steps(rng: random.Random) -> tuple[tuple[float, float], ...]:
    kind = rng.random()
    if kind < 0.2:  # ships new versions every few days; each may be bigger or smaller
        out, day = [], rng.uniform(0.5, 4.0)
        while day < TRAIN_DAYS + EVAL_DAYS:
            out.append((day, rng.uniform(0.9, 1.3)))
            day += rng.uniform(3.0, 6.0)
        return tuple(out)
    if kind < 0.24:  # a first-ever step during the judged week: no history foresees it
        return ((TRAIN_DAYS + rng.uniform(0.5, EVAL_DAYS - 1), rng.uniform(1.15, 1.5)),)
    return ()


def fleet(n: int, rng: random.Random, catalog: catalog_mod.Catalog) -> list[Model]:
    gpu_options = [o for o in catalog_mod.options(catalog) if o.kind is not catalog_mod.Kind.CPU]
    models = []
    for i in range(n):
        size = rng.choices(["tiny", "small", "medium", "large"], [0.3, 0.3, 0.25, 0.15])[0]
        cls = rng.choice(
            {
                "tiny": [truth_mod.ModelClass.CNN, truth_mod.ModelClass.ENCODER],
                "small": [truth_mod.ModelClass.CNN, truth_mod.ModelClass.ENCODER],
                "medium": [truth_mod.ModelClass.ENCODER, truth_mod.ModelClass.DIFFUSION,
                           truth_mod.ModelClass.LLM],
                "large": [truth_mod.ModelClass.LLM, truth_mod.ModelClass.DIFFUSION],
            }[size]
        )  # fmt: skip
        gpu_memory = {
            "tiny": rng.uniform(0.5, 4),
            "small": rng.uniform(4, 8),
            "medium": rng.uniform(10, 30),
            "large": rng.uniform(35, 70),
        }[size] * GIB
        base_p99 = {"tiny": 3, "small": 6, "medium": 15, "large": 40}[size] * rng.uniform(0.7, 1.4)
        max_rps = {"tiny": 2500, "small": 1000, "medium": 250, "large": 50}[size] * rng.uniform(
            0.6, 1.5
        )
        speeds = truth_mod.SPEED[cls]
        ratio = {
            o.name: speeds.get(truth_mod.family(o), 1.0) * rng.uniform(0.9, 1.1)
            for o in gpu_options
        }
        util = {
            truth_mod.ModelClass.CNN: (rng.uniform(0.45, 0.8), 0.8),
            truth_mod.ModelClass.ENCODER: (1.0, rng.uniform(0.85, 1.0)),
            truth_mod.ModelClass.LLM: (1.0, rng.uniform(0.4, 0.6)),
            truth_mod.ModelClass.DIFFUSION: (1.0, 1.0),
        }[cls]
        cpu_ok = size in ("tiny", "small") and rng.random() < 0.8
        true = truth_mod.Truth(
            cls=cls,
            gpu_memory=gpu_memory,
            a100=truth_mod.Curve(max_rps, base_p99, rng.uniform(0.3, 1.0)),
            ratio=ratio,
            cpu_rps_per_core=rng.uniform(5, 40) if cpu_ok else None,
            cpu_base_p99_ms=base_p99 * rng.uniform(3, 12),
            util_max=util[0],
            util_exponent=util[1],
        )
        initial_gpu = rng.choices(
            ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"], [0.6, 0.15, 0.25]
        )[0]
        if gpu_memory > 22 * GIB:
            initial_gpu = rng.choice(["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"])
        initial = spec_api.ResourcesSpec.model_validate(
            {
                "accelerator": "auto",
                "gpu": {"product": initial_gpu},
                "cpu": rng.choice(["4", "8"]),
                "memory": rng.choice(["16Gi", "32Gi"]),
                "rightSizing": {"mode": "recommend"},
            }
        )
        mem_base = gpu_memory * 0.15 + rng.uniform(0.8, 3) * GIB
        slo = base_p99 * rng.choice([2, 4, 8, 20])
        # Traffic relative to what one A100 serves within the SLO: most endpoints use a
        # small fraction of the GPU they were given.
        a100_within = true.a100.within(slo)
        models.append(
            Model(
                name=f"m{i:03d}",
                size=size,
                truth=true,
                slo_ms=slo,
                peak_rps=a100_within * rng.choice([0.02, 0.05, 0.1, 0.3, 1.0, 3.0]),
                growth=rng.uniform(0.9, 1.25),
                cpu_base=rng.uniform(0.05, 0.3),
                cpu_per_rps=rng.uniform(0.0005, 0.004),
                mem_base=mem_base,
                mem_spike=mem_base * rng.uniform(0.02, 0.25),
                mem_leak=rng.choice([0.0, 0.0, 0.0, 0.005, 0.02, 0.04]),
                steps=_steps(rng),
                initial=initial,
                declares=rng.random() < 0.4,
            )
        )
    return models


def diurnal(t: float) -> float:
    hour = ((t - T0) % DAY) / 3600
    return 0.15 + 0.85 * max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.15


def traffic(rng: random.Random, start: float, days: int, peak: float) -> Points:
    n = int(days * DAY / STEP)
    out = [
        (start + k * STEP, peak * diurnal(start + k * STEP) * rng.uniform(0.9, 1.0))
        for k in range(n)
    ]
    top = max(range(n), key=lambda k: out[k][1])
    out[top] = (out[top][0], peak)  # the peak is reached somewhere
    return out


@dataclasses.dataclass(frozen=True)
class Exported:
    """What the endpoint exported on `option`, keyed as signals.observe keys them."""

    series: dict[str, Points]
    learned_rps: float | None  # status.learned capacityPerReplica, measured


def operating_rps(m: Model, option: catalog_mod.Option, cores: float) -> float:
    """The rate per replica the running autoscaler holds on hardware it knows: its queue
    target, or less where the SLO needs it (slo.queueTimeMs)."""
    curve = m.truth.curve(option, cores)
    within = curve.within(m.slo_ms)
    target = curve.max_rps * OPERATING_RHO
    return min(target, within) if within > 0 else target


def export(
    m: Model, load: Points, option: catalog_mod.Option, cores: float, rng: random.Random
) -> Exported:
    target = operating_rps(m, option, cores)
    curve = m.truth.curve(option, cores)
    keys = ("cpu", "mem", "gpu_mem", "util", "rps", "pod_rps", "replicas", "p99", "mean")
    out: dict[str, Points] = {k: [] for k in keys}
    spike_day = rng.randrange(TRAIN_DAYS)
    busiest = 0
    for t, r in load:
        replicas = max(1, math.ceil(r / target)) if target > 0 else 1
        busiest = max(busiest, replicas)
        per = r / replicas
        day = (t - T0) / DAY
        mem = m.memory(day)
        hour = ((t - T0) % DAY) / 3600
        if 12 <= hour < 12.5:  # the daily batch job / cache refill
            mem += m.mem_spike
        if int(day) == spike_day and 3 <= hour < 3.2:  # a rare spike, once
            mem += m.mem_spike * 2
        rho = per / curve.max_rps if curve.max_rps > 0 else 1.0
        p99 = curve.p99(per) * rng.uniform(0.95, 1.05)
        out["replicas"].append((t, replicas))
        out["rps"].append((t, r))
        out["p99"].append((t, p99))
        # Triton's mean request duration: the M/M/1 mean sits near half the p99 at load.
        out["mean"].append((t, p99 / 2.5))
        for _ in range(min(replicas, 3)):  # a few pods' samples are enough for histograms
            out["cpu"].append((t, m.cpu_base + m.cpu_per_rps * per * rng.uniform(0.8, 1.2)))
            out["mem"].append((t, mem * rng.uniform(0.97, 1.0)))
            out["gpu_mem"].append((t, m.truth.gpu_memory * rng.uniform(0.95, 1.0)))
            out["util"].append((t, m.truth.utilization(rho) * rng.uniform(0.95, 1.05)))
            out["pod_rps"].append((t, per))
    learned = target * rng.uniform(0.95, 1.05) if busiest > 1 else None
    return Exported(out, learned)


def week_peak_memory(m: Model, start_day: float, days: int) -> float:
    """The highest host memory of a replica over a stretch (spikes included)."""
    top = max(m.memory(start_day + k * STEP / DAY) for k in range(int(days * DAY / STEP)))
    return top + m.mem_spike  # the daily batch job's peak
