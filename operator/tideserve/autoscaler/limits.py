"""Stabilization windows and rate limits, with the semantics of the HPA's behavior. Pure.

- Stabilization: scale down to the highest recommendation of the scale-down window,
  up to the lowest of the scale-up window (0 s: at once).
- Rate limits: per period, change at most max(percent of the replicas at the start of
  the period, a number of replicas); the more permissive of the two wins, as the HPA's
  default selectPolicy Max.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from tideserve.api import spec as spec_api

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Recommendation:
    at: datetime.datetime
    replicas: int


@dataclasses.dataclass(frozen=True)
class ScaleEvent:
    at: datetime.datetime
    before: int
    after: int


def _within(at: datetime.datetime, now: datetime.datetime, seconds: float) -> bool:
    return (now - at).total_seconds() <= seconds


def _recent(
    recommendations: Sequence[Recommendation], now: datetime.datetime, seconds: float
) -> list[int]:
    """Replicas recommended within the last `seconds` (the list is in time order)."""
    cutoff = now - datetime.timedelta(seconds=seconds)
    out = []
    for r in reversed(recommendations):
        if r.at < cutoff:
            break
        out.append(r.replicas)
    return out


def stabilize(
    up_window: int,
    down_window: int,
    recommendations: Sequence[Recommendation],
    current: int,
    now: datetime.datetime,
) -> tuple[int, str]:
    """The stabilized target from recommendations (which include this tick's), with the
    scale-up and scale-down windows in force (learned.Knobs)."""
    down = _recent(recommendations, now, down_window)
    up = _recent(recommendations, now, up_window)
    latest = recommendations[-1].replicas
    up_to = min(up) if up else latest
    down_to = max(down) if down else latest
    if current < up_to:
        if up_to < latest:
            return up_to, f"held at {up_to} by the {up_window}s scale-up window"
        return up_to, ""
    if current > down_to:
        if down_to > latest:
            return down_to, f"held at {down_to} by the {down_window}s scale-down window"
        return down_to, ""
    if latest != current:
        window, which = (up_window, "scale-up") if latest > current else (down_window, "scale-down")
        return current, f"held at {current} by the {window}s {which} stabilization window"
    return current, ""


def rate_limit(
    behavior: spec_api.BehaviorSpec,
    events: Sequence[ScaleEvent],
    current: int,
    target: int,
    now: datetime.datetime,
) -> tuple[int, str]:
    """Clamp a move from current to target by the rate limits of its direction."""
    if target > current:
        rules = behavior.scale_up
        added = sum(
            e.after - e.before
            for e in events
            if e.after > e.before and _within(e.at, now, rules.period_seconds)
        )
        start = max(current - added, 0)
        limit = max(
            math.ceil(start * (1 + rules.max_percent / 100)), start + rules.max_replicas_change
        )
        if target > limit:
            return max(limit, current), _words("scaleUp", rules, max(limit, current))
        return target, ""
    if target < current:
        rules = behavior.scale_down
        removed = sum(
            e.before - e.after
            for e in events
            if e.after < e.before and _within(e.at, now, rules.period_seconds)
        )
        start = current + removed
        limit = min(
            math.floor(start * (1 - rules.max_percent / 100)), start - rules.max_replicas_change
        )
        limit = max(limit, 0)
        if target < limit:
            return min(limit, current), _words("scaleDown", rules, min(limit, current))
        return target, ""
    return target, ""


def _words(name: str, rules: spec_api.ScalingRules, limited: int) -> str:
    return (
        f"limited to {limited} by {name} {rules.max_percent}% or "
        f"{rules.max_replicas_change} per {rules.period_seconds}s"
    )


def since(
    items: tuple[T, ...], cutoff: datetime.datetime, at: Callable[[T], datetime.datetime]
) -> tuple[T, ...]:
    """The items at or after `cutoff` (`items` is in time order)."""
    start = 0
    while start < len(items) and at(items[start]) < cutoff:
        start += 1
    return items[start:] if start else items


def mean(
    needs: tuple[tuple[datetime.datetime, float], ...], now: datetime.datetime, window: float
) -> float:
    """Mean of the values newer than `window` seconds (else the latest value)."""
    cutoff = now - datetime.timedelta(seconds=window)
    total, count = 0.0, 0
    for at, value in reversed(needs):
        if at <= cutoff:
            break
        total, count = total + value, count + 1
    return total / count if count else needs[-1][1]
