"""Right-sizing's hardware reaches the Deployment without touching the user's spec."""

from __future__ import annotations

import pytest

from tideserve.api import resource
from tideserve.controller import sizing
from tideserve.render import deployment, hardware, names

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "hw",
    [
        hardware.Hardware(kind="cpu", cpu="500m", memory="1Gi"),
        hardware.Hardware(kind="gpu", gpu_product="NVIDIA-L4", gpu_count=2),
        hardware.Hardware(kind="mig", mig_profile="1g.10gb"),
    ],
)
def test_hardware_round_trips_through_the_deployment_annotation(hw: hardware.Hardware) -> None:
    spec = resource.parse_spec({"model": {"name": "m", "storageUri": "s3://b/r"}})
    dep = deployment.deployment(names.Owner("ns", "x", "u"), spec, "img", hw)
    assert sizing.running(dep) == hw
    assert hardware.from_spec(hardware.to_resources(hw, spec.resources)) == hw


def test_no_override_unless_right_sizing_is_auto() -> None:
    spec = resource.parse_spec({"model": {"name": "m", "storageUri": "s3://b/r"}})
    assert sizing.effective(spec, {}, None) is None
    assert not sizing.wants_auto({"spec": spec.dump()})


def test_auto_with_a_recommendation_renders_it() -> None:
    body = {
        "model": {"name": "m", "storageUri": "s3://b/r"},
        "resources": {"accelerator": "auto", "rightSizing": {"mode": "auto"}},
    }
    spec = resource.parse_spec(body)
    status = {
        "replicas": 0,
        "recommendation": {"accelerator": "cpu", "cpu": "2", "memory": "3Gi", "reason": "r"},
    }
    hw = sizing.effective(spec, status, None)
    assert hw is not None and hw.kind == "cpu" and hw.cpu == "2"
    assert sizing.wants_auto({"spec": body})
