"""Which endpoint a request is for, where its upstream is, and the state read from an object."""

from __future__ import annotations

import datetime

import pytest
from tritonclient.grpc import service_pb2

from tideserve.activator import queueing, routing

pytestmark = pytest.mark.unit

KEY = queueing.EndpointKey("ml", "resnet")


@pytest.mark.parametrize(
    "host",
    [
        "resnet.ml",
        "resnet.ml.svc",
        "resnet.ml.svc:8080",
        "resnet.ml.svc.cluster.local",
        "RESNET.ml.svc.cluster.local.:80",
    ],
)
def test_in_cluster_host_names_the_endpoint(host: str) -> None:
    assert routing.endpoint_from_host(host) == KEY


@pytest.mark.parametrize(
    "host", [None, "", "resnet", "127.0.0.1:8080", "[::1]:8080", "api.example.com", "a..svc"]
)
def test_other_hosts_name_no_endpoint(host: str | None) -> None:
    assert routing.endpoint_from_host(host) is None


def test_explicit_header_wins_over_host() -> None:
    headers = {"Host": "other.ns.svc", routing.ENDPOINT_HEADER: "ml/resnet"}
    assert routing.endpoint_for(headers) == KEY


def test_malformed_explicit_header_names_no_endpoint() -> None:
    assert routing.endpoint_for({routing.ENDPOINT_HEADER: "resnet"}) is None


def test_upstream_is_the_predictor_service_unless_overridden() -> None:
    assert routing.http_upstream(KEY, {}) == "http://resnet-predictor.ml.svc:8000"
    assert routing.grpc_upstream(KEY, {}) == "resnet-predictor.ml.svc:8001"
    overrides = routing.parse_overrides(["ml/resnet=http://127.0.0.1:18000/, x/y=http://h:1"])
    assert routing.http_upstream(KEY, overrides) == "http://127.0.0.1:18000"
    assert len(overrides) == 2


def test_bad_override_is_refused() -> None:
    with pytest.raises(ValueError, match="namespace/name=URL"):
        routing.parse_overrides(["ml/resnet"])


def test_state_from_object_reads_limits_status_and_reason() -> None:
    obj = {
        "metadata": {"namespace": "ml", "name": "resnet"},
        "spec": {
            "model": {"name": "resnet50", "storageUri": "s3://b/m"},
            "scaling": {"scaleToZero": {"maxHeldRequests": 50, "wakeDeadlineSeconds": 30}},
        },
        "status": {
            "readyReplicas": 0,
            "offUntil": "2026-11-23T06:00:00Z",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ScaledToZero", "message": "zero"},
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "WaitingForNode",
                    "message": "0/3 nodes have nvidia.com/gpu",
                },
            ],
        },
    }
    state = routing.state_from_object(obj)
    assert state == queueing.EndpointState(
        key=KEY,
        model="resnet50",
        ready_replicas=0,
        off_until=datetime.datetime(2026, 11, 23, 6, tzinfo=datetime.UTC),
        max_held_requests=50,
        wake_deadline_seconds=30.0,
        message="Progressing WaitingForNode: 0/3 nodes have nvidia.com/gpu",
    )


def test_state_from_a_fresh_object_uses_the_api_defaults() -> None:
    state = routing.state_from_object({"metadata": {"namespace": "ml", "name": "resnet"}})
    assert state.ready_replicas == 0
    assert state.off_until is None
    assert state.max_held_requests == routing.DEFAULT_MAX_HELD
    assert state.wake_deadline_seconds == routing.DEFAULT_WAKE_DEADLINE_SECONDS


def test_limits_the_object_does_not_set_come_from_the_activator_defaults() -> None:
    obj = {"metadata": {"namespace": "ml", "name": "resnet"}, "spec": {"scaling": {}}}
    state = routing.state_from_object(obj, default_max_held=7, default_wake_deadline=60)
    assert (state.max_held_requests, state.wake_deadline_seconds) == (7, 60.0)


def test_model_name_is_read_from_a_serialized_triton_grpc_request() -> None:
    request = service_pb2.ModelInferRequest(model_name="resnet50", id="7")
    assert routing.model_from_grpc_request(request.SerializeToString()) == "resnet50"
    long_name = "m" * 200  # a two-byte length varint
    request = service_pb2.ModelReadyRequest(name=long_name)
    assert routing.model_from_grpc_request(request.SerializeToString()) == long_name


@pytest.mark.parametrize("raw", [b"", b"\x0a", b"\x12\x03abc", b"\x0a\x05ab", b"\x0a\x02\xff\xfe"])
def test_requests_without_a_readable_model_name_give_none(raw: bytes) -> None:
    assert routing.model_from_grpc_request(raw) is None


def test_a_model_name_routes_only_when_one_endpoint_serves_it() -> None:
    a = queueing.EndpointState(key=queueing.EndpointKey("ml", "a"), model="resnet")
    b = queueing.EndpointState(key=queueing.EndpointKey("ml", "b"), model="bert")
    c = queueing.EndpointState(key=queueing.EndpointKey("dev", "c"), model="bert")
    assert routing.endpoint_for_model("resnet", [a, b, c]) == a.key
    assert routing.endpoint_for_model("bert", [a, b, c]) is None
    assert routing.endpoint_for_model("gpt", [a, b, c]) is None
