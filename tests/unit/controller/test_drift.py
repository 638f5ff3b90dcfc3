"""Drift from managedFields, on objects captured from a real API server.

data/deployment-hand-edited.json: a Deployment applied by `tideserve`, then
`kubectl set image`, `kubectl scale --replicas=3` and `kubectl rollout restart`.
data/service-port-renumbered.json: a Service applied by `tideserve`, then a JSON patch
renumbering its first port from 8000 to 9000.
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import pytest

from tideserve.controller import drift

pytestmark = pytest.mark.unit

DATA = pathlib.Path(__file__).parent / "data"
IMAGE = 'spec.template.spec.containers[{"name":"triton"}].image'


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = obj["metadata"]["managedFields"]
    return fields


def entry(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    return next(e for e in entries(obj) if e["manager"] == manager)


def test_a_hand_set_image_is_taken_but_not_replicas_or_a_restart_annotation() -> None:
    live, manifest = load("deployment-hand-edited.json"), load("deployment-manifest.json")
    assert live["spec"]["replicas"] == 3  # scaled by hand: not tideserve's field
    assert drift.taken(drift.seen(live), manifest) == [IMAGE]


def test_the_image_applied_back_is_no_longer_taken() -> None:
    live, manifest = load("deployment-hand-edited.json"), load("deployment-manifest.json")
    mine = entry(live, "tideserve")["fieldsV1"]
    triton = mine["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"triton"}']
    triton["f:image"] = {}
    # A forced apply takes the field back; the editor's entry may stay behind, empty
    # or not, and shared ownership must not count as drift either.
    assert drift.taken(drift.seen(live), manifest) == []


def test_scale_and_status_entries_are_ignored() -> None:
    live, manifest = load("deployment-hand-edited.json"), load("deployment-manifest.json")
    entries(live)[:] = [e for e in entries(live) if e["manager"] != "kubectl-set"]
    entries(live).append(
        {
            "manager": "kubectl-patch",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    )
    entries(live).append(
        {
            "manager": "tideserve-autoscaler",
            "operation": "Update",
            "subresource": "scale",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    )
    assert drift.taken(drift.seen(live), manifest) == []
    assert drift.stale([manifest], {drift.key_of(manifest): drift.seen(live)}) == []


def test_an_edited_label_is_taken() -> None:
    live, manifest = load("deployment-hand-edited.json"), load("deployment-manifest.json")
    del entry(live, "tideserve")["fieldsV1"]["f:metadata"]["f:labels"]["f:app.kubernetes.io/name"]
    entries(live).append(
        {
            "manager": "kubectl-label",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}}},
        }
    )
    assert "metadata.labels.app.kubernetes.io/name" in drift.taken(drift.seen(live), manifest)


def test_a_renumbered_port_shows_as_fields_lost_against_the_applied_digest() -> None:
    live, manifest = load("service-port-renumbered.json"), load("service-manifest.json")
    # Nobody else owns a field tideserve sets (port 9000 is not in the manifest) ...
    assert drift.taken(drift.seen(live), manifest) == []
    # ... but tideserve's own set shrank: it owned port 8000 after its apply.
    as_applied = copy.deepcopy(live)
    ports = entry(as_applied, "tideserve")["fieldsV1"]["f:spec"]["f:ports"]
    ports['k:{"port":8000,"protocol":"TCP"}'] = {".": {}, "f:name": {}, "f:port": {}}
    key = drift.key_of(manifest)
    applied = {key: drift.seen(as_applied).mine}
    assert drift.stale([manifest], {key: drift.seen(as_applied)}, applied) == []
    [(found, why)] = drift.stale([manifest], {key: drift.seen(live)}, applied)
    assert found is manifest and "removed" in why


def test_deleted_children_are_stale_and_unseen_ones_have_no_verdict() -> None:
    manifest = load("service-manifest.json")
    key = drift.key_of(manifest)
    assert drift.stale([manifest], {key: None}) == [(manifest, "deleted")]
    assert drift.stale([manifest], {}) == []
    assert drift.stale([manifest], {("Service", "other"): None}) == []


def test_the_summary_depends_only_on_the_managers_own_fields_and_what_others_contest() -> None:
    live = load("deployment-hand-edited.json")
    other = copy.deepcopy(live)
    entries(other).append(
        {
            "manager": "someone",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:x": {}}}},
        }
    )
    other["metadata"]["managedFields"].reverse()
    assert drift.seen(other).mine == drift.seen(live).mine
    assert ("f:metadata", "f:annotations", "f:x") in drift.seen(other).contested
    assert drift.seen(None) == drift.seen({})
