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
CHILD_APPLIES = prometheus_client.Counter(
    "tideserve_child_applies_total",
    "Server-side applies of children, by kind and cause (plan, repair, route).",
    ["kind", "cause"],
)
DRIFT_REPAIRS = prometheus_client.Counter(
    "tideserve_drift_repairs_total",
    "Children applied again because they were deleted or edited by another manager.",
    ["kind"],
)
LEADER = prometheus_client.Gauge(
    "tideserve_leader",
    "1 while this operator process holds the leader Lease (and runs handlers and loops).",
)
CRD_CURRENT = prometheus_client.Gauge(
    "tideserve_crd_current",
    "1 when the installed InferenceService CRD is the one this operator was built with "
    "(checked at start), 0 when it is older or newer.",
)
