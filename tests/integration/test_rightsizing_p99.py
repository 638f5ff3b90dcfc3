"""Right-sizing's latency signal on a real Triton scraped by the test bed's Prometheus: the
p99 from Triton's own latency summary (--metrics-config=summary_latencies=true, as the
rendered Deployment passes it), not a mean."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tideserve_testbed import fixtures

from tideserve.rightsizing import advisor, signals

pytestmark = pytest.mark.integration

DELAY_MS = 20  # the tiny model's time per batch


def test_latency_signal_is_tritons_p99(
    prometheus: fixtures.Prometheus, start_triton: Callable[..., fixtures.Triton]
) -> None:
    key = ("p99-ns", "p99-endpoint")
    labels = {"namespace": key[0], "name": key[1], "pod": "p99-endpoint-predictor-a1b2-c3d4"}
    server = start_triton(labels=labels, delay_ms=DELAY_MS)
    window = signals.Window(history_seconds=120, step_seconds=5, rate_seconds=20)
    prom = signals.Prometheus(prometheus.url)
    try:
        with fixtures.load(server, concurrency=4):

            def observed() -> advisor.Observation | None:
                obs = signals.gather(prom, time.time(), window).get(key)
                return obs if obs is not None and obs.latency_ms and obs.peak_rps else None

            obs = fixtures.eventually(observed, 90, "a p99 for the endpoint")
            now = time.time()
            mean_us = prom.instant(
                f'sum(rate(nv_inference_request_duration_us{{name="{key[1]}"}}[20s]))'
                f' / sum(rate(nv_inference_request_success{{name="{key[1]}"}}[20s]))',
                now,
            )
            summary = prom.instant(
                f'max(max_over_time(nv_inference_request_summary_us{{name="{key[1]}",'
                'quantile="0.99"}[120s]))',
                now,
            )
    finally:
        prom.close()
    assert obs.latency_ms is not None
    # A p99 of a model that takes DELAY_MS per batch, with four clients queueing.
    assert obs.latency_ms >= DELAY_MS
    [(_, mean)] = mean_us
    assert obs.latency_ms >= mean / 1000  # a tail, not the mean
    [(_, worst)] = summary
    assert obs.latency_ms <= worst / 1000 + 1e-9  # the summary's own quantile, no other
    assert not any("mean" in note for note in obs.notes)
