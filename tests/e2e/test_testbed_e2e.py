"""Prometheus scrapes a real Triton and sees its queue grow under real load."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tideserve_testbed import fixtures

pytestmark = pytest.mark.e2e


def selector(labels: dict[str, str]) -> str:
    """PromQL label matchers: {k="v",...}."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@contextlib.contextmanager
def load(server: fixtures.Triton, concurrency: int) -> Iterator[list[int]]:
    """Closed-loop load: `concurrency` clients each sending one request at a time."""
    stop = threading.Event()
    done = [0]
    errors: list[BaseException] = []
    client = grpcclient.InferenceServerClient(url=server.grpc_url)

    def worker() -> None:
        data = np.arange(4, dtype=np.float32).reshape(1, 4)
        inp = grpcclient.InferInput("INPUT0", list(data.shape), "FP32")
        inp.set_data_from_numpy(data)
        while not stop.is_set():
            try:
                res = client.infer(server.model, [inp])
                np.testing.assert_array_equal(res.as_numpy("OUTPUT0"), data + 1)
                done[0] += 1
            except BaseException as e:  # surfaced in the test thread
                errors.append(e)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        yield done
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        client.close()
    if errors:
        raise errors[0]


def target_up(prometheus: fixtures.Prometheus, labels: dict[str, str]) -> bool:
    result = prometheus.query("up" + selector({"job": "triton", **labels}))
    return any(r["value"][1] == "1" for r in result)


def test_triton_target_is_scraped_with_inference_service_labels(
    triton: fixtures.Triton, prometheus: fixtures.Prometheus
) -> None:
    fixtures.eventually(lambda: target_up(prometheus, triton.labels), 30, "triton target up")
    (target,) = [
        t for t in prometheus.active_targets() if t["labels"].get("pod") == triton.labels["pod"]
    ]
    assert target["labels"]["namespace"] == triton.labels["namespace"]
    assert target["labels"]["name"] == triton.labels["name"]
    assert target["scrapeUrl"] == triton.metrics_url


def test_prometheus_sees_triton_queue_depth_under_load(
    triton: fixtures.Triton, prometheus: fixtures.Prometheus
) -> None:
    sel = selector({**triton.labels, "model": triton.model})
    fixtures.eventually(lambda: target_up(prometheus, triton.labels), 30, "triton target up")

    def queued() -> list[dict[str, Any]]:
        return prometheus.query(f"max_over_time(nv_inference_pending_request_count{sel}[20s]) > 0")

    with load(triton, concurrency=16) as done:
        result = fixtures.eventually(queued, 60, "nv_inference_pending_request_count > 0")
        queue_rate = fixtures.eventually(
            lambda: prometheus.query(f"rate(nv_inference_queue_duration_us{sel}[10s]) > 0"),
            30,
            "rate(nv_inference_queue_duration_us) > 0",
        )
    assert done[0] > 0
    (series,) = result
    assert series["metric"]["pod"] == triton.labels["pod"]
    assert float(series["value"][1]) >= 1
    assert float(queue_rate[0]["value"][1]) > 0
    successes = fixtures.eventually(
        lambda: prometheus.query(f"nv_inference_request_success{sel} > 0"), 30, "successes"
    )
    assert float(successes[0]["value"][1]) > 0


def test_more_tritons_can_be_started_and_registered(
    start_triton: Callable[..., fixtures.Triton], prometheus: fixtures.Prometheus
) -> None:
    labels = {"namespace": "tideserve-e2e", "name": "second", "pod": "second-0"}
    second = start_triton(labels=labels, delay_ms=5)
    assert second.labels == labels
    config = json.loads(urllib.request.urlopen(f"{second.http_url}/v2/models/tiny/config").read())
    assert config["parameters"]["DELAY_MS"]["string_value"] == "5"
    fixtures.eventually(lambda: target_up(prometheus, labels), 30, "second triton target up")
    with load(second, concurrency=2) as done:
        fixtures.eventually(lambda: done[0] >= 5, 30, "inferences on the second server")
