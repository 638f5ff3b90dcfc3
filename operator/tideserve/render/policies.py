"""PodDisruptionBudget and ServiceMonitor of the predictor."""

from __future__ import annotations

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
