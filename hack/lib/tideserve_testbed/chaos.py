"""What the chaos tests count after each fault, from the API server's own objects.

- duplicate children: objects an InferenceService owns (ownerReferences) under a name
  the renderer never gives (names are deterministic: a retry that generated a name would
  show here);
- orphaned children: objects labelled managed-by tideserve that name no owner, or an
  InferenceService that no longer exists;
- replicas set by another writer: successful writes of a predictor Deployment's
  spec.replicas (through /scale, or a body that carries it) by any field manager but the
  autoscaler's, from the API server's audit log (hack/chaos turns it on:
  TIDESERVE_AUDIT_DEPLOYMENTS=1). managedFields cannot tell: the API server records no
  manager for a /scale write of replicas that server-side apply left at their default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import urllib.parse
from typing import Any

from tideserve.api import resource
from tideserve_testbed import controlplane, fixtures

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
    autoscaler_writes: int = 0  # replicas writes by the one writer (the audit log sees them)


def replica_writes(kube: fixtures.Kube, namespace: str) -> list[tuple[str, str]]:
    """(writer, Deployment) for every successful write of spec.replicas in `namespace`."""
    path = controlplane.audit_log(kube.state_dir)
    assert path.exists(), f"{path} missing: run with TIDESERVE_AUDIT_DEPLOYMENTS=1 (hack/chaos)"
    out = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if ref.get("namespace") != namespace or ref.get("resource") != "deployments":
            continue
        if event.get("stage") != "ResponseComplete":
            continue
        if (event.get("responseStatus") or {}).get("code", 500) >= 300:
            continue
        sub = ref.get("subresource", "")
        body = event.get("requestObject") or {}
        if sub == "scale" or (sub == "" and "replicas" in (body.get("spec") or {})):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(event["requestURI"]).query)
            writer = (query.get("fieldManager") or [event.get("userAgent", "?")])[0]
            out.append((writer, str(ref.get("name"))))
    return out


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
    for writer, name in replica_writes(kube, namespace):
        if writer != REPLICAS_WRITER:
            writers.append(f"Deployment/{name} by {writer}")
    owned = sum(w == REPLICAS_WRITER for w, _ in replica_writes(kube, namespace))
    return Census(len(isvcs), counted, duplicates, orphans, writers, owned)


def record(scenario: str, census: Census, **extra: Any) -> None:
    """Append one row for hack/chaos's table (TIDESERVE_CHAOS_REPORT, JSON lines)."""
    path = os.environ.get("TIDESERVE_CHAOS_REPORT")
    row = {"scenario": scenario, **dataclasses.asdict(census), **extra}
    print(f"chaos: {json.dumps(row)}")
    if path:
        with pathlib.Path(path).open("a") as f:
            f.write(json.dumps(row) + "\n")
