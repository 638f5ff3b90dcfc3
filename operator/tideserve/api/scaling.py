"""The InferenceService spec's scaling part: bounds, target, scale to zero, behavior.

What the autoscaler reads; spec.py holds the rest of the spec and re-exports these
names, so `tideserve.api.spec.ScalingSpec` keeps working. Field descriptions are user
documentation (`kubectl explain`); cross-field rules are `base.Rule`s (CEL and pydantic).
"""

from __future__ import annotations

import enum

import pydantic

from tideserve.api import base
from tideserve.api import schedule as schedule_api


class TargetType(enum.StrEnum):
    QUEUE_DEPTH = "queueDepth"
    QUEUE_TIME = "queueTime"
    CONCURRENCY = "concurrency"


class TargetSpec(base.Model):
    type: TargetType = pydantic.Field(
        TargetType.QUEUE_DEPTH,
        description="queueDepth: queued requests per replica; queueTime: mean queue "
        "milliseconds per request; concurrency: in-flight requests per replica.",
    )
    value: float | None = pydantic.Field(
        None,
        gt=0,
        le=1_000_000,
        description="Target value per replica for the chosen type. Omitted: 4, except for "
        "queueDepth with spec.slo.queueTimeMs set, where it is learned per endpoint: the "
        "queue whose mean wait is 40% of queueTimeMs at the peak rate a replica was "
        "measured to serve (4 until measured).",
    )


class ScaleToZeroSpec(base.Model):
    idle_seconds: int | None = pydantic.Field(
        None,
        ge=0,
        le=7 * 86400,
        description="With a floor of 0 (minReplicas: 0 or a schedule window with "
        "minReplicas: 0), scale to zero after this long with no requests and none pending. "
        "Omitted: learned per endpoint from its idle gaps (keep warm through gaps that "
        "usually end soon, and then at least as long as a wake costs; drop to zero at once "
        "when no gap is worth covering) and kept warm while its time-of-day profile "
        "expects requests more often than one per wake's cost; 900 until a few gaps are "
        "seen.",
    )
    max_held_requests: int = pydantic.Field(
        1000,
        ge=1,
        le=100_000,
        description="At zero, each activator pod holds up to this many requests for this "
        "endpoint while it wakes; beyond it answers 429 with Retry-After. The cap is per "
        "activator pod: with N activator replicas the endpoint may hold up to N times this "
        "in all. Size it to the peak arrival rate x the cold start (or x the clients' "
        "timeout, if shorter: requests held longer time out anyway), divided by N.",
    )
    wake_deadline_seconds: int = pydantic.Field(
        900,
        ge=1,
        le=3600,
        description="How long a held request may wait for the endpoint to wake (long enough "
        "for GPU node provisioning); then 503 with Retry-After and the reason.",
    )


class ScalingRules(base.Model):
    stabilization_seconds: int | None = pydantic.Field(
        None,
        ge=0,
        le=3600,
        description="Use the most conservative recommendation of this window. Omitted: 0 "
        "for scaleUp; for scaleDown, learned per endpoint: twice the cold start observed "
        "(scale-up to Ready), within 60-300 s (300 until one is observed).",
    )
    max_percent: int = pydantic.Field(
        ..., ge=1, le=10_000, description="Change at most this percent of current replicas..."
    )
    max_replicas_change: int = pydantic.Field(
        ..., ge=1, le=10_000, description="...or this many replicas, whichever is larger..."
    )
    period_seconds: int = pydantic.Field(
        ..., ge=1, le=1800, description="...per this many seconds."
    )


def _scale_up_default() -> ScalingRules:
    return ScalingRules(
        stabilization_seconds=0, max_percent=100, max_replicas_change=4, period_seconds=15
    )


def _scale_down_default() -> ScalingRules:
    return ScalingRules(max_percent=100, max_replicas_change=4, period_seconds=15)


class BehaviorSpec(base.Model):
    rules = (
        base.Rule(
            cel="self.panicWindowSeconds <= self.stableWindowSeconds",
            message="panicWindowSeconds must be at most stableWindowSeconds: the panic window "
            "is the short one (defaults 6 and 60)",
            check=lambda b: b.panic_window_seconds <= b.stable_window_seconds,
            field_path=".panicWindowSeconds",
        ),
    )

    tolerance: float = pydantic.Field(
        0.1, ge=0, le=1, description="Ignore demand changes within this fraction of the target."
    )
    stable_window_seconds: int = pydantic.Field(
        60, ge=1, le=3600, description="Window over which demand is averaged for scaling."
    )
    panic_window_seconds: int = pydantic.Field(
        6, ge=1, le=600, description="Short window used to react to bursts (scale up only)."
    )
    panic_threshold: float = pydantic.Field(
        2.0,
        gt=1,
        le=100,
        description="Enter panic mode when short-window demand reaches this multiple of ready "
        "capacity; in panic tideserve scales up at once and does not scale down.",
    )
    scale_up: ScalingRules = pydantic.Field(
        default_factory=_scale_up_default, description="Rate limits for scaling up."
    )
    scale_down: ScalingRules = pydantic.Field(
        default_factory=_scale_down_default, description="Rate limits for scaling down."
    )


class ScalingMode(enum.StrEnum):
    BUILTIN = "builtin"
    EXTERNAL = "external"


class ScalingSpec(base.Model):
    rules = (
        base.Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must be less than or equal to maxReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
            field_path=".minReplicas",
        ),
        base.Rule(
            cel="!has(self.schedules) || self.schedules.all(w, !has(w.maxReplicas)"
            " || w.maxReplicas <= self.maxReplicas)",
            message="a schedule window's maxReplicas cannot exceed scaling.maxReplicas",
            check=lambda s: all(
                w.max_replicas is None or w.max_replicas <= s.max_replicas for w in s.schedules
            ),
            field_path=".schedules",
        ),
        base.Rule(
            cel="!has(self.schedules) || self.schedules.all(w, !has(w.minReplicas)"
            " || w.minReplicas <= self.maxReplicas)",
            message="a schedule window's minReplicas cannot exceed scaling.maxReplicas",
            check=lambda s: all(
                w.min_replicas is None or w.min_replicas <= s.max_replicas for w in s.schedules
            ),
            field_path=".schedules",
        ),
        base.Rule(
            cel="!has(self.schedules) || self.schedules.map(w, has(w.exceptDates)"
            f" ? size(w.exceptDates) : 0).sum() <= {schedule_api.EXCEPT_DATES_TOTAL_MAX}",
            message=f"the schedules' exceptDates must come to at most "
            f"{schedule_api.EXCEPT_DATES_TOTAL_MAX} dates in all",
            check=lambda s: (
                sum(len(w.except_dates) for w in s.schedules) <= schedule_api.EXCEPT_DATES_TOTAL_MAX
            ),
            field_path=".schedules",
        ),
    )

    mode: ScalingMode = pydantic.Field(
        ScalingMode.BUILTIN,
        description="builtin: tideserve's autoscaler owns replicas. external: an HPA or KEDA "
        "targets this InferenceService's scale subresource (spec.replicas) and tideserve "
        "only reports.",
    )
    min_replicas: int = pydantic.Field(
        1,
        ge=0,
        le=10_000,
        description="Floor while the endpoint is in use. 0 allows scale to zero after "
        "scaleToZero.idleSeconds; requests then wake it through the activator.",
    )
    max_replicas: int = pydantic.Field(5, ge=1, le=10_000, description="Ceiling.")
    target: TargetSpec = pydantic.Field(
        default_factory=TargetSpec, description="Demand per replica to aim for."
    )
    scale_to_zero: ScaleToZeroSpec = pydantic.Field(
        default_factory=ScaleToZeroSpec,
        description="Idle period and activator limits for endpoints that may reach zero.",
    )
    schedules: list[schedule_api.ScheduleWindow] = pydantic.Field(
        default_factory=list,
        max_length=32,
        description="Time windows with their own replica bounds (e.g. nights off). When "
        "several windows are open the first in this list wins.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    behavior: BehaviorSpec = pydantic.Field(
        default_factory=BehaviorSpec,
        description="Windows, tolerance, panic mode and rate limits.",
    )

    @pydantic.field_validator("schedules")
    @classmethod
    def _unique_names(
        cls, value: list[schedule_api.ScheduleWindow]
    ) -> list[schedule_api.ScheduleWindow]:
        names = [w.name for w in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(dupes)}")
        return value
