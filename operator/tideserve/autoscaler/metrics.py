"""The autoscaler's Prometheus metrics (served by the operator on settings.metrics_port)."""

from __future__ import annotations

import contextlib

import prometheus_client

DECISIONS = prometheus_client.Counter(
    "tideserve_scaling_decisions",
    "Autoscaler decisions, one per endpoint per tick, by kind "
    "(ScaleUp, ScaleDown, Panic, Idle, Wake, Schedule, Hold, Stable, External).",
    ["namespace", "name", "kind"],
)
DESIRED = prometheus_client.Gauge(
    "tideserve_desired_replicas", "Replicas the autoscaler wants.", ["namespace", "name"]
)
CURRENT = prometheus_client.Gauge(
    "tideserve_current_replicas",
    "Replicas of the predictor Deployment (spec.replicas) before this tick's decision.",
    ["namespace", "name"],
)
TICK_SECONDS = prometheus_client.Histogram(
    "tideserve_autoscaler_tick_seconds",
    "Time of one autoscaler tick over all endpoints (list, query, decide, write).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SIGNAL_AGE = prometheus_client.Gauge(
    "tideserve_signal_age_seconds",
    "Age of the freshest Triton sample for an endpoint (+Inf: no signals).",
    ["namespace", "name"],
)

SLO_REQUESTS = prometheus_client.Counter(
    "tideserve_slo_requests",
    "Requests counted for SLO attainment (served, failed, or held and refused), per "
    "endpoint with a target in spec.slo; only the leader counts.",
    ["namespace", "name"],
)
SLO_GOOD = prometheus_client.Counter(
    "tideserve_slo_good_requests",
    "Requests answered within every target spec.slo states (see tideserve.autoscaler.slo "
    "for how: Triton's latency summaries and the activator's hold times).",
    ["namespace", "name"],
)
SLO_ATTAINMENT = prometheus_client.Gauge(
    "tideserve_slo_attainment",
    "Good / total requests over the last hour, as in status.slo.attainment.",
    ["namespace", "name"],
)


def forget(namespace: str, name: str) -> None:
    """Drop an endpoint's series when it is deleted."""
    for gauge in (DESIRED, CURRENT, SIGNAL_AGE, SLO_ATTAINMENT, SLO_REQUESTS, SLO_GOOD):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
