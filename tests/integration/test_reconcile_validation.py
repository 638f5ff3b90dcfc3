"""InferenceService manifests the CRD's CEL rules refuse at `kubectl apply`, field named."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest
import yaml
from tideserve_testbed import fixtures

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/inferenceservices.serving.tideserve.io"
    )
    name = f"rk-cel-{os.getpid()}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


INVALID = {
    "minReplicas > maxReplicas": (
        {"scaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.scaling.minReplicas",
        "minReplicas must be less than or equal to maxReplicas",
    ),
    "mig profile without accelerator mig": (
        {"resources": {"accelerator": "gpu", "mig": {"profile": "1g.10gb"}}},
        "spec.resources.mig",
        "mig is only allowed with accelerator: mig",
    ),
    "bad time zone": (
        {
            "scaling": {
                "schedules": [
                    {
                        "name": "w1",
                        "timeZone": "Mars/Olympus",
                        "start": "22:00",
                        "end": "06:00",
                        "maxReplicas": 0,
                    }
                ]
            }
        },
        # The rule sits on the field itself: even the zone lookup's failure names it.
        "spec.scaling.schedules[0].timeZone",
        "timeZone must be an IANA time zone name",
    ),
    "window with both cron and start": (
        {
            "scaling": {
                "schedules": [
                    {
                        "name": "w1",
                        "cron": "0 8 * * *",
                        "durationMinutes": 60,
                        "start": "08:00",
                        "end": "09:00",
                        "minReplicas": 1,
                    }
                ]
            }
        },
        "spec.scaling.schedules[0]",
        "give either start and end (HH:MM), or cron and durationMinutes",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_manifests_are_refused_at_apply_with_the_field_named(
    kube: fixtures.Kube, namespace: str, case: str
) -> None:
    spec, field, message = INVALID[case]
    res = kube.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(fixtures.isvc("bad", **spec)),
        check=False,
    )
    assert res.returncode != 0
    assert field in res.stderr and message in res.stderr, res.stderr


def test_examples_are_accepted_by_the_api_server(kube: fixtures.Kube, namespace: str) -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        res = kube.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False
        )
        assert res.returncode == 0, f"{path.name}: {res.stderr}"
