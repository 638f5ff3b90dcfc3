"""The size bounds: the largest spec the schema admits still fits what runs and what
`kubectl apply` can store (api/spec.py ENV_TOTAL_MAX and the bounds beside it)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tideserve.api import manifests, objectmeta, resource, schedule, spec

pytestmark = pytest.mark.unit

# The JSON escapes Go's encoder writes for these make them the longest to store.
WIDE = "<"  # 6 bytes as \u003c
FOUR_BYTES = "\U0001f600"


def _largest_spec(char: str) -> dict[str, Any]:
    env_value = char * (spec.ENV_TOTAL_MAX - 64 * 4)
    env = [{"name": f"V{i:03d}", "value": env_value if i == 0 else ""} for i in range(64)]
    per_arg = spec.ARGS_TOTAL_MAX // 16 - len("--id=")
    args = [f"--id={char * per_arg}"] * 16
    day = datetime.date(2026, 1, 1)
    dates = [str(day + datetime.timedelta(days=i)) for i in range(32 * 32)]
    windows = [
        {
            "name": f"w{i:02d}" + "x" * 59,
            "timeZone": "America/Argentina/Buenos_Aires",
            "cron": "*/15 8-17 * jan-mar mon-fri",
            "durationMinutes": 5,
            "minReplicas": 0,
            "maxReplicas": 1,
            "days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            "exceptDates": dates[i * 32 : (i + 1) * 32],
        }
        for i in range(32)
    ]
    profiles = [
        {"option": f"cpu-{i + 1}", "maxRequestsPerSecond": 1e9 - i, "p99LatencyMs": 1e7 - i}
        for i in range(32)
    ]
    return {
        "model": {"name": "m" * 128, "storageUri": "s3://bucket/" + "p" * (2048 - 12)},
        "runtime": {"image": "registry.example.com/" + "a" * 480, "args": args, "env": env},
        "resources": {"accelerator": "cpu", "rightSizing": {"profiles": profiles}},
        "scaling": {"minReplicas": 0, "maxReplicas": 10, "schedules": windows},
    }


@pytest.mark.parametrize("char", ["x", WIDE, FOUR_BYTES])
def test_the_largest_admitted_spec_fits_kubectl_applys_copy_with_room_to_spare(char: str) -> None:
    body = _largest_spec(char)
    resource.parse_spec(body)  # admitted
    manifest = {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": "largest", "labels": {"team": "ml"}},
        "spec": body,
    }
    assert manifests.problems(manifest) == []
    # kubectl keeps the whole manifest in an annotation of at most 256 KiB: a quarter of
    # it stays free for the user's own labels and annotations.
    assert len(objectmeta._go_json(manifest).encode()) < 0.75 * objectmeta.ANNOTATIONS_MAX_BYTES


def test_one_more_of_anything_bounded_in_total_is_refused() -> None:
    body = _largest_spec("x")
    body["runtime"]["env"][1]["value"] = "x" * 257
    assert "spec.runtime.env:" in "; ".join(_problems(body))
    body = _largest_spec("x")
    body["runtime"]["args"].append("--id=" + "x" * 10)
    assert "spec.runtime.args:" in "; ".join(_problems(body))
    body = _largest_spec("x")
    body["scaling"]["schedules"][0]["exceptDates"] = [
        str(datetime.date(2030, 1, 1) + datetime.timedelta(days=i)) for i in range(33)
    ]
    total = sum(len(w["exceptDates"]) for w in body["scaling"]["schedules"])
    assert total > schedule.EXCEPT_DATES_TOTAL_MAX
    assert "spec.scaling.schedules:" in "; ".join(_problems(body))


def _problems(body: dict[str, Any]) -> list[str]:
    manifest = {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": "x"},
        "spec": body,
    }
    return manifests.problems(manifest)
