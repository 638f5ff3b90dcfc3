"""The unit of a trace's numeric times. Seconds, unless the `::unit=` option, the column's
name (`timestamp_ms`, `time (us)`) or an epoch's magnitude (where it dates the first time
between 2000 and 2100) says otherwise. A relative clock in milliseconds under a plain name
(Mooncake's `timestamp`) cannot be told from seconds by its numbers: such a clock is
pointed out in the note, not guessed, since a wrong guess would replay a month as 40
minutes (or 40 minutes as a month) without a word. A replay spanning over 400 days is an
error: a clock read in too coarse a unit (or a trace that wants a --days window)."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from tideserve.sim import trace_files as files
from tideserve.sim import traffic

UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
# An epoch clock finer than seconds is taken only if it dates its first time in this range
# (2000-01-01 .. 2100-01-01 UTC): a monotonic or relative clock of big numbers is not one.
EPOCH_RANGE_S = (946_684_800.0, 4_102_444_800.0)
# A replay spanning more than this is a clock read in the wrong unit (or wants --days).
MAX_SPAN_S = 400 * files.DAY_S
# Whole numbers of "seconds" from 0 spanning more than this may be ms (or us, ns).
SUSPECT_SPAN_S = 10 * files.DAY_S


def option(value: str | None) -> str | None:
    """The `::unit=` option, checked (None: not given)."""
    if value is None or value in UNITS:
        return value
    raise ValueError(f"unit={value!r}: want one of {', '.join(UNITS)} (numeric times' unit)")


def by_magnitude(first: float) -> str | None:
    """The unit of an absolute epoch clock finer than seconds, from its first time: the one
    (ms, us or ns; their ranges do not overlap) that dates it between 2000 and 2100."""
    lo, hi = EPOCH_RANGE_S
    return next((u for u in ("ms", "us", "ns") if lo <= first * UNITS[u] < hi), None)


@dataclasses.dataclass(frozen=True)
class Clock:
    """How a time column's numbers are read."""

    column: str
    unit: str  # of the numbers (for date-times: of durations beside them)
    why: str  # "::unit=..." | "from its name" | "epoch magnitude" | "seconds" | "date-times"
    given: str | None = None  # the ::unit= option (of date-times: of durations only)

    @staticmethod
    def of(column: str, numeric: bool, first: float, given: str | None) -> Clock:
        """The option first (the user knows the file), then the name, then the magnitude."""
        if not numeric:
            return Clock(column, given or "s", "date-times", given)
        if given:
            return Clock(column, given, f"::unit={given}")
        named = files.split_unit(column)[1]
        if named:
            return Clock(column, named, "from its name")
        epoch = by_magnitude(first)
        if epoch:
            return Clock(column, epoch, "epoch magnitude")
        return Clock(column, "s", "seconds")

    def seconds(self, raw: traffic.FloatArray) -> traffic.FloatArray:
        """The column's values in seconds (date-times are seconds already)."""
        return raw if self.why == "date-times" else raw * UNITS[self.unit]

    def duration_scale(self, column: str) -> float:
        """Seconds per unit of a duration column: its name's unit, else the clock's."""
        return UNITS[self.duration_unit(column)]

    def duration_unit(self, column: str) -> str:
        return files.split_unit(column)[1] or self.unit

    def duration_words(self, column: str) -> str:
        """The unit of a duration column, and why, in words (`in ms (from its name)`)."""
        unit = self.duration_unit(column)
        if files.split_unit(column)[1]:
            return f"in {unit} (from its name)"
        if self.why == "date-times":
            if self.given:
                return f"in {unit} (::unit={unit}: of durations only, the times being date-times)"
            return "in s"
        return f"in {unit}" + ("" if self.why == "seconds" else " (the clock's)")

    def check_span(self, path: pathlib.Path, origin: float, end: float) -> None:
        """A ValueError if the replay's window [origin, end) is over MAX_SPAN_S: a clock in
        a finer unit than it was read in (a relative us clock read as seconds is ~3e4
        years a day), or a long trace that wants a window."""
        days = (end - origin) / files.DAY_S
        if days <= MAX_SPAN_S / files.DAY_S:
            return
        say = f"{path}: `{self.column}` read {self.words()} spans {days:.3g} days, over "
        say += f"{MAX_SPAN_S / files.DAY_S:.0f}"
        if self.why == "date-times":
            raise ValueError(f"{say}: replay a window of it (--days A:B)")
        *others, last = (u for u in UNITS if u != self.unit)
        raise ValueError(
            f"{say}: if its numbers are not in {self.unit}, say ::unit={', '.join(others)} "
            f"or {last}; else replay a window of it (--days A:B)"
        )

    def words(self) -> str:
        if self.why == "date-times":
            return "(date-times)"
        return f"in {self.unit}" + ("" if self.why == "seconds" else f" ({self.why})")

    def suspect(self, raw: traffic.FloatArray) -> str:
        """What to say of a relative clock that may be ms, us or ns read as seconds ('' if
        nothing): whole numbers from about 0 that would span over SUSPECT_SPAN_S. Worded
        as a question: whole seconds (BurstGPT's 61 days) are as likely as Mooncake's ms."""
        if self.why != "seconds" or not len(raw):
            return ""
        lo, hi = float(raw.min()), float(raw.max())
        if files.day_start(lo) != 0.0 or hi - lo <= SUSPECT_SPAN_S:
            return ""
        if not np.all(raw == np.floor(raw)):
            return ""
        return (
            f"; `{self.column}` holds whole numbers from 0 spanning "
            f"{(hi - lo) / files.DAY_S:.3g} days if read as seconds; if they are ms, us or ns, "
            "say ::unit=ms (or us, ns)"
        )
