"""Accelerator choice: cheapest option meeting the SLO at peak load."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideserve.rightsizing import accelerators, catalog, quantities

pytestmark = pytest.mark.unit

GIB = quantities.GIB
CAT = catalog.DEFAULT
CORE = CAT.cpu.cost_per_core_hour
GIB_HOUR = CAT.cpu.cost_per_gib_hour
A100 = catalog.find(CAT, "gpu:NVIDIA-A100-SXM4-80GB")
assert A100 is not None
D = accelerators.Source.DECLARED


def demand(peak: float | None = 100, latency: float | None = 100, gpu_mem: float | None = None):
    return accelerators.Demand(
        peak_rps=peak,
        latency_ms=latency,
        cpu_cores=1,
        memory_bytes=2 * GIB,
        gpu_memory_bytes=gpu_mem,
    )


def test_cheapest_option_that_meets_latency_wins() -> None:
    profiles = [
        accelerators.Profile("gpu:NVIDIA-A100-SXM4-80GB", 1000, 10, D),
        accelerators.Profile("gpu:NVIDIA-L4", 300, 30, D),
        accelerators.Profile("cpu-4", 20, 250, D, cores=4),  # too slow for 100 ms
    ]
    choice = accelerators.choose(CAT, demand(), profiles, A100)
    assert choice.best is not None
    assert choice.best.option.name == "gpu:NVIDIA-L4"
    assert choice.best.replicas == 1
    slow = next(c for c in choice.candidates if c.option.name == "cpu")
    assert not slow.meets
    assert "p99 250 ms > target 100 ms" in slow.why


def test_replicas_are_ceil_of_peak_over_per_replica_rps_and_cost_scales() -> None:
    profiles = [
        accelerators.Profile("cpu-2", 10, 40, D, cores=2),
        accelerators.Profile("gpu:NVIDIA-L4", 300, 30, D),
    ]
    low = accelerators.choose(CAT, demand(peak=50), profiles, A100)
    assert low.best is not None
    assert low.best.option.name == "cpu"
    assert low.best.replicas == 5
    assert low.best.cores == 2
    assert low.best.cost_per_hour == pytest.approx(5 * (2 * CORE + 2 * GIB_HOUR))
    high = accelerators.choose(CAT, demand(peak=2000), profiles, A100)
    assert high.best is not None
    assert high.best.option.name == "gpu:NVIDIA-L4"  # 200 CPU replicas cost more than 7 L4s
    assert high.best.replicas == 7


A100_ONLY = CAT.model_copy(update={"gpus": CAT.gpus[:1]})


def test_a_model_whose_gpu_memory_fits_a_slice_gets_the_slice() -> None:
    # Seen on an A100 at 5% busy serving 20 rps per replica; needs 6 GiB of GPU memory.
    seen = accelerators.observed_profile(A100.name, 20, 0.05, 8)
    assert seen is not None
    choice = accelerators.choose(A100_ONLY, demand(peak=20, gpu_mem=6 * GIB), [seen], A100)
    assert choice.best is not None
    assert choice.best.option.name == "mig:1g.10gb"
    assert choice.best.profile.source is accelerators.Source.ESTIMATED


def test_no_slice_when_gpu_memory_is_unknown_or_too_big() -> None:
    seen = accelerators.observed_profile(A100.name, 20, 0.05, 8)
    assert seen is not None
    unknown = accelerators.choose(A100_ONLY, demand(peak=20, gpu_mem=None), [seen], A100)
    assert unknown.best is not None
    assert unknown.best.option.kind is not catalog.Kind.MIG
    big = accelerators.choose(A100_ONLY, demand(peak=20, gpu_mem=30 * GIB), [seen], A100)
    assert big.best is not None
    assert big.best.option.name in {"mig:3g.40gb", "gpu:NVIDIA-A100-SXM4-80GB"}


def test_cpu_only_with_a_profile_saying_so() -> None:
    seen = accelerators.observed_profile(A100.name, 5, 0.05, 8)
    assert seen is not None
    choice = accelerators.choose(CAT, demand(peak=5, gpu_mem=1 * GIB), [seen], A100)
    assert choice.best is not None
    assert choice.best.option.kind is not catalog.Kind.CPU
    with_cpu = accelerators.choose(
        CAT,
        demand(peak=5, gpu_mem=1 * GIB),
        [seen, accelerators.Profile("cpu-1", 10, 50, D, cores=1)],
        A100,
    )
    assert with_cpu.best is not None
    assert with_cpu.best.option.name == "cpu"


def test_no_profiles_means_no_choice_with_a_reason() -> None:
    choice = accelerators.choose(CAT, demand(), [], A100)
    assert choice.best is None
    assert "profile" in choice.reason


def test_measured_beats_declared() -> None:
    merged = accelerators.merge(
        [
            accelerators.Profile("gpu:NVIDIA-L4", 300, 30, D),
            accelerators.Profile("gpu:NVIDIA-L4", 100, 60, accelerators.Source.MEASURED),
        ]
    )
    assert [p.max_rps for p in merged] == [100]


def test_max_replicas_bounds_an_option() -> None:
    profiles = [accelerators.Profile("cpu-1", 1, 10, D, cores=1)]
    limited = accelerators.Demand(100, None, 1, GIB, None, max_replicas=10)
    choice = accelerators.choose(CAT, limited, profiles, A100)
    assert choice.best is None
    assert "maxReplicas" in choice.candidates[0].why


@settings(max_examples=60, deadline=None)
@given(low=st.floats(min_value=0.1, max_value=1e4), extra=st.floats(min_value=0, max_value=1e4))
def test_cost_is_monotone_in_load(low: float, extra: float) -> None:
    profiles = [
        accelerators.Profile("cpu-2", 30, 40, D, cores=2),
        accelerators.Profile("gpu:NVIDIA-L4", 300, 30, D),
        accelerators.Profile("mig:1g.10gb", 80, 45, D),
        accelerators.Profile("gpu:NVIDIA-A100-SXM4-80GB", 1500, 10, D),
    ]
    a = accelerators.choose(CAT, demand(peak=low), profiles, A100).best
    b = accelerators.choose(CAT, demand(peak=low + extra), profiles, A100).best
    assert a is not None
    assert b is not None
    assert b.cost_per_hour >= a.cost_per_hour - 1e-9


def test_fewer_faster_replicas_get_more_cpu_each() -> None:
    # Seen: 100 rps per replica needing 1 core. An option serving 400 rps per replica
    # carries 4x the per-replica load at a 400 rps peak: 4 cores.
    profiles = [accelerators.Profile("gpu:NVIDIA-H100-80GB-HBM3", 400, 5, D)]
    busy = accelerators.Demand(
        peak_rps=400,
        latency_ms=None,
        cpu_cores=1,
        memory_bytes=GIB,
        gpu_memory_bytes=GIB,
        rps_per_replica_seen=100,
    )
    choice = accelerators.choose(CAT, busy, profiles, A100)
    assert choice.best is not None
    assert choice.best.replicas == 1
    assert choice.best.cores == pytest.approx(4)


@given(st.floats(0.01, 1e4), st.floats(0.0, accelerators.MIN_UTILIZATION * 0.999))
def test_below_the_utilization_threshold_the_rate_seen_is_a_capacity_floor(
    rps: float, utilization: float
) -> None:
    # Nothing is extrapolated from a near-idle counter, but one replica served `rps` at the
    # latency seen: that much it holds, and other options can be estimated from it.
    profile = accelerators.observed_profile("gpu:NVIDIA-H100-80GB-HBM3", rps, utilization, 5.0)
    assert profile is not None
    assert profile.max_rps == rps
    assert profile.p99_latency_ms == 5.0
    assert profile.source is accelerators.Source.OBSERVED


def test_no_rate_or_no_utilization_gives_no_observed_profile() -> None:
    assert accelerators.observed_profile("gpu:NVIDIA-L4", None, 0.5, 5.0) is None
    assert accelerators.observed_profile("gpu:NVIDIA-L4", 10.0, None, 5.0) is None


@pytest.mark.parametrize("max_rps", [5e-324, 1e-300, 1e-9])
def test_a_tiny_declared_throughput_fails_maxreplicas_instead_of_raising(max_rps: float) -> None:
    # maxRequestsPerSecond: 1e-300 is admitted (> 0); peak / it is infinite, and
    # math.ceil(inf) raised OverflowError on every right-sizing pass.
    profiles = [
        accelerators.Profile("cpu-4", max_rps, 10, D, cores=4),
        accelerators.Profile("gpu:NVIDIA-L4", 300, 30, D),
    ]
    choice = accelerators.choose(CAT, demand(peak=1e9), profiles, A100)
    slow = next(c for c in choice.candidates if c.option.name == "cpu")
    assert not slow.meets
    assert slow.replicas == min(accelerators.REPLICAS_CAP, math.ceil(min(1e9 / max_rps, 2**40)))
    assert "replicas > maxReplicas 10000" in slow.why
