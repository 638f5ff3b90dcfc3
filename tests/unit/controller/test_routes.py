"""Endpoints for the route, from pods and from the activator's EndpointSlices."""

from __future__ import annotations

from typing import Any

import pytest

from tideserve.controller import routes

pytestmark = pytest.mark.unit


def pod(name: str, ip: str | None, ready: bool, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"} | meta,
        "spec": {"nodeName": "cpu-0"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_pods_without_an_ip_are_left_out_and_terminating_ones_marked() -> None:
    endpoints = routes.predictor_endpoints(
        [
            pod("a", "10.0.0.1", True),
            pod("b", None, False),
            pod("c", "10.0.0.3", True, deletionTimestamp="2026-01-01T00:00:00Z"),
        ]
    )
    assert [(e.pod, e.ready, e.terminating) for e in endpoints] == [
        ("a", True, False),
        ("c", True, True),
    ]


def test_activator_ports_and_addresses_come_from_its_slices() -> None:
    slices = [
        {
            "metadata": {"namespace": "tideserve"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 8081}],
            "endpoints": [
                {
                    "addresses": ["10.1.0.1"],
                    "conditions": {"ready": True},
                    "targetRef": {"name": "act-0", "namespace": "tideserve"},
                }
            ],
        }
    ]
    backends = routes.activator_backends(slices)
    assert (backends.http_port, backends.grpc_port) == (8080, 8081)
    assert [e.ip for e in backends.endpoints] == ["10.1.0.1"]
