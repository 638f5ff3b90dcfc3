"""The recommenders compared: VPA, KRR, VPA + catalog rule, naive cheapest fit, an oracle,
and tideserve's shipped advisor. Each turns one week of exported signals into a Plan.

A recommender that keeps the hardware plans with the running autoscaler's own figure for
it (what it holds each replica at today, measured on that very hardware); one that moves
an endpoint plans with its estimate of the new hardware, which the judge then holds to.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import math
import random
from collections.abc import Sequence
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.autoscaler import learned_status
from tideserve.rightsizing import (
    accelerators,
    advisor,
    autoprofile,
    quantities,
    recommender,
    signals,
)
from tideserve.rightsizing import catalog as catalog_mod
from tideserve.sim.sizing import fleet as fleet_mod
from tideserve.sim.sizing import truth as truth_mod

MIB = quantities.MIB
# The catalog rule's GPU-memory headroom (the definition of the baseline).
RULE_GPU_HEADROOM = 1.2
# CPU sizes the oracle may pick (cores).
ORACLE_CORES = (1, 2, 4, 8)


@dataclasses.dataclass(frozen=True)
class Seen:
    """One model's first week, as every recommender sees it."""

    model: fleet_mod.Model
    exported: fleet_mod.Exported
    now: float  # end of the window

    @property
    def current(self) -> str:
        return fleet_mod.initial_option(self.model)


def _option(catalog: catalog_mod.Catalog, name: str) -> catalog_mod.Option:
    found = catalog_mod.find(catalog, name)
    assert found is not None, name
    return found


def keep_rps(seen: Seen, catalog: catalog_mod.Catalog, cores: float) -> float:
    """What the live autoscaler holds a replica at on the current hardware."""
    return fleet_mod.operating_rps(seen.model, _option(catalog, seen.current), cores)


def initial(seen: Seen, catalog: catalog_mod.Catalog) -> truth_mod.Plan:
    r = seen.model.initial
    cores = quantities.parse(r.cpu or "1")
    return truth_mod.Plan(
        seen.current, cores, quantities.parse(r.memory or "2Gi"), keep_rps(seen, catalog, cores)
    )


def _weighted_percentile(samples: list[tuple[float, float]], now: float, p: float) -> float:
    weighted = sorted((v, 2 ** (-(now - t) / fleet_mod.DAY)) for t, v in samples)
    total = sum(w for _, w in weighted)
    acc = 0.0
    for v, w in weighted:
        acc += w
        if acc >= p * total:
            return v
    return weighted[-1][0]


def vpa(seen: Seen, catalog: catalog_mod.Catalog) -> truth_mod.Plan:
    """VPA's defaults, written independently: decaying p90 CPU and p90 of daily memory
    peaks, +15%; the accelerator is left alone (VPA does not size GPUs)."""
    s = seen.exported.series
    cpu = max(0.025, _weighted_percentile(s["cpu"], seen.now, 0.9) * 1.15)
    daily: dict[int, tuple[float, float]] = {}
    for t, v in s["mem"]:
        d = int(t // fleet_mod.DAY)
        daily[d] = (t, max(v, daily.get(d, (t, 0.0))[1]))
    memory = max(250 * MIB, _weighted_percentile(list(daily.values()), seen.now, 0.9) * 1.15)
    return truth_mod.Plan(seen.current, cpu, memory, keep_rps(seen, catalog, cpu))


def krr(seen: Seen, catalog: catalog_mod.Catalog) -> truth_mod.Plan:
    """KRR's simple strategy: CPU p99, memory max + 15%."""
    s = seen.exported.series
    cpu = sorted(v for _, v in s["cpu"])
    cores = cpu[min(len(cpu) - 1, int(0.99 * len(cpu)))]
    memory = max(v for _, v in s["mem"]) * 1.15
    return truth_mod.Plan(seen.current, cores, memory, keep_rps(seen, catalog, cores))


def _current_estimate(
    seen: Seen, catalog: catalog_mod.Catalog, *, floor: bool = False
) -> accelerators.Profile | None:
    """The catalog rule's view of the current hardware: utilisation extrapolated to 80%;
    none below accelerators.MIN_UTILIZATION, where utilisation implies no capacity (the
    rule as first defined). With `floor`, the rate seen there instead, as tideserve does."""
    obs = observation(seen)
    low = obs.gpu_utilization is None or obs.gpu_utilization < accelerators.MIN_UTILIZATION
    if low and not floor:
        return None
    return accelerators.observed_profile(
        seen.current, obs.rps_per_replica, obs.gpu_utilization, obs.latency_ms
    )


def _rule(
    seen: Seen, catalog: catalog_mod.Catalog, *, slo: bool, floor: bool = False
) -> truth_mod.Plan:
    base = vpa(seen, catalog)
    current = _option(catalog, seen.current)
    profile = _current_estimate(seen, catalog, floor=floor)
    need = max(v for _, v in seen.exported.series["gpu_mem"]) * RULE_GPU_HEADROOM
    if profile is None:
        return base
    peak = max(v for _, v in seen.exported.series["rps"])
    best: tuple[float, truth_mod.Plan] | None = None
    for option in catalog_mod.options(catalog):
        if option.kind is catalog_mod.Kind.CPU or option.memory_bytes < need:
            continue
        ratio = option.relative_speed / current.relative_speed
        capacity = profile.max_rps * ratio
        latency = (profile.p99_latency_ms or 0.0) / ratio
        if slo and latency > seen.model.slo_ms:
            continue
        price = catalog_mod.replica_price(catalog, option, base.cpu, base.memory)
        # The naive rule buys the cheapest replica that fits; the catalog rule the
        # cheapest fleet at the peak.
        replicas = max(1, math.ceil(peak / capacity)) if slo else 1
        planned = base.planned_rps if option == current else capacity
        if best is None or replicas * price < best[0]:
            best = (
                replicas * price,
                dataclasses.replace(base, option=option.name, planned_rps=planned),
            )
    return best[1] if best is not None else base


def catalog_rule(seen: Seen, catalog: catalog_mod.Catalog) -> truth_mod.Plan:
    """VPA requests + the cheapest GPU/MIG that fits 1.2x the observed GPU memory and meets
    the SLO by the catalog's speed ratios."""
    return _rule(seen, catalog, slo=True)


def catalog_rule_floor(seen: Seen, catalog: catalog_mod.Catalog) -> truth_mod.Plan:
    """The catalog rule given tideserve's capacity floor where utilisation is below 2%
    (the rate one replica was seen to serve), so that signal is no edge of tideserve's."""
    return _rule(seen, catalog, slo=True, floor=True)


def naive(seen: Seen, catalog: catalog_mod.Catalog) -> truth_mod.Plan:
    """VPA requests + the cheapest GPU/MIG replica that fits the GPU memory."""
    return _rule(seen, catalog, slo=False)


def oracle(seen: Seen, catalog: catalog_mod.Catalog, week: truth_mod.Week) -> truth_mod.Plan:
    """True profiles and the true judged week: the cheapest plan that meets everything."""
    m = seen.model
    best: tuple[float, truth_mod.Plan] | None = None
    for option in catalog_mod.options(catalog):
        sizes = ORACLE_CORES if option.kind is catalog_mod.Kind.CPU else (None,)
        for size in sizes:
            probe = float(size or 1)
            curve = m.truth.curve(option, probe)
            planned = curve.within(m.slo_ms) * 0.999
            if planned <= 0:
                continue
            replicas = math.ceil(week.peak_rps / planned)
            if replicas > 40:
                continue
            per = week.peak_rps / replicas
            cores = probe if size else (week.cpu_base + week.cpu_per_rps * per) * 1.001
            memory = week.host_memory_peak * 1.001
            if option.kind is catalog_mod.Kind.CPU:
                memory += m.truth.gpu_memory
            cost = replicas * catalog_mod.replica_price(catalog, option, cores, memory)
            if best is None or cost < best[0]:
                best = (cost, truth_mod.Plan(option.name, cores, memory, planned))
    return best[1] if best is not None else initial(seen, catalog)


# --- tideserve, through the shipped code ----------------------------------------------


def declared_profiles(
    m: fleet_mod.Model, catalog: catalog_mod.Catalog, rng: random.Random
) -> list[dict[str, Any]]:
    """What a team that profiled by hand declares: the highest load within the SLO a probe
    found (it steps concurrency, so a little below the true figure, +-5% noise)."""
    if not m.declares:
        return []
    out = []
    for name in ("mig:1g.10gb", "mig:3g.40gb", "gpu:NVIDIA-L4", "gpu:Tesla-T4", "cpu-2", "cpu-4"):
        option = catalog_mod.find(catalog, name)
        if option is None:
            continue
        cores = accelerators.cpu_cores_of(name) or 1.0
        curve = m.truth.curve(option, cores)
        within = curve.within(m.slo_ms) * rng.uniform(0.85, 1.0)
        if within <= 0:
            continue
        out.append(
            {"option": name, "maxRequestsPerSecond": round(within, 3),
             "p99LatencyMs": round(curve.p99(within) * rng.uniform(0.95, 1.05), 3)}
        )  # fmt: skip
    return out


def without_profiling(spec: spec_api.InferenceServiceSpec) -> spec_api.InferenceServiceSpec:
    """The same spec with `rightSizing.profiling.enabled: false`."""
    rs = spec.resources.right_sizing
    off = rs.model_copy(update={"profiling": rs.profiling.model_copy(update={"enabled": False})})
    resources = spec.resources.model_copy(update={"right_sizing": off})
    return spec.model_copy(update={"resources": resources})


def spec_of(
    m: fleet_mod.Model,
    profiles: list[dict[str, Any]],
    max_replicas: int,
    mode: spec_api.RightSizingMode = spec_api.RightSizingMode.AUTO,
) -> spec_api.InferenceServiceSpec:
    """The endpoint's spec; by default in mode auto, since the judge applies each plan as
    auto does (so auto's defaults: profiling on)."""
    resources = m.initial.dump()
    resources["rightSizing"] = {"mode": mode.value, "profiles": profiles}
    return spec_api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": m.name, "storageUri": "s3://models/" + m.name},
            "resources": resources,
            "slo": {"latencyMs": m.slo_ms},
            "scaling": {"minReplicas": 1, "maxReplicas": max_replicas},
        }
    )


def observation(seen: Seen, lo: float | None = None) -> advisor.Observation:
    """The shipped signals.observe over what the endpoint exported (Prometheus' answers)."""
    s = seen.exported.series
    lo = seen.now - fleet_mod.TRAIN_DAYS * fleet_mod.DAY if lo is None else lo

    def cut(key: str, scale: float = 1.0) -> list[tuple[float, float]]:
        points = s[key]  # in time order
        a = bisect.bisect_left(points, (lo, -math.inf))
        b = bisect.bisect_right(points, (seen.now, math.inf))
        return points[a:b] if scale == 1.0 else [(t, v * scale) for t, v in points[a:b]]

    return signals.observe(
        {
            "cpu_cadvisor": cut("cpu"),
            "memory_cadvisor": cut("mem"),
            "gpu_memory": cut("gpu_mem"),
            "gpu_utilization": cut("util"),
            "rps": cut("rps"),
            "pod_rps": _pods(cut("pod_rps"), cut("replicas")),
            "latency_us": cut("mean", 1000.0),
            "latency_p99_us": cut("p99", 1000.0),
        },
        [],
        None,
        None,
    )


def _pods(
    rates: list[tuple[float, float]], replicas: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    # signals.observe divides the endpoint's rate by the pods seen at its peak; the export
    # keeps up to three pods' samples, so give each time one sample per replica that ran.
    per = dict(rates)
    return [(t, per[t]) for t, count in replicas if t in per for _ in range(int(count))]


def tideserve(
    seen: Seen,
    catalog: catalog_mod.Catalog,
    spec: spec_api.InferenceServiceSpec,
    *,
    previous: status_api.Recommendation | None = None,
    obs: advisor.Observation | None = None,
    policy: recommender.Policy = recommender.DEFAULT_POLICY,
    profiles: Sequence[status_api.MeasuredProfile] = (),
) -> tuple[truth_mod.Plan, advisor.Advice]:
    obs = obs or observation(seen)
    learned = None
    if seen.exported.learned_rps is not None:
        learned = status_api.Learned(
            capacity_per_replica=seen.exported.learned_rps,
            capacity_measured=True,
            basis=learned_status.basis_of(spec, seen.current),
        )
    status = status_api.InferenceServiceStatus(
        accelerator=seen.current,
        replicas=1,
        recommendation=previous,
        learned=learned,
        profiles=list(profiles),
    )
    advice = advisor.advise(
        spec, status, obs, catalog, nodes=[],
        now=datetime.datetime.fromtimestamp(seen.now, datetime.UTC), policy=policy,
    )  # fmt: skip
    rec = advice.recommendation
    assert rec is not None
    cores = quantities.parse(rec.cpu or "1")
    moved = catalog_mod.find(catalog, rec.accelerator) != _option(catalog, seen.current)
    planned = advice.planned_rps if moved and advice.planned_rps else keep_rps(seen, catalog, cores)
    return truth_mod.Plan(
        rec.accelerator, cores, quantities.parse(rec.memory or "1"), planned
    ), advice


# A probe's replica runs this long (start, model load, four concurrency levels), once per
# candidate per autoprofile.TTL: its cost, spread over the week, is added to the bill.
PROBE_HOURS = 10 / 60


def tideserve_profiled(
    seen: Seen,
    catalog: catalog_mod.Catalog,
    spec: spec_api.InferenceServiceSpec,
    rng: random.Random,
    policy: recommender.Policy = recommender.DEFAULT_POLICY,
) -> tuple[truth_mod.Plan, float, list[status_api.MeasuredProfile]]:
    """tideserve as the spec's profiling setting has it (in mode auto, on unless
    `profiling.enabled: false`): the planner picks a candidate, a probe measures it on the
    truth (the highest stepped load within the SLO: 85-100% of the true figure), the result
    joins status.profiles, and advice runs again, up to the endpoint's maxCandidates.
    Returns the plan, the probes' cost per hour over the TTL and their results."""
    now = datetime.datetime.fromtimestamp(seen.now, datetime.UTC)
    obs = observation(seen)
    measured: list[status_api.MeasuredProfile] = []
    spent = 0.0
    plan, advice = tideserve(seen, catalog, spec, obs=obs, policy=policy)
    for _ in range(spec.resources.right_sizing.profiling.max_candidates):
        status = status_api.InferenceServiceStatus(accelerator=seen.current, profiles=measured)
        rec = advice.recommendation
        probe = autoprofile.next_probe(
            spec,
            status,
            advice.candidates,
            advice.current_cost_per_hour,
            float(rec.gpu_memory_bytes) if rec and rec.gpu_memory_bytes else None,
            now,
            current=advice.current or seen.current,
            peak_rps=advice.peak_rps,
        )
        if probe is None:
            break
        option = _option(catalog, probe.option)
        cores = accelerators.cpu_cores_of(probe.option) or plan.cpu
        curve = seen.model.truth.curve(option, cores)
        within = curve.within(seen.model.slo_ms) * rng.uniform(0.85, 1.0)
        measured.append(
            status_api.MeasuredProfile(
                option=probe.option,
                max_requests_per_second=round(within, 3),
                p99_latency_ms=round(curve.p99(within), 3) if within > 0 else None,
                measured_at=now,
            )
        )
        spent += catalog_mod.replica_price(catalog, option, cores, plan.memory) * PROBE_HOURS
        plan, advice = tideserve(seen, catalog, spec, obs=obs, profiles=measured, policy=policy)
    return plan, spent / (autoprofile.TTL.total_seconds() / 3600), measured
