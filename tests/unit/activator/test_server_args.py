"""`tideserve activator` flags and the environment variables the chart sets."""

from __future__ import annotations

import pytest

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
