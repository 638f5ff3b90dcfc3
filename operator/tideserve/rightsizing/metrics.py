"""Operator metrics for cost, in the process-wide registry the operator serves."""

from __future__ import annotations

import contextlib

import prometheus_client

COST_PER_HOUR = prometheus_client.Gauge(
    "tideserve_cost_per_hour",
    "Cost per hour of the replicas an InferenceService runs now (catalog prices).",
    ["namespace", "name"],
)
COST_PER_1K = prometheus_client.Gauge(
    "tideserve_cost_per_1k_inferences",
    "Accelerator cost per 1,000 inferences served over the recent window.",
    ["namespace", "name"],
)
RECOMMENDED_COST_PER_HOUR = prometheus_client.Gauge(
    "tideserve_recommended_cost_per_replica_hour",
    "Cost per replica-hour of the right-sizing recommendation.",
    ["namespace", "name"],
)
TICKS = prometheus_client.Counter(
    "tideserve_rightsizing_ticks", "Right-sizing loop passes.", ["result"]
)

_ENDPOINT_GAUGES = (COST_PER_HOUR, COST_PER_1K, RECOMMENDED_COST_PER_HOUR)


def publish(
    namespace: str,
    name: str,
    per_hour: float | None,
    per_1k: float | None,
    recommended: float | None,
) -> None:
    for gauge, value in zip(_ENDPOINT_GAUGES, (per_hour, per_1k, recommended), strict=True):
        if value is None:
            forget_one(gauge, namespace, name)
        else:
            gauge.labels(namespace=namespace, name=name).set(value)


def forget_one(gauge: prometheus_client.Gauge, namespace: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(namespace, name)


def forget(namespace: str, name: str) -> None:
    for gauge in _ENDPOINT_GAUGES:
        forget_one(gauge, namespace, name)
