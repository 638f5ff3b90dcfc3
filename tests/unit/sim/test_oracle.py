"""The clairvoyant oracle: Erlang C, the DP, and that no policy beats it."""

from __future__ import annotations

import numpy as np
import pytest

from tideserve.sim import (
    baselines,
    endpoint,
    hpa,
    models,
    oracle,
    oracle_run,
    runner,
    tideserve_policy,
    traffic,
)

pytestmark = pytest.mark.unit

SLO = models.Slo(0.5, 2.0, 30.0)
MODEL = models.MODELS["imagegen"]


def test_erlang_c_known_values() -> None:
    # M/M/2 with a = 1: C = 1/3.
    assert oracle.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert oracle.erlang_c(1, 0.5) == pytest.approx(0.5)
    assert oracle.erlang_c(3, 3.5) == 1.0
    assert oracle.erlang_c_replicas(0.0, 1.0, 1.0) == 0
    assert oracle.erlang_c_replicas(10.0, 1.0, 0.5) >= 11


def test_dp_pays_for_cold_starts_and_keeps_replicas_through_short_dips() -> None:
    # Need 2, then 0 for one interval, then 2 again: a restart costs 2 x 100 s, keeping
    # costs 2 x 10 s, so the plan keeps them.
    table = np.array([[5, 5, 0], [0, 0, 0], [5, 5, 0]], dtype=float)
    mt = oracle.MissTable(10.0, np.array([5, 0, 5]), table)
    plan, gpu, missed = oracle.solve(mt, cold_s=100.0, lam=1e6)
    assert list(plan) == [2, 2, 2]
    assert missed == 0
    assert gpu == pytest.approx(2 * 100 + 3 * 2 * 10)


def test_oracle_is_never_beaten_on_gpu_seconds_at_equal_or_higher_attainment() -> None:
    trace = traffic.bursty(11, hours=1.0, peak_rps=40.0, mean_on_s=200, off_median_s=300)
    wl = runner.Workload("small", "", (trace,), MODEL, SLO, 16, endpoint.SimConfig())
    cands = [
        runner.Candidate("hpa", "60%", lambda w, t: hpa.HpaPolicy(0.6, 16)),
        runner.Candidate("keda", "4", lambda w, t: baselines.KedaPolicy(4.0, 16)),
        runner.Candidate("kpa", "4", lambda w, t: baselines.KpaPolicy(4.0, 16)),
        runner.Candidate("keepalive", "5m", lambda w, t: baselines.KeepAlivePolicy(300.0, 4.0, 16)),
        runner.Candidate(
            "tideserve",
            "default",
            lambda w, t: tideserve_policy.TideservePolicy(
                tideserve_policy.scaling_spec({"maxReplicas": 16})
            ),
        ),
    ]
    results = [runner.run(wl, c) for c in cands]
    mt = oracle.miss_table(trace, MODEL, SLO, 30.0, 16)
    for r in results:
        # The oracle's plan for exactly this policy's attainment costs no more.
        _, gpu, _ = oracle.plan_for(mt, wl.cold_s, r.attainment)
        assert gpu <= r.gpu_s, (r.family, r.label, gpu, r.gpu_s)
    replay = oracle_run.run(wl, 0.99)
    assert replay.attainment >= 0.99
    for r in results:
        if r.attainment >= replay.attainment:
            assert r.gpu_s >= replay.gpu_s, (r.family, r.gpu_s, replay.gpu_s)
