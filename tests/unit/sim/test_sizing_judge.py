"""The right-sizing bench's judge: load-dependent latency, planned capacity, memory."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tideserve.rightsizing import catalog as catalog_mod
from tideserve.rightsizing import quantities
from tideserve.sim.sizing import truth

pytestmark = pytest.mark.unit

GIB = quantities.GIB
A100 = "gpu:NVIDIA-A100-SXM4-80GB"
T4 = "gpu:Tesla-T4"


def model(**overrides: object) -> truth.Truth:
    fields: dict[str, object] = {
        "cls": truth.ModelClass.ENCODER,
        "gpu_memory": 10 * GIB,
        "a100": truth.Curve(max_rps=100.0, base_p99_ms=10.0, steepness=1.0),
        "ratio": {A100: 1.0, T4: 0.2},
        "cpu_rps_per_core": 5.0,
        "cpu_base_p99_ms": 50.0,
        "util_max": 1.0,
        "util_exponent": 1.0,
    }
    fields.update(overrides)
    return truth.Truth(**fields)  # type: ignore[arg-type]


WEEK = truth.Week(peak_rps=100.0, host_memory_peak=4 * GIB, cpu_base=0.1, cpu_per_rps=0.001)


def judge(plan: truth.Plan, m: truth.Truth | None = None, slo: float = 30.0) -> truth.Verdict:
    return truth.judge(m or model(), plan, WEEK, slo, catalog_mod.DEFAULT, 40)


def test_p99_rises_with_load_and_is_infinite_at_saturation() -> None:
    curve = truth.Curve(100.0, 10.0, 1.0)
    assert curve.p99(0) == 10.0
    assert curve.p99(50) == pytest.approx(20.0)
    assert curve.p99(100) == math.inf


@given(st.floats(1, 1e4), st.floats(0.1, 100), st.floats(0.1, 2), st.floats(1.01, 50))
def test_within_is_the_load_where_p99_reaches_the_slo(
    max_rps: float, base: float, steepness: float, slo_factor: float
) -> None:
    curve = truth.Curve(max_rps, base, steepness)
    within = curve.within(base * slo_factor)
    assert 0 < within < max_rps
    assert curve.p99(within) == pytest.approx(base * slo_factor, rel=1e-6)


def test_a_slo_below_the_unloaded_latency_is_never_met() -> None:
    assert truth.Curve(100.0, 10.0, 1.0).within(9.0) == 0.0


def test_planning_with_the_true_capacity_meets_the_slo() -> None:
    within = model().a100.within(30.0)
    verdict = judge(truth.Plan(A100, 1.0, 8 * GIB, within))
    assert not verdict.slo
    assert verdict.replicas == math.ceil(100.0 / within)


def test_an_overestimated_capacity_shows_as_an_slo_miss_and_a_smaller_bill() -> None:
    within = model().a100.within(30.0)
    right = judge(truth.Plan(A100, 1.0, 8 * GIB, within))
    wrong = judge(truth.Plan(A100, 1.0, 8 * GIB, within * 2))
    assert wrong.slo
    assert wrong.cost_per_hour < right.cost_per_hour


def test_a_slow_option_misses_even_at_low_load() -> None:
    # T4 at 0.2x: unloaded p99 10 / 0.2**0.8 = 36 ms > 30 ms.
    verdict = judge(truth.Plan(T4, 1.0, 8 * GIB, 1000.0))
    assert verdict.slo


def test_more_replicas_than_allowed_is_an_slo_miss() -> None:
    verdict = judge(truth.Plan(A100, 1.0, 8 * GIB, 1.0))
    assert verdict.slo and verdict.replicas == 40


def test_memory_below_the_true_peak_is_an_oom_kill() -> None:
    assert judge(truth.Plan(A100, 1.0, 3.9 * GIB, 50.0)).oom
    assert not judge(truth.Plan(A100, 1.0, 4.1 * GIB, 50.0)).oom


def test_a_model_larger_than_the_gpu_is_killed_and_cannot_serve() -> None:
    big = model(gpu_memory=20 * GIB)
    verdict = judge(truth.Plan(T4, 1.0, 8 * GIB, 10.0), big)
    assert verdict.oom and verdict.slo


def test_on_cpu_the_weights_count_in_host_memory() -> None:
    # 4 GiB host peak + 10 GiB of weights; cpu at 8 cores serves 40 rps, ~25 within 100 ms.
    assert judge(truth.Plan("cpu", 8.0, 12 * GIB, 20.0), slo=100.0).oom
    assert not judge(truth.Plan("cpu", 8.0, 15 * GIB, 20.0), slo=100.0).oom


def test_cpu_need_grows_with_the_load_per_replica() -> None:
    # 100 rps on one replica needs 0.1 + 0.1 = 0.2 cores.
    assert judge(truth.Plan(A100, 0.15, 8 * GIB, 100.0), slo=1e9).cpu_short
    assert not judge(truth.Plan(A100, 0.15, 8 * GIB, 20.0), slo=1e9).cpu_short


def test_cost_is_replicas_times_the_catalog_price() -> None:
    verdict = judge(truth.Plan(A100, 2.0, 8 * GIB, 25.0), slo=1e9)
    option = catalog_mod.find(catalog_mod.DEFAULT, A100)
    assert option is not None
    price = catalog_mod.replica_price(catalog_mod.DEFAULT, option, 2.0, 8 * GIB)
    assert verdict.cost_per_hour == pytest.approx(4 * price)
