"""The CPU/memory recommender: VPA-like figures, and the properties that make it safe."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideserve.rightsizing import histograms, quantities, recommender

pytestmark = pytest.mark.unit

NOW = 10 * histograms.DAY
MIB = quantities.MIB


def series(values: list[float], step: float = 60.0, end: float = NOW) -> list[tuple[float, float]]:
    return [(end - step * (len(values) - 1 - i), v) for i, v in enumerate(values)]


def test_percentile_is_the_upper_edge_of_the_bucket() -> None:
    hist = histograms.build(series([1.0] * 19 + [5.0]), histograms.CPU, NOW)
    p90 = histograms.percentile(hist, 0.9)
    assert 1.0 <= p90 <= 1.05 * 1.0 + 0.01


def test_old_samples_weigh_less() -> None:
    # Two days of 4 cores long ago, a day of 1 core now: with a 24 h half-life the
    # recent day dominates the median.
    old = series([4.0] * 100, end=NOW - 3 * histograms.DAY)
    new = series([1.0] * 100)
    hist = histograms.build(old + new, histograms.CPU, NOW)
    assert histograms.percentile(hist, 0.5) < 1.1


def test_cpu_is_p90_plus_margin_with_a_floor() -> None:
    assert recommender.cpu_need(series([1.0] * 100), NOW) == pytest.approx(1.15, rel=0.06)
    assert recommender.cpu_need(series([0.001] * 100), NOW) == 0.025
    assert recommender.cpu_need(series([1.0]), NOW) is None  # too little data


NO_FLOOR = dataclasses.replace(recommender.DEFAULT_POLICY, memory_floor_margin=0.0)


def test_memory_is_the_daily_peak_plus_margin_with_a_floor() -> None:
    usage = [500 * MIB] * 100 + [800 * MIB] + [500 * MIB] * 100
    need = recommender.memory_need(series(usage), (), NOW, NO_FLOOR)
    assert need is not None
    assert 800 * MIB * 1.15 <= need <= 800 * MIB * 1.15 * 1.06
    assert recommender.memory_need(series([10 * MIB] * 10), (), NOW) == 250 * MIB


def test_memory_is_at_least_the_highest_daily_peak_plus_the_floor_margin() -> None:
    usage = [500 * MIB] * 100 + [800 * MIB] + [500 * MIB] * 100
    need = recommender.memory_need(series(usage), (), NOW)
    assert need == pytest.approx(800 * MIB * (1 + recommender.FLOOR_MARGIN))


def test_an_oom_raises_memory_by_at_least_20_percent_or_100mi() -> None:
    usage = series([300 * MIB] * 50)
    oom = [recommender.Oom(NOW - 60, 300 * MIB)]
    small = recommender.memory_need(usage, oom, NOW, NO_FLOOR)
    assert small == pytest.approx(400 * MIB)  # +100Mi beats +20% here
    big = recommender.memory_need(usage, [recommender.Oom(NOW - 60, 4096 * MIB)], NOW)
    assert big == pytest.approx(4096 * MIB * 1.2)


def test_gpu_memory_is_peak_plus_headroom() -> None:
    need = recommender.gpu_memory_need(series([4e9, 5e9, 4.5e9]))
    assert need == pytest.approx(6e9)


def test_size_caps_at_bounds_and_says_so() -> None:
    usage = recommender.Usage(cpu_cores=series([40.0] * 20), memory_bytes=series([1e12] * 20))
    sizing = recommender.size(usage, NOW, recommender.Bounds(8, 32 * quantities.GIB))
    assert sizing.cpu_cores == 8
    assert sizing.memory_bytes == 32 * quantities.GIB
    assert any("capped" in n for n in sizing.notes)


def test_stabilize_keeps_small_moves_and_takes_big_ones() -> None:
    before = recommender.Sizing(cpu_cores=1.0, memory_bytes=1000 * MIB)
    small = recommender.Sizing(cpu_cores=1.08, memory_bytes=950 * MIB)
    assert recommender.stabilize(before, small) == before
    big = recommender.Sizing(cpu_cores=1.5, memory_bytes=None)
    after = recommender.stabilize(before, big)
    assert after.cpu_cores == 1.5
    assert after.memory_bytes == 1000 * MIB  # no data is not zero usage


# --- properties --------------------------------------------------------------------------

levels = st.floats(min_value=0.05, max_value=50.0)
mem_levels = st.floats(min_value=50 * MIB, max_value=100 * quantities.GIB)


def noisy(level: float, noise: float, seed: int, n: int = 300) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return series([level * (1 + rng.uniform(-noise, noise)) for _ in range(n)])


@settings(max_examples=60, deadline=None)
@given(level=levels, mem=mem_levels, seed=st.integers(0, 10_000))
def test_stable_under_noise(level: float, mem: float, seed: int) -> None:
    # Usage that only jitters (±3%) around the same level never changes the figures.
    first = recommender.size(
        recommender.Usage(cpu_cores=noisy(level, 0.03, seed), memory_bytes=noisy(mem, 0.03, seed)),
        NOW,
    )
    later = recommender.size(
        recommender.Usage(
            cpu_cores=noisy(level, 0.03, seed + 1), memory_bytes=noisy(mem, 0.03, seed + 1)
        ),
        NOW,
    )
    assert recommender.stabilize(first, later) == first


@settings(max_examples=60, deadline=None)
@given(
    level=st.floats(min_value=0.0, max_value=1e4),
    mem=st.floats(min_value=0.0, max_value=1e14),
    max_cpu=st.floats(min_value=0.1, max_value=64),
    max_mem=st.floats(min_value=1e8, max_value=1e12),
)
def test_bounded(level: float, mem: float, max_cpu: float, max_mem: float) -> None:
    usage = recommender.Usage(cpu_cores=series([level] * 10), memory_bytes=series([mem] * 10))
    sizing = recommender.size(usage, NOW, recommender.Bounds(max_cpu, max_mem))
    assert sizing.cpu_cores is not None
    assert sizing.memory_bytes is not None
    assert sizing.cpu_cores <= max_cpu
    assert sizing.memory_bytes <= max_mem
    assert sizing.cpu_cores >= min(0.025, max_cpu)


@settings(max_examples=60, deadline=None)
@given(killed_at=st.floats(min_value=1 * MIB, max_value=200 * quantities.GIB), used=mem_levels)
def test_oom_bump(killed_at: float, used: float) -> None:
    usage = recommender.Usage(
        memory_bytes=series([used] * 20), ooms=(recommender.Oom(NOW - 600, killed_at),)
    )
    need = recommender.size(usage, NOW).memory_bytes
    assert need is not None
    assert need >= max(killed_at * 1.2, killed_at + 100 * MIB) - 1


@settings(max_examples=60, deadline=None)
@given(base=st.floats(min_value=0.01, max_value=100), extra=st.floats(min_value=0, max_value=100))
def test_monotone_in_load(base: float, extra: float) -> None:
    low = recommender.cpu_need(series([base] * 50), NOW)
    high = recommender.cpu_need(series([base + extra] * 50), NOW)
    assert low is not None
    assert high is not None
    assert high >= low
    low_m = recommender.memory_need(series([base * 1e9] * 50), (), NOW)
    high_m = recommender.memory_need(series([(base + extra) * 1e9] * 50), (), NOW)
    assert low_m is not None
    assert high_m is not None
    assert high_m >= low_m


@settings(max_examples=60, deadline=None)
@given(
    old=st.floats(min_value=0.01, max_value=100),
    factor=st.floats(min_value=0.0, max_value=3.0),
)
def test_hysteresis(old: float, factor: float) -> None:
    before = recommender.Sizing(cpu_cores=old)
    after = recommender.stabilize(before, recommender.Sizing(cpu_cores=old * factor))
    step = recommender.DEFAULT_POLICY.min_cpu_step_cores
    change = abs(factor - 1) * old
    if change < max(0.1 * old, step) * (1 - 1e-9):
        assert after.cpu_cores == old
    elif change > max(0.1 * old, step) * (1 + 1e-9):
        assert after.cpu_cores == pytest.approx(old * factor)


def test_one_bucket_near_zero_is_not_a_change() -> None:
    # At 0.16 cores one 5% bucket is 11% wide: without an absolute step every bucket
    # the p90 crossed would be a new recommendation and an Event.
    before = recommender.Sizing(cpu_cores=0.177, memory_bytes=300 * MIB)
    after = recommender.stabilize(
        before, recommender.Sizing(cpu_cores=0.198, memory_bytes=340 * MIB)
    )
    assert after == before
    moved = recommender.stabilize(before, recommender.Sizing(cpu_cores=0.25))
    assert moved.cpu_cores == 0.25


@settings(max_examples=100, deadline=None)
@given(value=st.floats(min_value=0.0, max_value=999.0))
def test_a_value_falls_in_its_bucket(value: float) -> None:
    index = histograms.CPU.index(value)
    assert histograms.CPU.start(index) <= value + 1e-12
    assert value < histograms.CPU.start(index + 1)
