"""The oracle's rows: plan per endpoint, replay the plans, and trace the oracle's frontier.

The oracle starts like every policy: nothing Ready at t=0, so no interval that starts
within the first cold start can be served (its misses are counted whatever the plan).
The interval model ignores queues carried across interval boundaries, so a plan made for
99 % can replay a little under it; for the bar, the plan's target is raised step by step
until the replay itself reaches it (or the steps run out). Plans for a range of other
targets give the frontier every policy is compared with at its own attainment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tideserve.sim import oracle, runner, traffic

STEPS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.98)  # fraction of the remaining miss budget removed
# Attainment targets of the frontier's plans (the bar's tightened plan is added).
TARGETS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995)
QUICK_TARGETS = (0.7, 0.9, 0.97, 0.999)


def cold_masked(mt: oracle.MissTable, cold_s: float) -> oracle.MissTable:
    """The table with every interval starting inside the first cold start missed in full
    (nothing can be Ready then: the same start state as every other policy)."""
    first = int(np.ceil(cold_s / mt.interval_s))
    table = mt.table.copy()
    table[:first, :] = mt.n[:first, None]
    return dataclasses.replace(mt, table=table)


def plans(wl: runner.Workload, interval_s: float) -> list[tuple[traffic.Trace, oracle.MissTable]]:
    return [
        (
            tr,
            cold_masked(
                oracle.miss_table(tr, wl.model, wl.slo, interval_s, wl.max_replicas), wl.cold_s
            ),
        )
        for tr in wl.traces
    ]


def _replay_at(
    wl: runner.Workload,
    tables: list[tuple[traffic.Trace, oracle.MissTable]],
    target: float,
    interval_s: float,
    seed: int,
) -> runner.Result:
    schedule: dict[str, oracle.IntArray] = {}
    for tr, mt in tables:
        plan, _, _ = oracle.plan_for(mt, wl.cold_s, target)
        schedule[tr.name] = oracle.requested_per_second(plan, interval_s, wl.cold_s)
    cand = runner.Candidate("oracle", f"plan@{target:.2%}", _replay(schedule))
    return runner.run(wl, cand, seed=seed)


def run(wl: runner.Workload, bar: float, interval_s: float = 30.0, seed: int = 0) -> runner.Result:
    """The cheapest replay reaching the bar (else the last, tightest one)."""
    return _tightened(wl, plans(wl, interval_s), bar, interval_s, seed)


def _tightened(
    wl: runner.Workload,
    tables: list[tuple[traffic.Trace, oracle.MissTable]],
    bar: float,
    interval_s: float,
    seed: int,
) -> runner.Result:
    result: runner.Result | None = None
    for step in STEPS:
        result = _replay_at(wl, tables, bar + (1.0 - bar) * step, interval_s, seed)
        if result.attainment >= bar:
            break
    assert result is not None
    return result


def frontier(
    wl: runner.Workload,
    bar: float,
    targets: tuple[float, ...] = TARGETS,
    interval_s: float = 30.0,
    seed: int = 0,
) -> list[runner.Result]:
    """Replays of plans for each target, and the bar's tightened plan, from one table."""
    tables = plans(wl, interval_s)
    out = [_replay_at(wl, tables, t, interval_s, seed) for t in targets if t != bar]
    out.append(_tightened(wl, tables, bar, interval_s, seed))
    return out


def _replay(schedule: dict[str, oracle.IntArray]) -> runner.PolicyFactory:
    def build(w: runner.Workload, t: traffic.Trace) -> oracle.OraclePolicy:
        return oracle.OraclePolicy(schedule[t.name])

    return build
