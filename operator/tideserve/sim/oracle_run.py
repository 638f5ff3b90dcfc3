"""The oracle's row: plan per endpoint, replay it, and tighten until the replay reaches the bar.

The interval model ignores queues carried across interval boundaries, so a plan made for
99 % can replay a little under it; the plan's target is raised step by step until the
replay itself reaches the attainment bar (or the steps run out).
"""

from __future__ import annotations

from tideserve.sim import oracle, runner, traffic

STEPS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95)  # fraction of the remaining miss budget removed


def plans(wl: runner.Workload, interval_s: float) -> list[tuple[traffic.Trace, oracle.MissTable]]:
    return [
        (tr, oracle.miss_table(tr, wl.model, wl.slo, interval_s, wl.max_replicas))
        for tr in wl.traces
    ]


def run(wl: runner.Workload, bar: float, interval_s: float = 30.0) -> runner.Result:
    tables = plans(wl, interval_s)
    result: runner.Result | None = None
    for step in STEPS:
        target = bar + (1.0 - bar) * step
        schedule: dict[str, oracle.IntArray] = {}
        for tr, mt in tables:
            plan, _, _ = oracle.plan_for(mt, wl.cold_s, target)
            schedule[tr.name] = oracle.requested_per_second(plan, interval_s, wl.cold_s)
        cand = runner.Candidate("oracle", f"plan@{target:.2%}", _replay(schedule))
        result = runner.run(wl, cand)
        if result.attainment >= bar:
            break
    assert result is not None
    return result


def _replay(schedule: dict[str, oracle.IntArray]) -> runner.PolicyFactory:
    def build(w: runner.Workload, t: traffic.Trace) -> oracle.OraclePolicy:
        return oracle.OraclePolicy(schedule[t.name])

    return build
