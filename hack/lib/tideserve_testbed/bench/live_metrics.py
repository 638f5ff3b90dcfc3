"""The pure parts of hack/bench-live: the request trace (arrival offsets, the same for
every policy) and what one policy's run measured (SLO attainment, latency percentiles,
requests lost, replica-seconds integrated from the Deployment's ready replicas, cold
starts, time at zero)."""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import random
from collections.abc import Mapping, Sequence

from tideserve_testbed.bench import common


@dataclasses.dataclass(frozen=True)
class Segment:
    seconds: float
    rate: float  # requests per second (Poisson); 0 = idle


@dataclasses.dataclass(frozen=True)
class Request:
    offset: float  # seconds after the trace's start when it was sent
    latency: float  # seconds until the full answer (or the failure)
    status: int  # HTTP status; 0: no answer (refused, reset, timed out). Not 200: lost

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclasses.dataclass(frozen=True)
class Sample:
    t: float  # seconds after the trace's start
    desired: int  # the Deployment's spec.replicas
    ready: int  # its status.readyReplicas


@dataclasses.dataclass(frozen=True)
class Summary:
    requests: int
    answered: int
    lost: int
    refused: int  # of the lost: answered with an HTTP error (429, 503, ...)
    attainment: float  # share of all requests answered within the SLO (lost ones miss)
    p50: float  # seconds, over answered requests (nan if none)
    p99: float
    replica_seconds: float  # integral of ready replicas over the run
    cold_starts: int  # ready replicas 0 -> > 0
    seconds_at_zero: float  # desired and ready both 0
    max_ready: int


def arrivals(segments: Sequence[Segment], seed: int) -> list[float]:
    """Poisson arrival offsets (seconds) over consecutive segments, from a fixed seed:
    every policy gets exactly this list."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible trace, not a secret)
    out: list[float] = []
    start = 0.0
    for seg in segments:
        t = start
        if seg.rate > 0:
            while True:
                t += rng.expovariate(seg.rate)
                if t >= start + seg.seconds:
                    break
                out.append(t)
        start += seg.seconds
    return out


def rate_scaled(
    offsets: Sequence[float], factor: int, seed: int, jitter: float = 0.1
) -> list[float]:
    """A recorded trace's arrival offsets at `factor` times its rate, its shape kept: each
    request becomes `factor` requests within `jitter` seconds after it (fixed seed)."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible trace, not a secret)
    return sorted(
        o + (rng.uniform(0, jitter) if i else 0.0) for o in offsets for i in range(factor)
    )


def window(stamps: Sequence[float], seconds: float) -> list[float]:
    """The offsets of the recorded timestamps (seconds, any origin) from the first one,
    those within the first `seconds`."""
    if not stamps:
        return []
    first = min(stamps)
    return sorted(t - first for t in stamps if t - first < seconds)


def integrate(samples: Sequence[Sample], end: float) -> tuple[float, int, float]:
    """(ready replica-seconds, cold starts, seconds at zero) from samples in time order,
    each value held until the next sample (the last until end). Replicas already ready
    at the first sample are not counted as a cold start."""
    replica_s = zero_s = 0.0
    cold = 0
    for i, s in enumerate(samples):
        until = samples[i + 1].t if i + 1 < len(samples) else end
        span = max(0.0, min(until, end) - max(s.t, 0.0))  # from the trace's start
        replica_s += s.ready * span
        if s.desired == 0 and s.ready == 0:
            zero_s += span
        if i > 0 and samples[i - 1].ready == 0 and s.ready > 0:
            cold += 1
    return replica_s, cold, zero_s


def second_pass(samples: Sequence[Sample], start: float) -> list[Sample]:
    """The samples from `start` on, on a clock starting there: the last one before it
    (the state at `start`) at 0, the later ones shifted."""
    before = [s for s in samples if s.t < start]
    after = [dataclasses.replace(s, t=s.t - start) for s in samples if s.t >= start]
    if before and (not after or after[0].t > 0):
        after.insert(0, dataclasses.replace(before[-1], t=0.0))
    return after


def summarise(
    requests: Sequence[Request], samples: Sequence[Sample], slo_s: float, end: float
) -> Summary:
    answered = [r.latency for r in requests if r.ok]
    within = sum(1 for r in requests if r.ok and r.latency <= slo_s)
    replica_s, cold, zero_s = integrate(samples, end)
    nan = float("nan")
    return Summary(
        requests=len(requests),
        answered=len(answered),
        lost=len(requests) - len(answered),
        refused=sum(1 for r in requests if not r.ok and r.status),
        attainment=within / len(requests) if requests else nan,
        p50=common.percentile(answered, 0.5) if answered else nan,
        p99=common.percentile(answered, 0.99) if answered else nan,
        replica_seconds=replica_s,
        cold_starts=cold,
        seconds_at_zero=zero_s,
        max_ready=max((s.ready for s in samples), default=0),
    )


def line(policy: str, s: Summary) -> str:
    """The --quick line: `POLICY attainment=NN.NN% replica_hours=X lost=N`."""
    return (
        f"{policy} attainment={100 * s.attainment:.2f}% "
        f"replica_hours={s.replica_seconds / 3600:.4f} lost={s.lost}"
    )


def table(
    rows: Sequence[tuple[str, Summary]], slo_s: float, loads: Mapping[str, Sequence[str]]
) -> str:
    """All figures of a run as a markdown table, with the machine's load averages at the
    start and end of each policy's run (other work on the machine slows the replicas)."""
    head = (
        f"| policy | requests | attainment (<= {slo_s * 1000:g} ms) | p50 ms | p99 ms "
        "| lost (HTTP error / no answer) "
        "| replica-s | replica-h | cold starts | s at zero | max ready | loadavg start -> end |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {p} | {s.requests} | {100 * s.attainment:.2f} % | {1000 * s.p50:.0f} "
        f"| {1000 * s.p99:.0f} | {s.lost} ({s.refused} / {s.lost - s.refused}) "
        f"| {s.replica_seconds:.0f} "
        f"| {s.replica_seconds / 3600:.4f} | {s.cold_starts} | {s.seconds_at_zero:.0f} "
        f"| {s.max_ready} | {' -> '.join(loads.get(p, ()))} |\n"
        for p, s in rows
    )
    return head + body


def write_run(
    d: pathlib.Path, requests: Sequence[Request], samples: Sequence[Sample], load: Sequence[str]
) -> None:
    """One policy's raw run: requests.csv (offset, latency, status), samples.csv (t,
    desired, ready) and loadavg.txt, for plots and for finding out why requests were lost."""
    d.mkdir(parents=True, exist_ok=True)
    with (d / "requests.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["offset_s", "latency_s", "status"])
        w.writerows([f"{r.offset:.4f}", f"{r.latency:.4f}", r.status] for r in requests)
    with (d / "samples.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "desired", "ready"])
        w.writerows([f"{x.t:.2f}", x.desired, x.ready] for x in samples)
    (d / "loadavg.txt").write_text("\n".join(load) + "\n")


def read_run(d: pathlib.Path) -> tuple[list[Request], list[Sample]]:
    """What write_run wrote."""
    with (d / "requests.csv").open() as f:
        requests = [Request(float(r["offset_s"]), float(r["latency_s"]), int(r["status"]))
                    for r in csv.DictReader(f)]  # fmt: skip
    with (d / "samples.csv").open() as f:
        samples = [Sample(float(r["t_s"]), int(r["desired"]), int(r["ready"]))
                   for r in csv.DictReader(f)]  # fmt: skip
    return requests, samples
