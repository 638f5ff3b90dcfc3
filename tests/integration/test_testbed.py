"""The local test bed behaves like a real cluster: CRDs, scheduling on GPU nodes, taints."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures

pytestmark = pytest.mark.integration

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    name = f"testbed-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    fixtures.eventually(
        lambda: (
            kube.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        30,
        f"default ServiceAccount in {name}",
    )
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def deployment(
    name: str,
    resources: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/never-pulled:1"}
    if resources:
        container["resources"] = {"limits": resources, "requests": resources}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def nodes_by_name(kube: fixtures.Kube) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in kube.get_json("nodes")["items"]}


def pods_of(kube: fixtures.Kube, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get_json("pods", "-n", namespace, "-l", f"app={app}")[
        "items"
    ]
    return items


def available(kube: fixtures.Kube, namespace: str, name: str) -> bool:
    d = kube.get_json("deployment", name, "-n", namespace)
    conds = {c["type"]: c["status"] for c in d.get("status", {}).get("conditions", [])}
    return (
        conds.get("Available") == "True"
        and d["status"].get("readyReplicas") == d["spec"]["replicas"]
    )


def test_nodes_advertise_gpus_and_taints(kube: fixtures.Kube) -> None:
    nodes = nodes_by_name(kube)
    products = {
        n["metadata"]["labels"].get("nvidia.com/gpu.product")
        for n in nodes.values()
        if "nvidia.com/gpu" in n["status"]["capacity"]
    }
    assert {"NVIDIA-A100-SXM4-80GB", "NVIDIA-L4"} <= products
    mig = nodes["gpu-a100-mig-0"]
    assert mig["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] == "14"
    assert mig["metadata"]["labels"]["nvidia.com/mig.strategy"] == "mixed"
    for node in nodes.values():
        taints = node["spec"].get("taints", [])
        gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
        is_gpu = "nvidia.com/gpu.present" in node["metadata"]["labels"]
        assert (gpu_taint in taints) == is_gpu, node["metadata"]["name"]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"


def test_crd_and_custom_object(kube: fixtures.Kube, namespace: str) -> None:
    group = "testbed.tideserve.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kube.apply(crd)
    kube.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}}
    kube.apply({**widget, "spec": {"size": 3}}, "-n", namespace)
    got = kube.get_json(f"widgets.{group}", "w1", "-n", namespace)
    assert got["spec"] == {"size": 3}
    # Structural-schema validation is the API server's, not ours.
    bad = kube.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input=json.dumps({**widget, "metadata": {"name": "w2"}, "spec": {"size": 0}}),
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "should be greater than or equal to 1" in bad.stderr


def test_gpu_deployment_lands_on_gpu_node(kube: fixtures.Kube, namespace: str) -> None:
    kube.apply(
        deployment("gpu", {"nvidia.com/gpu": "1"}, [GPU_TOLERATION], replicas=2), "-n", namespace
    )
    fixtures.eventually(lambda: available(kube, namespace, "gpu"), 60, "gpu Deployment Available")
    nodes = nodes_by_name(kube)
    for pod in pods_of(kube, namespace, "gpu"):
        node = nodes[pod["spec"]["nodeName"]]
        assert "nvidia.com/gpu" in node["status"]["allocatable"], node["metadata"]["name"]
        assert pod["status"]["phase"] == "Running"


def test_mig_slice_lands_on_mig_node(kube: fixtures.Kube, namespace: str) -> None:
    kube.apply(
        deployment("mig", {"nvidia.com/mig-1g.10gb": "1"}, [GPU_TOLERATION]), "-n", namespace
    )
    fixtures.eventually(lambda: available(kube, namespace, "mig"), 60, "mig Deployment Available")
    (pod,) = pods_of(kube, namespace, "mig")
    assert pod["spec"]["nodeName"] == "gpu-a100-mig-0"


def test_cpu_deployment_lands_on_cpu_node(kube: fixtures.Kube, namespace: str) -> None:
    kube.apply(deployment("cpu", {"cpu": "500m", "memory": "256Mi"}), "-n", namespace)
    fixtures.eventually(lambda: available(kube, namespace, "cpu"), 60, "cpu Deployment Available")
    (pod,) = pods_of(kube, namespace, "cpu")
    node = nodes_by_name(kube)[pod["spec"]["nodeName"]]
    assert "nvidia.com/gpu.present" not in node["metadata"]["labels"]


def _unschedulable_message(kube: fixtures.Kube, namespace: str, app: str) -> str | None:
    pods = pods_of(kube, namespace, app)
    if not pods:
        return None
    (pod,) = pods
    assert "nodeName" not in pod["spec"]
    assert pod["status"]["phase"] == "Pending"
    events = [
        e
        for e in kube.events(namespace, pod["metadata"]["name"])
        if e["reason"] == "FailedScheduling"
    ]
    return str(events[0]["message"]) if events else None


@pytest.mark.parametrize(
    ("case", "resources", "tolerations", "expected"),
    [
        # GPU request without the toleration: CPU nodes lack GPUs, GPU nodes are tainted.
        ("untolerated", {"nvidia.com/gpu": "1"}, None, "untolerated taint"),
        # More GPUs than any node has, even when tolerating the taint.
        ("too-many", {"nvidia.com/gpu": "16"}, [GPU_TOLERATION], "Insufficient nvidia.com/gpu"),
    ],
)
def test_gpu_pod_that_fits_no_node_stays_pending(
    kube: fixtures.Kube,
    namespace: str,
    case: str,
    resources: dict[str, str],
    tolerations: list[dict[str, str]] | None,
    expected: str,
) -> None:
    kube.apply(deployment(case, resources, tolerations), "-n", namespace)
    message = fixtures.eventually(
        lambda: _unschedulable_message(kube, namespace, case), 60, "FailedScheduling event"
    )
    assert re.search(r"0/\d+ nodes are available", message), message
    assert expected in message
    (pod,) = pods_of(kube, namespace, case)
    scheduled = {c["type"]: c for c in pod["status"]["conditions"]}["PodScheduled"]
    assert scheduled["status"] == "False"
    assert scheduled["reason"] == "Unschedulable"


def test_deleting_a_deployment_garbage_collects_its_pods(
    kube: fixtures.Kube, namespace: str
) -> None:
    kube.apply(deployment("gc", {"cpu": "100m"}, replicas=2), "-n", namespace)
    fixtures.eventually(lambda: available(kube, namespace, "gc"), 60, "gc Deployment Available")
    kube.kubectl("delete", "deployment", "gc", "-n", namespace, "--cascade=background")
    fixtures.eventually(lambda: not pods_of(kube, namespace, "gc"), 60, "pods garbage-collected")


def test_pod_security_admission_is_enforced(kube: fixtures.Kube, namespace: str) -> None:
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.invalid/never-pulled:1",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    res = kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False)
    assert res.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in res.stderr


def test_rbac_is_enforced(kube: fixtures.Kube, namespace: str) -> None:
    kube.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    who = f"--as=system:serviceaccount:{namespace}:nobody"
    res = kube.kubectl("auth", "can-i", "list", "pods", "-n", namespace, who, check=False)
    assert res.stdout.strip() == "no"
    denied = kube.kubectl("get", "pods", "-n", namespace, who, check=False)
    assert "Forbidden" in denied.stderr
    kube.kubectl(
        "create", "rolebinding", "nobody-view", "--clusterrole=view",
        f"--serviceaccount={namespace}:nobody", "-n", namespace,
    )  # fmt: skip
    res = kube.kubectl("auth", "can-i", "list", "pods", "-n", namespace, who, check=False)
    assert res.stdout.strip() == "yes"
