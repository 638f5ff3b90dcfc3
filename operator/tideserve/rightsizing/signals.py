"""Prometheus -> per-endpoint observations: one query per signal for all endpoints.

Thin adapter over tideserve.prometheus (the operator's one Prometheus client, synchronous:
the loop runs it in a thread). Series are grouped by the
`namespace` and `name` labels the scrape puts on Triton's metrics; cAdvisor's container
series carry only `pod`, so they are mapped to an endpoint through the predictor pods'
names (`<name>-predictor-<hash>-<hash>`).

Where cAdvisor exists its per-container CPU and working set win: Triton's
nv_cpu_utilization and nv_cpu_memory_used_bytes describe the whole host the server runs
on (Triton reads /proc), an upper bound for one replica. Utilization is turned into cores
with the host's core count (`host_cores`, per pod when the caller knows the node).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import re
from collections.abc import Callable, Mapping

from tideserve import prometheus as prometheus_api
from tideserve.rightsizing import advisor, recommender

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
BY_POD = "namespace, name, pod"
BY_ENDPOINT = "namespace, name"
PREDICTOR_POD = re.compile(r"^(?P<name>.+)-predictor-[a-z0-9]+-[a-z0-9]+$")


@dataclasses.dataclass(frozen=True)
class Window:
    """How far back to look and at what resolution."""

    history_seconds: float = 8 * 86400.0  # VPA keeps 8 days of memory peaks
    step_seconds: float = 300.0
    rate_seconds: float = 120.0  # rate() window for counters
    cost_seconds: float = 3600.0  # the "recent window" of cost per 1,000 inferences


QUERIES: dict[str, str] = {
    "cpu_cadvisor": (
        'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{container!="",'
        'container!="POD",pod=~".+-predictor-.+"}}[{rate}s]))'
    ),
    "memory_cadvisor": (
        'sum by (namespace, pod) (container_memory_working_set_bytes{{container!="",'
        'container!="POD",pod=~".+-predictor-.+"}})'
    ),
    "cpu_triton": f"max by ({BY_POD}) (nv_cpu_utilization)",
    "memory_triton": f"max by ({BY_POD}) (nv_cpu_memory_used_bytes)",
    "gpu_memory": f"sum by ({BY_POD}) (nv_gpu_memory_used_bytes)",
    "gpu_utilization": f"avg by ({BY_POD}) (nv_gpu_utilization)",
    "rps": f"sum by ({BY_ENDPOINT}) (rate(nv_inference_request_success[{{rate}}s]))",
    "pod_rps": f"sum by ({BY_POD}) (rate(nv_inference_request_success[{{rate}}s]))",
    "latency_us": (
        f"sum by ({BY_ENDPOINT}) (rate(nv_inference_request_duration_us[{{rate}}s]))"
        f" / sum by ({BY_ENDPOINT}) (rate(nv_inference_request_success[{{rate}}s]))"
    ),
    # Triton's own p99 over its summary window (--metrics-config summary_latencies=true):
    # the slowest replica's, the worst within each step.
    "latency_p99_us": (
        f"max by ({BY_ENDPOINT}) (max_over_time("
        'nv_inference_request_summary_us{{quantile="0.99"}}[{step}s]))'
    ),
}
# Steps within this fraction of the peak request rate count as "at peak" for the p99.
PEAK_LOAD = 0.8
# Instant queries over the cost window.
COST_QUERIES: dict[str, str] = {
    # Each sample a replica exported metrics at counts `res` replica-seconds.
    "replica_samples": (
        f"sum by ({BY_ENDPOINT}) (count_over_time((count by ({BY_POD}) "
        "(nv_inference_request_success))[{cost}s:{res}s]))"
    ),
    "requests": f"sum by ({BY_ENDPOINT}) (increase(nv_inference_request_success[{{cost}}s]))",
    "oom_limit": (
        'max by (namespace, pod) (kube_pod_container_resource_limits{resource="memory"} '
        "* on (namespace, pod, container) group_left "
        'kube_pod_container_status_last_terminated_reason{reason="OOMKilled"})'
    ),
}


Series = list[tuple[dict[str, str], list[tuple[float, float]]]]


class Prometheus:
    """Range and instant queries; a failed query is logged and read as "no data" (one
    signal missing leaves the others usable)."""

    def __init__(self, url: str, timeout: float = 20.0) -> None:
        # Range queries over days of history take longer than the autoscaler's instants.
        self._client = prometheus_api.Client(url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def range(self, query: str, start: float, end: float, step: float) -> Series:
        try:
            rows = self._client.range(query, start, end, step)
        except prometheus_api.QueryError as exc:
            log.warning("prometheus query failed: %s (%s)", query, exc)
            return []
        return [
            (row.get("metric", {}), [(float(t), float(v)) for t, v in row.get("values", [])])
            for row in rows
        ]

    def instant(self, query: str, time: float) -> list[tuple[dict[str, str], float]]:
        try:
            rows = self._client.instant(query, time)
        except prometheus_api.QueryError as exc:
            log.warning("prometheus query failed: %s (%s)", query, exc)
            return []
        return [(row.get("metric", {}), float(row["value"][1])) for row in rows]


def endpoint_of(labels: Mapping[str, str]) -> Key | None:
    namespace = labels.get("namespace")
    name = labels.get("name")
    if not name:
        match = PREDICTOR_POD.match(labels.get("pod", ""))
        name = match.group("name") if match else None
    return (namespace, name) if namespace and name else None


def _finite(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(t, v) for t, v in points if math.isfinite(v)]


def gather(
    prometheus: Prometheus,
    now: float,
    window: Window = Window(),
    host_cores: Callable[[str, str], float] | None = None,
) -> dict[Key, advisor.Observation]:
    """One query per signal; the answers grouped into one Observation per endpoint."""
    start = now - window.history_seconds
    fmt = {
        "rate": int(window.rate_seconds),
        "cost": int(window.cost_seconds),
        "step": int(window.step_seconds),
    }
    series: dict[str, Series] = {
        name: prometheus.range(q.format(**fmt), start, now, window.step_seconds)
        for name, q in QUERIES.items()
    }
    # Replica presence at the step's resolution, at most a minute.
    res = int(min(60.0, max(1.0, window.step_seconds)))
    instant = {
        name: prometheus.instant(
            q.replace("{cost}", str(fmt["cost"])).replace("{res}", str(res)), now
        )
        for name, q in COST_QUERIES.items()
    }

    per: dict[Key, dict[str, list[tuple[float, float]]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for signal, rows in series.items():
        for labels, raw in rows:
            key = endpoint_of(labels)
            if key is None:
                continue
            points = _finite(raw)
            if signal == "cpu_triton":
                cores = (host_cores or _no_cores)(key[0], labels.get("pod", ""))
                points = [(t, v * cores) for t, v in points]
            per[key][signal].extend(points)

    ooms: dict[Key, list[recommender.Oom]] = collections.defaultdict(list)
    for labels, limit in instant["oom_limit"]:
        key = endpoint_of(labels)
        if key is not None:
            ooms[key].append(recommender.Oom(now, limit))
    replica_seconds = {endpoint_of(lb): v * res for lb, v in instant["replica_samples"]}
    requests = {endpoint_of(lb): v for lb, v in instant["requests"]}

    out: dict[Key, advisor.Observation] = {}
    for key in set(per) | set(ooms) | {k for k in replica_seconds if k}:
        signals = per.get(key, {})
        out[key] = observe(signals, ooms.get(key, []), replica_seconds.get(key), requests.get(key))
    return out


def _no_cores(namespace: str, pod: str) -> float:
    return 1.0


def observe(
    signals: Mapping[str, list[tuple[float, float]]],
    ooms: list[recommender.Oom],
    replica_seconds: float | None,
    requests: float | None,
) -> advisor.Observation:
    """One endpoint's series -> Observation (pure)."""
    cpu = signals.get("cpu_cadvisor") or signals.get("cpu_triton") or []
    memory = signals.get("memory_cadvisor") or signals.get("memory_triton") or []
    notes = []
    if memory and not signals.get("memory_cadvisor"):
        notes.append("CPU/memory from Triton's host-wide figures (no cAdvisor): an upper bound")
    rps = signals.get("rps") or []
    peak_time, peak = max(rps, key=lambda p: p[1], default=(0.0, 0.0))
    pods_at_peak = [v for t, v in signals.get("pod_rps", []) if t == peak_time and v > 0]
    per_replica = peak / len(pods_at_peak) if pods_at_peak else None
    util = sorted(v for _, v in signals.get("gpu_utilization", []))
    util_p90 = util[min(len(util) - 1, int(0.9 * len(util)))] if util else None
    latency_ms = p99_at_peak(signals.get("latency_p99_us", []), rps, peak)
    if latency_ms is None:
        mean = [v for _, v in signals.get("latency_us", []) if v > 0]
        latency_ms = max(mean) / 1000 if mean else None
        if latency_ms is not None:
            notes.append(
                "latency is Triton's mean, not a p99 (no nv_inference_request_summary_us: "
                "run Triton with --metrics-config=summary_latencies=true)"
            )
    return advisor.Observation(
        usage=recommender.Usage(
            cpu_cores=tuple(cpu),
            memory_bytes=tuple(memory),
            gpu_memory_bytes=tuple(signals.get("gpu_memory", [])),
            gpu_utilization=tuple(signals.get("gpu_utilization", [])),
            ooms=tuple(ooms),
        ),
        peak_rps=peak or None,
        rps_per_replica=per_replica,
        gpu_utilization=util_p90,
        latency_ms=latency_ms,
        replica_seconds=replica_seconds,
        requests=requests,
        notes=tuple(notes),
    )


def p99_at_peak(
    p99_us: list[tuple[float, float]], rps: list[tuple[float, float]], peak: float
) -> float | None:
    """The worst p99 (ms) over the steps whose request rate was near the peak: the latency
    a profile's throughput comes with. Steps with no rate known count as at peak."""
    load = dict(rps)
    near = [v for t, v in p99_us if v > 0 and load.get(t, peak) >= PEAK_LOAD * peak]
    return max(near) / 1000 if near else None
