"""Automatic profiling: which candidate to measure next, and what its result does (pure).

A candidate is worth one shadow replica when the recommendation rests on a guess about it:
an option only *estimated* from the catalog's speed ratios that would be cheaper than what
runs now, or CPU, which nothing estimates. Never the option the endpoint runs on (its own
replicas measure it), and nothing for an endpoint with no load to size for (no traffic seen
and no declared peak). The cheapest such guess goes first; an option
measured within `TTL` is not measured again; at most `max_candidates` per TTL, one probe
per endpoint at a time and `Limits.concurrent` in the whole cluster, so profiling costs a
bounded number of replica-minutes. Results live in status.profiles with their time and are
the advisor's measured profiles.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.rightsizing import accelerators
from tideserve.rightsizing import catalog as catalog_mod

TTL = datetime.timedelta(days=7)
# A guess whose estimated p99 is over this multiple of the SLO is measured only after the
# guesses that are not, cheapest first within each group: the estimate (the p99 seen now,
# queueing included, over the catalog's speed ratio) is rough, but a part estimated several
# times too slow rarely turns out fast enough. Chosen on the bench's tuning seeds.
LATENCY_SLACK = 2.0
# A model bigger than this (weights in RAM) is not probed on CPU; the CPU candidate's size
# is spec.resources.rightSizing.profiling.cpuCores.
CPU_MAX_MODEL_BYTES = 8 * 2**30


@dataclasses.dataclass(frozen=True)
class Limits:
    concurrent: int = 2  # shadow replicas in the whole cluster at once
    deadline: datetime.timedelta = datetime.timedelta(minutes=15)  # start to result


DEFAULT_LIMITS = Limits()


@dataclasses.dataclass(frozen=True)
class Probe:
    """Measure `option` (a catalog name; "cpu-4" for CPU) for one endpoint."""

    option: str
    why: str


def measured(status: status_api.InferenceServiceStatus | None) -> list[accelerators.Profile]:
    """status.profiles as the advisor's measured profiles (0 rps: it never met the SLO)."""
    if status is None:
        return []
    return [
        accelerators.profile_on(
            p.option, p.max_requests_per_second, p.p99_latency_ms, accelerators.Source.MEASURED
        )
        for p in status.profiles
        if p.max_requests_per_second > 0
    ]


def _recent(
    status: status_api.InferenceServiceStatus | None, now: datetime.datetime
) -> list[status_api.MeasuredProfile]:
    return [p for p in (status.profiles if status else []) if now - p.measured_at < TTL]


def _far_off(candidate: accelerators.Candidate, slo_ms: float | None) -> bool:
    p99 = candidate.profile.p99_latency_ms
    return slo_ms is not None and p99 is not None and p99 > slo_ms * LATENCY_SLACK


def _option_of(name: str) -> str:
    return "cpu" if name.startswith("cpu") else name


def next_probe(
    spec: spec_api.InferenceServiceSpec,
    status: status_api.InferenceServiceStatus | None,
    candidates: Sequence[accelerators.Candidate],
    current_cost_per_hour: float | None,
    gpu_memory_bytes: float | None,
    now: datetime.datetime,
    *,
    current: str,
    peak_rps: float | None,
) -> Probe | None:
    """The one candidate to measure now for this endpoint, or None. `current` is the option
    it runs on; `peak_rps` the load it is sized for (seen, else declared; None: neither)."""
    rs = spec.resources.right_sizing
    if not rs.profiling_enabled(spec.resources.accelerator):
        return None
    if not peak_rps:  # no load yet: nothing to right-size, so nothing worth a replica
        return None
    recent = _recent(status, now)
    if len(recent) >= rs.profiling.max_candidates:
        return None
    # "cpu-4" measured is the "cpu" option measured; the option in use is never probed.
    done_names = {_option_of(p.option) for p in recent} | {_option_of(current)}
    guesses = sorted(
        (
            c
            for c in candidates
            if c.profile.source is accelerators.Source.ESTIMATED
            and c.option.name not in done_names
            and not any("GPU memory" in part or "no node" in part for part in c.why.split("; "))
            and (current_cost_per_hour is None or c.cost_per_hour < current_cost_per_hour)
        ),
        key=lambda c: (_far_off(c, spec.slo.latency_ms), c.cost_per_hour, c.option.name),
    )
    if guesses:
        best = guesses[0]
        return Probe(best.option.name, f"estimated {best.cost_per_hour:.3f}/h: {best.why}")
    has_cpu = "cpu" in done_names or any(c.option.kind is catalog_mod.Kind.CPU for c in candidates)
    # Unknown GPU memory (no GPU metrics) may well fit: a probe that cannot load the
    # model fails once, is recorded as never meeting the SLO, and is not repeated.
    small = gpu_memory_bytes is None or gpu_memory_bytes <= CPU_MAX_MODEL_BYTES
    if not has_cpu and small:
        cores = rs.profiling.cpu_cores
        return Probe(f"cpu-{cores}", "CPU has no profile and is never estimated")
    return None


def record(
    status: status_api.InferenceServiceStatus | None,
    result: accelerators.Profile | None,
    option: str,
    now: datetime.datetime,
) -> list[status_api.MeasuredProfile]:
    """status.profiles with this probe's result (newest per option; None: never met the
    SLO, kept as 0 rps so it is not probed again within the TTL)."""
    kept = [p for p in (status.profiles if status else []) if p.option != option]
    entry = status_api.MeasuredProfile(
        option=option,
        max_requests_per_second=result.max_rps if result else 0.0,
        p99_latency_ms=result.p99_latency_ms if result else None,
        measured_at=now,
    )
    newest = sorted([*kept, entry], key=lambda p: p.measured_at)
    return newest[-16:]
