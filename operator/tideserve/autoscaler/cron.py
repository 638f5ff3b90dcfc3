"""A small 5-field cron matcher (minute hour day-of-month month day-of-week).

Supports `*`, lists, ranges, steps (`*/15`, `1-30/5`, `5/10`) and names (Mon..Sun,
Jan..Dec, case-insensitive). Day of week 0 and 7 are both Sunday. As in Vixie cron,
when both day-of-month and day-of-week are restricted a day matches if EITHER does.
A range whose end comes before its start wraps (Fri-Mon is Fri, Sat, Sun, Mon; 50-10
minutes is 50..59 and 0..10), where Vixie cron refuses it. What parses is exactly what
the CRD admits (api.formats.CRON, the same expression), so an object the API server
accepted never fails here. Written here rather than taken from a dependency: it is
~100 lines and pure.
"""

from __future__ import annotations

import dataclasses
import datetime

from tideserve.api import formats

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (low, high, names whose index + offset is the value)
_FIELDS: tuple[tuple[int, int, tuple[str, ...], int], ...] = (
    (0, 59, (), 0),
    (0, 23, (), 0),
    (1, 31, (), 0),
    (1, 12, _MONTHS, 1),
    (0, 7, _DAYS, 0),
)


class CronError(ValueError):
    """The expression is not a valid 5-field cron expression."""


@dataclasses.dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    dom_restricted: bool
    dow_restricted: bool

    def matches_day(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.isoweekday() % 7) in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        return dom and dow

    def times(self) -> list[datetime.time]:
        """Firing times of a matching day, ascending."""
        return [datetime.time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]

    def matches(self, moment: datetime.datetime) -> bool:
        """Whether a (local, wall-clock) moment is a firing minute."""
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and self.matches_day(moment.date())
        )


def _value(token: str, low: int, high: int, names: tuple[str, ...], offset: int) -> int:
    lowered = token.lower()
    if names and not lowered.isdigit():
        # Mon and Monday, Jan and January: the first three letters name it.
        if lowered[:3] in names and lowered in (lowered[:3], *_LONG_NAMES.get(lowered[:3], ())):
            return names.index(lowered[:3]) + offset
        raise CronError(f"unknown name {token!r}")
    if not lowered.isdigit():
        raise CronError(f"{token!r} is not a number")
    value = int(lowered)
    if not low <= value <= high:
        raise CronError(f"{value} is outside {low}-{high}")
    return value


_LONG_NAMES = {
    "jan": ("january",),
    "feb": ("february",),
    "mar": ("march",),
    "apr": ("april",),
    "jun": ("june",),
    "jul": ("july",),
    "aug": ("august",),
    "sep": ("september", "sept"),
    "oct": ("october",),
    "nov": ("november",),
    "dec": ("december",),
    "sun": ("sunday",),
    "mon": ("monday",),
    "tue": ("tuesday", "tues"),
    "wed": ("wednesday",),
    "thu": ("thursday", "thurs"),
    "fri": ("friday",),
    "sat": ("saturday",),
}


def _field(text: str, low: int, high: int, names: tuple[str, ...], offset: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"empty list item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first = _value(a, low, high, names, offset)
            last = _value(b, low, high, names, offset)
            if first > last:  # wraps: to the end of the field, then on from its start
                ordered = [*range(first, high + 1), *range(low, last + 1)]
                values.update(ordered[::step])
                continue
        else:
            first = _value(base, low, high, names, offset)
            # "5/10" means from 5 to the end in steps of 10.
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return values


def parse(expression: str) -> Cron:
    if not formats.matches(formats.CRON, expression):
        raise CronError(f"{expression!r}: {formats.CRON_MESSAGE}")
    fields = expression.split()
    parsed = [_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True)]
    dow = {d % 7 for d in parsed[4]}
    return Cron(
        minutes=frozenset(parsed[0]),
        hours=frozenset(parsed[1]),
        days_of_month=frozenset(parsed[2]),
        months=frozenset(parsed[3]),
        days_of_week=frozenset(dow),
        dom_restricted=not fields[2].startswith("*"),
        dow_restricted=not fields[4].startswith("*"),
    )
