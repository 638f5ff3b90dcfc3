"""A clairvoyant bound: the cheapest replica plan that knows every arrival in advance.

Time is cut into intervals of `interval_s`. For each interval and replica count c we
know m_t(c), the requests of that interval that would miss the SLO with c warm replicas:
Erlang C (M/M/c, queue-wait tail) gives the first guess, and a replay of the interval's
own arrivals through the same request path (dataplane) gives the exact count from there
up. A dynamic program then picks c_t for every interval minimising

    sum_t c_t * interval_s  +  cold_s * sum_t max(0, c_t - c_{t-1})  +  lam * sum_t m_t(c_t)

(GPU-seconds, plus one cold start's GPU-seconds per replica started: capacity is asked
for a cold start ahead, and the oracle pays for it), with lam bisected so that the plan
just reaches the attainment target. Replaying the plan through the simulator (a policy
that asks for each interval's replicas a cold start early) gives the oracle's row.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

from tideserve.sim import dataplane, models, pipeline, traffic

IntArray = npt.NDArray[np.int64]


def erlang_c(c: int, offered: float) -> float:
    """P(wait > 0) in M/M/c with offered load a = lambda/mu (Erlang B recursion)."""
    if c <= 0 or offered >= c:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = offered * b / (k + offered * b)
    return c * b / (c - offered * (1.0 - b))


def erlang_c_replicas(rate: float, mu: float, wait_s: float, quantile: float = 0.99) -> int:
    """Smallest c with P(Wq > wait_s) = C(c, a) exp(-(c mu - rate) wait_s) <= 1 - quantile."""
    if rate <= 0:
        return 0
    a = rate / mu
    c = max(1, math.ceil(a))
    while erlang_c(c, a) * math.exp(-(c * mu - rate) * wait_s) > 1.0 - quantile:
        c += 1
    return c


def goodput_rps(model: models.ModelClass, slo: models.Slo) -> float:
    """Per-replica throughput at the largest batch whose service fits in the e2e SLO."""
    best = 1.0 / model.batch_seconds(1.0)
    for b in range(1, model.max_batch + 1):
        if model.batch_seconds(float(b)) <= slo.e2e_s:
            best = max(best, b / model.batch_seconds(float(b)))
    return best


def misses(
    arrivals: npt.NDArray[np.float64],
    work: npt.NDArray[np.float64] | None,
    c: int,
    model: models.ModelClass,
    slo: models.Slo,
) -> int:
    """Requests of one interval missing the SLO with c warm replicas from its start."""
    if c == 0 or len(arrivals) == 0:
        return len(arrivals)
    t0 = float(arrivals[0])
    rel = arrivals - t0
    # An activator so an arrival at exactly t=0 waits for the replicas added at t=0.
    plane = dataplane.DataPlane(rel, work, model, slo, len(rel) + 1)
    for rid in range(c):
        plane.add_replica(rid, 0.0)
    plane.finish_run(float(rel[-1]) + slo.client_timeout_s + 60.0)
    return int(len(arrivals) - dataplane.met_slo(plane, rel).sum())


def _exact_row(
    arr: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64] | None,
    n: int,
    guess: int,
    model: models.ModelClass,
    slo: models.Slo,
    max_replicas: int,
    below: int = 3,
) -> list[int]:
    """m(c) for c = 0.. up to the first c with no miss, found from `guess`.

    Exact for the zero-miss point and `below` counts under it; fewer replicas than that
    are taken to miss everything (an upper bound, slightly conservative for the oracle).
    """
    memo: dict[int, int] = {0: n}

    def m(c: int) -> int:
        if c not in memo:
            memo[c] = misses(arr, w, c, model, slo)
        return memo[c]

    c = guess
    while c < max_replicas and m(c) > 0:
        c += 1
    while c > 1 and m(c - 1) == 0:
        c -= 1
    top = c  # the fewest replicas with no miss (or max_replicas)
    for k in range(top - 1, max(0, top - 1 - below), -1):
        if m(k) >= n:
            break
    return [memo.get(k, n) for k in range(top + 1)]


@dataclasses.dataclass(frozen=True)
class MissTable:
    interval_s: float
    n: IntArray  # requests per interval
    table: npt.NDArray[np.float64]  # [interval, c] -> misses


def miss_table(
    trace: traffic.Trace,
    model: models.ModelClass,
    slo: models.Slo,
    interval_s: float,
    max_replicas: int,
) -> MissTable:
    count = max(1, math.ceil(trace.duration_s / interval_s))
    edges = np.searchsorted(trace.arrivals, np.arange(count + 1) * interval_s)
    n = np.diff(edges).astype(np.int64)
    mu = goodput_rps(model, slo)
    work_rate = model.batch_seconds(model.max_batch) / model.max_batch
    cmax = 1
    rows: list[list[int]] = []
    for t in range(count):
        lo, hi = int(edges[t]), int(edges[t + 1])
        arr = trace.arrivals[lo:hi]
        w = None if trace.work is None else trace.work[lo:hi]
        row = [int(hi - lo)]
        if hi > lo:
            units = float(hi - lo) if w is None else float(w.sum())
            fluid = max(1, math.ceil(units * work_rate / interval_s))
            guess = erlang_c_replicas((hi - lo) / interval_s, mu, slo.queue_wait_s)
            row = _exact_row(
                arr, w, int(hi - lo), max(fluid, min(guess, max_replicas)), model, slo, max_replicas
            )
        rows.append(row)
        cmax = max(cmax, len(row))
    table = np.zeros((count, cmax + 1))
    for t, row in enumerate(rows):
        table[t, : len(row)] = row
        table[t, len(row) :] = row[-1] if len(row) > 1 else 0
    return MissTable(interval_s, n, table)


def solve(mt: MissTable, cold_s: float, lam: float) -> tuple[IntArray, float, float]:
    """DP for one multiplier: (plan c_t, GPU-seconds incl. cold starts, misses)."""
    count, width = mt.table.shape
    cs = np.arange(width, dtype=np.float64)
    step = cs * mt.interval_s
    jump = cold_s * np.maximum(0.0, cs[:, None] - cs[None, :])  # [to, from]
    value = step + lam * mt.table[0] + cold_s * cs
    back = np.zeros((count, width), dtype=np.int64)
    for t in range(1, count):
        total = value[None, :] + jump
        back[t] = np.argmin(total, axis=1)
        value = total[np.arange(width), back[t]] + step + lam * mt.table[t]
    plan = np.zeros(count, dtype=np.int64)
    plan[-1] = int(np.argmin(value))
    for t in range(count - 1, 0, -1):
        plan[t - 1] = back[t, plan[t]]
    gpu = float(plan.sum() * mt.interval_s + cold_s * np.maximum(0, np.diff(plan, prepend=0)).sum())
    missed = float(mt.table[np.arange(count), plan].sum())
    return plan, gpu, missed


def plan_for(mt: MissTable, cold_s: float, attainment: float) -> tuple[IntArray, float, float]:
    """Cheapest plan whose interval-model attainment reaches `attainment`."""
    budget = (1.0 - attainment) * float(mt.n.sum())
    lo, hi = -3.0, 7.0  # log10 of the miss penalty, in GPU-seconds per request
    best = solve(mt, cold_s, 10.0**hi)
    for _ in range(30):
        mid = (lo + hi) / 2.0
        cand = solve(mt, cold_s, 10.0**mid)
        if cand[2] <= budget:
            best, hi = cand, mid
        else:
            lo = mid
    return best


def requested_per_second(plan: IntArray, interval_s: float, cold_s: float) -> IntArray:
    """Replicas to ask for at each second so each interval's c_t is Ready at its start."""
    seconds = int(len(plan) * interval_s)
    s = np.arange(seconds)
    lead = math.ceil(cold_s)
    first = (s // interval_s).astype(np.int64)
    last = np.minimum(((s + lead) // interval_s).astype(np.int64), len(plan) - 1)
    out = plan[first].copy()
    for k in range(1, math.ceil(lead / interval_s) + 2):
        idx = np.minimum(first + k, last)
        out = np.maximum(out, plan[idx])
    return out


class OraclePolicy:
    tick_s = 1.0
    needs_concurrency = False
    # No activator: a request arriving with nothing Ready misses anyway (the plan counts
    # it), and shedding it keeps the backlog of the first cold start (same start state as
    # every policy) from flooding the first replicas, which the interval model ignores.
    activator_cap: int | None = None

    def __init__(self, per_second: IntArray) -> None:
        self.name = "oracle"
        self.per_second = per_second
        self.initial_replicas = int(per_second[0]) if len(per_second) else 0

    def decide(self, view: pipeline.View) -> int:
        i = min(int(view.now), len(self.per_second) - 1)
        return int(self.per_second[i])
