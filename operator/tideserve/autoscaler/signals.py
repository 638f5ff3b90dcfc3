"""Signals for every endpoint, read once per tick: Prometheus (batched) + activator demand.

One PromQL query per signal per tick for ALL endpoints, grouped by the namespace and
name labels every Triton series carries (never one query per object), all evaluated at
the same instant. A failed query means no signals for anyone (the policy holds); an
endpoint without series (at zero, or not scraped yet) gets Signals with Nones, which
the policy reads as "normal at zero, unknown otherwise".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx
import prometheus_api_client
import urllib3

from tideserve.autoscaler import policy

log = logging.getLogger("tideserve.autoscaler.signals")

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
QUERY_TIMEOUT_S = 10
DEMAND_TIMEOUT_S = 2.0
# Returned for an endpoint Prometheus has no series for, when Prometheus answered.
NO_SERIES = policy.Signals(None, None, None, held=0, age_s=0.0)


@dataclasses.dataclass(frozen=True)
class Demand:
    """Requests the activator holds, per endpoint (summed over activator pods)."""

    held: Mapping[Key, int]
    ok: bool


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
    """Pure: the query results (Prometheus JSON rows) and held counts -> Signals per key."""
    tables = {name: _rows(results.get(name, ())) for name in QUERIES}
    keys: set[Key] = set(held)
    for table in tables.values():
        keys |= set(table)
    out: dict[Key, policy.Signals] = {}
    for key in keys:
        pending = tables["pending"].get(key)
        queue_us = tables["queue_us"].get(key)
        rate = tables["rate"].get(key)
        sampled = tables["sampled_at"].get(key)
        held_now = int(held.get(key, 0))
        queue_s = queue_us / 1e6 if queue_us is not None and math.isfinite(queue_us) else None
        if rate is not None and rate == 0:
            queue_s = 0.0  # no requests finished: 0/0 in PromQL, nothing queued for long
        age = max(0.0, evaluated_at - sampled) if sampled is not None else 0.0
        out[key] = policy.Signals(
            pending=None if pending is None else pending + held_now,
            queue_time_s=queue_s,
            request_rate=rate,
            held=held_now,
            age_s=age,
        )
    return out


def prometheus_client(url: str) -> prometheus_api_client.PrometheusConnect:
    # No retries inside the client: the next tick is the retry, and a hanging query
    # would stretch the tick for everyone.
    return prometheus_api_client.PrometheusConnect(
        url=url,
        disable_ssl=True,
        retry=urllib3.util.retry.Retry(total=0),
        timeout=QUERY_TIMEOUT_S,
    )


async def query_all(
    prometheus: prometheus_api_client.PrometheusConnect,
) -> tuple[dict[str, list[dict[str, Any]]], float] | None:
    """Run every query (in threads: the client is synchronous) at one evaluation time."""
    evaluated_at = time.time()
    params = {"time": f"{evaluated_at:.3f}"}

    def one(query: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = prometheus.custom_query(query, params=params)
        return result

    try:
        answers = await asyncio.gather(*(asyncio.to_thread(one, q) for q in QUERIES.values()))
    except Exception as exc:
        log.warning("Prometheus query failed, holding every endpoint: %s", exc)
        return None
    return dict(zip(QUERIES, answers, strict=True)), evaluated_at


async def demand(client: httpx.AsyncClient, urls: Iterable[str]) -> Demand:
    """GET /demand from each activator pod and sum the held counts per endpoint."""
    held: dict[Key, int] = {}
    ok = True
    for url in urls:
        try:
            response = await client.get(url, timeout=DEMAND_TIMEOUT_S)
            response.raise_for_status()
            rows = response.json().get("endpoints") or []
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("activator demand from %s failed: %s", url, exc)
            ok = False
            continue
        for row in rows:
            try:
                key = (str(row["namespace"]), str(row["name"]))
                held[key] = held.get(key, 0) + int(row.get("held", 0))
            except (KeyError, TypeError, ValueError):
                continue
    return Demand(held, ok)


def demand_urls(slices: Sequence[Mapping[str, Any]], port_name: str = "control") -> list[str]:
    """Pure: /demand URLs of the ready activator pods from their EndpointSlices."""
    urls: list[str] = []
    for item in slices:
        port = next(
            (p.get("port") for p in item.get("ports") or [] if p.get("name") == port_name),
            None,
        )
        if port is None:
            continue
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.append(f"http://{host}:{port}/demand")
    return sorted(set(urls))


async def read(
    prometheus: prometheus_api_client.PrometheusConnect,
    client: httpx.AsyncClient,
    activator_urls: Sequence[str],
) -> tuple[dict[Key, policy.Signals] | None, Demand]:
    """Everything for one tick: Signals per endpoint (None: Prometheus failed)."""
    answers, held = await asyncio.gather(query_all(prometheus), demand(client, activator_urls))
    if answers is None:
        return None, held
    results, evaluated_at = answers
    return combine(results, held.held, evaluated_at), held
