"""Schedule windows: local times in IANA zones, midnight, DST, cron, prewarm, order."""

from __future__ import annotations

import datetime
import zoneinfo

import hypothesis
import pytest
from hypothesis import strategies as st

from tideserve.api import schedule as schedule_api
from tideserve.autoscaler import schedules

pytestmark = pytest.mark.unit

UTC = datetime.UTC
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]


def window(**fields: object) -> schedule_api.ScheduleWindow:
    fields.setdefault("name", "w")
    if "cron" not in fields:
        fields.setdefault("start", "22:00")
        fields.setdefault("end", "06:00")
    fields.setdefault("max_replicas", 0)
    return schedule_api.ScheduleWindow.model_validate(fields)


def local(zone: str, *parts: int, fold: int = 0) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=zoneinfo.ZoneInfo(zone), fold=fold)  # type: ignore[misc]


def is_open(w: schedule_api.ScheduleWindow, moment: datetime.datetime) -> bool:
    return schedules.open_occurrence(w, moment) is not None


# --- start/end windows -------------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONES)
def test_window_across_midnight_is_open_from_start_to_end(zone: str) -> None:
    night = window(time_zone=zone)
    assert not is_open(night, local(zone, 2026, 7, 1, 21, 59, 59))
    assert is_open(night, local(zone, 2026, 7, 1, 22, 0))
    assert is_open(night, local(zone, 2026, 7, 2, 0, 0))
    assert is_open(night, local(zone, 2026, 7, 2, 5, 59, 59))
    assert not is_open(night, local(zone, 2026, 7, 2, 6, 0))


def test_window_ends_when_the_local_clock_says_so() -> None:
    night = window(time_zone="Asia/Kolkata")
    occurrence = schedules.open_occurrence(night, local("Asia/Kolkata", 2026, 1, 1, 23, 0))
    assert occurrence is not None
    assert occurrence.closes == datetime.datetime(2026, 1, 2, 0, 30, tzinfo=UTC)  # 06:00 IST


def test_window_belongs_to_the_day_it_starts_on() -> None:
    # Friday nights only: open early Saturday, closed early Sunday (Saturday's night).
    friday_night = window(time_zone="Europe/Berlin", days=["Fri"])
    assert is_open(friday_night, local("Europe/Berlin", 2026, 11, 28, 3, 0))  # Sat 03:00
    assert not is_open(friday_night, local("Europe/Berlin", 2026, 11, 29, 3, 0))  # Sun 03:00
    assert not is_open(friday_night, local("Europe/Berlin", 2026, 11, 27, 3, 0))  # Fri 03:00


def test_except_dates_skip_the_occurrence_starting_that_day() -> None:
    night = window(time_zone="Europe/Berlin", except_dates=["2026-12-24"])
    assert not is_open(night, local("Europe/Berlin", 2026, 12, 24, 23, 0))
    assert not is_open(night, local("Europe/Berlin", 2026, 12, 25, 3, 0))
    assert is_open(night, local("Europe/Berlin", 2026, 12, 24, 3, 0))  # the 23rd's night
    assert is_open(night, local("Europe/Berlin", 2026, 12, 25, 23, 0))


def test_daytime_window() -> None:
    day = window(start="08:00", end="18:00", min_replicas=2, max_replicas=None)
    assert is_open(day, datetime.datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    assert not is_open(day, datetime.datetime(2026, 1, 1, 18, 0, tzinfo=UTC))
    assert not is_open(day, datetime.datetime(2026, 1, 1, 7, 59, tzinfo=UTC))


# --- daylight saving -------------------------------------------------------------------

SPRING_FORWARD = {
    # zone: (date of the change, local time of the change, offset hours after it)
    "Europe/Berlin": (datetime.date(2026, 3, 29), "02:00", 2),
    "America/New_York": (datetime.date(2026, 3, 8), "02:00", -4),
    "Australia/Sydney": (datetime.date(2026, 10, 4), "02:00", 11),
}


@pytest.mark.parametrize("zone", sorted(SPRING_FORWARD))
def test_start_skipped_by_spring_forward_opens_at_the_change(zone: str) -> None:
    day, _, offset = SPRING_FORWARD[zone]
    w = window(time_zone=zone, start="02:30", end="06:00")
    occurrence = schedules.open_occurrence(w, local(zone, day.year, day.month, day.day, 3, 0))
    assert occurrence is not None
    # The clock jumped from 02:00 to 03:00: the window opens at 03:00 local.
    expected = datetime.datetime(day.year, day.month, day.day, 3, 0) - datetime.timedelta(
        hours=offset
    )
    assert occurrence.opens == expected.replace(tzinfo=UTC)
    assert not is_open(w, occurrence.opens - datetime.timedelta(seconds=1))


def test_window_wholly_inside_the_skipped_hour_is_empty_that_day() -> None:
    w = window(time_zone="Europe/Berlin", start="02:10", end="02:50")
    for minute in range(0, 120, 5):
        moment = datetime.datetime(2026, 3, 29, 0, 0, tzinfo=UTC) + datetime.timedelta(
            minutes=minute
        )
        assert not is_open(w, moment)
    assert is_open(w, local("Europe/Berlin", 2026, 3, 30, 2, 30))


def test_fall_back_start_means_the_first_occurrence() -> None:
    w = window(time_zone="Europe/Berlin", start="02:30", end="04:00")
    first = local("Europe/Berlin", 2026, 10, 25, 2, 30, fold=0)
    occurrence = schedules.open_occurrence(w, first)
    assert occurrence is not None
    assert occurrence.opens == datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # CEST
    # 04:00 CET: the window lasts 2.5 hours of elapsed time that night.
    assert occurrence.closes - occurrence.opens == datetime.timedelta(hours=2, minutes=30)


@pytest.mark.parametrize(
    ("zone", "spring", "fall"),
    [
        ("Europe/Berlin", datetime.date(2026, 3, 28), datetime.date(2026, 10, 24)),
        ("America/New_York", datetime.date(2026, 3, 7), datetime.date(2026, 10, 31)),
        ("Australia/Sydney", datetime.date(2026, 10, 3), datetime.date(2026, 4, 4)),
    ],
)
def test_night_windows_are_an_hour_shorter_or_longer_across_dst(
    zone: str, spring: datetime.date, fall: datetime.date
) -> None:
    night = window(time_zone=zone)
    lengths = {}
    for label, day in (("spring", spring), ("fall", fall)):
        moment = local(zone, day.year, day.month, day.day, 23, 0)
        occurrence = schedules.open_occurrence(night, moment)
        assert occurrence is not None
        lengths[label] = occurrence.closes - occurrence.opens
    assert lengths["spring"] == datetime.timedelta(hours=7)
    assert lengths["fall"] == datetime.timedelta(hours=9)


@hypothesis.given(
    zone=st.sampled_from(ZONES),
    start=st.integers(0, 24 * 60 - 1),
    length=st.integers(1, 24 * 60 - 1),
    moment=st.datetimes(
        min_value=datetime.datetime(2025, 1, 1),
        max_value=datetime.datetime(2028, 12, 31),
        timezones=st.just(UTC),
    ),
)
def test_open_exactly_when_local_wall_clock_is_inside(
    zone: str, start: int, length: int, moment: datetime.datetime
) -> None:
    end = (start + length) % (24 * 60)
    w = window(
        time_zone=zone,
        start=f"{start // 60:02d}:{start % 60:02d}",
        end=f"{end // 60:02d}:{end % 60:02d}",
    )
    occurrence = schedules.open_occurrence(w, moment)
    tz = zoneinfo.ZoneInfo(zone)
    wall = moment.astimezone(tz)
    minute = wall.hour * 60 + wall.minute
    inside = (start <= minute < start + length) or (minute + 24 * 60 < start + length)
    # Away from DST changes (within a day of one the wall clock is not uniform), the
    # answer is what the wall clock says; near them the occurrence is still consistent.
    near_change = any(
        (moment + datetime.timedelta(hours=h)).astimezone(tz).utcoffset() != wall.utcoffset()
        for h in (-26, 26)
    )
    if occurrence is not None:
        assert occurrence.contains(moment)
        assert occurrence.closes - occurrence.opens <= datetime.timedelta(minutes=length + 60)
    if not near_change:
        assert (occurrence is not None) == inside


# --- cron windows ----------------------------------------------------------------------


def test_cron_window_opens_at_the_firing_minute_for_its_duration() -> None:
    business = window(
        cron="0 8 * * Mon-Fri",
        duration_minutes=600,
        time_zone="Europe/Berlin",
        min_replicas=3,
        max_replicas=None,
    )
    monday = (2026, 11, 23)
    assert not is_open(business, local("Europe/Berlin", *monday, 7, 59))
    occurrence = schedules.open_occurrence(business, local("Europe/Berlin", *monday, 8, 0))
    assert occurrence is not None
    assert occurrence.closes == datetime.datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert not is_open(business, local("Europe/Berlin", *monday, 18, 0))
    assert not is_open(business, local("Europe/Berlin", 2026, 11, 28, 9, 0))  # Saturday


def test_cron_window_across_midnight_and_days() -> None:
    weekend = window(cron="0 20 * * Fri", duration_minutes=(2 * 24 + 12) * 60)
    assert is_open(weekend, datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC))  # Sunday noon
    assert not is_open(weekend, datetime.datetime(2026, 11, 30, 8, 0, tzinfo=UTC))


def test_overlapping_cron_occurrences_merge_into_one_stretch() -> None:
    # Every hour for 90 minutes, from 08:00 to 10:00 starts: open 08:00 to 11:30.
    w = window(cron="0 8-10 * * *", duration_minutes=90)
    occurrence = schedules.open_occurrence(w, datetime.datetime(2026, 1, 1, 8, 10, tzinfo=UTC))
    assert occurrence is not None
    assert occurrence.closes == datetime.datetime(2026, 1, 1, 11, 30, tzinfo=UTC)


def test_a_window_written_minute_by_minute_closes_at_its_real_end() -> None:
    # Opens every minute of 09:00-17:59 for a minute: one stretch to 18:00 (it was cut
    # after 64 merges, at 13:05 UTC, each merge scanning a day of openings again).
    w = window(cron="* 9-17 * * Mon-Fri", duration_minutes=1, time_zone="Europe/Berlin")
    occurrence = schedules.open_occurrence(w, local("Europe/Berlin", 2026, 12, 7, 13, 0))
    assert occurrence is not None
    assert occurrence.opens == datetime.datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert occurrence.closes == datetime.datetime(2026, 12, 7, 17, 0, tzinfo=UTC)


def test_a_window_that_never_closes_is_open_at_least_a_day_ahead() -> None:
    w = window(cron="* * * * *", duration_minutes=2, time_zone="America/New_York")
    now = datetime.datetime(2026, 3, 7, 12, 0, 30, tzinfo=UTC)  # the day before DST starts
    occurrence = schedules.open_occurrence(w, now)
    assert occurrence is not None
    assert occurrence.closes >= now + datetime.timedelta(days=1)


def test_cron_firing_in_the_skipped_hour_fires_at_the_change() -> None:
    w = window(cron="30 2 * * *", duration_minutes=60, time_zone="America/New_York")
    occurrence = schedules.open_occurrence(w, local("America/New_York", 2026, 3, 8, 3, 10))
    assert occurrence is not None
    assert occurrence.opens == datetime.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT


# --- bounds: order, prewarm, off-until ----------------------------------------------------


def test_no_window_keeps_the_base_bounds() -> None:
    bounds = schedules.bounds(1, 5, [], datetime.datetime(2026, 1, 1, tzinfo=UTC))
    assert (bounds.min_replicas, bounds.max_replicas, bounds.window) == (1, 5, None)


def test_first_open_window_in_list_order_wins() -> None:
    night = window(name="night", max_replicas=0)
    small = window(name="small", start="00:00", end="12:00", min_replicas=1, max_replicas=2)
    moment = datetime.datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    assert schedules.bounds(1, 5, [night, small], moment).window == "night"
    assert schedules.bounds(1, 5, [small, night], moment).window == "small"


def test_hard_off_window_reports_when_it_ends() -> None:
    night = window(name="night", time_zone="Europe/Berlin")
    bounds = schedules.bounds(1, 5, [night], local("Europe/Berlin", 2026, 11, 23, 23, 0))
    assert (bounds.min_replicas, bounds.max_replicas) == (0, 0)
    assert bounds.off_until == datetime.datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def test_sleep_window_lowers_the_floor_only() -> None:
    sleep = window(name="sleep", min_replicas=0, max_replicas=None)
    bounds = schedules.bounds(2, 5, [sleep], datetime.datetime(2026, 1, 1, 23, 0, tzinfo=UTC))
    assert (bounds.min_replicas, bounds.max_replicas, bounds.off_until) == (0, 5, None)


def test_window_ceiling_below_the_base_floor_wins() -> None:
    small = window(name="small", max_replicas=1)
    bounds = schedules.bounds(3, 5, [small], datetime.datetime(2026, 1, 1, 23, 0, tzinfo=UTC))
    assert (bounds.min_replicas, bounds.max_replicas) == (1, 1)


@pytest.mark.parametrize("zone", ZONES)
def test_prewarm_applies_the_floor_ahead_even_over_a_hard_off_window(zone: str) -> None:
    night = window(name="night", start="22:00", end="08:00", max_replicas=0, time_zone=zone)
    day = window(
        name="day",
        start="08:00",
        end="22:00",
        min_replicas=3,
        max_replicas=None,
        prewarm_seconds=900,
        time_zone=zone,
    )
    before = schedules.bounds(1, 5, [night, day], local(zone, 2026, 6, 10, 7, 44, 59))
    assert (before.max_replicas, before.prewarm) == (0, None)
    during = schedules.bounds(1, 5, [night, day], local(zone, 2026, 6, 10, 7, 45))
    assert (during.min_replicas, during.max_replicas, during.prewarm) == (3, 3, "day")
    assert during.window == "night"
    assert during.off_until is None  # capacity is coming: no longer hard off
    opened = schedules.bounds(1, 5, [night, day], local(zone, 2026, 6, 10, 8, 0))
    assert (opened.min_replicas, opened.max_replicas, opened.window) == (3, 5, "day")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedules.bounds(1, 5, [], datetime.datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "zone", [*ZONES, "Australia/Lord_Howe", "America/Santiago", "America/Havana"]
)
def test_a_days_instants_are_local_instant(zone: str) -> None:
    # The one-offset-per-day shortcut agrees with the search on every day of a year, DST
    # days too (Santiago and Havana change at midnight, Lord Howe by 30 minutes).
    tz = zoneinfo.ZoneInfo(zone)
    times = [datetime.time(h, m) for h, m in ((0, 0), (0, 30), (1, 59), (2, 30), (23, 59))]
    day = datetime.date(2026, 1, 1)
    while day.year == 2026:
        instant = schedules._instants(day, tz)
        for at in times:
            assert instant(at) == schedules.local_instant(day, at, tz), (day, at)
        day += datetime.timedelta(days=1)
