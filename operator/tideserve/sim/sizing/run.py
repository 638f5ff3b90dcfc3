"""Runs of the right-sizing bench: one fleet per seed, every recommender judged on it.

Each model runs its first week on the initial spec; every recommender sees that week's
signals and is judged on the second week's truth (truth.judge). Then tideserve alone is
re-run every 12 h through the second week, as auto mode would, with its plan applied:
memory above the applied limit OOM-kills a replica and the kill is fed back.
"""

# ruff: noqa: S311 - seeded simulation randomness, not cryptography
from __future__ import annotations

import bisect
import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.rightsizing import catalog as catalog_mod
from tideserve.rightsizing import quantities, recommender
from tideserve.sim.sizing import baselines, truth
from tideserve.sim.sizing import fleet as fleet_mod

MAX_REPLICAS = 40
HOURS_PER_MONTH = 730
ROLLING_MODELS = 20
FLAT = "tideserve, flat memory margin"
# "tideserve" is the shipped defaults in mode auto (profiling on); this is it switched off.
UNPROFILED = "tideserve, profiling off"
RULE_FLOOR = "catalog rule + floor"
RECOMMENDERS = (
    "initial", "vpa", "krr", "naive", "catalog rule", RULE_FLOOR, "tideserve", UNPROFILED,
    FLAT, "oracle",
)  # fmt: skip
# Memory's margin without the risk terms: VPA's p90 of daily peaks + 15% for every endpoint.
FLAT_MEMORY = dataclasses.replace(
    recommender.DEFAULT_POLICY,
    memory_leak_threshold=math.inf,
    memory_step_threshold=math.inf,
    memory_floor_margin=0.0,
)
Simple = Callable[[baselines.Seen, catalog_mod.Catalog], truth.Plan]
SIMPLE: dict[str, Simple] = {
    "initial": baselines.initial,
    "vpa": baselines.vpa,
    "krr": baselines.krr,
    "naive": baselines.naive,
    "catalog rule": baselines.catalog_rule,
    RULE_FLOOR: baselines.catalog_rule_floor,
}
VARIANTS: dict[str, recommender.Policy] = {
    "tideserve": recommender.DEFAULT_POLICY,
    # Without hysteresis: neither the 10% band nor the minimum steps.
    "no hysteresis": dataclasses.replace(
        recommender.DEFAULT_POLICY,
        hysteresis=0.0,
        min_cpu_step_cores=0.0,
        min_memory_step_bytes=0.0,
    ),
    "flat memory margin": FLAT_MEMORY,
}


@dataclasses.dataclass(frozen=True)
class SeedResult:
    seed: int
    verdicts: dict[str, list[truth.Verdict]]
    changes: dict[str, int]  # rolling: material changes per variant
    kills: dict[str, int]  # rolling: OOM kills per variant
    killed_models: dict[str, int]  # rolling: models killed at least once
    advise_ms: float


def _week(m: fleet_mod.Model) -> truth.Week:
    return truth.Week(
        peak_rps=m.peak_rps * m.growth,
        host_memory_peak=fleet_mod.week_peak_memory(m, fleet_mod.TRAIN_DAYS, fleet_mod.EVAL_DAYS),
        cpu_base=m.cpu_base,
        cpu_per_rps=m.cpu_per_rps,
    )


def run(n: int, seed: int, catalog: catalog_mod.Catalog = catalog_mod.DEFAULT) -> SeedResult:
    rng = random.Random(seed)
    models = fleet_mod.fleet(n, rng, catalog)
    train_end = fleet_mod.T0 + fleet_mod.TRAIN_DAYS * fleet_mod.DAY
    verdicts: dict[str, list[truth.Verdict]] = {k: [] for k in RECOMMENDERS}
    changes = dict.fromkeys(VARIANTS, 0)
    kills = dict.fromkeys(VARIANTS, 0)
    killed = dict.fromkeys(VARIANTS, 0)
    timings = []
    for idx, m in enumerate(models):
        mrng = random.Random(seed * 1000 + idx)
        load = fleet_mod.traffic(mrng, fleet_mod.T0, fleet_mod.TRAIN_DAYS, m.peak_rps)
        load += fleet_mod.traffic(mrng, train_end, fleet_mod.EVAL_DAYS, m.peak_rps * m.growth)
        current = catalog_mod.find(catalog, fleet_mod.initial_option(m))
        assert current is not None
        cores = quantities.parse(m.initial.cpu or "1")
        exported = fleet_mod.export(m, load, current, cores, mrng)
        first = dataclasses.replace(
            exported,
            series={
                k: [(t, v) for t, v in vs if t < train_end] for k, vs in exported.series.items()
            },
        )
        seen = baselines.Seen(m, first, train_end)
        week = _week(m)
        profiles = baselines.declared_profiles(m, catalog, mrng)
        spec = baselines.spec_of(m, profiles, MAX_REPLICAS)
        unprofiled = baselines.without_profiling(spec)
        plans = {name: fn(seen, catalog) for name, fn in SIMPLE.items()}
        started = time.perf_counter()
        plans[UNPROFILED], _ = baselines.tideserve(seen, catalog, unprofiled)
        timings.append(time.perf_counter() - started)
        plans[FLAT], _ = baselines.tideserve(seen, catalog, unprofiled, policy=FLAT_MEMORY)
        plans["tideserve"], probing_cost, measured = baselines.tideserve_profiled(
            seen, catalog, spec, random.Random(seed * 31 + idx)
        )
        plans["oracle"] = baselines.oracle(seen, catalog, week)
        for name in RECOMMENDERS:
            verdict = truth.judge(m.truth, plans[name], week, m.slo_ms, catalog, MAX_REPLICAS)
            if name == "tideserve":  # the shadow replicas' cost, spread over the week
                verdict = dataclasses.replace(
                    verdict, cost_per_hour=verdict.cost_per_hour + probing_cost
                )
            verdicts[name].append(verdict)
        if idx < ROLLING_MODELS:
            whole = baselines.Seen(m, exported, train_end)
            for label, policy in VARIANTS.items():
                c, k = rolling(whole, catalog, spec, policy, measured)
                changes[label] += c
                kills[label] += k
                killed[label] += k > 0
    return SeedResult(seed, verdicts, changes, kills, killed, statistics.median(timings) * 1000)


def rolling(
    seen: baselines.Seen,
    catalog: catalog_mod.Catalog,
    spec: spec_api.InferenceServiceSpec,
    policy: recommender.Policy,
    measured: Sequence[status_api.MeasuredProfile] = (),
) -> tuple[int, int]:
    """Re-run every 12 h through week 2 on a sliding 8-day window, in mode auto with the
    first pass's probe results in status.profiles; count material changes and OOM kills
    (memory over the applied limit kills, is capped there, and is fed back). The samples
    stay the initial hardware's, and status.accelerator says so: a recommended move is
    never credited with them."""
    series = dict(seen.exported.series)
    mem = list(series["mem"])
    ooms: list[recommender.Oom] = []
    previous = None
    flaps = kills = 0
    half_day = fleet_mod.DAY / 2
    for k in range(fleet_mod.EVAL_DAYS * 2):
        now = seen.now + k * half_day
        view = baselines.Seen(
            seen.model, dataclasses.replace(seen.exported, series=series | {"mem": mem}), now
        )
        obs = baselines.observation(view)
        obs = dataclasses.replace(obs, usage=dataclasses.replace(obs.usage, ooms=tuple(ooms)))
        _, advice = baselines.tideserve(
            view, catalog, spec, previous=previous, obs=obs, policy=policy, profiles=measured
        )
        if previous is not None and advice.changed:
            flaps += 1
        previous = advice.recommendation
        assert previous is not None
        limit = quantities.parse(previous.memory or "0")
        window = range(
            bisect.bisect_left(mem, (now, -math.inf)),
            bisect.bisect_left(mem, (now + half_day, -math.inf)),
        )
        over = [i for i in window if mem[i][1] > limit]
        if over:
            kills += 1
            ooms.append(recommender.Oom(mem[over[0]][0], limit))
            for i in window:
                mem[i] = (mem[i][0], min(mem[i][1], limit))
    return flaps, kills
