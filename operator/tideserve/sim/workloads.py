"""The benchmark's workloads and, for each, the policies and knob sweeps to run."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Callable

from tideserve.sim import (
    baselines,
    endpoint,
    hpa,
    models,
    pipeline,
    runner,
    tideserve_policy,
    traces,
    traffic,
)

ATTAINMENT_BAR = 0.99


@dataclasses.dataclass(frozen=True)
class Options:
    seed: int = 1
    hours: float = 24.0
    node_provision_s: float = 0.0
    scrape_s: float = 5.0
    tick_s: float = 5.0
    max_replicas: int = 64


def _config(o: Options) -> endpoint.SimConfig:
    return endpoint.SimConfig(
        node_provision_s=o.node_provision_s,
        pipeline=pipeline.PipelineConfig(scrape_s=o.scrape_s),
        max_replicas=o.max_replicas,
    )


def _with_work(tr: traffic.Trace, seed: int) -> traffic.Trace:
    return dataclasses.replace(tr, work=traffic.llm_work(seed, len(tr.arrivals)))


def diurnal(o: Options) -> runner.Workload:
    tr = _with_work(traffic.diurnal(o.seed, o.hours, peak_rps=12.0), o.seed)
    return runner.Workload(
        "diurnal",
        "small LLM, working-day traffic (peak 12 req/s), silent 00:00-06:00",
        (tr,),
        models.MODELS["llm-small"],
        models.Slo(2.0, 15.0, 120.0),
        o.max_replicas,
        _config(o),
    )


def bursty(o: Options) -> runner.Workload:
    tr = traffic.bursty(o.seed, o.hours, peak_rps=60.0)
    return runner.Workload(
        "bursty",
        "image model, on/off bursts up to 60 req/s, gaps of seconds to hours",
        (tr,),
        models.MODELS["imagegen"],
        models.Slo(0.5, 2.0, 30.0),
        o.max_replicas,
        _config(o),
    )


def steps(o: Options) -> runner.Workload:
    tr = traffic.steps_and_spikes(o.seed, min(o.hours, 6.0), base_rps=8.0)
    return runner.Workload(
        "steps",
        "image model, 8 req/s base with x10 steps (10 s ramp) and 30 s x10 spikes",
        (tr,),
        models.MODELS["imagegen"],
        models.Slo(0.5, 2.0, 30.0),
        o.max_replicas,
        _config(o),
    )


def multi(o: Options) -> runner.Workload:
    traces = traffic.many_endpoints(o.seed, endpoints=8, hours=o.hours, total_peak_rps=40.0)
    return runner.Workload(
        "multi",
        "8 image endpoints, Zipf popularity, half diurnal half bursty",
        tuple(traces),
        models.MODELS["imagegen"],
        models.Slo(0.5, 2.0, 30.0),
        o.max_replicas,
        _config(o),
    )


def slo_for(m: models.ModelClass) -> models.Slo:
    if m.base_s > 1.0:
        return models.Slo(2.0, 15.0, 120.0)  # LLM: seconds per request
    if m.base_s > 0.2:
        return models.Slo(5.0, 30.0, 120.0)  # diffusion: ~3 s per image
    return models.Slo(0.5, 2.0, 30.0)


def from_trace(trace: traffic.Trace, model: str, o: Options) -> runner.Workload:
    m = models.MODELS[model]
    return runner.Workload(
        trace.name,
        f"replayed trace on {model}",
        (trace,),
        m,
        slo_for(m),
        o.max_replicas,
        _config(o),
    )


# A trace busier than this many replicas of its model at its peak minute is thinned to it.
PEAK_REPLICAS = 6.0


def trace_model(choice: str, family: str, work_column: str | None) -> str:
    """--trace-model, or for `auto` by what the file carries: token counts -> llm-small,
    execution times -> diffusion, bare counts -> imagegen."""
    if choice != "auto":
        return choice
    if traces.is_tokens(work_column):
        return "llm-small"
    if work_column is not None and family == "requests":
        return "diffusion"
    return "imagegen"


def load_trace(
    spec: str, choice: str, o: Options, directory: pathlib.Path, days: str | None
) -> tuple[runner.Workload, str]:
    """A --trace spec as a workload, and the note saying what was taken and how scaled."""
    family, work_col = traces.sniff(spec, directory)
    name = trace_model(choice, family, work_col)
    m = models.MODELS[name]
    cap = PEAK_REPLICAS * m.capacity_rps()
    loaded = traces.load(spec, o.seed, directory, days, max_peak_rps=cap)
    if loaded.factor < 1.0:
        scale = (
            f"Rate scaled x{loaded.factor:.3g} (peak minute {loaded.peak_rps:.3g} req/s -> "
            f"{PEAK_REPLICAS:g} replicas' capacity, {cap:.3g} req/s)."
        )
    else:
        scale = (
            f"Own rate (peak minute {loaded.peak_rps:.3g} req/s, "
            f"{loaded.peak_rps / m.capacity_rps():.2g} replicas' capacity)."
        )
    window = f" Days {days}." if days else ""
    note = f"Source: {loaded.note}. {scale}{window}"
    wl = runner.Workload(
        loaded.name,
        f"real trace ({loaded.family}) on {name}",
        loaded.traces,
        m,
        slo_for(m),
        o.max_replicas,
        _config(o),
    )
    return wl, note


BUILTIN: dict[str, Callable[[Options], runner.Workload]] = {
    "diurnal": diurnal,
    "bursty": bursty,
    "steps": steps,
    "multi": multi,
}


def _factory(make: Callable[[], endpoint.Policy]) -> runner.PolicyFactory:
    def build(w: runner.Workload, t: traffic.Trace) -> endpoint.Policy:
        return make()

    return build


def candidates(wl: runner.Workload, o: Options, quick: bool = False) -> list[runner.Candidate]:
    """Each policy at several settings of its main knob (no straw men)."""
    mx, batch = o.max_replicas, wl.model.max_batch
    out: list[runner.Candidate] = []

    def add(family: str, label: str, make: Callable[[], endpoint.Policy]) -> None:
        out.append(runner.Candidate(family, label, _factory(make)))

    # tideserve's endpoints carry the workload's objective in spec.slo, as a user states it.
    slo = tideserve_policy.slo_spec(wl.slo)

    def ts(label: str, body: dict[str, object], attainment: float | None = None) -> None:
        spec = tideserve_policy.scaling_spec({"maxReplicas": mx, **body})
        objective = slo if attainment is None else tideserve_policy.slo_spec(wl.slo, attainment)
        add(
            "tideserve",
            label,
            lambda: tideserve_policy.TideservePolicy(spec, o.tick_s, label, objective),
        )

    ts("default", {})
    if quick:
        ts("q=1", {"target": {"type": "queueDepth", "value": 1.0}})
    else:
        for q in (0.5, 2.0, 8.0):
            ts(f"q={q:g}", {"target": {"type": "queueDepth", "value": q}})
        for idle in (60, 600):
            ts(f"idle={idle}s", {"scaleToZero": {"idleSeconds": idle}})
        for att in (0.95, 0.999):
            ts(f"attainment={att:g}", {}, attainment=att)
    # Baselines: the scale-up knob and the scale-down knobs (stabilization, cooldown,
    # keep-alive), so each family's frontier is its best, not its defaults.
    hpa_grid = [(0.6, 300.0)] if quick else [(u, d) for u in (0.5, 0.8) for d in (60.0, 300.0)]
    for u, down in hpa_grid:
        add("hpa", f"util={u:.0%},down={down:g}s", functools.partial(hpa.HpaPolicy, u, mx, down))
    keda_grid = (
        [(1.0, 300.0, 300.0)]
        if quick
        else [(k, w, w) for k in (0.5, 1.0, 2.0) for w in (60.0, 300.0)]
    )
    for k, cd, down in keda_grid:
        c = k * batch
        add(
            "keda",
            f"c={c:g},cooldown={cd:g}s,down={down:g}s",
            functools.partial(baselines.KedaPolicy, c, mx, cooldown_s=cd, down_s=down),
        )
    kpa_grid = [(1.0, 30.0)] if quick else [(k, g) for k in (0.5, 2.0) for g in (30.0, 300.0)]
    for k, grace in kpa_grid:
        c = k * batch
        add(
            "kpa",
            f"c={c:g},grace={grace:g}s",
            functools.partial(baselines.KpaPolicy, c, mx, grace_s=grace),
        )
    for minutes in [10.0] if quick else [1.0, 2.0, 5.0, 10.0, 30.0]:
        keep = minutes * 60.0
        add(
            "keepalive",
            f"{minutes:g}m",
            functools.partial(baselines.KeepAlivePolicy, keep, float(batch), mx),
        )
    return out
