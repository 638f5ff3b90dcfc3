"""The activator's limit settings: defaults, flags over variables, bad values named."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tideserve import settings as settings_mod
from tideserve.activator import limits, server

pytestmark = pytest.mark.unit


def _resolve(argv: list[str], env: dict[str, str]) -> limits.Limits:
    parser = argparse.ArgumentParser()
    limits.add_arguments(parser)
    return limits.resolve(parser.parse_args(argv), settings_mod.activator_from_env(env))


def test_defaults_when_nothing_is_set() -> None:
    assert _resolve([], {}) == limits.defaults()
    assert server.parse_args([], {}).limits == limits.defaults()


def test_variables_set_limits_and_flags_win_over_them() -> None:
    env = {
        "TIDESERVE_ACTIVATOR_MAX_BODY_BYTES": "1024",
        "TIDESERVE_ACTIVATOR_HEADER_TIMEOUT_SECONDS": "2.5",
        "TIDESERVE_ACTIVATOR_UPSTREAM_HEAD_TIMEOUT_SECONDS": "30",
    }
    got = _resolve(["--header-timeout", "4"], env)
    assert got.max_body_bytes == 1024
    assert got.header_timeout_seconds == 4.0
    assert got.upstream_head_timeout_seconds == 30.0
    assert got.body_timeout_seconds == limits.defaults().body_timeout_seconds


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "inf", "nan", " "])
def test_a_bad_body_limit_names_the_variable(raw: str) -> None:
    env = {"TIDESERVE_ACTIVATOR_MAX_BODY_BYTES": raw}
    if not raw.strip():
        assert _resolve([], env) == limits.defaults()  # blank = unset, like the other variables
        return
    with pytest.raises(settings_mod.SettingsError, match="TIDESERVE_ACTIVATOR_MAX_BODY_BYTES:"):
        _resolve([], env)


@given(
    setting=st.sampled_from(limits.SETTINGS),
    raw=st.one_of(
        st.text(max_size=8).filter(lambda s: s.strip()),
        st.floats(max_value=0).map(str),
        st.integers(max_value=0).map(str),
    ),
)
def test_every_setting_accepts_positive_numbers_only_and_names_itself(
    setting: limits._Setting, raw: str
) -> None:
    try:
        value = limits.parse(setting, raw, source=setting.env)
    except limits.SettingError as error:
        assert setting.env in str(error)
    else:
        assert value > 0
        assert isinstance(value, setting.kind)


def test_the_server_refuses_a_bad_variable_with_its_name() -> None:
    # main() prints it as "bad setting: ..." and exits 2, as for every other setting.
    with pytest.raises(
        settings_mod.SettingsError, match="TIDESERVE_ACTIVATOR_IDLE_TIMEOUT_SECONDS:"
    ):
        server.parse_args([], {"TIDESERVE_ACTIVATOR_IDLE_TIMEOUT_SECONDS": "soon"})


def test_a_bad_flag_is_named_as_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        server.parse_args(["--body-timeout=-3"], {})
    assert "--body-timeout='-3'" in capsys.readouterr().err
