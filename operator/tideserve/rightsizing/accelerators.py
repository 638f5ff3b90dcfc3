"""Accelerator choice: the cheapest catalog option that meets the SLO at peak load (pure).

Every option with a profile (per-replica max requests/s within the SLO, and p99 latency
there) is priced as replicas x price per replica-hour, where replicas = ceil(peak / max
rps). Profiles come, in order of trust, from a profiling run (measured), the autoscaler's
capacity per replica measured at saturation on the current option (learned: the same
figure it scales with), the spec (declared), or are estimated from the option the endpoint
runs on now (its observed throughput per replica over its utilization, scaled by the
catalog's relative speeds).
Estimates are only made between GPU options: nothing relates a GPU's speed to a CPU's,
so CPU is chosen only when a profile says it meets the target. A slice is only estimated
to fit when the model's measured GPU memory (with headroom) fits in it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence

from tideserve.rightsizing import catalog as catalog_mod
from tideserve.rightsizing import quantities

# Run an estimated option at most this busy, so its queue (and latency) stays short.
TARGET_UTILIZATION = 0.8
# Utilization below this says little about capacity; do not extrapolate from it.
MIN_UTILIZATION = 0.02
# Nor claim more than this multiple of what a replica was seen serving: utilization
# counters are coarse near zero, and capacity is rarely linear that far out.
MAX_EXTRAPOLATION = 20.0


class Source(enum.StrEnum):
    MEASURED = "measured"
    LEARNED = "learned"
    DECLARED = "declared"
    OBSERVED = "observed"
    ESTIMATED = "estimated"


TRUST = {
    Source.MEASURED: 0,
    Source.LEARNED: 1,
    Source.DECLARED: 2,
    Source.OBSERVED: 3,
    Source.ESTIMATED: 4,
}


@dataclasses.dataclass(frozen=True)
class Profile:
    """What one replica on `option` sustains: max requests/s within the SLO, p99 there."""

    option: str
    max_rps: float
    p99_latency_ms: float | None
    source: Source
    cores: float | None = None  # for CPU profiles ("cpu-4"): the cores it was measured with


@dataclasses.dataclass(frozen=True)
class Demand:
    """What the endpoint needs, per replica and at peak."""

    peak_rps: float | None
    latency_ms: float | None  # SLO p99, None when the spec sets none
    cpu_cores: float  # per replica, from the recommender (or the spec)
    memory_bytes: float
    gpu_memory_bytes: float | None  # measured need with headroom; None if unknown
    max_replicas: int = 10_000
    # Requests/s one replica served when cpu_cores was measured: a faster option with fewer
    # replicas puts more load (and CPU work: pre/post-processing, I/O) on each one.
    rps_per_replica_seen: float | None = None
    # Options no node in the cluster can host, with why (empty: not checked).
    unplaceable: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Candidate:
    option: catalog_mod.Option
    profile: Profile
    replicas: int
    cores: float
    memory_bytes: float
    price_per_replica_hour: float
    meets: bool
    why: str

    @property
    def cost_per_hour(self) -> float:
        return self.replicas * self.price_per_replica_hour


@dataclasses.dataclass(frozen=True)
class Choice:
    best: Candidate | None
    candidates: tuple[Candidate, ...]
    reason: str


def profile_on(
    option: str, max_rps: float, p99_latency_ms: float | None, source: Source
) -> Profile:
    """A profile measured (or declared) on `option` itself: a CPU option carries the cores
    it was measured with, which sizes its replicas' CPU."""
    return Profile(option, max_rps, p99_latency_ms, source, cores=cpu_cores_of(option))


def cpu_cores_of(option_name: str) -> float | None:
    """4 for "cpu-4", None for "cpu"."""
    if option_name.startswith("cpu-"):
        try:
            return float(option_name.removeprefix("cpu-"))
        except ValueError:
            return None
    return None


def observed_profile(
    option: str,
    rps_per_replica: float | None,
    utilization: float | None,
    latency_ms: float | None,
) -> Profile | None:
    """Capacity of the current option, extrapolated from what one replica does now. Below
    MIN_UTILIZATION nothing is extrapolated: the rate one replica was seen to serve, at the
    latency seen, is still a floor of its capacity (so the other options can be estimated,
    and measured, from it)."""
    if not rps_per_replica or utilization is None:
        return None
    if utilization < MIN_UTILIZATION:
        return Profile(option, rps_per_replica, latency_ms, Source.OBSERVED)
    factor = min(TARGET_UTILIZATION / min(utilization, 1.0), MAX_EXTRAPOLATION)
    max_rps = rps_per_replica * max(factor, TARGET_UTILIZATION)
    return Profile(option, max_rps, latency_ms, Source.OBSERVED)


def estimate(
    base: Profile, base_option: catalog_mod.Option, target: catalog_mod.Option
) -> Profile | None:
    """`base` moved to another GPU or slice: throughput scales with speed, latency inversely."""
    if catalog_mod.Kind.CPU in (base_option.kind, target.kind) or base_option.relative_speed <= 0:
        return None
    ratio = target.relative_speed / base_option.relative_speed
    latency = None if base.p99_latency_ms is None else base.p99_latency_ms / ratio
    return Profile(target.name, base.max_rps * ratio, latency, Source.ESTIMATED)


def merge(profiles: Sequence[Profile]) -> tuple[Profile, ...]:
    """One profile per option name, the most trusted source winning."""
    best: dict[str, Profile] = {}
    for profile in profiles:
        seen = best.get(profile.option)
        if seen is None or TRUST[profile.source] < TRUST[seen.source]:
            best[profile.option] = profile
    return tuple(best.values())


REPLICAS_CAP = 2**31


def evaluate(
    catalog: catalog_mod.Catalog, demand: Demand, profile: Profile, current_kind: catalog_mod.Kind
) -> Candidate | None:
    option = catalog_mod.find(catalog, profile.option)
    if option is None:
        return None
    wanted = demand.peak_rps / profile.max_rps if demand.peak_rps else 1.0
    # A declared throughput far below the peak (maxRequestsPerSecond: 1e-300) makes the
    # need astronomical or infinite (math.ceil(inf) raised, every pass): it is counted as
    # more replicas than a Deployment can have, which fails maxReplicas alike.
    replicas = max(1, math.ceil(min(wanted, REPLICAS_CAP) - 1e-9))
    cores = profile.cores or demand.cpu_cores
    if not profile.cores and demand.peak_rps and demand.rps_per_replica_seen:
        cores *= max(1.0, demand.peak_rps / replicas / demand.rps_per_replica_seen)
    memory = demand.memory_bytes
    if option.kind is catalog_mod.Kind.CPU and current_kind is not catalog_mod.Kind.CPU:
        # Weights that lived in GPU memory move into RAM.
        memory += demand.gpu_memory_bytes or 0.0
    price = catalog_mod.replica_price(catalog, option, cores, memory)
    problems = []
    if demand.latency_ms is not None and profile.p99_latency_ms is not None:
        if profile.p99_latency_ms > demand.latency_ms:
            problems.append(f"p99 {profile.p99_latency_ms:g} ms > target {demand.latency_ms:g} ms")
    elif demand.latency_ms is not None and profile.source is Source.ESTIMATED:
        problems.append("latency unknown")
    if option.kind is not catalog_mod.Kind.CPU:
        need = demand.gpu_memory_bytes
        if need is None and profile.source is Source.ESTIMATED:
            problems.append("GPU memory need unknown")
        elif need is not None and need > option.memory_bytes:
            problems.append(
                f"needs {quantities.memory(need)} GPU memory > "
                f"{quantities.memory(option.memory_bytes)}"
            )
    if option.name in demand.unplaceable:
        problems.append(demand.unplaceable[option.name])
    if replicas > demand.max_replicas:
        shown = f"{replicas}" if wanted < 1e6 else f"{wanted:.3g}"
        problems.append(f"needs {shown} replicas > maxReplicas {demand.max_replicas}")
    load = f"{demand.peak_rps:g} rps peak" if demand.peak_rps else "one replica"
    why = (
        f"{option.name} ({profile.source}, {profile.max_rps:g} rps/replica): "
        f"{replicas} x {price:.3f}/h for {load}"
    )
    if problems:
        why += " — " + "; ".join(problems)
    return Candidate(
        option=option,
        profile=profile,
        replicas=replicas,
        cores=cores,
        memory_bytes=memory,
        price_per_replica_hour=price,
        meets=not problems,
        why=why,
    )


def choose(
    catalog: catalog_mod.Catalog,
    demand: Demand,
    profiles: Sequence[Profile],
    current: catalog_mod.Option,
) -> Choice:
    """The cheapest option meeting the SLO at peak; ties go to the current option."""
    known = list(merge(profiles))
    base = next((p for p in known if catalog_mod.find(catalog, p.option) == current), None)
    if base is not None:
        named = {catalog_mod.find(catalog, p.option) for p in known}
        for option in catalog_mod.options(catalog):
            if option not in named:
                guess = estimate(base, current, option)
                if guess is not None:
                    known.append(guess)
    candidates = tuple(
        c for p in known if (c := evaluate(catalog, demand, p, current.kind)) is not None
    )
    fitting = [c for c in candidates if c.meets]
    if not fitting:
        reason = "no option with a profile meets the target: " + "; ".join(
            c.why for c in candidates
        )
        if not candidates:
            reason = "no throughput profile yet (measure one or declare rightSizing.profiles)"
        return Choice(best=None, candidates=candidates, reason=reason)
    best = min(
        fitting,
        key=lambda c: (round(c.cost_per_hour, 6), c.option != current, c.replicas, c.option.name),
    )
    return Choice(best=best, candidates=candidates, reason=best.why)
