"""status.learned: small and bounded in the model and in the CRD the API server enforces."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from tideserve.api import crd
from tideserve.api import status as status_api

pytestmark = pytest.mark.unit


def learned_schema() -> dict[str, Any]:
    version = crd.crd()["spec"]["versions"][0]
    status: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    result: dict[str, Any] = status["properties"]["learned"]
    return result


def test_the_crd_bounds_the_lists_and_describes_every_field() -> None:
    schema = learned_schema()
    fields = schema["properties"]
    assert fields["coldStartsSeconds"]["maxItems"] == 8
    assert fields["idleGapsSeconds"]["maxItems"] == 48
    assert fields["idleGapsSeconds"]["items"] == {"type": "integer", "minimum": 0}
    assert all(field.get("description") for field in fields.values())


@pytest.mark.parametrize(
    "raw",
    [
        {"coldStartsSeconds": [1.0] * 9},
        {"idleGapsSeconds": [-1]},
        {"capacityPerReplica": 0},
        {"somethingElse": 1},
    ],
)
def test_out_of_bounds_figures_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        status_api.Learned.model_validate(raw)


def test_a_typical_object_in_the_status() -> None:
    status = status_api.InferenceServiceStatus.model_validate({
        "learned": {
            "capacityPerReplica": 19.7,
            "capacityMeasured": True,
            "peakPerReplica": 19.7,
            "coldStartsSeconds": [41.3],
            "coldStartSeconds": 41.3,
            "idleGapsSeconds": [],
            "target": 15.8,
            "scaleDownWindowSeconds": 83,
            "idleSeconds": 900,
        }
    })  # fmt: skip
    assert status.learned is not None
    assert status.learned.scale_down_window_seconds == 83
