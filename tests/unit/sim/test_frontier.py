"""Cost at equal attainment: the frontier and the reading of it at one attainment."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tideserve.sim import frontier

pytestmark = pytest.mark.unit

points = st.lists(st.tuples(st.floats(0.0, 1e6), st.floats(0.0, 1.0)), min_size=0, max_size=30)


def test_pareto_drops_points_beaten_on_both() -> None:
    pts = [(10.0, 0.90), (12.0, 0.85), (20.0, 0.99), (20.0, 0.95), (5.0, 0.50)]
    assert frontier.pareto(pts) == [(5.0, 0.50), (10.0, 0.90), (20.0, 0.99)]


@given(points)
def test_pareto_is_cheapest_first_rising_and_undominated(pts: list[frontier.Point]) -> None:
    front = frontier.pareto(pts)
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in itertools.pairwise(front))
    for p in pts:
        # Every point is matched or beaten by a frontier point.
        assert any(f[0] <= p[0] and f[1] >= p[1] for f in front)


def test_cost_at_interpolates_inside_and_says_which_side_outside() -> None:
    front = [(10.0, 0.90), (20.0, 0.99)]
    assert frontier.cost_at(front, 0.90) == frontier.At(10.0, "inside")
    assert frontier.cost_at(front, 0.945).cost == pytest.approx(15.0)
    assert frontier.cost_at(front, 0.99).cost == pytest.approx(20.0)
    assert frontier.cost_at(front, 0.5) == frontier.At(None, "below")
    assert frontier.cost_at(front, 0.995) == frontier.At(None, "above")
    assert frontier.cost_at([], 0.9) == frontier.At(None, "above")


@given(points, st.floats(0.0, 1.0))
def test_cost_at_is_between_its_neighbours(pts: list[frontier.Point], att: float) -> None:
    front = frontier.pareto(pts)
    at = frontier.cost_at(front, att)
    if at.cost is None:
        return
    below = [f for f in front if f[1] <= att]
    above = [f for f in front if f[1] >= att]
    assert max(f[0] for f in below) - 1e-6 <= at.cost <= min(f[0] for f in above) + 1e-6


def test_versus_margin_and_domination() -> None:
    family = [(10.0, 0.90), (20.0, 0.99)]
    # At 94.5 % the family pays 15; a point paying 12 there is 25 % cheaper.
    vs = frontier.versus((12.0, 0.945), family)
    assert vs.margin == pytest.approx(0.25) and vs.on_or_below and vs.dominated_by is None
    # Paying 16 for 94.5 % is above the frontier.
    assert not frontier.versus((16.0, 0.945), family).on_or_below
    # A family point as good and cheaper dominates, whatever the interpolation.
    vs = frontier.versus((11.0, 0.85), family)
    assert vs.dominated_by == (10.0, 0.90) and not vs.on_or_below
    # Beyond what the family reaches: on or below, without a margin.
    vs = frontier.versus((50.0, 0.999), family)
    assert vs.margin is None and vs.side == "above" and vs.on_or_below


def test_ratio_to_the_oracle_at_the_points_own_attainment() -> None:
    oracle = [(10.0, 0.90), (20.0, 0.99), (15.0, 0.80)]  # the last one is dominated
    assert frontier.ratio_to((30.0, 0.99), oracle).cost == pytest.approx(1.5)
    assert frontier.ratio_to((30.0, 0.945), oracle).cost == pytest.approx(2.0)
    assert frontier.ratio_to((30.0, 0.5), oracle) == frontier.At(None, "below")
