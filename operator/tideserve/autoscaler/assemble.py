"""Signals from the values read for one tick: Prometheus rows + activator held counts. Pure.

Split from signals.py (which holds the Prometheus and HTTP clients) so the simulator
calls the same assembly the operator's loop does instead of mirroring it: pending is
Triton's queue plus the activator's held requests; queue time is 0 when nothing
finished (0/0 in PromQL); age is measured from the sample's timestamp; an endpoint
without Triton series (nothing Ready, or at zero) gets Nones and its held count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tideserve.autoscaler import policy

Key = tuple[str, str]  # (namespace, InferenceService name)

# The rate window: long enough for two scrapes at the default 15 s interval; what the
# policy's capacity learning waits for after a replica change (demand.SETTLE_S).
RATE_WINDOW_S = 30
_W = f"{RATE_WINDOW_S}s"
_BY = "by (namespace, name)"
QUERIES: dict[str, str] = {
    "pending": f"sum {_BY} (nv_inference_pending_request_count)",
    "queue_us": (
        f"sum {_BY} (rate(nv_inference_queue_duration_us[{_W}]))"
        f" / sum {_BY} (rate(nv_inference_request_success[{_W}]))"
    ),
    "rate": f"sum {_BY} (rate(nv_inference_request_success[{_W}]))",
    "sampled_at": f"max {_BY} (timestamp(nv_inference_pending_request_count))",
}
# Returned for an endpoint Prometheus has no series for, when Prometheus answered.
NO_SERIES = policy.Signals(None, None, None, held=0, age_s=0.0)


def endpoint(
    *,
    pending: float | None,
    queue_time_s: float | None,
    rate: float | None,
    sampled_at: float | None,
    held: int,
    evaluated_at: float,
) -> policy.Signals:
    """One endpoint's Signals from its values (None: no series for that value)."""
    queue_s = queue_time_s if queue_time_s is not None and math.isfinite(queue_time_s) else None
    if rate is not None and rate == 0:
        queue_s = 0.0  # no requests finished: 0/0 in PromQL, nothing queued for long
    age = max(0.0, evaluated_at - sampled_at) if sampled_at is not None else 0.0
    return policy.Signals(
        pending=None if pending is None else pending + held,
        queue_time_s=queue_s,
        request_rate=rate,
        held=held,
        age_s=age,
    )


def _rows(result: Sequence[Mapping[str, Any]]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for row in result:
        labels = row.get("metric") or {}
        namespace, name = labels.get("namespace"), labels.get("name")
        if not namespace or not name:
            continue  # a series without the labels cannot be attributed to an endpoint
        try:
            value = float(row["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        out[(str(namespace), str(name))] = value
    return out


def combine(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    held: Mapping[Key, int],
    evaluated_at: float,
) -> dict[Key, policy.Signals]:
    """The query results (Prometheus JSON rows) and held counts -> Signals per key."""
    tables = {name: _rows(results.get(name, ())) for name in QUERIES}
    keys: set[Key] = set(held)
    for table in tables.values():
        keys |= set(table)
    out: dict[Key, policy.Signals] = {}
    for key in keys:
        queue_us = tables["queue_us"].get(key)
        out[key] = endpoint(
            pending=tables["pending"].get(key),
            queue_time_s=None if queue_us is None else queue_us / 1e6,
            rate=tables["rate"].get(key),
            sampled_at=tables["sampled_at"].get(key),
            held=int(held.get(key, 0)),
            evaluated_at=evaluated_at,
        )
    return out
