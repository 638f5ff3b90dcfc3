"""One endpoint's recommendation and cost, from its spec, status and observations (pure).

Composes the recommender (requests), the accelerator choice (hardware), the fit check
(can any node run it) and the cost figures, and applies hysteresis against the previous
recommendation so status only changes when something moved materially.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.autoscaler import learned_status
from tideserve.rightsizing import (
    accelerators,
    autoprofile,
    effective,
    fit,
    quantities,
    recommender,
)
from tideserve.rightsizing import catalog as catalog_mod

HOUR = 3600.0


@dataclasses.dataclass(frozen=True)
class Observation:
    """What Prometheus said about one endpoint over the recent window."""

    usage: recommender.Usage = dataclasses.field(default_factory=recommender.Usage)
    peak_rps: float | None = None  # endpoint total, highest over the window
    rps_per_replica: float | None = None  # at that peak
    gpu_utilization: float | None = None  # p90 per replica, 0..1
    # p99 request latency at peak load (Triton's latency summary); without summaries, the
    # highest mean, flagged in `notes`.
    latency_ms: float | None = None
    replica_seconds: float | None = None  # replicas x seconds up over the cost window
    requests: float | None = None  # requests served over the cost window
    notes: tuple[str, ...] = ()  # caveats about the data, carried into the reason


@dataclasses.dataclass(frozen=True)
class Advice:
    recommendation: status_api.Recommendation | None
    changed: bool  # materially different from the previous one (worth an Event)
    cost: status_api.Cost
    fit: fit.Fit | None
    replicas_recommended: int | None = None
    # Requests/s per replica the chosen option's profile holds within the SLO: the capacity
    # the recommendation was priced with.
    planned_rps: float | None = None
    # Every option priced, and what a candidate must cost less than to be worth measuring:
    # the current option at the peak when it meets the SLO, else the cheapest option that
    # does, None when none does (automatic profiling picks what to measure from these).
    candidates: tuple[accelerators.Candidate, ...] = ()
    current_cost_per_hour: float | None = None
    current: str | None = None  # the option it runs on
    peak_rps: float | None = None  # the load sized for: seen, else declared


def previous_sizing(rec: status_api.Recommendation | None) -> recommender.Sizing | None:
    if rec is None:
        return None
    return recommender.Sizing(
        cpu_cores=quantities.parse(rec.cpu) if rec.cpu else None,
        memory_bytes=quantities.parse(rec.memory) if rec.memory else None,
        gpu_memory_bytes=float(rec.gpu_memory_bytes) if rec.gpu_memory_bytes else None,
    )


def bounds(catalog: catalog_mod.Catalog, nodes: Sequence[fit.Node]) -> recommender.Bounds:
    max_cpu = catalog.cpu.max_cores_per_replica
    max_memory = catalog.cpu.max_memory_gib_per_replica * quantities.GIB
    if nodes:
        max_cpu = min(max_cpu, fit.largest(nodes, "cpu") or max_cpu)
        max_memory = min(max_memory, fit.largest(nodes, "memory") or max_memory)
    return recommender.Bounds(max_cpu_cores=max_cpu, max_memory_bytes=max_memory)


def declared(spec: spec_api.InferenceServiceSpec) -> list[accelerators.Profile]:
    return [
        accelerators.profile_on(
            p.option, p.max_requests_per_second, p.p99_latency_ms, accelerators.Source.DECLARED
        )
        for p in spec.resources.right_sizing.profiles
    ]


def learned_profile(
    spec: spec_api.InferenceServiceSpec,
    status: status_api.InferenceServiceStatus,
    option: catalog_mod.Option,
    latency_ms: float | None,
) -> accelerators.Profile | None:
    """The autoscaler's capacity per replica (status.learned), measured with the queue at its
    target on the hardware in use: one capacity model for scaling and sizing. Figures
    learned on another model, runtime, resources or accelerator (basis) do not count."""
    learned = status.learned
    if learned is None or not learned.capacity_measured or not learned.capacity_per_replica:
        return None
    if learned.basis is not None and learned.basis != learned_status.basis_of(
        spec, status.accelerator
    ):
        return None
    return accelerators.Profile(
        option.name, learned.capacity_per_replica, latency_ms, accelerators.Source.LEARNED
    )


def unplaceable(
    catalog: catalog_mod.Catalog, resources: spec_api.ResourcesSpec, nodes: Sequence[fit.Node]
) -> dict[str, str]:
    """Options no node can host (nothing when the nodes are unknown)."""
    if not nodes:
        return {}
    out = {}
    for option in catalog_mod.options(catalog):
        trial = status_api.Recommendation(accelerator=option.name)
        candidate = effective.apply(
            resources.model_copy(update={"accelerator": spec_api.Accelerator.AUTO}), trial
        )
        needs = fit.requirements(candidate)
        # Only the accelerator matters here; requests are checked for the final choice.
        needs = dataclasses.replace(
            needs, requests={k: v for k, v in needs.requests.items() if k not in ("cpu", "memory")}
        )
        result = fit.check(needs, nodes)
        if not result.fits:
            out[option.name] = "no node offers it"
    return out


def cost(
    catalog: catalog_mod.Catalog,
    resources: spec_api.ResourcesSpec,
    in_use: str | None,
    replicas: int,
    observation: Observation,
) -> status_api.Cost:
    """Cost per hour of what runs now, and per 1,000 inferences over the window."""
    price = replica_price(catalog, resources, in_use)
    per_1k = None
    if observation.replica_seconds is not None and observation.requests:
        spent = observation.replica_seconds / HOUR * price
        per_1k = float(f"{spent / observation.requests * 1000:.3g}")
    return status_api.Cost(per_hour=round(replicas * price, 4), per_1k_inferences=per_1k)


def replica_price(
    catalog: catalog_mod.Catalog, resources: spec_api.ResourcesSpec, in_use: str | None
) -> float:
    option = effective.option_of(catalog, resources, in_use)
    count = resources.gpu.count if option.kind is catalog_mod.Kind.GPU and resources.gpu else 1
    return catalog_mod.replica_price(
        catalog,
        option,
        quantities.parse(resources.cpu or fit.DEFAULT_CPU),
        quantities.parse(resources.memory or fit.DEFAULT_MEMORY),
        count,
    )


def advise(
    spec: spec_api.InferenceServiceSpec,
    status: status_api.InferenceServiceStatus | None,
    observation: Observation,
    catalog: catalog_mod.Catalog,
    *,
    nodes: Sequence[fit.Node],
    now: datetime.datetime,
    measured: Sequence[accelerators.Profile] = (),
    policy: recommender.Policy = recommender.DEFAULT_POLICY,
) -> Advice:
    status = status or status_api.InferenceServiceStatus()
    resources = spec.resources
    in_use = status.accelerator
    replicas = status.replicas or 0
    running = running_resources(spec, status)
    spent = cost(catalog, running, in_use, replicas, observation)
    needs_fit = fit.check(fit.requirements(running), nodes) if nodes else None
    if resources.right_sizing.mode is spec_api.RightSizingMode.OFF:
        return Advice(None, False, spent, needs_fit)

    previous = status.recommendation
    limit = bounds(catalog, nodes)
    sizing = recommender.size(observation.usage, now.timestamp(), limit, policy)
    sizing = recommender.stabilize(previous_sizing(previous), sizing, policy)
    # Without usage data the request stays as it is, but never above what a node holds.
    cores = min(
        sizing.cpu_cores or quantities.parse(running.cpu or fit.DEFAULT_CPU), limit.max_cpu_cores
    )
    memory = min(
        sizing.memory_bytes or quantities.parse(running.memory or fit.DEFAULT_MEMORY),
        limit.max_memory_bytes,
    )

    current = effective.option_of(catalog, running, in_use)
    peak = observation.peak_rps or resources.right_sizing.peak_requests_per_second
    demand = accelerators.Demand(
        peak_rps=peak,
        latency_ms=spec.slo.latency_ms,
        cpu_cores=cores,
        memory_bytes=memory,
        gpu_memory_bytes=sizing.gpu_memory_bytes,
        max_replicas=spec.scaling.max_replicas,
        rps_per_replica_seen=observation.rps_per_replica,
        unplaceable=unplaceable(catalog, resources, nodes),
    )
    profiles = [*measured, *autoprofile.measured(status), *declared(spec)]
    learned = learned_profile(spec, status, current, observation.latency_ms)
    if learned is not None:
        profiles.append(learned)
    # What replicas served is a profile of the option they ran on: credited to `current`
    # only when that is the hardware status says runs (unknown before the first apply).
    seen = (
        accelerators.observed_profile(
            current.name,
            observation.rps_per_replica,
            observation.gpu_utilization,
            observation.latency_ms,
        )
        if in_use is None or in_use == current.name
        else None
    )
    if seen is not None:
        profiles.append(seen)
    choice = accelerators.choose(catalog, demand, profiles, current)
    best = _hold(choice, previous, policy.hysteresis)
    # What a measured candidate must beat: the current option when it meets the SLO, else
    # the cheapest option that does (None: none does, so any candidate is worth measuring).
    here = next((c for c in choice.candidates if c.option == current), None)
    if here is not None and here.meets:
        beat: float | None = here.cost_per_hour
    else:
        beat = choice.best.cost_per_hour if choice.best is not None else None

    notes = [*sizing.notes, *observation.notes]
    advice_only = ""
    pinned = resources.accelerator is not spec_api.Accelerator.AUTO
    if best is not None and best.option != current and pinned:
        # The user chose the hardware: size the requests for it, and only say what a
        # cheaper option would save (accelerator: auto lets tideserve move it).
        advice_only = f"cheaper: {best.why}; set accelerator: auto to allow the move"
        best = here
    elif best is not None and best.option != current:
        # Measure before moving: an estimate is not moved to while profiling will still
        # measure a candidate (the planner's next probe), so the move never runs alongside
        # its own measurement.
        probe = _probe_pending(spec, status, choice, beat, sizing, now, current, peak)
        if best.profile.source is accelerators.Source.ESTIMATED and probe is not None:
            notes.append(f"measuring {probe.option} first (best estimate: {best.why})")
            best = here
    option_name = current.name
    if best is not None:
        option_name, cores, memory = best.option.name, best.cores, best.memory_bytes
        notes.append(best.why)
    elif not advice_only:
        notes.append(f"keeping {current.name}: {choice.reason}")
    if advice_only:
        notes.append(advice_only)
    rec = status_api.Recommendation(
        accelerator=option_name,
        cpu=quantities.cpu(cores),
        memory=quantities.memory(memory),
        gpu_memory_bytes=round(sizing.gpu_memory_bytes) if sizing.gpu_memory_bytes else None,
        cost_per_hour_now=round(replica_price(catalog, running, in_use), 4),
        cost_per_hour_recommended=round(
            best.price_per_replica_hour
            if best is not None
            else catalog_mod.replica_price(catalog, current, cores, memory),
            4,
        ),
        replicas=best.replicas if best is not None else None,
        reason="; ".join(notes)[:2048],
        generated_at=now,
        oom_raised=sizing.oom_raised or None,
    )
    changed = (
        previous is None or _material(previous, rec, policy) or _oom_raised(previous, rec, sizing)
    )
    if not changed and previous is not None:
        rec = previous
        if previous.oom_raised and not sizing.oom_raised:
            # Kept as it was, but oomRaised says this pass raised memory for a kill: a stale
            # one would let auto mode apply memory mid-rollout with no kill to justify it.
            rec = previous.model_copy(update={"oom_raised": None})
    return Advice(
        rec,
        changed,
        spent,
        needs_fit,
        best.replicas if best else None,
        best.profile.max_rps if best else None,
        choice.candidates,
        beat,
        current.name,
        peak,
    )


def running_resources(
    spec: spec_api.InferenceServiceSpec, status: status_api.InferenceServiceStatus
) -> spec_api.ResourcesSpec:
    """What the Deployment runs, as status records it: in mode auto the recommendation once
    status.accelerator shows it applied, else the spec on status.accelerator (a
    recommendation not applied yet runs nowhere, so nothing seen is credited to it)."""
    target = effective.effective_resources(spec, status)
    if target is spec.resources or status.accelerator is None:
        return target
    if effective.option_name(target) == status.accelerator:
        return target
    return spec.resources


def _probe_pending(
    spec: spec_api.InferenceServiceSpec,
    status: status_api.InferenceServiceStatus,
    choice: accelerators.Choice,
    beat: float | None,
    sizing: recommender.Sizing,
    now: datetime.datetime,
    current: catalog_mod.Option,
    peak: float | None,
) -> autoprofile.Probe | None:
    """The probe automatic profiling would start next for this endpoint, if any."""
    return autoprofile.next_probe(
        spec,
        status,
        choice.candidates,
        beat,
        sizing.gpu_memory_bytes,
        now,
        current=current.name,
        peak_rps=peak,
    )


def _hold(
    choice: accelerators.Choice,
    previous: status_api.Recommendation | None,
    hysteresis: float,
) -> accelerators.Candidate | None:
    """Keep the previously recommended option unless the new best saves more than hysteresis."""
    best = choice.best
    if best is None or previous is None or previous.accelerator == best.option.name:
        return best
    before = next(
        (c for c in choice.candidates if c.meets and c.option.name == previous.accelerator), None
    )
    if before is not None and best.cost_per_hour >= before.cost_per_hour * (1 - hysteresis):
        return before
    return best


def _oom_raised(
    old: status_api.Recommendation, new: status_api.Recommendation, sizing: recommender.Sizing
) -> bool:
    """An OOM kill raised memory: applied however small the raise (the replica died)."""
    if not sizing.oom_raised or not new.memory:
        return False
    return not old.memory or quantities.parse(new.memory) > quantities.parse(old.memory)


def _material(
    old: status_api.Recommendation, new: status_api.Recommendation, policy: recommender.Policy
) -> bool:
    if old.accelerator != new.accelerator:
        return True
    figures = (
        (old.cpu, new.cpu, policy.min_cpu_step_cores),
        (old.memory, new.memory, policy.min_memory_step_bytes),
    )
    for before, after, step in figures:
        was = quantities.parse(before) if before else None
        now = quantities.parse(after) if after else None
        if recommender.moved(was, now, policy.hysteresis, step):
            return True
    return False


# Right-sizing's own condition (manager tideserve-rightsizing): can any node run one
# replica of what is rendered now? Schedulable stays the reconciler's.
FIT_CONDITION = "ResourcesFit"


def fit_condition(
    result: fit.Fit,
    previous: status_api.InferenceServiceStatus | None,
    generation: int | None,
    now: datetime.datetime,
) -> status_api.Condition:
    state = status_api.ConditionStatus.TRUE if result.fits else status_api.ConditionStatus.FALSE
    old = next(
        (c for c in (previous.conditions if previous else []) if c.type == FIT_CONDITION), None
    )
    since = old.last_transition_time if old is not None and old.status == state else now
    return status_api.Condition(
        type=FIT_CONDITION,
        status=state,
        reason=result.reason,
        message=result.message,
        last_transition_time=since,
        observed_generation=generation,
    )


def status_patch(
    advice: Advice,
    previous: status_api.InferenceServiceStatus | None,
    generation: int | None,
    now: datetime.datetime,
) -> dict[str, Any] | None:
    """The status fields right-sizing owns, or None when they would not change."""
    patch: dict[str, Any] = {"cost": advice.cost.dump()}
    if advice.recommendation is not None:
        patch["recommendation"] = advice.recommendation.dump()
    if advice.fit is not None:
        patch["conditions"] = [fit_condition(advice.fit, previous, generation, now).dump()]
    before: dict[str, Any] = {}
    if previous is not None:
        if previous.cost is not None:
            before["cost"] = previous.cost.dump()
        if previous.recommendation is not None:
            before["recommendation"] = previous.recommendation.dump()
        old = [c.dump() for c in previous.conditions if c.type == FIT_CONDITION]
        if old:
            before["conditions"] = old
    return None if patch == before else patch
