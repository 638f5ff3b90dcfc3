"""A schedule window: replica bounds that apply at certain local times."""

from __future__ import annotations

import datetime
import enum
import zoneinfo
from typing import Annotated, TypeVar

import pydantic

from tideserve.api import base, formats

HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# Over all windows of an object: with the other lists at their longest, the object stays
# within what `kubectl apply` can store (see spec.ENV_TOTAL_MAX).
EXCEPT_DATES_TOTAL_MAX = 1024
CRON_PATTERN = formats.CRON
T = TypeVar("T")


def known_zone(name: str) -> bool:
    """Whether the zone database knows `name` (the API server asks Go's, via CEL)."""
    if name == "Local":  # Go's name for the machine's zone; not an IANA name
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


TimeZone = Annotated[
    str,
    pydantic.Field(max_length=64),
    base.pattern_rule(formats.TIME_ZONE, formats.TIME_ZONE_MESSAGE),
    base.no_match_rule(formats.TIME_ZONE_FILES, formats.TIME_ZONE_FILES_MESSAGE),
    # On the field itself: a zone the database does not know makes getHours fail, and
    # the API server reports a failing rule at the rule's own path (this field).
    base.FieldRule(
        cel="self == 'UTC' || (self != 'Local' && "
        "timestamp('2020-01-01T00:00:00Z').getHours(self) >= 0)",
        message=formats.TIME_ZONE_MESSAGE + " (unknown zone)",
        check=known_zone,
    ),
]
HHMM = Annotated[
    str,
    base.pattern_rule(
        HHMM_PATTERN,
        "times must be HH:MM, from 00:00 to 23:59; midnight is 00:00 (a window may end "
        "there or cross it: 18:00 to 00:00, 22:00 to 06:00)",
    ),
]
Cron = Annotated[
    str,
    pydantic.Field(max_length=128),
    base.pattern_rule(formats.CRON, formats.CRON_MESSAGE),
    base.no_match_rule(formats.CRON_NEVER, formats.CRON_NEVER_MESSAGE),
]


class Weekday(enum.StrEnum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


class ScheduleWindow(base.Model):
    rules = (
        base.Rule(
            cel="(has(self.start) && has(self.end) && !has(self.cron)"
            " && !has(self.durationMinutes))"
            " || (has(self.cron) && has(self.durationMinutes)"
            " && !has(self.start) && !has(self.end))",
            message="give either start and end (HH:MM), or cron and durationMinutes",
            check=lambda w: (
                (
                    w.start is not None
                    and w.end is not None
                    and w.cron is None
                    and w.duration_minutes is None
                )
                or (
                    w.cron is not None
                    and w.duration_minutes is not None
                    and w.start is None
                    and w.end is None
                )
            ),
        ),
        base.Rule(
            cel="!has(self.start) || !has(self.end) || self.start != self.end",
            message="start and end must differ (a window may cross midnight: 22:00 to 06:00)",
            check=lambda w: w.start is None or w.start != w.end,
            field_path=".end",
        ),
        base.Rule(
            cel="has(self.minReplicas) || has(self.maxReplicas)",
            message="a window needs minReplicas, maxReplicas or both",
            check=lambda w: w.min_replicas is not None or w.max_replicas is not None,
        ),
        base.Rule(
            cel="!has(self.minReplicas) || !has(self.maxReplicas)"
            " || self.minReplicas <= self.maxReplicas",
            message="minReplicas must be less than or equal to maxReplicas",
            check=lambda w: (
                w.min_replicas is None or w.max_replicas is None or w.min_replicas <= w.max_replicas
            ),
            field_path=".minReplicas",
        ),
    )

    name: Annotated[
        str,
        base.pattern_rule(
            formats.DNS1123_LABEL,
            "schedule names must be lowercase letters, digits and '-', starting and ending "
            "with a letter or digit",
        ),
    ] = pydantic.Field(
        ...,
        max_length=63,
        description="Name of the window, shown in status.activeSchedule.",
    )
    time_zone: TimeZone = pydantic.Field(
        "UTC",
        description="IANA time zone the times are in, e.g. Europe/Berlin. Daylight saving "
        "changes are followed.",
    )
    start: HHMM | None = pydantic.Field(
        None,
        max_length=5,
        description="Local start time HH:MM. The window may cross midnight (22:00 to 06:00).",
    )
    end: HHMM | None = pydantic.Field(
        None, max_length=5, description="Local end time HH:MM (exclusive)."
    )
    days: list[Weekday] = pydantic.Field(
        default_factory=list,
        max_length=7,
        description="Days on which the window starts (Mon..Sun), each once; empty means "
        "every day. A window crossing midnight belongs to the day it starts on.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    cron: Cron | None = pydantic.Field(
        None,
        description="Alternative to start/end: a 5-field cron expression for when the "
        "window opens, in timeZone, e.g. '0 8 * * 1-5': minute 0-59, hour 0-23, day of "
        "month 1-31, month 1-12 or Jan-Dec, day of week 0-7 or Sun-Sat (0 and 7: Sunday); "
        "lists, ranges (a range may wrap: Fri-Mon) and /steps. When both day fields are "
        "restricted, a day matching either one fires.",
    )
    duration_minutes: int | None = pydantic.Field(
        None, ge=1, le=7 * 24 * 60, description="With cron: how long the window stays open."
    )
    min_replicas: int | None = pydantic.Field(
        None,
        ge=0,
        le=10_000,
        description="Floor while the window is open. 0 = sleep: scale to zero when idle, "
        "wake on demand.",
    )
    max_replicas: int | None = pydantic.Field(
        None,
        ge=0,
        le=10_000,
        description="Ceiling while the window is open. 0 = hard off: the activator answers "
        "503 with the time the window ends.",
    )
    prewarm_seconds: int = pydantic.Field(
        0,
        ge=0,
        le=86400,
        description="Apply this window's minReplicas this long before it opens, so capacity "
        "is Ready (node provisioning, image pull, model load) when it does.",
    )
    except_dates: list[datetime.date] = pydantic.Field(
        default_factory=list,
        max_length=366,
        description="Local dates (YYYY-MM-DD) on which the window does not open, e.g. "
        f"holidays; each once, at most {EXCEPT_DATES_TOTAL_MAX} over all windows.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @pydantic.field_validator("days", "except_dates")
    @classmethod
    def _each_once(cls, value: list[T]) -> list[T]:
        # The API server refuses a repeated item of a list-type set ("Duplicate value").
        repeated = sorted({str(v) for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"each item once; repeated: {', '.join(repeated)}")
        return value
