"""Which schedule window is in force at a moment, and the replica bounds it sets. Pure.

Rules (documented for users in the CRD field descriptions and pinned by tests):
- Times are wall-clock times in the window's IANA zone. A start/end window belongs to
  the local day it starts on (`days` and `exceptDates` filter that day); it crosses
  midnight when end <= start. A cron window opens at each firing minute (local) and
  stays open `durationMinutes` of elapsed time; `days`/`exceptDates` filter the firing day.
- Daylight saving: a local time skipped by a spring-forward change (02:30 in Berlin on
  the last Sunday of March) maps to the instant of the change (the clock shows 03:00),
  so a window starting then still opens, at the first existing local time after its
  start. A local time that happens twice (fall-back) means its first occurrence.
  A window lying wholly inside a skipped hour is empty that day.
- Openings that overlap or touch (a cron window open longer than its period) are one open
  stretch; its end is looked for up to a day ahead (a window open longer than that is
  reported open at least until then, e.g. in status.offUntil).
- Several open windows: the first in list order wins. Prewarm: a window's minReplicas
  applies `prewarmSeconds` before it opens, as an extra floor that also lifts the
  ceiling of whatever is in force (a night window with maxReplicas 0 does not stop the
  morning's capacity from being Ready when the day window opens).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import functools
import zoneinfo
from collections.abc import Callable, Iterator, Sequence

from tideserve.api import schedule as schedule_api
from tideserve.autoscaler import cron as cron_lib

UTC = datetime.UTC
_DAY = datetime.timedelta(days=1)
# Back-to-back occurrences (a cron window longer than its period) are merged into one
# open stretch, looking this far past now: a stretch open longer than that (a window
# firing every minute for two) is reported open at least until its horizon.
_CHAIN_HORIZON = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Occurrence:
    """One opening of a window, as UTC instants (closes is exclusive)."""

    opens: datetime.datetime
    closes: datetime.datetime

    def contains(self, moment: datetime.datetime) -> bool:
        return self.opens <= moment < self.closes


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Replica bounds in force at a moment, and which windows set them."""

    min_replicas: int
    max_replicas: int
    window: str | None = None  # name of the open window in force
    time_zone: str | None = None
    closes: datetime.datetime | None = None  # when the window in force ends
    prewarm: str | None = None  # name of a window whose prewarm raised the floor
    prewarm_opens: datetime.datetime | None = None

    @property
    def off_until(self) -> datetime.datetime | None:
        """When a hard-off window (maxReplicas 0) ends, while one is in force."""
        return self.closes if self.window is not None and self.max_replicas == 0 else None


@functools.lru_cache(maxsize=256)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@functools.lru_cache(maxsize=1024)
def _cron(expression: str) -> cron_lib.Cron:
    return cron_lib.parse(expression)


@functools.lru_cache(maxsize=1024)
def _cron_times(expression: str) -> tuple[datetime.time, ...]:
    return tuple(_cron(expression).times())


def _hhmm(text: str) -> datetime.time:
    hours, minutes = text.split(":")
    return datetime.time(int(hours), int(minutes))


def local_instant(
    day: datetime.date, at: datetime.time, tz: zoneinfo.ZoneInfo
) -> datetime.datetime:
    """The UTC instant a local wall-clock time names (see the module rules for DST)."""
    naive = datetime.datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # exists; fold=0 is the first of two when ambiguous
    # Skipped by a spring-forward change: fold=0 reads it with the old offset (landing
    # after the gap), fold=1 with the new one (before it). The change lies between;
    # find the first second whose local time is at or past the naive time.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    while (high - low).total_seconds() > 1:
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high


def _instants(
    day: datetime.date, tz: zoneinfo.ZoneInfo
) -> Callable[[datetime.time], datetime.datetime]:
    """local_instant for one day: on a day without an offset change (nearly every day)
    one subtraction per time, not a search (a window firing every minute has 1,440)."""
    first = datetime.datetime.combine(day, datetime.time(0)).replace(tzinfo=tz)
    last = datetime.datetime.combine(day, datetime.time(23, 59, 59)).replace(tzinfo=tz)
    offset = first.utcoffset()
    if offset is None or offset != last.utcoffset():
        return lambda at: local_instant(day, at, tz)
    return lambda at: (datetime.datetime.combine(day, at) - offset).replace(tzinfo=UTC)


# Indexed by date.weekday(); strftime("%a") would follow the process locale.
_WEEKDAYS = tuple(schedule_api.Weekday)


def _day_allowed(window: schedule_api.ScheduleWindow, day: datetime.date) -> bool:
    if window.days and _WEEKDAYS[day.weekday()] not in window.days:
        return False
    return day not in window.except_dates


def _on_day(
    window: schedule_api.ScheduleWindow, day: datetime.date, reverse: bool
) -> Iterator[Occurrence]:
    """Occurrences starting on one local day, ordered by opening (descending if reverse)."""
    if not _day_allowed(window, day):
        return
    tz = zone(window.time_zone)
    if window.cron is not None:
        if not _cron(window.cron).matches_day(day):
            return
        duration = datetime.timedelta(minutes=window.duration_minutes or 0)
        times = _cron_times(window.cron)
        instant = _instants(day, tz)
        for at in reversed(times) if reverse else times:
            opens = instant(at)
            yield Occurrence(opens, opens + duration)
        return
    assert window.start is not None and window.end is not None  # model rule
    start, end = _hhmm(window.start), _hhmm(window.end)
    end_day = day if end > start else day + _DAY
    yield Occurrence(local_instant(day, start, tz), local_instant(end_day, end, tz))


def _span_days(window: schedule_api.ScheduleWindow) -> int:
    """How many local days back an occurrence still open now may have started."""
    if window.cron is not None:
        return (window.duration_minutes or 0) // (24 * 60) + 2
    return 2


def open_occurrence(
    window: schedule_api.ScheduleWindow, now: datetime.datetime
) -> Occurrence | None:
    """The latest-opened occurrence containing `now`, merged with any that overlap it."""
    today = now.astimezone(zone(window.time_zone)).date()
    found: Occurrence | None = None
    for back in range(_span_days(window) + 1):
        for occurrence in _on_day(window, today - back * _DAY, reverse=True):
            if occurrence.opens <= now:
                found = occurrence
                break
        if found is not None:
            break
    if found is None or not found.contains(now):
        return None
    return Occurrence(found.opens, _chain_end(window, found, now))


def _chain_end(
    window: schedule_api.ScheduleWindow, found: Occurrence, now: datetime.datetime
) -> datetime.datetime:
    """Extend found.closes over the occurrences that open before it closes (the window
    stays open), in one pass forward over the openings up to _CHAIN_HORIZON past now."""
    tz = zone(window.time_zone)
    closes, horizon = found.closes, now + _CHAIN_HORIZON
    day = found.opens.astimezone(tz).date()
    # A day whose midnight comes after `closes` opens nothing before it (an opening in
    # a DST gap moves later, never to the day before).
    while local_instant(day, datetime.time(0), tz) <= closes:
        for occurrence in _on_day(window, day, reverse=False):
            if occurrence.opens <= found.opens:
                continue
            if occurrence.opens > closes or occurrence.opens > horizon:
                return closes
            closes = max(closes, occurrence.closes)
        day += _DAY
    return closes


def _first_opening_after(
    window: schedule_api.ScheduleWindow, day: datetime.date, after: datetime.datetime
) -> Occurrence | None:
    """The first occurrence starting on local `day` that opens after `after`: found by
    bisection for a cron window (its openings ascend with their local times)."""
    if window.cron is None:
        return next((o for o in _on_day(window, day, reverse=False) if o.opens > after), None)
    if not _day_allowed(window, day) or not _cron(window.cron).matches_day(day):
        return None
    times = _cron_times(window.cron)
    instant = _instants(day, zone(window.time_zone))
    index = bisect.bisect_right(times, after, key=instant)
    if index == len(times):
        return None
    opens = instant(times[index])
    return Occurrence(opens, opens + datetime.timedelta(minutes=window.duration_minutes or 0))


def next_opening(
    window: schedule_api.ScheduleWindow, after: datetime.datetime, until: datetime.datetime
) -> Occurrence | None:
    """The first occurrence opening in (after, until]."""
    tz = zone(window.time_zone)
    day = after.astimezone(tz).date() - _DAY  # a DST gap can push an opening a day on
    last = until.astimezone(tz).date() + _DAY
    while day <= last:
        occurrence = _first_opening_after(window, day, after)
        if occurrence is not None and occurrence.opens <= until:
            return occurrence
        day += _DAY
    return None


def bounds(
    min_replicas: int,
    max_replicas: int,
    windows: Sequence[schedule_api.ScheduleWindow],
    now: datetime.datetime,
) -> Bounds:
    """The replica bounds at `now` from the base bounds and the schedule windows."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = Bounds(min_replicas, max_replicas)
    for window in windows:
        occurrence = open_occurrence(window, now)
        if occurrence is None:
            continue
        ceiling = max_replicas if window.max_replicas is None else window.max_replicas
        floor = window.min_replicas if window.min_replicas is not None else min_replicas
        result = Bounds(
            min(floor, ceiling),
            ceiling,
            window=window.name,
            time_zone=window.time_zone,
            closes=occurrence.closes.astimezone(UTC),
        )
        break
    for window in windows:
        if not window.prewarm_seconds or not window.min_replicas:
            continue
        if window.name == result.window:
            continue
        lead = datetime.timedelta(seconds=window.prewarm_seconds)
        coming = next_opening(window, now, now + lead)
        if coming is None or window.min_replicas <= result.min_replicas:
            continue
        result = dataclasses.replace(
            result,
            min_replicas=window.min_replicas,
            max_replicas=max(result.max_replicas, window.min_replicas),
            prewarm=window.name,
            prewarm_opens=coming.opens,
        )
    return result
