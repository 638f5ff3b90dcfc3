"""The chart's activator drain settings: the SIGTERM drain ends before the pod's
terminationGracePeriodSeconds, and the chart refuses values where it would not."""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile
from typing import Any

import pytest
import yaml

from tideserve.activator import server

pytestmark = pytest.mark.unit

CHART = pathlib.Path(__file__).resolve().parents[3] / "charts" / "tideserve"


def template(values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    explicit = os.environ.get("TIDESERVE_HELM")
    helm = pathlib.Path(explicit) if explicit else pathlib.Path.home() / ".cache/tideserve/bin/helm"
    if not helm.is_file():
        pytest.fail(f"helm not found at {helm}: run `hack/build-tools helm`", pytrace=False)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values, handle)
        handle.flush()
        return subprocess.run(
            [
                str(helm),
                "template",
                "ts",
                str(CHART),
                "--kube-version",
                "1.35.0",
                "-f",
                handle.name,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def activator_pod(values: dict[str, Any]) -> dict[str, Any]:
    result = template(values)
    assert result.returncode == 0, result.stderr
    for doc in yaml.safe_load_all(result.stdout):
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("activator"):
            pod: dict[str, Any] = doc["spec"]["template"]["spec"]
            return pod
    raise AssertionError("no activator Deployment rendered")


def test_the_drain_ends_with_time_to_spare_before_the_pod_is_killed() -> None:
    pod = activator_pod({})
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    args = server.parse_args([], env)
    assert args.drain_seconds == 30
    grace = pod["terminationGracePeriodSeconds"]
    assert args.drain_seconds + server.FINISH_SECONDS <= grace


def test_a_drain_too_close_to_the_grace_period_is_refused() -> None:
    result = template({"activator": {"drainSeconds": 41, "terminationGracePeriodSeconds": 45}})
    assert result.returncode != 0
    assert "activator.drainSeconds (41) must be at least 5 below" in result.stderr
    assert "preStopSleepSeconds (5)" in result.stderr


def test_a_terminating_activator_pauses_before_sigterm_within_the_grace_period() -> None:
    pod = activator_pod({})
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    args = server.parse_args([], env)
    assert 5 + args.drain_seconds + server.FINISH_SECONDS <= pod["terminationGracePeriodSeconds"]
    # 0 turns the pause off.
    off = activator_pod({"activator": {"preStopSleepSeconds": 0}})
    assert "lifecycle" not in off["containers"][0]


def test_both_can_be_raised_together() -> None:
    pod = activator_pod({"activator": {"drainSeconds": 120, "terminationGracePeriodSeconds": 130}})
    assert pod["terminationGracePeriodSeconds"] == 130
