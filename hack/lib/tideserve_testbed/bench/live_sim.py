"""hack/bench-live's simulator check: the same request list through `tideserve bench`'s
simulator (tideserve.sim), each policy configured as on the test bed, with the model's
parameters measured there, and its figures beside the live ones.

The parameters (LIVE_MODEL, PIPELINE below) are the test bed's, measured or configured,
not fitted to the live results: the model sleeps DELAY_MS per batch of up to 8 (Triton's
dynamic batcher waits up to 2 ms, hack/testbed/triton-models/tiny/config.pbtxt); the cold
start (a replica asked for -> Ready: pod start, Triton's start, the model's load) is the
median over the live runs' samples (`cold_starts`); Prometheus scrapes every 1 s
(hack/testbed/prometheus.yml.in), Triton refreshes its metrics every 2 s (its default);
tideserve ticks every 5 s (its default); the HPA controller syncs every 15 s
(kube-controller-manager's default). The activator holds at most 1000 requests (its
default) for every policy that scales from zero, as live, where KEDA's wakes go through
the same activator.

Measured the same way as live: attainment = answered within the SLO over all requests;
replica-seconds = the seconds each replica was Ready (not asked-for seconds, which the
bench's GPU-seconds count).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence

import numpy as np

from tideserve.sim import baselines, dataplane, endpoint, hpa, models, pipeline
from tideserve.sim import tideserve_policy as ts_policy
from tideserve_testbed.bench import live_metrics as lm

ACTIVATOR_CAP = 1000  # the activator's default maxHeldRequests
HPA_SYNC_S = 15.0  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period default
TIDESERVE_TICK_S = 5.0
PIPELINE = pipeline.PipelineConfig(triton_interval_s=2.0, scrape_s=1.0)


def live_model(delay_ms: int, cold_s: float) -> models.ModelClass:
    return models.ModelClass(
        "live-cpu", delay_ms / 1000.0, 0.0, 8, 0.002, 0.0, cold_s, accelerator="cpu"
    )


def cold_starts(samples: Sequence[lm.Sample]) -> list[float]:
    """Seconds from each rise of the Deployment's spec.replicas until as many are Ready."""
    out: list[float] = []
    for i in range(1, len(samples)):
        before, now = samples[i - 1], samples[i]
        for k in range(before.desired + 1, now.desired + 1):
            if k <= before.ready:
                continue
            ready = next((s.t for s in samples[i:] if s.ready >= k), None)
            if ready is not None:
                out.append(ready - now.t)
    return out


@dataclasses.dataclass(frozen=True)
class _QueueSeries:
    concurrency: tuple[tuple[float, float], ...]


def queue_view(view: pipeline.View) -> pipeline.View:
    """The view with its one "concurrency" sample replaced by the live signal: Triton's
    pending count as last scraped plus what the activator holds (keda_query), so the
    simulator's KEDA reads what the live one reads (it models queue-proxy concurrency)."""
    pending = view.pending or 0
    series = _QueueSeries(((view.now, float(pending + view.held)),))
    return dataclasses.replace(view, series=series)  # type: ignore[arg-type]


class OnQueue:
    """A simulated peer fed the live signal (queue_view) instead of concurrency."""

    needs_concurrency = False

    def __init__(self, inner: endpoint.Policy, tick_s: float, initial: int) -> None:
        self.inner, self.name, self.tick_s = inner, inner.name, tick_s
        self.activator_cap: int | None = ACTIVATOR_CAP
        self.initial_replicas = initial

    def decide(self, view: pipeline.View) -> int:
        return self.inner.decide(queue_view(view))


class HpaOnQueue:
    """A standalone HPA (autoscaling/v2) on an External AverageValue metric, as
    hack/bench-live's HPA reads it (wrapped in OnQueue)."""

    needs_concurrency = True
    activator_cap: int | None = ACTIVATOR_CAP
    initial_replicas = 1
    tick_s = HPA_SYNC_S

    def __init__(self, target: float, max_replicas: int, down_s: float) -> None:
        self.name = f"hpa(queue={target:g},down={down_s:g}s)"
        self.target = target
        down = dataclasses.replace(hpa.DEFAULT_DOWN, stabilization_s=down_s)
        self.hpa = hpa.Hpa(1, max_replicas, down=down)

    def decide(self, view: pipeline.View) -> int:
        series = view.series.concurrency
        metric = float(series[-1][1]) if series else None
        desired = None
        if metric is not None:
            desired = hpa.external_per_pod_replicas(view.current, metric, self.target)
        return self.hpa.sync(view.now, view.current, desired)


def policies(
    max_replicas: int, target: float, slo_s: float
) -> dict[str, Callable[[], endpoint.Policy]]:
    """The live run's policies, as the simulator models them, with the live settings."""

    def keda(tuned: bool) -> endpoint.Policy:
        p = baselines.KedaPolicy(
            target, max_replicas, polling_s=5.0 if tuned else 30.0,
            cooldown_s=30.0 if tuned else 300.0, down_s=30.0 if tuned else 300.0,
        )  # fmt: skip
        return OnQueue(p, HPA_SYNC_S, 0)

    def tideserve() -> endpoint.Policy:
        spec = ts_policy.scaling_spec({"maxReplicas": max_replicas})
        slo = models.Slo(queue_wait_s=slo_s, e2e_s=slo_s, client_timeout_s=120.0)
        return ts_policy.TideservePolicy(spec, TIDESERVE_TICK_S, "", ts_policy.slo_spec(slo))

    return {
        "tideserve": tideserve,
        "hpa-default": lambda: OnQueue(HpaOnQueue(target, max_replicas, 300.0), HPA_SYNC_S, 1),
        "hpa-tuned": lambda: OnQueue(HpaOnQueue(target, max_replicas, 30.0), HPA_SYNC_S, 1),
        "keda-default": lambda: keda(False),
        "keda-tuned": lambda: keda(True),
    }


# The live trace starts at an arbitrary phase of each controller's loop (HPA sync 15 s,
# KEDA polling 30 s, tideserve's 5 s tick): the simulator runs it at each of these phases
# (the trace shifted by PREROLL_S + phase, measured over its own window) and reports the
# mean and the range. PREROLL_S lets the HPA's floor replica be Ready when the trace
# starts, as live.
PHASES_S = tuple(float(p) for p in range(0, 30, 3))
PREROLL_S = 30.0


@dataclasses.dataclass(frozen=True)
class Simulated:
    mean: lm.Summary
    attainment_range: tuple[float, float]
    replica_s_range: tuple[float, float]


def simulate_once(
    policy: endpoint.Policy,
    offsets: Sequence[float],
    end: float,
    model: models.ModelClass,
    slo_s: float,
    max_replicas: int,
    shift: float = 0.0,
) -> lm.Summary:
    """One run, the trace starting `shift` seconds into the policy's clock; everything
    measured over [shift, shift + end] as live measures its run."""
    arrivals = np.array(sorted(offsets), dtype=np.float64) + shift
    slo = models.Slo(queue_wait_s=slo_s, e2e_s=slo_s, client_timeout_s=120.0)
    config = endpoint.SimConfig(pipeline=PIPELINE, max_replicas=max_replicas)
    stop = shift + end
    out = endpoint.Endpoint(arrivals, None, stop, model, slo, policy, config).run()
    plane = out.plane
    outcome = np.frombuffer(bytes(plane.outcome), dtype=np.uint8)
    served = outcome == dataplane.SERVED
    ok = served & ((plane.finish - arrivals) <= slo_s + 1e-9)
    latencies = list((plane.finish - arrivals)[served])
    ready_s = sum(
        max(0.0, min(stop, r.removed_at if r.removed_at is not None else stop)
            - max(shift, r.ready_at))
        for r in out.replicas
        if r.ready_at is not None and r.ready_at < stop
    )  # fmt: skip
    before = [x for x in out.timeline if x[0] <= shift]
    after = [x for x in out.timeline if x[0] > shift]
    samples = [lm.Sample(t - shift, c, r) for t, c, r in [(shift, *before[-1][1:]), *after]]
    _, cold, zero_s = lm.integrate(samples, end)
    nan = float("nan")
    n = len(arrivals)
    return lm.Summary(
        requests=n,
        answered=int(served.sum()),
        lost=n - int(served.sum()),
        refused=int((outcome == dataplane.REFUSED).sum()),
        attainment=float(ok.sum()) / n if n else nan,
        p50=float(np.percentile(latencies, 50)) if latencies else nan,
        p99=float(np.percentile(latencies, 99)) if latencies else nan,
        replica_seconds=ready_s,
        cold_starts=cold,
        seconds_at_zero=zero_s,
        max_ready=max((r for _, _, r in out.timeline), default=0),
    )


def simulate(
    build: Callable[[], endpoint.Policy],
    offsets: Sequence[float],
    end: float,
    model: models.ModelClass,
    slo_s: float,
    max_replicas: int,
) -> Simulated:
    """simulate_once at each phase (a fresh policy each time): the mean and the range."""
    runs = [
        simulate_once(build(), offsets, end, model, slo_s, max_replicas, PREROLL_S + phase)
        for phase in PHASES_S
    ]

    def mean(field: str) -> float:
        return statistics.fmean(getattr(r, field) for r in runs)

    att = [r.attainment for r in runs]
    rs = [r.replica_seconds for r in runs]
    summary = lm.Summary(
        requests=runs[0].requests,
        answered=round(mean("answered")),
        lost=round(mean("lost")),
        refused=round(mean("refused")),
        attainment=mean("attainment"),
        p50=mean("p50"),
        p99=mean("p99"),
        replica_seconds=mean("replica_seconds"),
        cold_starts=round(mean("cold_starts")),
        seconds_at_zero=mean("seconds_at_zero"),
        max_ready=max(r.max_ready for r in runs),
    )
    return Simulated(summary, (min(att), max(att)), (min(rs), max(rs)))


def median_cold_start(runs: Sequence[Sequence[lm.Sample]], fallback: float) -> float:
    found = [c for samples in runs for c in cold_starts(samples)]
    return statistics.median(found) if found else fallback


def compare(
    rows: Sequence[tuple[str, Simulated, lm.Summary | None]], slo_s: float, cold_s: float
) -> str:
    """The sim-vs-live table: each policy's attainment and ready replica-seconds, both
    ways (the simulator's mean over PHASES_S, its range in brackets), flagged (**) where
    they differ beyond 2 points or 10 %."""
    head = (
        f"cold start {cold_s:.1f} s (median, live samples); SLO {slo_s * 1000:g} ms; sim: mean "
        f"over {len(PHASES_S)} loop phases [min-max]\n\n"
        "| policy | attainment live | sim | diff (points) | replica-s live | sim | diff "
        "| lost live | sim |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for policy, simulated, live in rows:
        sim = simulated.mean
        lo, hi = simulated.attainment_range
        rlo, rhi = simulated.replica_s_range
        sim_att = f"{100 * sim.attainment:.2f} % [{100 * lo:.1f}-{100 * hi:.1f}]"
        sim_rs = f"{sim.replica_seconds:.0f} [{rlo:.0f}-{rhi:.0f}]"
        if live is None:
            body += f"| {policy} | - | {sim_att} | - | - | {sim_rs} | - | - | {sim.lost} |\n"
            continue
        d_att = 100 * (sim.attainment - live.attainment)
        d_rs = (sim.replica_seconds - live.replica_seconds) / max(live.replica_seconds, 1e-9)
        f_att = " **" if abs(d_att) > 2 else ""
        f_rs = " **" if abs(d_rs) > 0.10 else ""
        body += (
            f"| {policy} | {100 * live.attainment:.2f} % | {sim_att} | {d_att:+.2f}{f_att} "
            f"| {live.replica_seconds:.0f} | {sim_rs} | {100 * d_rs:+.0f} %{f_rs} "
            f"| {live.lost} | {sim.lost} |\n"
        )
    return head + body
