"""Right-sizing against the real things: Triton on CPU, Prometheus scraping it, the API
server holding the InferenceService.

- The profiling probe (tritonclient) measures a real replica's throughput and p99.
- Triton's real usage metrics (nv_cpu_utilization, nv_cpu_memory_used_bytes), scraped by
  the real Prometheus, become a CPU/memory recommendation in status, written by the
  loop's pass with server-side apply, with an Event and cost figures.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from tideserve_testbed import fixtures

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.rightsizing import (
    catalog,
    histograms,
    loop,
    profiling,
    quantities,
    recommender,
    signals,
)

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_probe_measures_a_real_replica(start_triton: Callable[..., fixtures.Triton]) -> None:
    server = start_triton()
    profile, levels = profiling.probe(
        server.http_address, server.model, "cpu-1", concurrency=(1, 4), seconds=2.0
    )
    assert profile is not None
    assert levels[0].concurrency == 1
    assert all(lv.errors == 0 for lv in levels)
    # The tiny model sleeps 20 ms per batch: one client gets < 50 rps; batching lets
    # four clients get more.
    assert levels[0].rps < 50
    assert profile.p99_latency_ms >= 20
    assert profile.max_rps >= levels[0].rps
    assert profile.cores == 1
    # A target tighter than the model's own delay cannot be met.
    impossible, _ = profiling.probe(
        server.http_address, server.model, "cpu-1", 5.0, concurrency=(1,), seconds=1.0
    )
    assert impossible is None


def isvc(namespace: str, name: str) -> dict[str, Any]:
    # Over-provisioned on purpose: 8 cores and 48Gi for a model that uses little.
    resources = {"accelerator": "cpu", "cpu": "8", "memory": "48Gi",
                 "rightSizing": {"mode": "recommend"}}  # fmt: skip
    model = {"name": "tiny", "storageUri": "pvc://models/tiny"}
    return fixtures.isvc(name, namespace, model=model, resources=resources)


def upper_edge(buckets: histograms.Buckets, value: float) -> float:
    """The upper edge of the histogram bucket holding `value`."""
    return buckets.start(buckets.index(value) + 1)


def samples(prometheus: fixtures.Prometheus, metric: str, namespace: str) -> int:
    result = prometheus.query(f'count_over_time({metric}{{namespace="{namespace}"}}[5m])')
    return int(float(result[0]["value"][1])) if result else 0


def test_real_usage_becomes_a_cpu_memory_recommendation(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    namespace: str,
) -> None:
    name = "tiny"
    server = start_triton(
        labels={"namespace": namespace, "name": name, "pod": f"{name}-predictor-abc12-xyz34"}
    )
    kube.apply(isvc(namespace, name))
    with fixtures.load(server, concurrency=4, width=64) as done:
        fixtures.eventually(
            lambda: samples(prometheus, "nv_cpu_utilization", namespace) >= 10 or None,
            timeout=60, what="Prometheus scraping Triton's CPU metrics",
        )  # fmt: skip
        fixtures.eventually(
            lambda: prometheus.query(
                f'rate(nv_inference_request_success{{namespace="{namespace}"}}[10s]) > 0'
            ) or None,
            timeout=30, what="a request rate in Prometheus",
        )  # fmt: skip
    assert done[0] > 0

    kube_api.configure(str(kube.kubeconfig))
    settings = settings_mod.Settings(prometheus_url=prometheus.url, watch_namespaces=(namespace,))
    config = loop.Config(
        window=signals.Window(
            history_seconds=300, step_seconds=1, rate_seconds=10, cost_seconds=120
        )
    )
    # Both passes read the window ending at the same instant: the same data, twice.
    then = datetime.datetime.now(datetime.UTC)
    prom = signals.Prometheus(prometheus.url)
    try:
        result = loop.tick(settings, catalog.DEFAULT, prom, config, now=then)
    finally:
        prom.close()
    assert (namespace, name) in result.written
    assert (namespace, name) in result.events

    body = kube.get_json(
        "inferenceservices.serving.tideserve.io", "-n", namespace, name, "--show-managed-fields"
    )
    rec = body["status"]["recommendation"]
    assert rec["accelerator"] == "cpu"
    # The figures come from Triton's own metrics, as Prometheus stored them.
    util = max(
        float(r["value"][1])
        for r in prometheus.query(
            f'max_over_time(nv_cpu_utilization{{namespace="{namespace}"}}[5m])'
        )
    )
    used = max(
        float(r["value"][1])
        for r in prometheus.query(
            f'max_over_time(nv_cpu_memory_used_bytes{{namespace="{namespace}"}}[5m])'
        )
    )
    # The recommender rounds up to its histogram's bucket edge (5% geometric buckets, wider
    # than 5% relative near zero), adds the 15% margin, then rounds to a millicore / a MiB;
    # memory is at least the highest daily peak + the floor margin (40%).
    cores = quantities.parse(rec["cpu"])
    peak_cores = util * (os.cpu_count() or 1)
    assert 0.025 <= cores <= max(0.025, upper_edge(histograms.CPU, peak_cores) * 1.15) + 0.001
    memory = quantities.parse(rec["memory"])
    floor = 1 + recommender.FLOOR_MARGIN
    assert used * 1.15 <= memory <= upper_edge(histograms.MEMORY, used) * floor + quantities.MIB
    assert cores < 8  # over-provisioned CPU is called out
    assert rec["costPerHourRecommended"] < rec["costPerHourNow"]
    assert body["status"]["cost"]["perHour"] == 0  # status.replicas unset: nothing running
    assert body["status"]["cost"].get("per1kInferences", 0) > 0
    (condition,) = [c for c in body["status"]["conditions"] if c["type"] == "ResourcesFit"]
    assert condition["status"] == "True"
    managers = {m["manager"] for m in body["metadata"]["managedFields"]}
    assert loop.FIELD_MANAGER in managers
    events = kube.events(namespace, name)
    assert any(e["reason"] == loop.EVENT_REASON for e in events)

    # A second pass over the same data changes nothing: no write, no Event.
    prom = signals.Prometheus(prometheus.url)
    try:
        again = loop.tick(
            settings, catalog.DEFAULT, prom, config,
            now=then,
        )  # fmt: skip
    finally:
        prom.close()
    assert (namespace, name) not in again.events

    # `tideserve recommend --prometheus` computes the same live, writing nothing.
    tideserve = pathlib.Path(sys.executable).parent / "tideserve"
    out = subprocess.run(
        [str(tideserve), "recommend", "-n", namespace, "--kubeconfig", str(kube.kubeconfig),
         "--prometheus", prometheus.url, "--history", "300", "--step", "1", "-o", "wide"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert f"{namespace}/{name}" in out.stdout
    assert "MONTHLY AFTER" in out.stdout
    assert "host-wide" in out.stdout  # the reason says where the figures came from


def test_recommend_probe_prints_the_annotation(
    start_triton: Callable[..., fixtures.Triton],
) -> None:
    server = start_triton()
    tideserve = pathlib.Path(sys.executable).parent / "tideserve"
    out = subprocess.run(
        [str(tideserve), "recommend", "--probe", server.http_address, "--model", server.model,
         "--option", "cpu-2", "--seconds", "1"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert loop.PROFILES_ANNOTATION in out.stdout
    assert '"option": "cpu-2"' in out.stdout
    assert "concurrency 1:" in out.stderr
