"""What the Reconciler remembers between events, without an API server."""

from __future__ import annotations

import pytest

from tideserve import settings as settings_mod
from tideserve.controller import reconcile
from tideserve.render import names, network

pytestmark = pytest.mark.unit


def owner(name: str) -> names.Owner:
    return names.Owner("ns", name, f"uid-{name}", 1)


def test_activator_events_concern_only_objects_routed_to_it_or_not_routed_yet() -> None:
    rec = reconcile.Reconciler(settings_mod.Settings())
    pod = network.Endpoint(ip="10.0.0.1", ready=True, pod="p", namespace="ns")
    for name in ("serving", "asleep", "new"):
        rec._remember(reconcile.Facts(owner(name), 1, "http://x", "cpu"))
    serving = network.Backends(target="predictor", endpoints=(pod,))
    asleep = network.Backends(target="activator", endpoints=())
    rec._written_route[("ns", "serving")] = network.route_slice(owner("serving"), serving)
    rec._written_route[("ns", "asleep")] = network.route_slice(owner("asleep"), asleep)
    assert sorted(rec.routed_to_activator()) == [("ns", "asleep"), ("ns", "new")]
    assert len(rec.known()) == 3
