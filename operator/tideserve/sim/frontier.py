"""Cost at equal attainment: Pareto frontiers of (GPU-seconds, SLO attainment). Pure.

A family's sweep gives points (cost, attainment). Its frontier keeps the points no other
point beats on both (as cheap or cheaper and as good or better); read as a staircase or
a line between neighbours, it says what the family pays for a given attainment. Every
comparison in the bench goes through `cost_at`: a policy is set against another family at
the policy's *own* attainment, never against a point planned for a different one.

Between two frontier points the cost is interpolated linearly in attainment (running one
setting part of the time and the other the rest gives that mix, so the line is reachable);
outside the frontier's range there is no number, only which side it is on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

Point = tuple[float, float]  # (cost, attainment)


def pareto(points: Iterable[Point]) -> list[Point]:
    """The non-dominated points, cheapest first (so attainment strictly rises)."""
    out: list[Point] = []
    for cost, att in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or att > out[-1][1]:
            out.append((cost, att))
    return out


@dataclasses.dataclass(frozen=True)
class At:
    """A frontier read at one attainment: `cost` inside its range, else which side."""

    cost: float | None
    side: str  # "inside" | "below" (every point does better) | "above" (none reaches it)


def cost_at(front: list[Point], attainment: float) -> At:
    """The frontier's cost at `attainment`, linear between neighbouring points."""
    if not front:
        return At(None, "above")
    lo_cost, lo_att = front[0]
    if attainment < lo_att:
        return At(None, "below")
    if attainment > front[-1][1]:
        return At(None, "above")
    for cost, att in front:
        if att >= attainment:
            if att == lo_att:
                return At(cost, "inside")
            share = (attainment - lo_att) / (att - lo_att)
            return At(lo_cost + share * (cost - lo_cost), "inside")
        lo_cost, lo_att = cost, att
    return At(front[-1][0], "inside")  # unreachable: attainment <= the last point's


@dataclasses.dataclass(frozen=True)
class Versus:
    """One point against another family's frontier.

    `margin` is the frontier's cost at the point's attainment over the point's cost,
    minus one (0.2: the family pays 20 % more for that attainment); None when the
    frontier does not span it. `dominated_by` is a point of the family at least as good
    and strictly cheaper, if any: then the point is above the frontier whatever the
    interpolation says.
    """

    margin: float | None
    side: str
    dominated_by: Point | None

    @property
    def on_or_below(self) -> bool:
        if self.dominated_by is not None:
            return False
        return self.margin is None or self.margin >= -1e-9


def versus(point: Point, family: Iterable[Point]) -> Versus:
    cost, att = point
    pts = list(family)
    beaters = [p for p in pts if p[1] >= att and p[0] < cost]
    dominated = min(beaters) if beaters else None
    at = cost_at(pareto(pts), att)
    margin = None if at.cost is None or cost <= 0 else at.cost / cost - 1.0
    return Versus(margin, at.side, dominated)


def ratio_to(point: Point, reference: list[Point]) -> At:
    """The point's cost over the reference frontier's at the point's attainment."""
    at = cost_at(pareto(reference), point[1])
    if at.cost is None or at.cost <= 0:
        return At(None, at.side)
    return At(point[0] / at.cost, "inside")
