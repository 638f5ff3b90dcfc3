"""Memory's margin follows its risk: leaks and lasting steps are sized ahead, flat memory
keeps VPA's figure, and an OOM kill raises memory at once whatever the hysteresis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideserve.rightsizing import histograms, quantities, recommender

pytestmark = pytest.mark.unit

DAY = histograms.DAY
GIB = quantities.GIB
NOW = 20 * DAY
STEP = 1800.0


def daily_series(level: Callable[[float], float], days: int = 8) -> list[tuple[float, float]]:
    """Half-hourly samples over `days` days ending at NOW, memory = level(day)."""
    start = NOW - days * DAY
    n = int(days * DAY / STEP)
    return [(start + k * STEP, level(k * STEP / DAY)) for k in range(n)]


def flat_need(samples: list[tuple[float, float]]) -> float:
    """Without the risk terms: VPA's p90 of daily peaks + 15%, at least the highest daily
    peak + the floor margin."""
    policy = recommender.Policy(memory_leak_threshold=1e9, memory_step_threshold=1e9)
    need = recommender.memory_need(samples, (), NOW, policy)
    assert need is not None
    return need


@given(st.floats(0.5, 20), st.floats(0.0, 0.01))
@settings(deadline=None)
def test_flat_memory_keeps_vpas_figure(gib: float, noise: float) -> None:
    samples = daily_series(lambda d: gib * GIB * (1 + noise * ((d * 7) % 1)))
    assert recommender.memory_need(samples, (), NOW) == pytest.approx(flat_need(samples))


@given(st.floats(0.5, 20), st.floats(0.005, 0.05))
@settings(max_examples=50, deadline=None)
def test_a_leak_is_sized_for_the_horizon_ahead(gib: float, leak: float) -> None:
    samples = daily_series(lambda d: gib * GIB * (1 + leak * d))
    need = recommender.memory_need(samples, (), NOW)
    assert need is not None
    # What the same leak reaches 8 days after the window ends, with room to spare.
    ahead = gib * GIB * (1 + leak * 16)
    assert need >= ahead
    assert need >= flat_need(samples)


@given(st.floats(0.5, 20), st.floats(1.1, 1.6), st.floats(2.5, 5.5))
@settings(max_examples=50, deadline=None)
def test_a_lasting_step_is_sized_for_another_like_it(gib: float, step: float, day: float) -> None:
    samples = daily_series(lambda d: gib * GIB * (step if d >= day else 1.0))
    need = recommender.memory_need(samples, (), NOW)
    assert need is not None
    assert need >= gib * GIB * step * step * 0.99


@given(st.floats(0.5, 20), st.floats(1.2, 2.0), st.integers(2, 6))
@settings(max_examples=50, deadline=None)
def test_a_one_day_spike_is_not_a_step(gib: float, spike: float, day: int) -> None:
    samples = daily_series(lambda d: gib * GIB * (spike if day <= d < day + 0.1 else 1.0))
    need = recommender.memory_need(samples, (), NOW)
    assert need == pytest.approx(flat_need(samples))


@given(st.floats(0.3, 20), st.floats(0.5, 1.5), st.floats(1.0, 1.5))
@settings(deadline=None)
def test_an_oom_never_lowers_memory_and_lifts_it_over_the_limit(
    gib: float, limit_ratio: float, bump: float
) -> None:
    samples = daily_series(lambda d: gib * GIB)
    limit = gib * GIB * limit_ratio
    oom = recommender.Oom(NOW - 60, limit)
    policy = recommender.Policy(oom_bump_ratio=bump)
    without = recommender.memory_need(samples, (), NOW, policy)
    after = recommender.memory_need(samples, (oom,), NOW, policy)
    assert without is not None and after is not None
    assert after >= without
    assert after > limit


@given(st.floats(0.3, 20), st.floats(1.001, 1.09))
@settings(deadline=None)
def test_an_oom_raise_is_applied_however_small_the_hysteresis_band_says_it_is(
    gib: float, bump: float
) -> None:
    # A bump smaller than the 10% band would be held back as noise; an OOM is not noise.
    usage = recommender.Usage(
        memory_bytes=daily_series(lambda d: gib * GIB * 0.5),
        ooms=(recommender.Oom(NOW - 60, gib * GIB),),
    )
    policy = recommender.Policy(oom_bump_ratio=bump, oom_bump_min_bytes=0.0)
    previous = recommender.Sizing(memory_bytes=gib * GIB)
    new = recommender.size(usage, NOW, policy=policy)
    assert new.oom_raised
    kept = recommender.stabilize(previous, new, policy)
    assert kept.memory_bytes is not None
    assert kept.memory_bytes == pytest.approx(gib * GIB * bump)
    assert kept.memory_bytes > gib * GIB


def test_growth_reads_leak_and_step_from_daily_peaks() -> None:
    peaks = [(d * DAY, v) for d, v in enumerate([1.0, 1.0, 1.02, 1.04, 1.35, 1.38, 1.41, 1.44])]
    growth = recommender.memory_growth(peaks)
    assert growth.leak_per_day == pytest.approx(0.02, abs=0.003)
    assert growth.step == pytest.approx(1.35 / 1.04 / 1.02, rel=0.02)
    assert growth.latest_peak == 1.44


@given(
    st.floats(0.3, 20),
    st.lists(st.floats(0.5, 1.0), min_size=8, max_size=8),
    st.floats(0.0, 0.05),
)
@settings(max_examples=60, deadline=None)
def test_memory_is_never_below_the_highest_daily_peak_plus_the_floor_margin(
    gib: float, days: list[float], leak: float
) -> None:
    # Whatever the shape (flat, noisy, leaking), a first-ever step no history shows still
    # finds the floor's room above the highest peak the window saw.
    samples = daily_series(lambda d: gib * GIB * days[min(int(d), 7)] * (1 + leak * d))
    need = recommender.memory_need(samples, (), NOW)
    assert need is not None
    top = max(v for _, v in samples)
    assert need >= top * (1 + recommender.FLOOR_MARGIN) * 0.999


@given(st.floats(0.5, 20), st.floats(0.005, 0.05))
@settings(max_examples=50, deadline=None)
def test_a_leak_gets_the_floor_margin_on_top_of_the_growth_foreseen(
    gib: float, leak: float
) -> None:
    samples = daily_series(lambda d: gib * GIB * (1 + leak * d))
    need = recommender.memory_need(samples, (), NOW)
    assert need is not None
    # The same leak 8 days past the window's end, and a first-ever step's room above it.
    assert need >= gib * GIB * (1 + leak * 16) * (1 + recommender.FLOOR_MARGIN)


def test_the_floor_margin_is_a_policy_setting() -> None:
    samples = daily_series(lambda d: 2 * GIB)
    without = recommender.memory_need(samples, (), NOW, recommender.Policy(memory_floor_margin=0))
    assert without is not None
    assert 2 * GIB * 1.15 <= without <= 2 * GIB * 1.15 * 1.06  # VPA's p90 + 15%
    for margin in (0.4, 1.0):
        policy = recommender.Policy(memory_floor_margin=margin)
        assert recommender.memory_need(samples, (), NOW, policy) == pytest.approx(
            2 * GIB * (1 + margin)
        )
