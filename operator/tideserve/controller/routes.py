"""Which pods the user-facing Service routes to, from watched pods and slices (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tideserve.controller import status
from tideserve.render import network


def predictor_endpoints(pods: Sequence[Mapping[str, Any]]) -> tuple[network.Endpoint, ...]:
    out = []
    for pod in pods:
        meta = pod.get("metadata", {})
        st = pod.get("status", {})
        ip = st.get("podIP")
        if not ip or ":" in ip or st.get("phase") in {"Succeeded", "Failed"}:
            continue
        out.append(
            network.Endpoint(
                ip=str(ip),
                ready=status.pod_ready(pod),
                pod=str(meta.get("name", "")),
                namespace=str(meta.get("namespace", "")),
                node=pod.get("spec", {}).get("nodeName"),
                terminating=bool(meta.get("deletionTimestamp")),
            )
        )
    return tuple(out)


def activator_backends(slices: Sequence[Mapping[str, Any]]) -> network.Backends:
    """The activator's pods and ports, from its Service's EndpointSlices."""
    endpoints: list[network.Endpoint] = []
    ports: dict[str, int] = {}
    for s in slices:
        if s.get("addressType") != "IPv4":
            continue
        for p in s.get("ports") or []:
            if p.get("name") and p.get("port"):
                ports[str(p["name"])] = int(p["port"])
        for e in s.get("endpoints") or []:
            conditions = e.get("conditions") or {}
            ref = e.get("targetRef") or {}
            for ip in e.get("addresses") or []:
                endpoints.append(
                    network.Endpoint(
                        ip=str(ip),
                        ready=conditions.get("ready") is not False,
                        pod=str(ref.get("name", ip)),
                        namespace=str(ref.get("namespace", s.get("metadata", {}).get("namespace"))),
                        node=e.get("nodeName"),
                        terminating=bool(conditions.get("terminating")),
                    )
                )
    unique = {(e.namespace, e.pod, e.ip): e for e in endpoints}
    return network.Backends(
        target="activator",
        endpoints=tuple(unique[k] for k in sorted(unique)),
        http_port=ports.get("http", 8080),
        grpc_port=ports.get("grpc"),
    )
