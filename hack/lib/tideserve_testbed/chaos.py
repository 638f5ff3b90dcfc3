"""What the chaos tests count after each fault, from the API server's own objects.

- duplicate children: objects an InferenceService owns (ownerReferences) under a name
  the renderer never gives (names are deterministic: a retry that generated a name would
  show here);
- orphaned children: objects labelled managed-by tideserve that name no owner, or an
  InferenceService that no longer exists;
- replicas set by another writer: managedFields entries of a predictor Deployment that own
  spec.replicas under any manager but the autoscaler's (the one writer).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

from tideserve.api import resource
from tideserve_testbed import fixtures

MANAGED = "app.kubernetes.io/managed-by=tideserve"
CHILD_KINDS = (
    "deployments.apps,services,configmaps,poddisruptionbudgets.policy,"
    "endpointslices.discovery.k8s.io,networkpolicies.networking.k8s.io"
)
REPLICAS_WRITER = "tideserve-autoscaler"


def expected_names(name: str) -> set[str]:
    return {name, f"{name}-predictor", f"{name}-route", f"{name}-config"}


@dataclasses.dataclass(frozen=True)
class Census:
    endpoints: int
    children: int
    duplicates: list[str]
    orphans: list[str]
    other_replica_writers: list[str]


def _owns_replicas(fields: dict[str, Any]) -> bool:
    return "f:replicas" in (fields.get("f:spec") or {})


def take(kube: fixtures.Kube, namespace: str) -> Census:
    isvcs = kube.get_json(f"{resource.PLURAL}.{resource.GROUP}", "-n", namespace)["items"]
    owners = {o["metadata"]["uid"]: o["metadata"]["name"] for o in isvcs}
    children = kube.get_json(CHILD_KINDS, "-n", namespace, "-l", MANAGED)["items"]
    duplicates, orphans, writers = [], [], []
    counted = 0
    for child in children:
        meta = child["metadata"]
        refs = meta.get("ownerReferences") or []
        what = f"{child['kind']}/{meta['name']}"
        if refs and all(r["kind"] != resource.KIND for r in refs):
            continue  # made by Kubernetes from a child (the predictor Service's slices)
        counted += 1
        ours = [r for r in refs if r["kind"] == resource.KIND]
        if not ours or any(r["uid"] not in owners for r in ours):
            orphans.append(what)
            continue
        if meta["name"] not in expected_names(owners[ours[0]["uid"]]):
            duplicates.append(what)
        if child["kind"] == "Deployment":
            for entry in meta.get("managedFields") or []:
                manager = entry.get("manager", "")
                if manager != REPLICAS_WRITER and _owns_replicas(entry.get("fieldsV1") or {}):
                    writers.append(f"{what} by {manager} ({entry.get('operation')})")
    return Census(len(isvcs), counted, duplicates, orphans, writers)


def record(scenario: str, census: Census, **extra: Any) -> None:
    """Append one row for hack/chaos's table (TIDESERVE_CHAOS_REPORT, JSON lines)."""
    path = os.environ.get("TIDESERVE_CHAOS_REPORT")
    row = {"scenario": scenario, **dataclasses.asdict(census), **extra}
    print(f"chaos: {json.dumps(row)}")
    if path:
        with pathlib.Path(path).open("a") as f:
            f.write(json.dumps(row) + "\n")
