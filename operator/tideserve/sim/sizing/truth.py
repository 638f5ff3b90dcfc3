"""What a model really does on each option, and the judge that scores a sizing against it.

The truth is deliberately *not* the catalog's speed table: each model class departs from
it systematically (a small CNN is launch- and preprocessing-bound, so an H100 barely helps
and a 1g MIG slice does far better than 1/7 of an A100; a memory-bound LLM gains what the
memory bandwidth gives, so an L4 or T4 is much worse than its FP16 figure), with a
per-model jitter on top. Latency rises with load (p99 = L0 x (1 + c rho / (1 - rho)), an
M/M/1-shaped curve whose steepness c depends on the model), so a sizing that plans with a
capacity the hardware does not have shows as SLO misses, not as a cheaper bill.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from tideserve.rightsizing import catalog as catalog_mod


class ModelClass(enum.StrEnum):
    CNN = "cnn"  # small vision models: preprocessing- and launch-bound
    ENCODER = "encoder"  # BERT-like: compute-bound, close to the table
    LLM = "llm"  # decoder LLMs: memory-bandwidth-bound
    DIFFUSION = "diffusion"  # compute-bound, tensor-core heavy


# True throughput relative to an A100 per class (the catalog's table says H100 2.0, L4 0.4,
# T4 0.2, a MIG slice g/7). Rounded from public MLPerf-inference ratios and bandwidth
# ratios (H100/A100 HBM 1.6x; L4 300 GB/s, T4 320 GB/s against 2 TB/s), not fitted to any
# recommender.
SPEED: dict[ModelClass, dict[str, float]] = {
    ModelClass.CNN: {"H100": 1.3, "L4": 0.55, "T4": 0.3, "1g": 0.3, "2g": 0.5, "3g": 0.65},
    ModelClass.ENCODER: {"H100": 1.9, "L4": 0.38, "T4": 0.16, "1g": 0.15, "2g": 0.29, "3g": 0.43},
    ModelClass.LLM: {"H100": 1.6, "L4": 0.16, "T4": 0.1, "1g": 0.12, "2g": 0.26, "3g": 0.4},
    ModelClass.DIFFUSION: {"H100": 2.3, "L4": 0.28, "T4": 0.12, "1g": 0.13, "2g": 0.27, "3g": 0.41},
}


def family(option: catalog_mod.Option) -> str:
    """The key of SPEED for an option: a GPU family or a MIG compute size."""
    if option.kind is catalog_mod.Kind.MIG:
        return "A100" if option.profile.startswith("7g") else option.profile[:2]
    for name in ("H100", "A100", "L4", "T4"):
        if name in option.product.upper():
            return name
    return "A100"


@dataclasses.dataclass(frozen=True)
class Curve:
    """One replica on one option: saturation throughput and its latency curve."""

    max_rps: float  # throughput at saturation (rho = 1)
    base_p99_ms: float  # p99 with no queue
    steepness: float  # c in p99 = L0 (1 + c rho / (1 - rho))

    def p99(self, rps: float) -> float:
        if self.max_rps <= 0:
            return math.inf
        rho = rps / self.max_rps
        if rho >= 1:
            return math.inf
        return self.base_p99_ms * (1 + self.steepness * rho / (1 - rho))

    def within(self, slo_ms: float) -> float:
        """Most requests/s one replica serves with p99 within `slo_ms` (0: never)."""
        if self.max_rps <= 0 or self.base_p99_ms >= slo_ms:
            return 0.0
        x = (slo_ms / self.base_p99_ms - 1) / self.steepness
        return self.max_rps * x / (1 + x)


@dataclasses.dataclass(frozen=True)
class Truth:
    """A model's true behaviour on every option (GPU ratios per option name)."""

    cls: ModelClass
    gpu_memory: float  # bytes the model needs on an accelerator
    a100: Curve
    ratio: dict[str, float]  # true speed vs an A100, per GPU/MIG option name
    cpu_rps_per_core: float | None  # None: cannot run on CPU at all
    cpu_base_p99_ms: float
    util_max: float  # GPU utilisation reported at saturation (< 1: preprocessing-bound)
    util_exponent: float  # reported utilisation = util_max x rho ** exponent

    def curve(self, option: catalog_mod.Option, cores: float) -> Curve:
        if option.kind is catalog_mod.Kind.CPU:
            if self.cpu_rps_per_core is None:
                return Curve(0.0, math.inf, self.a100.steepness)
            return Curve(self.cpu_rps_per_core * cores, self.cpu_base_p99_ms, self.a100.steepness)
        if option.memory_bytes < self.gpu_memory:
            return Curve(0.0, math.inf, self.a100.steepness)
        r = self.ratio.get(option.name, 0.0)
        if r <= 0:
            return Curve(0.0, math.inf, self.a100.steepness)
        # Latency gains less than throughput from a faster part (batching, fixed costs).
        return Curve(self.a100.max_rps * r, self.a100.base_p99_ms / r**0.8, self.a100.steepness)

    def utilization(self, rho: float) -> float:
        return float(self.util_max * min(1.0, max(0.0, rho)) ** self.util_exponent)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A recommender's answer: hardware, requests, and the rps per replica it plans for
    (the capacity the autoscaler is told to keep each replica at)."""

    option: str
    cpu: float
    memory: float
    planned_rps: float


@dataclasses.dataclass(frozen=True)
class Verdict:
    cost_per_hour: float
    oom: bool
    slo: bool
    cpu_short: bool
    option: str
    replicas: int


@dataclasses.dataclass(frozen=True)
class Week:
    """The truth of the judged week for one model, reduced to what the judge needs."""

    peak_rps: float
    host_memory_peak: float  # per replica, bytes, on a GPU option
    cpu_base: float  # cores per replica, idle
    cpu_per_rps: float  # cores per request/s per replica (pre/post-processing)


def judge(
    truth: Truth,
    plan: Plan,
    week: Week,
    slo_ms: float,
    catalog: catalog_mod.Catalog,
    max_replicas: int,
) -> Verdict:
    """Replicas the autoscaler runs at the week's peak with the planned per-replica rate;
    the true p99 at that load decides the SLO; memory below the true peak is a kill."""
    option = catalog_mod.find(catalog, plan.option)
    assert option is not None, plan.option
    curve = truth.curve(option, plan.cpu)
    wanted = math.ceil(week.peak_rps / plan.planned_rps - 1e-9) if plan.planned_rps > 0 else 10**9
    replicas = max(1, min(wanted, max_replicas))
    per_replica = week.peak_rps / replicas
    slo = wanted > max_replicas or curve.p99(per_replica) > slo_ms
    host = week.host_memory_peak
    on_cpu = option.kind is catalog_mod.Kind.CPU
    if on_cpu:
        host += truth.gpu_memory  # the weights live in RAM
    gpu_short = not on_cpu and option.memory_bytes < truth.gpu_memory
    oom = plan.memory < host or gpu_short
    # Pre/post-processing CPU grows with the load per replica; on CPU inference uses all.
    need = week.cpu_base + week.cpu_per_rps * per_replica if not on_cpu else plan.cpu
    price = catalog_mod.replica_price(catalog, option, plan.cpu, plan.memory)
    return Verdict(
        cost_per_hour=replicas * price,
        oom=oom,
        slo=slo,
        cpu_short=plan.cpu < need * 0.999,
        option=option.name,
        replicas=replicas,
    )
