"""What an endpoint's own arrivals say about keeping it warm: a count of arrivals per tick,
and a time-of-day profile learned from it. Pure.

Everything here comes from what the operator sees online, tick by tick: the request rate
of the replicas (successes over the rate window) while any is Ready, and the activator's
held count while none is. Requests held through a wake are counted once: when the
replicas serve them, the rate that follows pays back that credit first.

The profile is requests per quarter hour of the day (UTC), one exponentially weighted
figure per slot folded in when the slot ends, so an endpoint with quiet nights learns when its
mornings start, and a changed pattern fades out in a few days. Only time of day is
learned, not of week: a week gives one sample per slot of the week, too few to act on.
"""

from __future__ import annotations

import dataclasses
import datetime

SLOT_S = 900  # a quarter of an hour: a morning ramp starts on the quarter, not the hour
SLOTS = 96
# Weight of the newest day in an hour's figure (after the first days, which average).
ALPHA = 0.3
# Days an hour's figure is counted as seen at most (its weight stops shrinking there).
MAX_SEEN = 30
# Slots folded in without a tick (the operator was down): more are unknown, not silent.
MAX_FOLD_SLOTS = 24


@dataclasses.dataclass(frozen=True)
class Counter:
    """The previous tick, to turn rates and held counts into arrivals."""

    at: datetime.datetime | None = None
    held: int = 0
    credit: float = 0.0  # held requests already counted, to be served


def arrivals(
    counter: Counter, rate: float | None, held: int, now: datetime.datetime
) -> tuple[float, Counter]:
    """Requests that arrived since the previous tick (an estimate), and the new counter."""
    if counter.at is None:
        return 0.0, Counter(now, held, float(held))
    dt = max(0.0, (now - counter.at).total_seconds())
    grown = float(max(0, held - counter.held))
    served = (rate or 0.0) * dt
    fresh = max(0.0, served - counter.credit)
    credit = max(0.0, counter.credit - served) + grown
    return grown + fresh, Counter(now, held, credit)


@dataclasses.dataclass(frozen=True)
class Profile:
    """Requests per quarter-hour slot of the day (UTC); `Profile()` to start."""

    per_slot: tuple[float, ...] = ()  # SLOTS figures once the first slot ended
    seen: tuple[int, ...] = ()  # days each figure is made of (capped at MAX_SEEN)
    slot: datetime.datetime | None = None  # start of the slot being counted
    count: float = 0.0  # requests counted in it so far


def index(at: datetime.datetime) -> int:
    return (at.hour * 3600 + at.minute * 60 + at.second) // SLOT_S


def _slot(at: datetime.datetime) -> datetime.datetime:
    return at.replace(minute=at.minute - at.minute % (SLOT_S // 60), second=0, microsecond=0)


def _fold(p: Profile, slot: datetime.datetime, count: float) -> Profile:
    per_slot = list(p.per_slot or (0.0,) * SLOTS)
    seen = list(p.seen or (0,) * SLOTS)
    h = index(slot)
    weight = max(ALPHA, 1.0 / (seen[h] + 1))
    per_slot[h] = (1.0 - weight) * per_slot[h] + weight * count
    seen[h] = min(MAX_SEEN, seen[h] + 1)
    return dataclasses.replace(p, per_slot=tuple(per_slot), seen=tuple(seen))


def observe(p: Profile, arrived: float, now: datetime.datetime) -> Profile:
    """Count this tick's arrivals; fold in every slot that ended since the last tick."""
    current = _slot(now)
    if p.slot is None:
        return dataclasses.replace(p, slot=current, count=arrived)
    if current <= p.slot:
        return dataclasses.replace(p, count=p.count + arrived)
    # Ended slots: the one counted, then any passed without a tick (silent, if few).
    start = p.slot
    p = _fold(p, start, p.count)
    missed = int((current - start).total_seconds() // SLOT_S) - 1
    if missed <= MAX_FOLD_SLOTS:
        for k in range(1, missed + 1):
            p = _fold(p, start + datetime.timedelta(seconds=k * SLOT_S), 0.0)
    return dataclasses.replace(p, slot=current, count=arrived)


def rate_at(p: Profile, at: datetime.datetime) -> float | None:
    """Expected requests/s at `at` from the profile (None: that slot not seen yet)."""
    if not p.per_slot or not p.seen[index(at)]:
        return None
    return p.per_slot[index(at)] / SLOT_S


def days(p: Profile) -> int:
    return max(p.seen, default=0)
