"""The activator's Prometheus metrics, in a registry of their own (served on /metrics)."""

from __future__ import annotations

import prometheus_client

# Cold starts span a warm pod (under a second) to a GPU node being provisioned (many
# minutes), so the buckets go up to the longest wake deadline the API allows.
COLD_START_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
# Pass-through time: Triton answers tiny models in about a millisecond.
PROXY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
# Hold time per request: fine near request SLOs (milliseconds), coarse up to a GPU wake.
HOLD_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60, 120, 300, 600,
    900, 1800, 3600,
)  # fmt: skip


class Metrics:
    def __init__(self, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.registry = registry or prometheus_client.CollectorRegistry()
        self.held = prometheus_client.Gauge(
            "tideserve_activator_held_requests",
            "Requests the activator holds for an endpoint that is waking up.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.max_held = prometheus_client.Gauge(
            "tideserve_activator_max_held_requests",
            "The endpoint's hold cap in this activator pod (scaleToZero.maxHeldRequests); "
            "requests beyond it get 429.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.cold_start = prometheus_client.Histogram(
            "tideserve_activator_cold_start_seconds",
            "From the first held request of a wake to the first request forwarded.",
            ["namespace", "name"],
            buckets=COLD_START_BUCKETS,
            registry=self.registry,
        )
        self.requests = prometheus_client.Counter(
            "tideserve_activator_requests",
            "Requests answered by the activator, by endpoint and HTTP status (gRPC calls are "
            "counted under the equivalent HTTP status).",
            ["namespace", "name", "code"],
            registry=self.registry,
        )
        self.hold = prometheus_client.Histogram(
            "tideserve_activator_hold_seconds",
            "Time each held request waited, by outcome: forwarded (released to a ready "
            "replica), expired (wake deadline passed), refused (endpoint gone, drained).",
            ["namespace", "name", "outcome"],
            buckets=HOLD_BUCKETS,
            registry=self.registry,
        )
        self.proxy_seconds = prometheus_client.Histogram(
            "tideserve_activator_proxy_seconds",
            "Time to forward a request and receive the upstream's response headers.",
            buckets=PROXY_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
