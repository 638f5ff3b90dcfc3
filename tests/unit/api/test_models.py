"""The API models accept good specs, refuse bad ones with field-named messages."""

from __future__ import annotations

import zoneinfo
from typing import Any

import pydantic
import pytest

from tideserve.api import resource, spec

pytestmark = pytest.mark.unit


def minimal(**extra: Any) -> dict[str, Any]:
    return {"model": {"name": "resnet50", "storageUri": "s3://models/resnet50"}, **extra}


def error_of(body: dict[str, Any]) -> str:
    with pytest.raises(pydantic.ValidationError) as caught:
        resource.parse_spec(body)
    return resource.describe_error(caught.value)


def test_minimal_spec_gets_documented_defaults() -> None:
    parsed = resource.parse_spec(minimal())
    assert parsed.resources.accelerator == spec.Accelerator.GPU
    assert parsed.scaling.mode == spec.ScalingMode.BUILTIN
    assert (parsed.scaling.min_replicas, parsed.scaling.max_replicas) == (1, 5)
    assert parsed.scaling.target.type == spec.TargetType.QUEUE_DEPTH
    # Omitted: learned per endpoint by the autoscaler (autoscaler/learned.py).
    assert parsed.scaling.behavior.scale_down.stabilization_seconds is None
    assert parsed.scaling.target.value is None
    assert parsed.scaling.scale_to_zero.idle_seconds is None
    assert parsed.resources.right_sizing.mode == spec.RightSizingMode.RECOMMEND
    assert parsed.model.dynamic_batching is None


def test_dump_is_camel_case_without_nones() -> None:
    dumped = resource.parse_spec(minimal()).dump()
    assert dumped["model"] == {
        "name": "resnet50",
        "storageUri": "s3://models/resnet50",
        "instanceCount": 1,
        "responseCache": False,
    }
    assert dumped["replicas"] == 1
    assert dumped["scaling"]["scaleToZero"]["wakeDeadlineSeconds"] == 900


def test_min_above_max_names_the_field() -> None:
    message = error_of(minimal(scaling={"minReplicas": 4, "maxReplicas": 2}))
    assert (
        message == "spec.scaling.minReplicas: minReplicas must be less than or equal to maxReplicas"
    )


def test_mig_profile_requires_accelerator_mig() -> None:
    message = error_of(minimal(resources={"accelerator": "gpu", "mig": {"profile": "1g.10gb"}}))
    assert "mig is only allowed with accelerator: mig" in message
    message = error_of(minimal(resources={"accelerator": "mig"}))
    assert "accelerator: mig needs mig.profile" in message


def test_bad_mig_profile_pattern() -> None:
    message = error_of(minimal(resources={"accelerator": "mig", "mig": {"profile": "big"}}))
    assert message.startswith("spec.resources.mig.profile:")


def test_target_must_be_positive() -> None:
    message = error_of(minimal(scaling={"target": {"value": 0}}))
    assert message.startswith("spec.scaling.target.value:")


def test_unknown_field_is_refused() -> None:
    message = error_of(minimal(scalng={}))
    assert message.startswith("spec.scalng:")


def test_storage_uri_scheme() -> None:
    message = error_of({"model": {"name": "m", "storageUri": "ftp://x/y"}})
    assert message.startswith("spec.model.storageUri:")


@pytest.mark.parametrize("value", [2, "500m", "1.5", "+1", "1e2", ".5", "1m", 512])
def test_quantities_accept_integers_and_strings(value: object) -> None:
    parsed = resource.parse_spec(minimal(resources={"accelerator": "cpu", "cpu": value}))
    assert parsed.resources.cpu == str(value)


@pytest.mark.parametrize(
    "value",
    [1.5, 0, -1, "0", "-1", "0.0", "1.2.3", "5mM", "1e999", True,
     "4Gi", "1Ki", "1e3", 513, "0.0001", "1n", "1e99"],
)  # fmt: skip
def test_cpu_refuses_floats_zero_negative_malformed_bytes_and_out_of_range(value: object) -> None:
    # The CRD types a quantity as integer-or-string: a YAML float is refused there too.
    message = error_of(minimal(resources={"accelerator": "cpu", "cpu": value}))
    assert message.startswith("spec.resources.cpu:")


@pytest.mark.parametrize("value", ["64Mi", "1.5Gi", "16Ti", 67108864, "68e6", "512M"])
def test_memory_accepts_what_a_replica_can_have(value: object) -> None:
    parsed = resource.parse_spec(minimal(resources={"accelerator": "cpu", "memory": value}))
    assert parsed.resources.memory == str(value)


@pytest.mark.parametrize("value", ["100m", 512, "1", "64M", "1E", "1e20", "17Ti", "5Gb"])
def test_memory_refuses_fractions_bare_small_numbers_and_out_of_range(value: object) -> None:
    message = error_of(minimal(resources={"accelerator": "cpu", "memory": value}))
    assert message.startswith("spec.resources.memory:")


def test_quantity_refuses_garbage() -> None:
    message = error_of(minimal(resources={"accelerator": "cpu", "memory": "lots"}))
    assert message.startswith("spec.resources.memory:")


def window(**fields: Any) -> dict[str, Any]:
    return {"name": "night", "timeZone": "Europe/Berlin", "maxReplicas": 0, **fields}


def test_window_across_midnight_is_valid() -> None:
    parsed = resource.parse_spec(
        minimal(scaling={"schedules": [window(start="22:00", end="06:00")]})
    )
    assert parsed.scaling.schedules[0].start == "22:00"


def test_window_needs_exactly_one_form() -> None:
    both = window(start="22:00", end="06:00", cron="0 22 * * *", durationMinutes=480)
    assert "either start and end" in error_of(minimal(scaling={"schedules": [both]}))
    neither = window()
    assert "either start and end" in error_of(minimal(scaling={"schedules": [neither]}))


def test_window_with_unknown_time_zone() -> None:
    message = error_of(
        minimal(scaling={"schedules": [window(start="22:00", end="06:00", timeZone="Mars/Base")]})
    )
    assert message == (
        "spec.scaling.schedules[0].timeZone: timeZone must be an IANA time zone name "
        "such as Europe/Berlin (unknown zone)"
    )


def test_window_bounds_within_scaling_bounds() -> None:
    message = error_of(
        minimal(
            scaling={
                "maxReplicas": 3,
                "schedules": [window(start="08:00", end="18:00", minReplicas=5, maxReplicas=None)],
            }
        )
    )
    assert "cannot exceed scaling.maxReplicas" in message


def test_window_names_unique() -> None:
    windows = [window(start="22:00", end="06:00"), window(start="12:00", end="13:00")]
    assert "repeated: night" in error_of(minimal(scaling={"schedules": windows}))


def test_zone_list_is_available() -> None:
    # The time-zone check relies on the system tz database; fail loudly if it is missing.
    assert zoneinfo.ZoneInfo("Australia/Sydney")
