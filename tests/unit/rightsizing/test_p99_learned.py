"""Production signals: the p99 from Triton's latency summary (not a mean), and the
autoscaler's learned capacity per replica as the current option's profile."""

from __future__ import annotations

import datetime

import pytest

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.autoscaler import learned_status
from tideserve.rightsizing import accelerators, advisor, catalog, signals

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC)
A100 = "gpu:NVIDIA-A100-SXM4-80GB"


def test_p99_is_the_worst_summary_p99_near_peak_load() -> None:
    rps = [(0.0, 10.0), (300.0, 100.0), (600.0, 90.0), (900.0, 20.0)]
    p99 = [(0.0, 90_000.0), (300.0, 30_000.0), (600.0, 40_000.0), (900.0, 80_000.0)]
    # Off-peak minutes (a cold cache at night) do not describe the peak's latency.
    assert signals.p99_at_peak(p99, rps, 100.0) == 40.0
    assert signals.p99_at_peak([], rps, 100.0) is None


def test_observe_prefers_the_p99_and_says_when_it_only_has_a_mean() -> None:
    base = {
        "rps": [(0.0, 100.0)],
        "pod_rps": [(0.0, 100.0)],
        "latency_us": [(0.0, 10_000.0)],  # a 10 ms mean
    }
    with_p99 = signals.observe({**base, "latency_p99_us": [(0.0, 45_000.0)]}, [], None, None)
    assert with_p99.latency_ms == 45.0
    assert not any("mean" in n for n in with_p99.notes)
    mean_only = signals.observe(base, [], None, None)
    assert mean_only.latency_ms == 10.0
    assert any("summary_latencies" in n for n in mean_only.notes)


def test_the_p99_query_reads_the_summary_quantile_per_endpoint() -> None:
    query = signals.QUERIES["latency_p99_us"].format(rate=120, step=300, cost=3600)
    assert 'nv_inference_request_summary_us{quantile="0.99"}' in query
    assert "[300s]" in query and "by (namespace, name)" in query


def spec(mode: str = "recommend") -> spec_api.InferenceServiceSpec:
    return spec_api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "storageUri": "s3://b/m"},
            "resources": {
                "accelerator": "auto",
                "gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
                "rightSizing": {"mode": mode},
            },
            "slo": {"latencyMs": 50},
        }
    )


def status(
    capacity: float, *, measured: bool = True, basis: str | None = None
) -> status_api.InferenceServiceStatus:
    s = spec()
    return status_api.InferenceServiceStatus(
        accelerator=A100,
        replicas=2,
        learned=status_api.Learned(
            capacity_per_replica=capacity,
            capacity_measured=measured,
            basis=basis if basis is not None else learned_status.basis_of(s, A100),
        ),
    )


def option() -> catalog.Option:
    found = catalog.find(catalog.DEFAULT, A100)
    assert found is not None
    return found


def test_the_learned_capacity_is_the_current_options_profile() -> None:
    profile = advisor.learned_profile(spec(), status(120.0), option(), 20.0)
    assert profile == accelerators.Profile(A100, 120.0, 20.0, accelerators.Source.LEARNED)


def test_a_lower_bound_or_a_figure_from_other_hardware_is_not_used() -> None:
    assert advisor.learned_profile(spec(), status(120.0, measured=False), option(), 20.0) is None
    stale = status(120.0, basis="0123456789abcdef")
    assert advisor.learned_profile(spec(), stale, option(), 20.0) is None


def test_learned_beats_the_utilisation_estimate_and_prices_the_move() -> None:
    # At 30% utilisation the estimate says 100 x 0.8 / 0.3 = 267 rps per replica; the
    # autoscaler measured 120 at saturation. 600 rps at peak needs 5 A100s, not 3.
    obs = advisor.Observation(
        peak_rps=600.0, rps_per_replica=100.0, gpu_utilization=0.3, latency_ms=20.0
    )
    advice = advisor.advise(spec(), status(120.0), obs, catalog.DEFAULT, nodes=[], now=NOW)
    assert advice.planned_rps is not None
    rec = advice.recommendation
    assert rec is not None
    # Every candidate is scaled from the learned 120 (catalog ratios), never from 267.
    ratio = option().relative_speed
    chosen = catalog.find(catalog.DEFAULT, rec.accelerator)
    assert chosen is not None
    assert advice.planned_rps == pytest.approx(120.0 * chosen.relative_speed / ratio)
    assert (
        accelerators.TRUST[accelerators.Source.LEARNED]
        < accelerators.TRUST[accelerators.Source.DECLARED]
    )
