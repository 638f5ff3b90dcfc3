"""A schedule window: replica bounds that apply at certain local times."""

from __future__ import annotations

import datetime
import enum
import zoneinfo

import pydantic

from tideserve.api import base

HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
CRON_PATTERN = r"^\S+(\s+\S+){4}$"


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
        base.Rule(
            # A CEL runtime error on an unknown zone would also refuse the object, but
            # with an unreadable message; this expression evaluates cleanly for known
            # zones and fails with ours for unknown ones.
            cel="self.timeZone == 'UTC' || "
            "timestamp('2020-01-01T00:00:00Z').getHours(self.timeZone) >= 0",
            message="timeZone must be an IANA time zone name such as Europe/Berlin",
            check=lambda w: True,  # checked with a precise message by the field validator
            field_path=".timeZone",
        ),
    )

    name: str = pydantic.Field(
        ...,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Name of the window, shown in status.activeSchedule.",
    )
    time_zone: str = pydantic.Field(
        "UTC",
        max_length=64,
        description="IANA time zone the times are in, e.g. Europe/Berlin. Daylight saving "
        "changes are followed.",
    )
    start: str | None = pydantic.Field(
        None,
        pattern=HHMM_PATTERN,
        max_length=5,
        description="Local start time HH:MM. The window may cross midnight (22:00 to 06:00).",
    )
    end: str | None = pydantic.Field(
        None, pattern=HHMM_PATTERN, max_length=5, description="Local end time HH:MM (exclusive)."
    )
    days: list[Weekday] = pydantic.Field(
        default_factory=list,
        max_length=7,
        description="Days on which the window starts (Mon..Sun); empty means every day. "
        "A window crossing midnight belongs to the day it starts on.",
    )
    cron: str | None = pydantic.Field(
        None,
        pattern=CRON_PATTERN,
        max_length=128,
        description="Alternative to start/end: a 5-field cron expression for when the "
        "window opens, in timeZone, e.g. '0 8 * * 1-5'.",
    )
    duration_minutes: int | None = pydantic.Field(
        None, ge=1, le=7 * 24 * 60, description="With cron: how long the window stays open."
    )
    min_replicas: int | None = pydantic.Field(
        None,
        ge=0,
        description="Floor while the window is open. 0 = sleep: scale to zero when idle, "
        "wake on demand.",
    )
    max_replicas: int | None = pydantic.Field(
        None,
        ge=0,
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
        description="Local dates (YYYY-MM-DD) on which the window does not open, e.g. holidays.",
    )

    @pydantic.field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone name such as Europe/Berlin"
            ) from None
        return value
