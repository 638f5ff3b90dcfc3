"""The 5-field cron matcher."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideserve.api import formats
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
        "61 * * * *",
        "* * * * 8",
        "* * * * 1-8",
        "*/1000 * * * *",
        "\u0663 * * * *",
        " * * * * *",
        "* * * Foo *",
        "* * * * Funday",
        "a * * * *",
        "1,,2 * * * *",
    ],
)
def test_invalid_expressions_are_refused(bad: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(bad)


def test_a_range_ending_before_its_start_wraps() -> None:
    weekend = cron.parse("0 0 * * Fri-Mon")
    assert weekend.days_of_week == {5, 6, 0, 1}
    assert sorted(cron.parse("50-10/5 * * * *").minutes) == [0, 5, 10, 50, 55]
    assert cron.parse("0 0 * * 7-1").days_of_week == {0, 1}
    assert cron.parse("0 0 * nov-feb *").months == {11, 12, 1, 2}


_value = st.one_of(st.integers(0, 99).map(str), st.sampled_from(["Mon", "fri", "JAN", "x"]))
_item = st.tuples(
    st.one_of(st.just("*"), _value, st.tuples(_value, _value).map("-".join)),
    st.sampled_from(["", "/0", "/2", "/15", "/1000"]),
).map("".join)
_field = st.lists(_item, min_size=1, max_size=3).map(",".join)
_expressions = st.one_of(
    st.lists(_field, min_size=4, max_size=6).map(" ".join),
    st.text(alphabet="0123456789*-,/ JanFriSunMonDec\t", max_size=40),
)


@settings(max_examples=500, deadline=None)
@given(_expressions)
def test_parse_accepts_exactly_what_the_crd_admits(expression: str) -> None:
    admitted = formats.matches(formats.CRON, expression)
    try:
        cron.parse(expression)
    except cron.CronError:
        assert not admitted
    else:
        assert admitted
