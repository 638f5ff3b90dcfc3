"""Golden manifests of the examples: rendered, schema-valid, restricted-PSS compliant.

Regenerate after an intended change: TIDESERVE_UPDATE_GOLDEN=1 pytest tests/unit/render
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tideserve.api import resource
from tideserve.render import children, names

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[3]
GOLDEN = pathlib.Path(__file__).parent / "golden"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
KUBERNETES_VERSION = "1.35"
UPDATE = os.environ.get("TIDESERVE_UPDATE_GOLDEN") == "1"
# The peers the chart's defaults give the operator (TIDESERVE_NETWORK_POLICY) for a
# release in tideserve-system: the endpoint's namespace and the activator may call
# Triton, Prometheus in `monitoring` may scrape it.
CHART_PEERS = (
    (
        {"podSelector": {}},
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "tideserve-system"}
            },
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "tideserve",
                    "app.kubernetes.io/instance": "tideserve",
                    "app.kubernetes.io/component": "activator",
                }
            },
        },
    ),
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},),
)


def isvc_of(path: pathlib.Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return next(d for d in docs if d["kind"] == resource.KIND)


def render(path: pathlib.Path) -> list[dict[str, Any]]:
    doc = isvc_of(path)
    owner = names.Owner(
        "models", doc["metadata"]["name"], "00000000-0000-0000-0000-000000000001", 1
    )
    options = children.Options(
        triton_image="nvcr.io/nvidia/tritonserver:25.10-py3",
        service_monitor=True,
        network_peers=CHART_PEERS,
    )
    plan = children.plan(owner, resource.parse_spec(doc["spec"]), options)
    return list(plan.apply)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_children_match_golden(example: pathlib.Path) -> None:
    text = yaml.safe_dump_all(render(example), sort_keys=True)
    golden = GOLDEN / f"{example.stem}.yaml"
    if UPDATE or not golden.exists():
        golden.write_text(text)
    assert text == golden.read_text(), (
        f"re-run with TIDESERVE_UPDATE_GOLDEN=1 if intended ({golden})"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_children_are_valid_kubernetes_objects(example: pathlib.Path) -> None:
    for manifest in render(example):
        if manifest["kind"] == "ServiceMonitor":  # a CRD: not in the built-in schemas
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def pod_specs(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] == "Deployment"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_pods_meet_the_restricted_pod_security_standard(example: pathlib.Path) -> None:
    for pod in pod_specs(render(example)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for volume in pod["volumes"]:
            assert "hostPath" not in volume
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert sc["runAsUser"] != 0
            assert sc["seccompProfile"]["type"] in {"RuntimeDefault", "Localhost"}
            assert not sc.get("privileged")
            for port in container.get("ports", []):
                assert "hostPort" not in port


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_child_is_owned_by_its_inferenceservice(example: pathlib.Path) -> None:
    for manifest in render(example):
        (ref,) = manifest["metadata"]["ownerReferences"]
        assert ref["kind"] == resource.KIND and ref["controller"] is True
        assert manifest["metadata"]["namespace"] == "models"
        assert "generateName" not in manifest["metadata"]
