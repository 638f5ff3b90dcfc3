"""The real node's pure parts: Prometheus discovery of its pods, the namespace opt-in that
puts a namespace's pods on it (the node is tainted for everyone else), and what lets pods
reach the API server and resolve Services."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pytest
import yaml
from tideserve_testbed import controlplane, node, podsd

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


def test_the_api_server_stays_on_loopback_unless_pods_must_reach_it() -> None:
    loopback = controlplane._apiserver_address(None)
    assert "--bind-address=127.0.0.1" in loopback
    assert "--endpoint-reconciler-type=none" in loopback  # Endpoints refuse loopback
    # With a real node: its bridge address is the `kubernetes` Service's endpoint.
    reachable = controlplane._apiserver_address(node.GATEWAY)
    assert f"--advertise-address={node.GATEWAY}" in reachable
    assert "--endpoint-reconciler-type=lease" in reachable


def test_pods_resolve_through_coredns_on_the_bridge(tmp_path: pathlib.Path) -> None:
    kubelet = yaml.safe_load(node._kubelet_config(tmp_path, tmp_path / "node"))
    assert kubelet["clusterDNS"] == [node.GATEWAY]
    assert kubelet["clusterDomain"] == node.DNS_DOMAIN
    corefile = node._corefile(tmp_path, 8181)
    assert corefile.startswith(f"{node.DNS_DOMAIN}:53 {{")
    assert f"bind {node.GATEWAY}\n" in corefile  # never the host's own resolver address
    assert f"kubeconfig {tmp_path / 'kubeconfig'} {controlplane.CONTEXT}" in corefile


def test_a_config_file_with_the_same_text_is_not_written_again(tmp_path: pathlib.Path) -> None:
    # kube-proxy exits when its config file is written, even with the same text.
    path = tmp_path / "kube-proxy.yaml"
    node._write(path, "a: 1\n")
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))
    node._write(path, "a: 1\n")
    assert path.stat().st_mtime_ns == before - 10**9
    node._write(path, "a: 2\n")
    assert path.read_text() == "a: 2\n"
