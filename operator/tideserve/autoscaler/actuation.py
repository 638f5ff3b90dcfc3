"""The autoscaler's calls to the Kubernetes API (synchronous; the loop runs them in threads).

Everything goes through tideserve.kube, the one module that talks to the API
and translates its errors. The autoscaler writes only: the predictor Deployment's
replicas (scale subresource) and its own status fields, both under its own field
manager, and Events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tideserve import kube
from tideserve.api import resource
from tideserve.render import names

Key = tuple[str, str]


def list_inference_services(namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """All InferenceServices: one list call (or one per watched namespace)."""
    return kube.list_in(resource.KIND, namespaces)


def list_predictors(namespaces: Sequence[str]) -> dict[Key, tuple[int, int]]:
    """(replicas, readyReplicas) of every predictor Deployment, keyed by (ns, isvc name)."""
    selector = f"app.kubernetes.io/name={names.PREDICTOR_APP}"
    items = kube.list_in("Deployment", namespaces, selector)
    out: dict[Key, tuple[int, int]] = {}
    for item in items:
        meta = item.get("metadata") or {}
        name = str(meta.get("name", ""))
        isvc = (meta.get("labels") or {}).get(names.ISVC_LABEL) or name.removesuffix("-predictor")
        if name != names.predictor(isvc):
            continue
        spec, status = item.get("spec") or {}, item.get("status") or {}
        replicas = int(spec.get("replicas", 1))
        out[(str(meta.get("namespace")), isvc)] = (replicas, int(status.get("readyReplicas") or 0))
    return out


def activator_slices(service: tuple[str, str] | None) -> list[dict[str, Any]]:
    """EndpointSlices of the activator's Service (its pods' addresses and ports)."""
    if service is None:
        return []
    namespace, name = service
    return kube.list_objects("EndpointSlice", namespace, f"kubernetes.io/service-name={name}")


def scale(namespace: str, name: str, replicas: int) -> None:
    kube.patch_scale(
        "Deployment", namespace, names.predictor(name), replicas, resource.AUTOSCALER_FIELD_MANAGER
    )


def write_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    kube.apply_status(namespace, name, status, manager=resource.AUTOSCALER_FIELD_MANAGER)


def event(isvc: dict[str, Any], reason: str, message: str, event_type: str = "Normal") -> None:
    kube.post_event(isvc, event_type, reason, message)
