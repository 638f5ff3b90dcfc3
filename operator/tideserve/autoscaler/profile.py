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

The minute-of-hour profile (HourProfile) learns what repeats every hour: timers and cron
jobs that fire on the hour or the quarter hour (in the Azure Functions trace, minutes :00,
:15, :30 and :45 bring 1.3-1.6x the median minute). Per minute of the hour, one
exponentially weighted ratio of the minute's requests to the mean of the five minutes on
each side of it (and of its square, for the spread), so it learns within a few hours,
follows the day's level and does not take a rise through the day for a pattern.
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


def _weight(seen: int) -> float:
    """The newest figure's weight: the plain mean over the first samples, then ALPHA."""
    return max(ALPHA, 1.0 / (seen + 1))


def _fold(p: Profile, slot: datetime.datetime, count: float) -> Profile:
    per_slot = list(p.per_slot or (0.0,) * SLOTS)
    seen = list(p.seen or (0,) * SLOTS)
    h = index(slot)
    weight = _weight(seen[h])
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


# -- minute of the hour ------------------------------------------------------------------

MINUTES = 60
# Hours a minute's ratio must have been seen before it is acted on: a burst that came once
# at some minute is not a timer.
MIN_HOURS = 3
# A minute is compared with the mean of the SIDE_MINUTES on each side of it (so a rise
# through the day, a morning ramp, does not make every minute look above the ones before
# it), and the level it is applied to is the mean of the last LEVEL_MINUTES.
SIDE_MINUTES = 5
KEPT_MINUTES = 2 * SIDE_MINUTES + 1
LEVEL_MINUTES = 10
HOURS_KEPT = 4
HOURS_MASK = (1 << HOURS_KEPT) - 1
# Ticks further apart than this put arrivals in the wrong minute: the count starts over.
MAX_TICK_S = 30.0


@dataclasses.dataclass(frozen=True)
class HourProfile:
    """Per minute of the hour: its requests over the mean of the minutes around it, learned
    over the hours; `HourProfile()` to start."""

    ratios: tuple[float, ...] = ()  # MINUTES figures once the first one is folded in
    squares: tuple[float, ...] = ()  # the same average of the ratio squared (its spread)
    seen: tuple[int, ...] = ()  # hours each ratio is made of (capped at MAX_SEEN)
    # Per minute, the last hours in which it brought more than the minutes around it (bit 0:
    # the latest hour).
    above: tuple[int, ...] = ()
    recent: tuple[float, ...] = ()  # requests of the last KEPT_MINUTES whole minutes
    minute: datetime.datetime | None = None  # start of the minute being counted
    count: float = 0.0
    at: datetime.datetime | None = None  # the last tick counted
    partial: bool = True  # the minute being counted started before the first tick of it


def _minute(at: datetime.datetime) -> datetime.datetime:
    return at.replace(second=0, microsecond=0)


def _fold_minute(h: HourProfile, minute: datetime.datetime, count: float) -> HourProfile:
    """`minute` ended with `count` requests: fold in the minute SIDE_MINUTES before it,
    now that the minutes on both sides of it are known."""
    recent = (*h.recent, count)[-KEPT_MINUTES:]
    if len(recent) < KEPT_MINUTES:
        return dataclasses.replace(h, recent=recent)
    middle = recent[SIDE_MINUTES]
    around = (*recent[:SIDE_MINUTES], *recent[SIDE_MINUTES + 1 :])
    level = sum(around) / len(around)
    if level <= 0.0:
        return dataclasses.replace(h, recent=recent)
    ratios = list(h.ratios or (1.0,) * MINUTES)
    squares = list(h.squares or (1.0,) * MINUTES)
    seen = list(h.seen or (0,) * MINUTES)
    above = list(h.above or (0,) * MINUTES)
    m = (minute - datetime.timedelta(minutes=SIDE_MINUTES)).minute
    weight = _weight(seen[m])
    ratio = middle / level
    ratios[m] = (1.0 - weight) * ratios[m] + weight * ratio
    squares[m] = (1.0 - weight) * squares[m] + weight * ratio * ratio
    seen[m] = min(MAX_SEEN, seen[m] + 1)
    above[m] = ((above[m] << 1) | (ratio > 1.0)) & HOURS_MASK
    return dataclasses.replace(
        h,
        ratios=tuple(ratios),
        squares=tuple(squares),
        seen=tuple(seen),
        above=tuple(above),
        recent=recent,
    )


def observe_minutes(h: HourProfile, arrived: float, now: datetime.datetime) -> HourProfile:
    """Count this tick's arrivals; fold in the minute that ended since the last tick.

    Minutes are counted only from ticks at most MAX_TICK_S apart, each in the minute it
    ends in: a longer interval, a clock gone back, or a minute without a tick (metrics
    held, the operator down) leaves those minutes unknown, not silent, and the count
    starts over with the next whole minute.
    """
    current = _minute(now)
    if (
        h.minute is None
        or h.at is None
        or now < h.at
        or (now - h.at).total_seconds() > MAX_TICK_S
        or current - h.minute > datetime.timedelta(minutes=1)
    ):
        return dataclasses.replace(h, recent=(), minute=current, count=0.0, at=now, partial=True)
    if current == h.minute:
        return dataclasses.replace(h, count=h.count + arrived, at=now)
    if not h.partial:
        h = _fold_minute(h, h.minute, h.count)
    return dataclasses.replace(h, minute=current, count=arrived, at=now, partial=False)


def level(h: HourProfile) -> float | None:
    """Requests/s of the mean minute of the last LEVEL_MINUTES (None: not enough counted)."""
    if len(h.recent) < LEVEL_MINUTES:
        return None
    last = h.recent[-LEVEL_MINUTES:]
    return sum(last) / len(last) / 60.0


def ratio_at(h: HourProfile, at: datetime.datetime) -> tuple[float, float] | None:
    """The learned ratio of the minute of the hour `at` falls in, and its spread (standard
    deviation) over the hours (None: seen too few hours)."""
    m = at.minute
    if not h.ratios or h.seen[m] < MIN_HOURS:
        return None
    mean = h.ratios[m]
    return mean, max(0.0, h.squares[m] - mean * mean) ** 0.5


def hours_above(h: HourProfile, at: datetime.datetime) -> int:
    """Of the last HOURS_KEPT hours, those in which the minute of `at` brought more than the
    minutes around it."""
    return h.above[at.minute].bit_count() if h.above else 0
