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
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import httpx

from tideserve import prometheus
from tideserve.autoscaler import assemble, policy

log = logging.getLogger("tideserve.autoscaler.signals")

# The pure assembly lives in assemble.py (the simulator calls it too); re-exported here
# for the loop and the adapters' tests.
Key: TypeAlias = assemble.Key
RATE_WINDOW_S = assemble.RATE_WINDOW_S
QUERIES = assemble.QUERIES
NO_SERIES = assemble.NO_SERIES
combine = assemble.combine
QUERY_TIMEOUT_S = 10
DEMAND_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True)
class Demand:
    """Requests the activator holds, per endpoint (summed over activator pods)."""

    held: Mapping[Key, int]
    ok: bool


def prometheus_client(url: str) -> prometheus.Client:
    """The operator's one Prometheus client (TLS verified, no retries: the next tick is
    the retry, and a hanging query would stretch the tick for everyone)."""
    return prometheus.Client(url, timeout=QUERY_TIMEOUT_S)


async def query_all(
    client: prometheus.Client,
) -> tuple[dict[str, list[dict[str, Any]]], float] | None:
    """Run every query (in threads: the client is synchronous) at one evaluation time."""
    evaluated_at = time.time()
    try:
        answers = await asyncio.gather(
            *(asyncio.to_thread(client.instant, q, evaluated_at) for q in QUERIES.values())
        )
    except prometheus.QueryError as exc:
        log.warning("Prometheus query failed, holding every endpoint: %s", exc)
        return None
    return dict(zip(QUERIES, answers, strict=True)), evaluated_at


async def demand(client: httpx.AsyncClient, urls: Iterable[str]) -> Demand:
    """GET /demand from every activator pod at once and sum the held counts per
    endpoint (concurrently: one dead pod costs its timeout once, not per pod)."""

    async def fetch(url: str) -> list[Any] | None:
        try:
            response = await client.get(url, timeout=DEMAND_TIMEOUT_S)
            response.raise_for_status()
            rows: list[Any] = response.json().get("endpoints") or []
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("activator demand from %s failed: %s", url, exc)
            return None
        return rows

    held: dict[Key, int] = {}
    answers = await asyncio.gather(*(fetch(url) for url in urls))
    ok = all(rows is not None for rows in answers)
    for rows in answers:
        for row in rows or []:
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
    prom: prometheus.Client,
    http: httpx.AsyncClient,
    activator_urls: Sequence[str],
) -> tuple[dict[Key, policy.Signals] | None, Demand]:
    """Everything for one tick: Signals per endpoint (None: Prometheus failed)."""
    answers, held = await asyncio.gather(query_all(prom), demand(http, activator_urls))
    if answers is None:
        return None, held
    results, evaluated_at = answers
    return combine(results, held.held, evaluated_at), held
