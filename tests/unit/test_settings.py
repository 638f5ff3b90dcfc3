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
        # Every InferenceService's pods would carry it and fail with InvalidImageName.
        ({"TIDESERVE_TRITON_IMAGE": "triton server:1"}, "TIDESERVE_TRITON_IMAGE:"),
        ({"TIDESERVE_FETCH_IMAGE_S3": "amazon/AWS-cli"}, "TIDESERVE_FETCH_IMAGE_S3:"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_env(env)
    assert words in str(caught.value)


def test_leader_election_is_off_unless_set() -> None:
    loaded = settings.from_env({})
    assert not loaded.leader_election
    assert loaded.lease_name == "tideserve-operator"


def test_leader_election_settings_are_parsed() -> None:
    loaded = settings.from_env(
        {
            "TIDESERVE_LEADER_ELECTION": "true",
            "TIDESERVE_LEASE_NAMESPACE": "tideserve-system",
            "TIDESERVE_LEASE_NAME": "tideserve.operator",
            "POD_NAME": "tideserve-operator-7d9f-abcde",
        }
    )
    assert loaded.leader_election
    assert (loaded.lease_namespace, loaded.lease_name) == ("tideserve-system", "tideserve.operator")
    assert loaded.pod_name == "tideserve-operator-7d9f-abcde"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"TIDESERVE_LEADER_ELECTION": "maybe"}, "TIDESERVE_LEADER_ELECTION: Input should be"),
        (
            {"TIDESERVE_LEADER_ELECTION": "1"},
            "TIDESERVE_LEASE_NAMESPACE: required when TIDESERVE_LEADER_ELECTION is on",
        ),
        ({"TIDESERVE_LEASE_NAME": "Operator_Lease"}, "TIDESERVE_LEASE_NAME: must be"),
        ({"TIDESERVE_LEASE_NAMESPACE": "a/b"}, "TIDESERVE_LEASE_NAMESPACE: must be"),
        ({"POD_NAME": "x" * 254}, "POD_NAME:"),
    ],
)
def test_bad_leader_election_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_env(env)
    assert words in str(caught.value)
