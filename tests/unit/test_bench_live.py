"""hack/bench-live's pure parts: the trace every policy gets, and what a run measured."""

from __future__ import annotations

import math
import pathlib

import pytest
from tideserve_testbed import metrics_adapter
from tideserve_testbed.bench import live, live_metrics, live_sim

from tideserve.sim import pipeline

pytestmark = pytest.mark.unit

S = live_metrics.Sample
R = live_metrics.Request


def test_arrivals_are_the_same_list_for_the_same_seed_and_follow_the_segments() -> None:
    segments = [live_metrics.Segment(10, 0), live_metrics.Segment(100, 50)]
    a = live_metrics.arrivals(segments, seed=1)
    assert a == live_metrics.arrivals(segments, seed=1)
    assert a != live_metrics.arrivals(segments, seed=2)
    assert all(10 <= t < 110 for t in a) and a == sorted(a)
    assert 4500 < len(a) < 5500  # Poisson, 50/s for 100 s


def test_replica_seconds_cold_starts_and_time_at_zero_are_integrated_from_samples() -> None:
    samples = [S(0, 0, 0), S(10, 1, 0), S(20, 1, 1), S(30, 2, 2), S(40, 0, 0), S(50, 1, 1)]
    replica_s, cold, zero_s = live_metrics.integrate(samples, end=60)
    assert replica_s == 10 * 1 + 10 * 2 + 10 * 1
    assert cold == 2  # 0 -> 1 at 20, 0 -> 1 at 50
    assert zero_s == 10 + 10  # desired and ready 0: [0, 10) and [40, 50)


def test_ready_at_the_first_sample_is_no_cold_start_and_the_end_cuts_the_last_sample() -> None:
    replica_s, cold, zero_s = live_metrics.integrate([S(0, 2, 2), S(5, 2, 2)], end=7)
    assert (replica_s, cold, zero_s) == (14, 0, 0)


def test_lost_requests_miss_the_slo_and_latency_percentiles_count_answered_ones() -> None:
    requests = [R(0, 0.1, 200)] * 95 + [R(1, 2.0, 200)] * 3 + [R(2, 0.01, 429), R(3, 120, 0)]
    s = live_metrics.summarise(requests, [S(0, 1, 1)], slo_s=1.0, end=3600)
    assert (s.requests, s.answered, s.lost, s.refused) == (100, 98, 2, 1)
    assert s.attainment == pytest.approx(0.95)
    assert s.p50 == 0.1 and s.p99 == 2.0
    assert s.replica_seconds == 3600
    assert live_metrics.line("tideserve", s) == (
        "tideserve attainment=95.00% replica_hours=1.0000 lost=2"
    )
    table = live_metrics.table(
        [("tideserve", s)], 1.0, {"tideserve": ["0.5 0.4 0.3", "1.1 0.6 0.3"]}
    )
    assert "| tideserve | 100 | 95.00 % | 100 | 2000 | 2 (1 / 1) |" in table
    assert table.rstrip().endswith("| 0.5 0.4 0.3 -> 1.1 0.6 0.3 |")


def test_a_run_written_reads_back_the_same(tmp_path: pathlib.Path) -> None:
    requests = [R(0.5, 0.1234, 200), R(1.25, 120.0, 0), R(2.0, 0.5, 503)]
    samples = [S(0.0, 0, 0), S(1.0, 1, 0), S(2.0, 1, 1)]
    live_metrics.write_run(tmp_path / "p", requests, samples, ["0.1 0.2 0.3", "0.4 0.5 0.6"])
    assert live_metrics.read_run(tmp_path / "p") == (requests, samples)
    assert (tmp_path / "p" / "loadavg.txt").read_text().split("\n")[:2] == [
        "0.1 0.2 0.3",
        "0.4 0.5 0.6",
    ]


def test_no_answer_at_all_is_reported_as_nan_latency_not_a_crash() -> None:
    s = live_metrics.summarise([R(0, 5, 0)], [], slo_s=1.0, end=10)
    assert s.attainment == 0 and s.lost == 1 and math.isnan(s.p99)


def test_keda_reads_the_queue_and_what_the_activator_holds_and_the_tuned_one_differs() -> None:
    default = live.scaled_object("ns", "http://p", tuned=False)["spec"]
    tuned = live.scaled_object("ns", "http://p", tuned=True)["spec"]
    query = default["triggers"][0]["metadata"]["query"]
    assert "nv_inference_pending_request_count" in query
    assert "tideserve_activator_held_requests" in query
    assert default["minReplicaCount"] == 0 and "pollingInterval" not in default
    assert tuned["pollingInterval"] == 5 and tuned["cooldownPeriod"] == 30
    isvc = live.inference_service("ns", "pvc://models", external=True)["spec"]
    assert isvc["scaling"]["mode"] == "external" and isvc["replicas"] == 0
    assert (
        "mode"
        not in live.inference_service("ns", "pvc://models", external=False)["spec"]["scaling"]
    )


def test_a_recorded_window_is_offsets_from_its_first_request_rate_scaled_keeping_its_shape() -> (
    None
):
    offsets = live_metrics.window([100.0, 100.5, 130.0, 500.0], seconds=60)
    assert offsets == [0.0, 0.5, 30.0]
    tripled = live_metrics.rate_scaled(offsets, factor=3, seed=1)
    assert len(tripled) == 9 and tripled == live_metrics.rate_scaled(offsets, 3, seed=1)
    assert all(any(0 <= t - o < 0.1 for o in offsets) for t in tripled)


def test_cold_starts_are_read_from_each_rise_of_desired_until_as_many_are_ready() -> None:
    samples = [S(0, 0, 0), S(1, 1, 0), S(11, 1, 1), S(20, 3, 1), S(30, 3, 2), S(33, 3, 3)]
    assert live_sim.cold_starts(samples) == [10, 10, 13]


def test_the_simulated_keda_reads_the_live_signal_pending_plus_held() -> None:
    series = pipeline.Series(pipeline.PipelineConfig())
    series.add_sample(pipeline.Sample(0.0, 1.0, pending=5, success=0, queue_s=0.0, busy_s=0.0))
    view = live_sim.queue_view(pipeline.View(2.0, 1, 1, 7, series))
    assert list(view.series.concurrency) == [(2.0, 12.0)]


def test_the_simulator_check_runs_every_live_policy_on_the_same_trace() -> None:
    offsets = live_metrics.arrivals([live_metrics.Segment(5, 0), live_metrics.Segment(20, 20)], 1)
    model = live_sim.live_model(100, cold_s=5.0)
    for name, build in live_sim.policies(3, 4.0, 1.0).items():
        s = live_sim.simulate_once(build(), offsets, 40.0, model, 1.0, 3)
        assert s.requests == len(offsets), name
        assert 0 < s.replica_seconds <= 3 * 40, name
    # The HPA's floor: a replica Ready from its cold start on, never zero; measured over
    # the trace's own window when it starts later in the policy's clock.
    hpa = live_sim.policies(3, 4.0, 1.0)["hpa-default"]
    s = live_sim.simulate_once(hpa(), [], 40.0, model, 1.0, 3)
    assert s.replica_seconds == pytest.approx(35.0) and s.seconds_at_zero == 0
    s = live_sim.simulate_once(hpa(), [], 40.0, model, 1.0, 3, shift=30.0)
    assert s.replica_seconds == pytest.approx(40.0) and s.cold_starts == 0
    phased = live_sim.simulate(hpa, [], 40.0, model, 1.0, 3)
    assert phased.mean.replica_seconds == pytest.approx(40.0)
    assert phased.replica_s_range == pytest.approx((40.0, 40.0))


def test_the_metrics_adapter_parses_its_paths_and_writes_quantities_in_thousandths() -> None:
    prefix = "/apis/external.metrics.k8s.io/v1beta1"
    assert metrics_adapter.metric_path(f"{prefix}/namespaces/ns/q?labelSelector=a%3Db") == (
        "ns",
        "q",
    )
    assert metrics_adapter.metric_path(f"{prefix}/namespaces/ns") is None
    assert metrics_adapter.quantity(12.3456) == "12346m"
    assert metrics_adapter.quantity(0) == "0m"


def test_the_second_pass_starts_from_the_state_at_its_start() -> None:
    samples = [S(0, 0, 0), S(9, 3, 3), S(12, 2, 2)]
    assert live_metrics.second_pass(samples, 10) == [S(0, 3, 3), S(2, 2, 2)]
    assert live_metrics.second_pass(samples, 12) == [S(0, 2, 2)]
