"""Services and the routing EndpointSlice.

Two Services per InferenceService:
- `<name>-predictor` selects the predictor pods (scraping, debugging, the activator's
  upstream);
- `<name>`, the one users call, has no selector: its EndpointSlice `<name>-route` is
  written by tideserve and points at the ready predictor pods, or — while none is ready
  (scaled to zero, waking) — at the activator's pods, which hold requests until a
  replica is ready. Without an activator it always points at the predictor pods.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tideserve.api import resource
from tideserve.render import names

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_SLICE_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "tideserve.serving.tideserve.io"
ROUTE_TARGET_ANNOTATION = f"{resource.LABEL_PREFIX}/route-target"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One pod the route may send traffic to."""

    ip: str
    ready: bool
    pod: str
    namespace: str
    node: str | None = None
    terminating: bool = False


@dataclasses.dataclass(frozen=True)
class Backends:
    """The pods behind the route, and the port numbers they listen on for http/grpc."""

    target: str  # "predictor" or "activator"
    endpoints: tuple[Endpoint, ...]
    http_port: int = names.HTTP_PORT
    grpc_port: int | None = names.GRPC_PORT


def _ports(include_metrics: bool) -> list[dict[str, Any]]:
    ports = [
        {"name": "http", "port": names.HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
        {
            "name": "grpc",
            "port": names.GRPC_PORT,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c",
        },
    ]
    if include_metrics:
        ports.append(
            {
                "name": "metrics",
                "port": names.METRICS_PORT,
                "targetPort": "metrics",
                "protocol": "TCP",
            }
        )
    return ports


def predictor_service(owner: names.Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(owner, names.predictor(owner.name), "predictor"),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(owner.name),
            "ports": _ports(include_metrics=True),
        },
    }


def route_service(owner: names.Owner) -> dict[str, Any]:
    ports = [{k: v for k, v in p.items() if k != "targetPort"} for p in _ports(False)]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(owner, owner.name, "route"),
        "spec": {"type": "ClusterIP", "ports": ports},
    }


def choose_backends(
    predictor: tuple[Endpoint, ...],
    activator: Backends | None,
) -> Backends:
    """Ready predictor pods win; with none ready, the activator (when there is one)."""
    if any(e.ready and not e.terminating for e in predictor) or activator is None:
        return Backends(target="predictor", endpoints=predictor)
    return activator


def route_slice(owner: names.Owner, backends: Backends) -> dict[str, Any]:
    endpoints = []
    for e in sorted(backends.endpoints, key=lambda e: (e.namespace, e.pod, e.ip)):
        item: dict[str, Any] = {
            "addresses": [e.ip],
            "conditions": {
                "ready": e.ready and not e.terminating,
                "serving": e.ready,
                "terminating": e.terminating,
            },
            "targetRef": {"kind": "Pod", "namespace": e.namespace, "name": e.pod},
        }
        if e.node:
            item["nodeName"] = e.node
        endpoints.append(item)
    ports: list[dict[str, Any]] = [{"name": "http", "port": backends.http_port, "protocol": "TCP"}]
    if backends.grpc_port is not None:
        ports.append(
            {
                "name": "grpc",
                "port": backends.grpc_port,
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        )
    meta = names.metadata(owner, names.route(owner.name), "route")
    meta["labels"] = meta["labels"] | {
        SERVICE_NAME_LABEL: owner.name,
        # Not the EndpointSlice controller's own value, so it leaves this slice alone.
        MANAGED_BY_SLICE_LABEL: SLICE_MANAGER,
    }
    meta["annotations"] = {ROUTE_TARGET_ANNOTATION: backends.target}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }
