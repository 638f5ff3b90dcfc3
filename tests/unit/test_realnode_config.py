"""The real node's pure parts: Prometheus discovery of its pods, and the namespace
opt-in that puts a namespace's pods on it (the node is tainted for everyone else)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tideserve_testbed import node, podsd

pytestmark = pytest.mark.unit


def pod(
    name: str,
    *,
    ip: str | None = "10.88.0.5",
    phase: str = "Running",
    scrape: str | None = "true",
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    annotations = {} if scrape is None else {"prometheus.io/scrape": scrape}
    return {
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations,
                     "labels": {podsd.ISVC_LABEL: "tiny"}},
        "spec": {"containers": [{"name": "triton", "ports": ports if ports is not None else [
            {"name": "http", "containerPort": 8000}, {"name": "metrics", "containerPort": 8002}]}]},
        "status": {"phase": phase, **({"podIP": ip} if ip else {})},
    }  # fmt: skip


def test_a_running_annotated_pod_is_scraped_on_its_metrics_port_with_the_scrape_labels() -> None:
    assert podsd.targets([pod("p-0")]) == [
        {"targets": ["10.88.0.5:8002"], "labels": {"namespace": "ns", "name": "tiny", "pod": "p-0"}}
    ]


@pytest.mark.parametrize(
    "skipped",
    [
        pod("no-ip", ip=None),
        pod("pending", phase="Pending"),
        pod("not-annotated", scrape=None),
        pod("opted-out", scrape="false"),
        pod("no-metrics-port", ports=[{"name": "http", "containerPort": 8000}]),
    ],
)
def test_pods_that_cannot_or_should_not_be_scraped_are_left_out(skipped: dict[str, Any]) -> None:
    assert podsd.targets([skipped, pod("p-0")]) == podsd.targets([pod("p-0")])


def test_the_opt_in_selects_the_real_node_and_tolerates_exactly_its_taint() -> None:
    annotations = node.opt_in_annotations()
    key, _, value = annotations["scheduler.alpha.kubernetes.io/node-selector"].partition("=")
    assert (key, value) == (node.NODE_LABEL, "real")
    [toleration] = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
    assert toleration == {"key": node.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
