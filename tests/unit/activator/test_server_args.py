"""`tideserve activator` flags and the environment variables the chart sets."""

from __future__ import annotations

import pytest

from tideserve import settings
from tideserve.activator import queueing, routing, server

pytestmark = pytest.mark.unit


def test_defaults_are_the_contract_ports_and_all_namespaces() -> None:
    args = server.parse_args([], {})
    assert (args.http_port, args.grpc_port, args.control_port) == (8080, 8081, 9090)
    assert args.namespace == []
    assert routing.parse_overrides(args.upstream) == {}


def test_chart_environment_sets_ports_namespaces_limits_and_upstreams() -> None:
    env = {
        "TIDESERVE_ACTIVATOR_HTTP_PORT": "18080",
        "TIDESERVE_ACTIVATOR_GRPC_PORT": "0",
        "TIDESERVE_ACTIVATOR_CONTROL_PORT": "19090",
        "TIDESERVE_WATCH_NAMESPACES": "ml, prod",
        "TIDESERVE_ACTIVATOR_MAX_HELD_REQUESTS": "50",
        "TIDESERVE_ACTIVATOR_WAKE_DEADLINE_SECONDS": "120",
        "TIDESERVE_ACTIVATOR_UPSTREAMS": "ml/a=http://127.0.0.1:1",
    }
    args = server.parse_args(["--upstream", "ml/b=http://127.0.0.1:2"], env)
    assert (args.http_port, args.grpc_port, args.control_port) == (18080, 0, 19090)
    assert args.namespace == ["ml", "prod"]
    assert (args.default_max_held, args.default_wake_deadline) == (50, 120.0)
    assert routing.parse_overrides(args.upstream) == {
        queueing.EndpointKey("ml", "a"): "http://127.0.0.1:1",
        queueing.EndpointKey("ml", "b"): "http://127.0.0.1:2",
    }


def test_static_endpoints_are_ready_without_the_api_server() -> None:
    [state] = server.static_states(["bench/tiny=tiny"])
    assert state.key == queueing.EndpointKey("bench", "tiny")
    assert (state.model, state.ready_replicas) == ("tiny", 1)


def test_the_activator_defaults_are_the_apis_and_routings() -> None:
    loaded = settings.activator_from_env({})
    assert loaded.max_held_requests == routing.DEFAULT_MAX_HELD
    assert loaded.wake_deadline_seconds == routing.DEFAULT_WAKE_DEADLINE_SECONDS


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"TIDESERVE_ACTIVATOR_HTTP_PORT": "http"}, "TIDESERVE_ACTIVATOR_HTTP_PORT: Input"),
        ({"TIDESERVE_ACTIVATOR_GRPC_PORT": "70000"}, "TIDESERVE_ACTIVATOR_GRPC_PORT: Input"),
        ({"TIDESERVE_ACTIVATOR_DRAIN_SECONDS": "-1"}, "TIDESERVE_ACTIVATOR_DRAIN_SECONDS: Input"),
        ({"TIDESERVE_ACTIVATOR_MAX_HELD_REQUESTS": "0"}, "TIDESERVE_ACTIVATOR_MAX_HELD_REQUESTS"),
        ({"TIDESERVE_ACTIVATOR_LOOP": "fast"}, "TIDESERVE_ACTIVATOR_LOOP: Input should be"),
        ({"TIDESERVE_LOG_LEVEL": "loud"}, "TIDESERVE_LOG_LEVEL: must be a logging level"),
    ],
)
def test_a_bad_environment_value_is_refused_with_the_variable_named(
    env: dict[str, str], words: str
) -> None:
    with pytest.raises(settings.SettingsError) as caught:
        server.parse_args([], env)
    assert words in str(caught.value)


def test_the_command_exits_2_naming_the_variable_not_with_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDESERVE_ACTIVATOR_HTTP_PORT", "eighty")
    assert server.main([]) == 2
    assert "bad setting: TIDESERVE_ACTIVATOR_HTTP_PORT:" in capsys.readouterr().err


def test_a_flag_wins_over_the_environment() -> None:
    args = server.parse_args(["--http-port", "1234"], {"TIDESERVE_ACTIVATOR_HTTP_PORT": "4321"})
    assert args.http_port == 1234
