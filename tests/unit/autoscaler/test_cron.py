"""The 5-field cron matcher."""

from __future__ import annotations

import datetime

import pytest

from tideserve.autoscaler import cron

pytestmark = pytest.mark.unit


def test_star_matches_every_minute() -> None:
    expression = cron.parse("* * * * *")
    assert expression.matches(datetime.datetime(2026, 2, 28, 23, 59))
    assert len(expression.times()) == 24 * 60


def test_lists_ranges_and_steps() -> None:
    expression = cron.parse("0,30 8-17/3 * * *")
    assert sorted(expression.minutes) == [0, 30]
    assert sorted(expression.hours) == [8, 11, 14, 17]


def test_start_with_step_runs_to_the_end_of_the_field() -> None:
    assert sorted(cron.parse("5/20 * * * *").minutes) == [5, 25, 45]


def test_star_step() -> None:
    assert sorted(cron.parse("*/15 * * * *").minutes) == [0, 15, 30, 45]


@pytest.mark.parametrize("weekdays", ["1-5", "Mon-Fri", "mon-fri", "MON,TUE,WED,THU,FRI"])
def test_weekday_names_and_numbers_agree(weekdays: str) -> None:
    expression = cron.parse(f"0 8 * * {weekdays}")
    monday = datetime.date(2026, 11, 23)
    assert [expression.matches_day(monday + datetime.timedelta(days=d)) for d in range(7)] == [
        True,
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_sunday_is_0_and_7() -> None:
    sunday = datetime.date(2026, 11, 29)
    assert cron.parse("0 0 * * 0").matches_day(sunday)
    assert cron.parse("0 0 * * 7").matches_day(sunday)
    assert cron.parse("0 0 * * Sun").matches_day(sunday)


def test_month_names() -> None:
    expression = cron.parse("0 0 1 jan-mar *")
    assert expression.matches_day(datetime.date(2026, 2, 1))
    assert not expression.matches_day(datetime.date(2026, 4, 1))


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Vixie cron: the 13th OR a Friday.
    expression = cron.parse("0 0 13 * Fri")
    assert expression.matches_day(datetime.date(2026, 11, 13))  # a Friday the 13th
    assert expression.matches_day(datetime.date(2026, 11, 20))  # a Friday
    assert expression.matches_day(datetime.date(2026, 10, 13))  # a Tuesday the 13th
    assert not expression.matches_day(datetime.date(2026, 11, 19))


@pytest.mark.parametrize(
    "bad",
    [
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "* * * Foo *",
        "* * * * Funday",
        "a * * * *",
        "1,,2 * * * *",
    ],
)
def test_invalid_expressions_are_refused(bad: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(bad)
