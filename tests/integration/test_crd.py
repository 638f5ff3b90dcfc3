"""The generated CRD on the real kube-apiserver: accepted, defaulted, explained, and it
refuses bad manifests at `kubectl apply` with messages that name the field."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from tideserve_testbed import fixtures

from tideserve.api import resource

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(kube: fixtures.Kube) -> fixtures.Kube:
    fixtures.install_crds(kube)
    return kube


def refused(kube: fixtures.Kube, namespace: str, body: dict[str, Any]) -> str:
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0, f"accepted: {body}"
    return result.stderr


def test_defaults_are_applied_by_the_api_server(installed: fixtures.Kube, namespace: str) -> None:
    installed.apply(fixtures.isvc("defaults"), "-n", namespace)
    stored = installed.get_json("tisvc", "defaults", "-n", namespace)["spec"]
    assert stored["resources"]["accelerator"] == "gpu"
    # Left out on purpose: the autoscaler learns these per endpoint (autoscaler/learned.py).
    assert "stabilizationSeconds" not in stored["scaling"]["behavior"]["scaleDown"]
    assert stored["scaling"]["behavior"]["scaleDown"]["maxPercent"] == 100
    assert "idleSeconds" not in stored["scaling"]["scaleToZero"]
    assert stored["scaling"]["scaleToZero"]["maxHeldRequests"] == 1000
    assert "dynamicBatching" not in stored["model"]


def test_midnight_crossing_window_in_a_time_zone_is_accepted(
    installed: fixtures.Kube, namespace: str
) -> None:
    window = {"name": "night", "timeZone": "Europe/Berlin", "start": "22:00", "end": "06:00"}
    body = fixtures.isvc(
        "night", scaling={"minReplicas": 0, "schedules": [window | {"maxReplicas": 0}]}
    )
    installed.apply(body, "-n", namespace)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            {"scaling": {"minReplicas": 4, "maxReplicas": 2}},
            "spec.scaling.minReplicas",
            "minReplicas must be less than or equal to maxReplicas",
        ),
        (
            {"resources": {"accelerator": "gpu", "mig": {"profile": "1g.10gb"}}},
            "spec.resources.mig",
            "mig is only allowed with accelerator: mig",
        ),
        (
            {"resources": {"accelerator": "mig"}},
            "spec.resources.mig",
            "accelerator: mig needs mig.profile",
        ),
        (
            {"scaling": {"target": {"value": 0}}},
            "spec.scaling.target.value",
            "greater than 0",
        ),
        (
            {
                "scaling": {
                    "schedules": [
                        {"name": "x", "timeZone": "Mars/Base", "start": "22:00", "end": "06:00",
                         "maxReplicas": 0}
                    ]
                }
            },
            "spec.scaling.schedules[0].timeZone",
            "timeZone must be an IANA time zone name",
        ),
        (
            {
                "scaling": {
                    "schedules": [
                        {"name": "x", "start": "22:00", "end": "06:00", "cron": "0 1 * * *",
                         "durationMinutes": 5, "maxReplicas": 0}
                    ]
                }
            },
            "spec.scaling.schedules[0]",
            "give either start and end",
        ),
        ({"scalng": {}}, "spec.scalng", "unknown field"),
    ],
    ids=["min>max", "mig-without-mig", "mig-without-profile", "target-0", "time-zone",
         "cron-and-start", "typo"],
)  # fmt: skip
def test_bad_manifests_are_refused_with_the_field_named(
    installed: fixtures.Kube, namespace: str, spec: dict[str, Any], field: str, words: str
) -> None:
    message = refused(installed, namespace, fixtures.isvc("bad", **spec))
    assert field in message
    assert words in message


def test_kubectl_explain_shows_field_documentation(installed: fixtures.Kube) -> None:
    text = installed.kubectl("explain", "tisvc.spec.scaling.schedules.prewarmSeconds").stdout
    assert "before it opens" in text


def test_scale_subresource_sets_spec_replicas(installed: fixtures.Kube, namespace: str) -> None:
    installed.apply(fixtures.isvc("scaled", scaling={"mode": "external"}), "-n", namespace)
    # An HPA reads the scale before it writes it: that must work on a fresh object.
    path = f"/apis/{resource.API_VERSION}/namespaces/{namespace}/{resource.PLURAL}/scaled/scale"
    scale = json.loads(installed.kubectl("get", "--raw", path).stdout)
    assert scale["spec"]["replicas"] == 1
    installed.kubectl("scale", "tisvc/scaled", "-n", namespace, "--replicas=3")
    assert installed.get_json("tisvc", "scaled", "-n", namespace)["spec"]["replicas"] == 3


def test_printer_columns(installed: fixtures.Kube, namespace: str) -> None:
    installed.apply(fixtures.isvc("columns"), "-n", namespace)
    header = installed.kubectl("get", "tisvc", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "REPLICAS", "DESIRED", "ACCELERATOR", "URL", "AGE"]


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_example_is_accepted_by_the_api_server(
    installed: fixtures.Kube, namespace: str, example: pathlib.Path
) -> None:
    installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))
