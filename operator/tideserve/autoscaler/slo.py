"""SLO attainment per endpoint, measured the way spec.slo states the goal. Pure.

A request is good when it was answered within every target the spec states (queue time
and/or latency). Where each part comes from, and how exact it is:

- Requests Triton served (`nv_inference_request_success`): Triton exports no latency
  histogram in the version we ship (the pytriton 0.7 server has only
  `--metrics-config summary_latencies=true`), so the good share of an interval is read
  from its summaries' quantiles (`nv_inference_queue_summary_us`,
  `nv_inference_request_summary_us`, p50/p90/p95/p99/p99.9 over its recent window, the
  worst pod and model of the endpoint): linear between the quantiles around the target,
  1.0 at or above p99.9 (the truth is then between 0.999 and 1). With both targets
  the smaller share counts (the slow-queue requests are the slow ones).
- Requests Triton failed (`nv_inference_request_failure`): bad.
- Requests the activator held while the endpoint woke (`tideserve_activator_hold_seconds`,
  exact per request): a held request that waited longer than the smallest stated target
  is bad even if Triton then answered it at once (it is in Triton's count, so it is taken
  off the good share); the hold buckets are fixed, so the largest bucket at or below the
  target decides (conservative: a request held between that bucket and the target
  counts as late). Held requests that expired or were refused, and requests refused
  because the hold queue was full (429), never reached Triton: bad.

Intervals are accounted at fixed times (settings.slo_interval_seconds) from the counters'
raw values, differenced per series against the previous pass (exact, unlike consecutive
`increase()` windows); the operator adds them to its counters
(`tideserve_slo_requests_total`, `tideserve_slo_good_requests_total`) and keeps the last
hour in memory for status.slo.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from tideserve.api import spec as spec_api

Key = tuple[str, str]
STATUS_WINDOW_S = 3600.0
_BY = "by (namespace, name)"

# Counters are read raw, per series, and differenced against the previous pass in memory
# (`advance`): consecutive increase() windows would lose what happened between the last
# sample of one window and the first of the next. Quantiles are instant: Triton's
# summaries already cover its recent window.
QUERIES: dict[str, str] = {
    "served": "nv_inference_request_success",
    "failed": "nv_inference_request_failure",
    "queue_us": "max by (namespace, name, quantile) (nv_inference_queue_summary_us)",
    "latency_us": "max by (namespace, name, quantile) (nv_inference_request_summary_us)",
    "held": "tideserve_activator_hold_seconds_bucket",
    "full": 'tideserve_activator_requests_total{code="429"}',
}
COUNTERS = ("served", "failed", "held", "full")
Series = tuple[tuple[str, str], ...]  # a series' whole label set
Counters = dict[str, dict[Series, float]]  # query -> series -> last value


@dataclasses.dataclass(frozen=True)
class Observed:
    """One endpoint's figures for one interval (counts are increases over it)."""

    served: float = 0.0
    failed: float = 0.0
    queue_ms: Mapping[float, float] = dataclasses.field(default_factory=dict)
    latency_ms: Mapping[float, float] = dataclasses.field(default_factory=dict)
    # outcome -> {le (seconds, inf for +Inf) -> cumulative count}
    held: Mapping[str, Mapping[float, float]] = dataclasses.field(default_factory=dict)
    full: float = 0.0


@dataclasses.dataclass(frozen=True)
class Interval:
    good: float
    total: float
    seconds: float
    end: float  # Unix seconds
    # Late held requests Triton's count did not show yet (its scrape lags the
    # activator's): the next interval takes them off its good share.
    owed: float = 0.0


@dataclasses.dataclass(frozen=True)
class Ledger:
    """The intervals of the last STATUS_WINDOW_S, oldest first."""

    intervals: tuple[Interval, ...] = ()


def targets_ms(slo: spec_api.SloSpec) -> dict[str, float]:
    """The stated targets: {"queue": ms, "latency": ms} (empty: nothing to measure)."""
    out: dict[str, float] = {}
    if slo.queue_time_ms is not None:
        out["queue"] = slo.queue_time_ms
    if slo.latency_ms is not None:
        out["latency"] = slo.latency_ms
    return out


def share_within(quantiles: Mapping[float, float], target: float) -> float | None:
    """The share of requests at or under `target`, from a summary's quantiles (q -> value,
    same unit as target); None without a usable quantile."""
    points = sorted((q, v) for q, v in quantiles.items() if math.isfinite(v) and 0 < q < 1)
    if not points:
        return None
    if target >= points[-1][1]:
        return 1.0
    low_q, low_v = 0.0, 0.0
    for q, v in points:
        if target < v:
            if v <= low_v:
                return low_q
            return low_q + (q - low_q) * max(0.0, target - low_v) / (v - low_v)
        low_q, low_v = q, v
    return low_q  # unreachable: target < the last value returned above


def _within(buckets: Mapping[float, float], seconds: float) -> float:
    """Cumulative count of the largest bucket at or under `seconds`."""
    under = [le for le in buckets if le <= seconds]
    return buckets[max(under)] if under else 0.0


def _count(buckets: Mapping[float, float]) -> float:
    return buckets.get(math.inf, max(buckets.values(), default=0.0))


def interval(
    observed: Observed, slo: spec_api.SloSpec, seconds: float, end: float, owed: float = 0.0
) -> Interval | None:
    """Good and total requests of one interval (None: the spec states no target). `owed`:
    the previous interval's late held requests not yet in Triton's count; they, and this
    interval's, come off the good share; what is left over is owed once more, then
    dropped (a forwarded request Triton failed is counted as failed instead)."""
    targets = targets_ms(slo)
    if not targets:
        return None
    shares = []
    if "queue" in targets:
        shares.append(share_within(observed.queue_ms, targets["queue"]))
    if "latency" in targets:
        shares.append(share_within(observed.latency_ms, targets["latency"]))
    served = max(0.0, observed.served)
    hold_limit_s = min(targets.values()) / 1000.0
    forwarded = observed.held.get("forwarded", {})
    late = max(0.0, _count(forwarded) - _within(forwarded, hold_limit_s))
    never_served = sum(_count(b) for outcome, b in observed.held.items() if outcome != "forwarded")
    bad = max(0.0, observed.failed) + never_served + max(0.0, observed.full)
    debt = max(0.0, owed) + late
    if any(share is None for share in shares):
        # Served without the summaries that say how fast (no summary_latencies, or no
        # sample in Triton's window): only what is known bad counts, served requests not.
        matched = min(debt, served)
        return Interval(0.0, matched + bad, seconds, end, min(debt - matched, late))
    share = min((s for s in shares if s is not None), default=1.0)
    within = served * share
    matched = min(debt, within)
    return Interval(within - matched, served + bad, seconds, end, min(debt - matched, late))


def add(ledger: Ledger, new: Interval) -> Ledger:
    kept = tuple(i for i in ledger.intervals if i.end > new.end - STATUS_WINDOW_S)
    return Ledger((*kept, new))


def summary(ledger: Ledger) -> dict[str, Any] | None:
    """status.slo from the ledger (None before the first interval)."""
    if not ledger.intervals:
        return None
    good = sum(i.good for i in ledger.intervals)
    total = sum(i.total for i in ledger.intervals)
    out: dict[str, Any] = {
        "goodRequests": round(good),
        "totalRequests": round(total),
        "windowSeconds": round(sum(i.seconds for i in ledger.intervals)),
    }
    if total >= 0.5:
        # Floored, never rounded up: 0.98996 must not read as meeting 0.99.
        out["attainment"] = math.floor(min(1.0, good / total) * 10000) / 10000
    return out


def _key(labels: Mapping[str, str]) -> Key | None:
    namespace, name = labels.get("namespace"), labels.get("name")
    return (namespace, name) if namespace and name else None


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if not math.isnan(value) else None


def observe(results: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[Key, Observed]:
    """Prometheus rows (one list per QUERIES entry) -> Observed per endpoint."""
    sums: dict[Key, dict[str, float]] = {}
    quantiles: dict[Key, dict[str, dict[float, float]]] = {}
    held: dict[Key, dict[str, dict[float, float]]] = {}
    for query, rows in results.items():
        for row in rows:
            labels = row.get("metric") or {}
            key = _key(labels)
            value = _number((row.get("value") or [None, None])[1])
            if key is None or value is None:
                continue
            if query in ("served", "failed", "full"):
                figures = sums.setdefault(key, {})
                figures[query] = figures.get(query, 0.0) + value
            elif query in ("queue_us", "latency_us"):
                q = _number(labels.get("quantile"))
                if q is not None:
                    quantiles.setdefault(key, {}).setdefault(query, {})[q] = value / 1000.0
            elif query == "held":
                le = _number(labels.get("le"))
                if le is not None:
                    outcome = labels.get("outcome") or "forwarded"
                    buckets = held.setdefault(key, {}).setdefault(outcome, {})
                    buckets[le] = buckets.get(le, 0.0) + value
    out = {}
    for key in set(sums) | set(quantiles) | set(held):
        figures = sums.get(key, {})
        qs = quantiles.get(key, {})
        out[key] = Observed(
            served=figures.get("served", 0.0),
            failed=figures.get("failed", 0.0),
            queue_ms=qs.get("queue_us", {}),
            latency_ms=qs.get("latency_us", {}),
            held=held.get(key, {}),
            full=figures.get("full", 0.0),
        )
    return out


def _series(row: Mapping[str, Any]) -> Series:
    return tuple(sorted((row.get("metric") or {}).items()))


def advance(
    previous: Counters | None, results: Mapping[str, Iterable[Mapping[str, Any]]]
) -> tuple[dict[str, list[dict[str, Any]]], Counters]:
    """Counter rows -> rows of their increase since `previous` (a reset: the new value;
    a series not seen before: all of it, it appeared since), and the values to compare
    the next pass with. Quantile rows pass unchanged."""
    out: dict[str, list[dict[str, Any]]] = {}
    state: Counters = {}
    for query, rows in results.items():
        if query not in COUNTERS:
            out[query] = [dict(row) for row in rows]
            continue
        before = (previous or {}).get(query, {})
        now: dict[Series, float] = {}
        changed = []
        for row in rows:
            value = _number((row.get("value") or [None, None])[1])
            if value is None:
                continue
            key = _series(row)
            now[key] = value
            last = before.get(key)
            delta = value if last is None or value < last else value - last
            changed.append({"metric": row.get("metric") or {}, "value": [0, str(delta)]})
        state[query] = now
        out[query] = changed
    return out, state
