"""Observations from Prometheus series, the status patch, measured-profile annotations."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.rightsizing import advisor, catalog, fit, loop, signals

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, tzinfo=datetime.UTC)


def test_endpoint_from_labels_or_predictor_pod_name() -> None:
    assert signals.endpoint_of({"namespace": "a", "name": "m", "pod": "x"}) == ("a", "m")
    cadvisor = {"namespace": "a", "pod": "my-model-predictor-7d9f8c-x2k4q"}
    assert signals.endpoint_of(cadvisor) == ("a", "my-model")
    assert signals.endpoint_of({"namespace": "a", "pod": "other"}) is None


def test_observe_prefers_cadvisor_and_finds_the_peak() -> None:
    obs = signals.observe(
        {
            "cpu_cadvisor": [(1.0, 0.5)],
            "cpu_triton": [(1.0, 8.0)],
            "memory_triton": [(1.0, 1e9)],
            "rps": [(1.0, 10.0), (2.0, 30.0), (3.0, 20.0)],
            "pod_rps": [(2.0, 15.0), (2.0, 15.0), (3.0, 20.0)],
            "gpu_utilization": [(1.0, 0.1), (2.0, 0.3)],
            "latency_us": [(2.0, 4000.0)],
            "latency_p99_us": [(2.0, 9000.0)],
        },
        [],
        replica_seconds=7200,
        requests=72_000,
    )
    assert obs.usage.cpu_cores == ((1.0, 0.5),)
    assert obs.usage.memory_bytes == ((1.0, 1e9),)
    assert obs.peak_rps == 30.0
    assert obs.rps_per_replica == 15.0
    assert obs.gpu_utilization == 0.3
    assert obs.latency_ms == 9.0  # the p99, not the 4 ms mean
    assert obs.replica_seconds == 7200
    assert obs.requests == 72_000
    assert obs.notes == (
        "CPU/memory from Triton's host-wide figures (no cAdvisor): an upper bound",
    )


def spec(mode: str = "recommend") -> spec_api.InferenceServiceSpec:
    return spec_api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "storageUri": "s3://b/m"},
            "resources": {"accelerator": "cpu", "cpu": "64", "rightSizing": {"mode": mode}},
        }
    )


NODE = fit.Node("cpu-0", {"cpu": 16, "memory": 64 * 2**30})


def test_status_patch_only_when_something_changed() -> None:
    advice = advisor.advise(
        spec(), None, advisor.Observation(), catalog.DEFAULT, nodes=[NODE], now=NOW
    )
    patch = advisor.status_patch(advice, None, 3, NOW)
    assert patch is not None
    assert set(patch) == {"cost", "recommendation", "conditions"}
    (condition,) = patch["conditions"]
    assert condition["type"] == "ResourcesFit"
    assert condition["status"] == "False"
    assert condition["reason"] == "NoNodeFits"
    assert "cpu 16 < 64" in condition["message"]
    written = status_api.InferenceServiceStatus.model_validate(patch)
    later = NOW + datetime.timedelta(minutes=3)
    again = advisor.advise(
        spec(), written, advisor.Observation(), catalog.DEFAULT, nodes=[NODE], now=later
    )
    assert not again.changed
    assert advisor.status_patch(again, written, 3, later) is None


def test_off_mode_patch_drops_the_recommendation() -> None:
    advice = advisor.advise(
        spec("off"), None, advisor.Observation(), catalog.DEFAULT, nodes=[], now=NOW
    )
    patch = advisor.status_patch(advice, None, 1, NOW)
    assert patch == {"cost": {"perHour": 0.0}}


def test_options_no_node_offers_are_not_recommended() -> None:
    s = spec_api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "storageUri": "s3://b/m"},
            "resources": {
                "accelerator": "auto",
                "rightSizing": {
                    "mode": "recommend",
                    "profiles": [
                        {"option": "mig:1g.10gb", "maxRequestsPerSecond": 100, "p99LatencyMs": 5},
                        {"option": "gpu:NVIDIA-L4", "maxRequestsPerSecond": 300, "p99LatencyMs": 5},
                    ],
                },
            },
        }
    )
    l4 = fit.Node(
        "gpu-l4",
        {"cpu": 48, "memory": 2**37, "nvidia.com/gpu": 4},
        {"nvidia.com/gpu.product": "NVIDIA-L4"},
    )
    # The slice is the cheaper option here, so only placement can rule it out.
    cheap_slice = catalog.parse(
        "gpus: [{product: NVIDIA-A100-SXM4-80GB, memoryGiB: 80, costPerHour: 3.5,"
        " migProfiles: [{profile: 1g.10gb, memoryGiB: 10}]},"
        " {product: NVIDIA-L4, memoryGiB: 24, costPerHour: 0.7}]"
    )
    advice = advisor.advise(s, None, advisor.Observation(), cheap_slice, nodes=[l4], now=NOW)
    assert advice.recommendation is not None
    assert advice.recommendation.accelerator == "gpu:NVIDIA-L4"
    with_mig = fit.Node("mig", {"cpu": 96, "memory": 2**38, "nvidia.com/mig-1g.10gb": 14})
    advice = advisor.advise(
        s, None, advisor.Observation(), cheap_slice, nodes=[l4, with_mig], now=NOW
    )
    assert advice.recommendation is not None
    assert advice.recommendation.accelerator == "mig:1g.10gb"


def test_measured_profiles_annotation() -> None:
    body = {
        "metadata": {
            "annotations": {
                loop.PROFILES_ANNOTATION: json.dumps(
                    [{"option": "cpu-2", "maxRequestsPerSecond": 40, "p99LatencyMs": 12.5}]
                )
            }
        }
    }
    (profile,) = loop.measured_profiles(body)
    assert (profile.option, profile.max_rps, profile.cores) == ("cpu-2", 40.0, 2.0)
    assert (
        loop.measured_profiles({"metadata": {"annotations": {loop.PROFILES_ANNOTATION: "x"}}}) == []
    )


@pytest.mark.parametrize(
    "entry",
    [{"option": "cpu-nan"}, {"option": "cpu-inf"}, {"option": "cpu--2"}, {"option": "gpu"},
     {"maxRequestsPerSecond": 0}, {"maxRequestsPerSecond": 1e999}, {"p99LatencyMs": -1},
     {"extra": 1}],
)  # fmt: skip
def test_measured_profiles_leave_out_entries_a_spec_would_refuse(entry: dict[str, Any]) -> None:
    # The annotation is written by hand: cpu-nan would size a replica at NaN cores and
    # stop the advice with a stack trace; the good entries beside it still count.
    good = {"option": "cpu-2", "maxRequestsPerSecond": 40, "p99LatencyMs": 12.5}
    bad = good | {"option": "cpu-4"} | entry
    value = json.dumps([bad, good]).replace("Infinity", "1e999")
    body = {"metadata": {"annotations": {loop.PROFILES_ANNOTATION: value}}}
    assert [p.option for p in loop.measured_profiles(body)] == ["cpu-2"]


def test_host_cores_from_the_pods_node() -> None:
    cores = loop.host_cores_lookup(
        [{"metadata": {"namespace": "a", "name": "p"}, "spec": {"nodeName": "n"}}],
        [{"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "16"}}}],
    )
    assert cores("a", "p") == 16
    assert cores("a", "elsewhere") >= 1


def test_oom_kills_from_the_pods_status() -> None:
    pod = {
        "metadata": {
            "namespace": "a",
            "name": "m-predictor-1-2",
            "labels": {"serving.tideserve.io/inferenceservice": "m"},
        },
        "spec": {"containers": [{"name": "triton", "resources": {"limits": {"memory": "2Gi"}}}]},
        "status": {
            "containerStatuses": [
                {
                    "name": "triton",
                    "lastState": {
                        "terminated": {"reason": "OOMKilled", "finishedAt": "2026-11-23T11:00:00Z"}
                    },
                }
            ]
        },
    }
    healthy = {**pod, "status": {"containerStatuses": [{"name": "triton", "lastState": {}}]}}
    found = loop.ooms_from_pods([pod, healthy])
    (oom,) = found[("a", "m")]
    assert oom.memory_bytes == 2 * 2**30
    assert oom.time == datetime.datetime(2026, 11, 23, 11, tzinfo=datetime.UTC).timestamp()
    obs = loop.with_ooms(advisor.Observation(), found[("a", "m")])
    assert obs.usage.ooms == (oom,)
