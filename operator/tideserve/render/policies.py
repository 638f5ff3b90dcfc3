"""PodDisruptionBudget, ServiceMonitor and NetworkPolicy of the predictor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.render import names


def wants_pdb(spec: spec_api.InferenceServiceSpec) -> bool:
    # With a single replica allowed, any budget would either block node drains forever
    # (minAvailable 1) or protect nothing; only render one when there can be several.
    return spec.scaling.max_replicas > 1


def pdb(owner: names.Owner) -> dict[str, Any]:
    # maxUnavailable (not minAvailable) so a drain still makes progress at 1 replica and
    # at 0 replicas (scaled to zero) the budget is trivially met.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names.metadata(owner, names.predictor(owner.name), "predictor"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names.selector_labels(owner.name)},
            # Pods still loading their model are not serving: evicting them costs nothing.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def network_policy(
    owner: names.Owner,
    serving: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Ingress to the predictor pods from the given peers only: `serving` on HTTP and gRPC,
    `metrics` on the metrics port. An empty list admits nobody on those ports (a rule with
    no `from` would admit everyone, so none is written). Egress stays open: the fetch step
    downloads the model from wherever storageUri points."""
    rules: list[dict[str, Any]] = []
    for peers, ports in (
        (serving, (names.HTTP_PORT, names.GRPC_PORT)),
        (metrics, (names.METRICS_PORT,)),
    ):
        if peers:
            rules.append(
                {
                    "from": [dict(peer) for peer in peers],
                    "ports": [{"protocol": "TCP", "port": port} for port in ports],
                }
            )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.metadata(owner, names.predictor(owner.name), "predictor"),
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(owner.name)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def service_monitor(owner: names.Owner) -> dict[str, Any]:
    """Prometheus Operator scrape config; rendered only when its CRD is installed."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": names.metadata(owner, names.predictor(owner.name), "predictor"),
        "spec": {
            "selector": {
                "matchLabels": names.common_labels(owner.name)
                | {names.COMPONENT_LABEL: "predictor"}
            },
            "endpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "interval": "5s",
                    # The autoscaler groups series by namespace, name (the InferenceService)
                    # and pod: give every series those labels.
                    "relabelings": [
                        {
                            "sourceLabels": ["__meta_kubernetes_namespace"],
                            "targetLabel": "namespace",
                        },
                        {
                            "sourceLabels": [
                                "__meta_kubernetes_service_label_serving_tideserve_io_inferenceservice"
                            ],
                            "targetLabel": "name",
                        },
                        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
                    ],
                }
            ],
        },
    }
