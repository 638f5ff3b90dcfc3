"""The operator's own Prometheus metrics (served on settings.metrics_port)."""

from __future__ import annotations

import prometheus_client

RECONCILES = prometheus_client.Counter(
    "tideserve_reconciles_total",
    "Reconciles of InferenceServices, by result (applied, unchanged, invalid, blocked).",
    ["result"],
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "tideserve_reconcile_duration_seconds", "Time to validate, render and apply one object."
)
STATUS_WRITES = prometheus_client.Counter(
    "tideserve_status_writes_total", "Status writes (only when something changed)."
)
