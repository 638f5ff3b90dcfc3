"""Which objects stream to the operator: server-side label selectors per watched kind."""

from __future__ import annotations

import kopf
import pytest

from tideserve.controller import handlers

pytestmark = pytest.mark.unit


def selectors(activator: bool) -> dict[str, list[str]]:
    settings = kopf.OperatorSettings()
    handlers.configure(settings, activator=activator)
    kinds = {
        "inferenceservices": ("serving.tideserve.io", "v1alpha1"),
        "deployments": ("apps", "v1"),
        "pods": ("", "v1"),
        "services": ("", "v1"),
        "configmaps": ("", "v1"),
        "poddisruptionbudgets": ("policy", "v1"),
        "endpointslices": ("discovery.k8s.io", "v1"),
    }
    return {
        plural: settings.watching.label_selectors.collect(
            kopf.Resource(group=group, version=version, plural=plural)
        )
        for plural, (group, version) in kinds.items()
    }


def test_children_and_pods_are_selected_by_label_never_the_inferenceservices() -> None:
    found = selectors(activator=False)
    assert found["inferenceservices"] == []
    assert found["pods"] == ["app.kubernetes.io/name=tideserve-predictor"]
    for plural in ("deployments", "services", "configmaps", "poddisruptionbudgets"):
        assert found[plural] == ["app.kubernetes.io/managed-by=tideserve"], plural
    assert found["endpointslices"] == ["app.kubernetes.io/managed-by=tideserve"]


def test_with_an_activator_its_slices_must_stream_too() -> None:
    assert selectors(activator=True)["endpointslices"] == []
