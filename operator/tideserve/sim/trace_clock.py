"""The unit of a trace's numeric times. Seconds, unless the `::unit=` option, the column's
name (`timestamp_ms`, `time (us)`) or an epoch's magnitude says otherwise. A relative clock
in milliseconds under a plain name (Mooncake's `timestamp`) cannot be told from seconds by
its numbers: such a clock is pointed out in the note, not guessed, since a wrong guess
would replay a month as 40 minutes (or 40 minutes as a month) without a word."""

from __future__ import annotations

import dataclasses

import numpy as np

from tideserve.sim import trace_files as files
from tideserve.sim import traffic

UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
# Seconds since 1970 are ~1.7e9 today: a first time this large is a finer epoch clock.
EPOCH_BOUNDS = (("ns", 1e17), ("us", 1e14), ("ms", 1e11))
# Whole numbers of "seconds" from 0 spanning more than this are likely milliseconds.
SUSPECT_SPAN_S = 10 * files.DAY_S


def option(value: str | None) -> str | None:
    """The `::unit=` option, checked (None: not given)."""
    if value is None or value in UNITS:
        return value
    raise ValueError(f"unit={value!r}: want one of {', '.join(UNITS)} (numeric times' unit)")


def by_magnitude(first: float) -> str | None:
    """The unit of an absolute epoch clock finer than seconds, from its first time."""
    return next((unit for unit, bound in EPOCH_BOUNDS if abs(first) >= bound), None)


@dataclasses.dataclass(frozen=True)
class Clock:
    """How a time column's numbers are read."""

    column: str
    unit: str  # of the numbers (for date-times: of durations beside them)
    why: str  # "::unit=..." | "from its name" | "epoch magnitude" | "seconds" | "date-times"

    @staticmethod
    def of(column: str, numeric: bool, first: float, given: str | None) -> Clock:
        """The option first (the user knows the file), then the name, then the magnitude."""
        if not numeric:
            return Clock(column, given or "s", "date-times")
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
        return UNITS[files.split_unit(column)[1] or self.unit]

    def words(self) -> str:
        if self.why == "date-times":
            return "(date-times)"
        return f"in {self.unit}" + ("" if self.why == "seconds" else f" ({self.why})")

    def suspect(self, raw: traffic.FloatArray) -> str:
        """What to say of a relative clock that may be ms read as seconds ('' if nothing):
        whole numbers from about 0 that would span over SUSPECT_SPAN_S."""
        if self.why != "seconds" or not len(raw):
            return ""
        lo, hi = float(raw.min()), float(raw.max())
        if files.day_start(lo) != 0.0 or hi - lo <= SUSPECT_SPAN_S:
            return ""
        if not np.all(raw == np.floor(raw)):
            return ""
        return (
            f"; `{self.column}` holds whole numbers spanning {(hi - lo) / files.DAY_S:.3g} "
            "days if seconds: if they are milliseconds, say ::unit=ms"
        )
