"""Services and the route EndpointSlice: predictor pods when ready, else the activator."""

from __future__ import annotations

import pytest

from tideserve.render import names, network

pytestmark = pytest.mark.unit

OWNER = names.Owner("ns", "demo", "uid-1", 1)
READY = network.Endpoint(ip="10.0.0.1", ready=True, pod="demo-a", namespace="ns", node="n1")
LOADING = network.Endpoint(ip="10.0.0.2", ready=False, pod="demo-b", namespace="ns")
ACTIVATOR = network.Backends(
    target="activator",
    endpoints=(network.Endpoint(ip="10.0.9.9", ready=True, pod="act-0", namespace="tideserve"),),
    http_port=8080,
    grpc_port=8081,
)


def test_route_goes_to_predictor_pods_when_one_is_ready() -> None:
    backends = network.choose_backends((READY, LOADING), ACTIVATOR)
    assert backends.target == "predictor"
    addresses = [e["addresses"] for e in network.route_slice(OWNER, backends)["endpoints"]]
    assert addresses == [["10.0.0.1"], ["10.0.0.2"]]


def test_route_goes_to_the_activator_when_none_is_ready() -> None:
    backends = network.choose_backends((LOADING,), ACTIVATOR)
    route = network.route_slice(OWNER, backends)
    assert [e["addresses"] for e in route["endpoints"]] == [["10.0.9.9"]]
    assert {p["name"]: p["port"] for p in route["ports"]} == {"http": 8080, "grpc": 8081}


def test_without_an_activator_the_route_always_names_the_predictor_pods() -> None:
    assert network.choose_backends((LOADING,), None).target == "predictor"
    assert network.choose_backends((), None).endpoints == ()


def test_route_slice_belongs_to_the_user_facing_service_and_not_to_the_slice_controller() -> None:
    labels = network.route_slice(OWNER, network.choose_backends((READY,), None))["metadata"][
        "labels"
    ]
    assert labels["kubernetes.io/service-name"] == "demo"
    assert labels["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io"


def test_user_facing_service_has_no_selector_and_the_predictor_service_does() -> None:
    assert "selector" not in network.route_service(OWNER)["spec"]
    svc = network.predictor_service(OWNER)
    assert svc["spec"]["selector"] == names.selector_labels("demo")
    assert [p["port"] for p in svc["spec"]["ports"]] == [8000, 8001, 8002]
