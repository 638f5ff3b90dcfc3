"""The string formats the CRD and pydantic share (api/formats.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideserve.api import formats

pytestmark = pytest.mark.unit

ALLOWED = formats.user_options()


@pytest.mark.parametrize("option", [*formats.MANAGED_OPTIONS, *formats.UNAVAILABLE_OPTIONS])
def test_every_managed_option_is_refused_whole_abbreviated_or_split(option: str) -> None:
    for arg in (f"--{option}=1", f"--{option}", f"--{option[:-1]}=1", f"-{option}=1"):
        assert not formats.matches(formats.TRITON_ARG, arg), arg


def test_no_option_is_both_the_users_and_tideserves() -> None:
    assert not set(ALLOWED) & {*formats.MANAGED_OPTIONS, *formats.UNAVAILABLE_OPTIONS}


@settings(max_examples=300, deadline=None)
@given(st.from_regex(formats.TRITON_ARG, fullmatch=True))
def test_an_admitted_arg_names_exactly_one_user_option(arg: str) -> None:
    name = arg[2:].split("=", 1)[0]
    assert name in ALLOWED
    assert name not in formats.MANAGED_OPTIONS


@pytest.mark.parametrize(
    "name",
    ["a", "a-b", "a" * 53],
)
def test_names_that_fit_every_child(name: str) -> None:
    assert formats.name_problem(name) is None
    assert len(name + formats.LONGEST_CHILD_SUFFIX) <= 63


@pytest.mark.parametrize("name", ["a" * 54, "a.b", "1a", "A", "a-", "", None])
def test_names_that_do_not(name: str | None) -> None:
    assert formats.name_problem(name) is not None


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1", True), ("500m", True), ("0.5", True), (".5", True), ("+2", True), ("1e3", True),
     ("4Gi", True), ("0", False), ("0.0", False), ("-1", False), ("1.2.3", False),
     ("5Gb", False), ("1e999", False), ("", False), ("Gi", False)],
)  # fmt: skip
def test_quantities_greater_than_zero(value: str, ok: bool) -> None:
    assert formats.matches(formats.QUANTITY, value) is ok
