"""The benchmark's workloads and, for each, the policies and knob sweeps to run."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from tideserve.sim import (
    baselines,
    endpoint,
    hpa,
    models,
    pipeline,
    runner,
    tideserve_policy,
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


def from_trace(trace: traffic.Trace, model: str, o: Options) -> runner.Workload:
    m = models.MODELS[model]
    slo = models.Slo(2.0, 15.0, 120.0) if m.base_s > 0.5 else models.Slo(0.5, 2.0, 30.0)
    return runner.Workload(
        trace.name, f"replayed trace on {model}", (trace,), m, slo, o.max_replicas, _config(o)
    )


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

    def ts(label: str, body: dict[str, object]) -> None:
        spec = tideserve_policy.scaling_spec({"maxReplicas": mx, **body})
        add(
            "tideserve",
            label,
            lambda: tideserve_policy.TideservePolicy(spec, o.tick_s, label, slo),
        )

    ts("default", {})
    for q in [1.0] if quick else [0.5, 1.0, 2.0, 8.0]:
        ts(f"q={q:g}", {"target": {"type": "queueDepth", "value": q}})
    if not quick:
        ts("q=1,idle=300s", {"target": {"value": 1.0}, "scaleToZero": {"idleSeconds": 300}})
        ts("q=2,idle=300s", {"target": {"value": 2.0}, "scaleToZero": {"idleSeconds": 300}})
    for u in [0.6] if quick else [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
        add("hpa", f"util={u:.0%}", functools.partial(hpa.HpaPolicy, u, mx))
    for k in [1.0] if quick else [0.5, 1.0, 1.5, 2.0, 3.0]:
        c = k * batch
        add("keda", f"c={c:g}", functools.partial(baselines.KedaPolicy, c, mx))
        add("kpa", f"c={c:g}", functools.partial(baselines.KpaPolicy, c, mx))
    for minutes in [10.0] if quick else [1.0, 5.0, 10.0, 20.0]:
        keep = minutes * 60.0
        add(
            "keepalive",
            f"{minutes:g}m",
            functools.partial(baselines.KeepAlivePolicy, keep, float(batch), mx),
        )
    return out
