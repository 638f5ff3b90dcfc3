"""Operator settings from the environment: defaults, parsing, clear refusals."""

from __future__ import annotations

import pytest

from tideserve import settings

pytestmark = pytest.mark.unit


def test_defaults_when_nothing_is_set() -> None:
    loaded = settings.from_env({})
    assert loaded.tick_seconds == 5.0
    assert loaded.watch_namespaces == ()
    assert loaded.activator is None


def test_values_are_parsed() -> None:
    loaded = settings.from_env(
        {
            "TIDESERVE_TICK_SECONDS": "2",
            "TIDESERVE_WATCH_NAMESPACES": "a, b,,",
            "TIDESERVE_ACTIVATOR_SERVICE": "tideserve-system/tideserve-activator",
        }
    )
    assert loaded.tick_seconds == 2.0
    assert loaded.watch_namespaces == ("a", "b")
    assert loaded.activator == ("tideserve-system", "tideserve-activator")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        (
            {"TIDESERVE_TICK_SECONDS": "-1"},
            "TIDESERVE_TICK_SECONDS: Input should be greater than 0",
        ),
        ({"TIDESERVE_ACTIVATOR_SERVICE": "activator"}, "TIDESERVE_ACTIVATOR_SERVICE: must be"),
        ({"TIDESERVE_ACTIVATOR_SERVICE": "ns/"}, "TIDESERVE_ACTIVATOR_SERVICE: must be"),
        ({"TIDESERVE_METRICS_PORT": "http"}, "TIDESERVE_METRICS_PORT:"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_env(env)
    assert words in str(caught.value)
