"""The Kubernetes HorizontalPodAutoscaler algorithm, transcribed from its controller.

Sources: kubernetes/pkg/controller/podautoscaler/replica_calculator.go
(calcPlainMetricReplicas, GetExternalPerPodMetricReplicas) and horizontal.go
(stabilizeRecommendationWithBehaviors, convertDesiredReplicasWithBehaviorRate,
calculateScaleUpLimitWithScalingRules, calculateScaleDownLimitWithBehaviors), with the
autoscaling/v2 behavior defaults. Functions are pure; `Hpa` keeps the controller's
memory (recommendations and scale events) between syncs.
"""

from __future__ import annotations

import dataclasses
import math

from tideserve.sim import pipeline


@dataclasses.dataclass(frozen=True)
class RatePolicy:
    kind: str  # "Pods" | "Percent"
    value: int
    period_s: float


@dataclasses.dataclass(frozen=True)
class Rules:
    stabilization_s: float
    policies: tuple[RatePolicy, ...]
    select: str = "Max"  # "Max" | "Min" | "Disabled"


# autoscaling/v2 defaults: up at once, max(4 pods, 100%) per 15 s; down after 300 s.
DEFAULT_UP = Rules(0.0, (RatePolicy("Percent", 100, 15.0), RatePolicy("Pods", 4, 15.0)))
DEFAULT_DOWN = Rules(300.0, (RatePolicy("Percent", 100, 15.0),))
TOLERANCE = 0.1


def plain_metric_replicas(
    current: int,
    ready: int,
    unready: int,
    usage_per_ready: float,
    target: float,
    tolerance: float = TOLERANCE,
) -> int:
    """calcPlainMetricReplicas for a Pods metric (AverageValue) with unready pods.

    `usage_per_ready` is the mean metric over ready pods (the ones reporting). Unready
    pods count as 0 on a scale-up, so loading pods damp a runaway scale-up.
    """
    if ready == 0:
        return current  # "did not receive metrics for targeted pods": no change
    ratio = usage_per_ready / target
    if not (unready > 0 and ratio > 1.0):
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready)
    total = usage_per_ready * ready
    new_ratio = total / (target * (ready + unready))
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    new = math.ceil(new_ratio * (ready + unready))
    return current if new < current else new


def external_per_pod_replicas(
    status_replicas: int,
    usage_total: float,
    target_per_pod: float,
    tolerance: float = TOLERANCE,
) -> int:
    """GetExternalPerPodMetricReplicas: an External metric with an AverageValue target."""
    if status_replicas == 0:
        return 0
    ratio = usage_total / (target_per_pod * status_replicas)
    if abs(1.0 - ratio) > tolerance:
        return math.ceil(usage_total / target_per_pod)
    return status_replicas


def change_in_period(events: list[tuple[float, int]], now: float, period_s: float) -> int:
    return sum(change for t, change in events if t > now - period_s)


def period_start(
    current: int,
    up: list[tuple[float, int]],
    down: list[tuple[float, int]],
    now: float,
    period_s: float,
) -> int:
    """Replicas at the start of a policy's period (the HPA's periodStartReplicas)."""
    return current - change_in_period(up, now, period_s) + change_in_period(down, now, period_s)


def scale_up_limit(
    current: int,
    up: list[tuple[float, int]],
    down: list[tuple[float, int]],
    now: float,
    rules: Rules,
) -> int:
    if rules.select == "Disabled":
        return current
    results = []
    for p in rules.policies:
        start = period_start(current, up, down, now, p.period_s)
        if p.kind == "Pods":
            results.append(start + p.value)
        else:
            results.append(math.ceil(start * (1 + p.value / 100)))
    return min(results) if rules.select == "Min" else max(results)


def scale_down_limit(
    current: int,
    up: list[tuple[float, int]],
    down: list[tuple[float, int]],
    now: float,
    rules: Rules,
) -> int:
    if rules.select == "Disabled":
        return current
    results = []
    for p in rules.policies:
        start = period_start(current, up, down, now, p.period_s)
        if p.kind == "Pods":
            results.append(start - p.value)
        else:
            results.append(int(start * (1 - p.value / 100)))
    return max(results) if rules.select == "Min" else min(results)


def stabilize(
    recommendations: list[tuple[float, int]],
    now: float,
    desired: int,
    current: int,
    up: Rules,
    down: Rules,
) -> int:
    """Keep the recommendation inside [min of the up window, max of the down window]."""
    up_rec, down_rec = desired, desired
    for t, rec in recommendations:
        if t > now - up.stabilization_s:
            up_rec = min(up_rec, rec)
        if t > now - down.stabilization_s:
            down_rec = max(down_rec, rec)
    return min(max(current, up_rec), down_rec)


def rate_limit(
    desired: int,
    current: int,
    min_replicas: int,
    max_replicas: int,
    up_events: list[tuple[float, int]],
    down_events: list[tuple[float, int]],
    now: float,
    up: Rules,
    down: Rules,
) -> int:
    if desired > current:
        limit = max(current, scale_up_limit(current, up_events, down_events, now, up))
        return min(desired, max_replicas, limit)
    if desired < current:
        limit = min(current, scale_down_limit(current, up_events, down_events, now, down))
        return max(desired, min_replicas, limit)
    return desired


class Hpa:
    """One HPA object: `sync` is one pass of the controller's reconcile loop."""

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        up: Rules = DEFAULT_UP,
        down: Rules = DEFAULT_DOWN,
    ) -> None:
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.up, self.down = up, down
        self.recommendations: list[tuple[float, int]] = []
        self.up_events: list[tuple[float, int]] = []
        self.down_events: list[tuple[float, int]] = []

    def sync(self, now: float, current: int, metric_desired: int | None) -> int:
        if current == 0 and self.min_replicas != 0:
            return 0  # scaling is disabled at zero (ScalingActive=False)
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        elif metric_desired is None:
            return current  # FailedGetMetric: keep the scale as it is
        else:
            keep = max(self.up.stabilization_s, self.down.stabilization_s)
            self.recommendations = [r for r in self.recommendations if r[0] > now - keep]
            stable = stabilize(
                self.recommendations, now, metric_desired, current, self.up, self.down
            )
            self.recommendations.append((now, metric_desired))
            desired = rate_limit(
                stable,
                current,
                self.min_replicas,
                self.max_replicas,
                self.up_events,
                self.down_events,
                now,
                self.up,
                self.down,
            )
        longest = max(p.period_s for p in self.up.policies + self.down.policies)
        self.up_events = [e for e in self.up_events if e[0] > now - longest]
        self.down_events = [e for e in self.down_events if e[0] > now - longest]
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        return desired


class HpaPolicy:
    """HPA on GPU utilization per pod (DCGM / Triton via prometheus-adapter, Pods metric).

    Utilization is what HPA users scale GPU inference on; a queue-depth metric is
    zero whenever capacity suffices, so HPA's proportional rule would ask for zero
    and flap (measured: 3 -> 1 -> 4 -> 1 at noon on the diurnal trace).
    """

    tick_s = 15.0
    needs_concurrency = False
    activator_cap: int | None = None
    initial_replicas = 1

    def __init__(self, target_utilization: float, max_replicas: int, down_s: float = 300.0) -> None:
        self.name = f"hpa(util={target_utilization:.0%},down={down_s:g}s)"
        self.target = target_utilization
        self.hpa = Hpa(
            1, max_replicas, down=dataclasses.replace(DEFAULT_DOWN, stabilization_s=down_s)
        )

    def decide(self, view: pipeline.View) -> int:
        busy = view.series.busy_replicas()
        metric: int | None = None
        if busy is not None and view.ready > 0:
            metric = plain_metric_replicas(
                view.current,
                view.ready,
                view.current - view.ready,
                min(1.0, busy / view.ready),
                self.target,
            )
        return self.hpa.sync(view.now, view.current, metric)
