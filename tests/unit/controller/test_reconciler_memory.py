"""What the Reconciler remembers between events, without an API server."""

from __future__ import annotations

import pytest

from tideserve.controller import reconcile
from tideserve.render import names, network

pytestmark = pytest.mark.unit


def owner(name: str) -> names.Owner:
    return names.Owner("ns", name, f"uid-{name}", 1)


def facts(name: str) -> reconcile.Facts:
    return reconcile.Facts(owner(name), 1, "http://x", "cpu")


def test_activator_events_concern_only_objects_routed_to_it_or_not_routed_yet() -> None:
    pod = network.Endpoint(ip="10.0.0.1", ready=True, pod="p", namespace="ns")
    serving = network.Backends(target="predictor", endpoints=(pod,))
    asleep = network.Backends(target="activator", endpoints=())
    records = {
        ("ns", "serving"): reconcile.Record(
            facts("serving"), route=network.route_slice(owner("serving"), serving)
        ),
        ("ns", "asleep"): reconcile.Record(
            facts("asleep"), route=network.route_slice(owner("asleep"), asleep)
        ),
        ("ns", "new"): reconcile.Record(facts("new")),
        # Children seen, never applied by this process: not its to route.
        ("ns", "unapplied"): reconcile.Record(applied={("Service", "unapplied"): "digest"}),
    }
    assert reconcile.routed_to_activator(records) == [("ns", "asleep"), ("ns", "new")]
