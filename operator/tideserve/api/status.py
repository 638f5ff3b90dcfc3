"""The InferenceService status: what tideserve observed and decided.

Only the operator writes it. Conditions follow the Kubernetes API conventions.
"""

from __future__ import annotations

import datetime
import enum

import pydantic

from tideserve.api import base


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(enum.StrEnum):
    """Condition types tideserve writes.

    Ready is the summary GitOps tools and `kubectl wait` read. Progressing says where a
    not-ready endpoint is; ScaledToZero is healthy, not an error.
    """

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SCALED_TO_ZERO = "ScaledToZero"
    METRICS_AVAILABLE = "MetricsAvailable"
    SPEC_VALID = "SpecValid"
    SCHEDULABLE = "Schedulable"
    # Written by the autoscaler only while its decision for the endpoint fails.
    SCALING_ACTIVE = "ScalingActive"
    # kstatus' abnormal-true pair (Flux, cli-utils): on a custom resource it reads Ready
    # only as Current (True) or InProgress (False), so a spec that cannot work needs
    # Stalled to read Failed, and a rollout behind a serving Ready needs Reconciling.
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Condition(base.Model):
    type: str = pydantic.Field(..., max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus = pydantic.Field(..., description="True, False or Unknown.")
    reason: str = pydantic.Field(
        ...,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = pydantic.Field("", max_length=32768, description="Human readable details.")
    last_transition_time: datetime.datetime = pydantic.Field(
        ..., description="When the status last changed."
    )
    observed_generation: int | None = pydantic.Field(
        None, ge=0, description="metadata.generation the condition was computed from."
    )


class ScalingDecision(base.Model):
    time: datetime.datetime = pydantic.Field(..., description="When the decision was made.")
    from_replicas: int = pydantic.Field(..., ge=0, alias="from", description="Replicas before.")
    to_replicas: int = pydantic.Field(..., ge=0, alias="to", description="Replicas after.")
    kind: str = pydantic.Field(
        ..., max_length=64, description="ScaleUp, ScaleDown, Panic, Idle, Schedule, Wake, Hold."
    )
    reason: str = pydantic.Field(
        ..., max_length=1024, description="The decision in words, with the numbers behind it."
    )


class Recommendation(base.Model):
    accelerator: str = pydantic.Field(
        ..., max_length=128, description="Recommended option, e.g. cpu, gpu:NVIDIA-L4, mig:1g.10gb."
    )
    cpu: str | None = pydantic.Field(None, description="Recommended CPU request.")
    memory: str | None = pydantic.Field(None, description="Recommended memory request.")
    gpu_memory_bytes: int | None = pydantic.Field(
        None, ge=0, description="GPU memory the model needs, with headroom."
    )
    cost_per_hour_now: float | None = pydantic.Field(
        None, ge=0, description="Cost per replica-hour of the current hardware."
    )
    cost_per_hour_recommended: float | None = pydantic.Field(
        None, ge=0, description="Cost per replica-hour of the recommendation."
    )
    replicas: int | None = pydantic.Field(
        None, ge=0, description="Replicas the recommended option needs at peak load."
    )
    reason: str = pydantic.Field("", max_length=2048, description="Why, with the numbers.")
    generated_at: datetime.datetime | None = pydantic.Field(
        None, description="When it was computed."
    )
    oom_raised: bool | None = pydantic.Field(
        None,
        description="Memory was raised because a replica was OOM-killed: auto mode applies "
        "it at once, even mid-rollout (a replica that died will die again).",
    )


class Cost(base.Model):
    per_hour: float | None = pydantic.Field(
        None, ge=0, description="Cost per hour of the replicas running now (catalog prices)."
    )
    per_1k_inferences: float | None = pydantic.Field(
        None,
        alias="per1kInferences",
        ge=0,
        description="Accelerator cost per 1,000 inferences served over the recent window.",
    )


class Learned(base.Model):
    """What the builtin autoscaler learned of this endpoint, and the settings it derives.

    Written by the autoscaler (field manager tideserve-autoscaler) at most once a minute
    when it changes, and read back when an operator starts, so a restart or a failover
    keeps what was learned. Numbers are rounded; lists keep the newest samples.
    """

    capacity_per_replica: float | None = pydantic.Field(
        None,
        gt=0,
        description="Requests/s one replica serves with its queue at the target, as seen on "
        "this endpoint.",
    )
    capacity_measured: bool | None = pydantic.Field(
        None,
        description="True: capacityPerReplica was measured with the queue at its target; "
        "false: it is only a lower bound from periods with a short queue.",
    )
    peak_per_replica: float | None = pydantic.Field(
        None,
        gt=0,
        description="The most one replica served after its queue stayed at or above target "
        "for a whole rate window. With spec.slo.queueTimeMs set and no target value, the "
        "queue-depth target is peakPerReplica x queueTimeMs x 40 %.",
    )
    cold_starts_seconds: list[pydantic.NonNegativeFloat] = pydantic.Field(
        default_factory=list,
        max_length=8,
        description="Recent cold starts (a scale up until its replicas were Ready), in "
        "seconds, newest last.",
    )
    cold_start_seconds: float | None = pydantic.Field(
        None,
        ge=0,
        description="Median of coldStartsSeconds. With no scaleDown.stabilizationSeconds the "
        "scale-down window is twice this, within 60-300 s.",
    )
    idle_gaps_seconds: list[pydantic.NonNegativeInt] = pydantic.Field(
        default_factory=list,
        max_length=48,
        description="Recent idle gaps (seconds without traffic, pending or held requests "
        "between two uses), newest last. With no scaleToZero.idleSeconds the idle period "
        "comes from these (ski rental) once there are 4 or more.",
    )
    idle_gap_arrivals: list[pydantic.NonNegativeFloat] | None = pydantic.Field(
        None,
        max_length=48,
        description="Per idle gap (same order): requests that arrived within one cold start "
        "after it ended, what a wake from zero makes wait. Against spec.slo.attainment they "
        "decide how long an idle endpoint stays warm.",
    )
    idle_gap_requests: list[pydantic.NonNegativeFloat] | None = pydantic.Field(
        None,
        max_length=48,
        description="Per idle gap (same order): requests since the gap before it ended.",
    )
    requests_per_slot: list[pydantic.NonNegativeFloat] | None = pydantic.Field(
        None,
        max_length=96,
        description="Time-of-day profile: requests per quarter hour of the day (UTC, from "
        "00:00), weighted towards recent days. The endpoint is woken a cold start before a "
        "quarter hour that brings a request or more per cold start.",
    )
    slot_days: list[pydantic.NonNegativeInt] | None = pydantic.Field(
        None,
        max_length=96,
        description="Days each figure of requestsPerSlot is made of (at most 30).",
    )
    target: float | None = pydantic.Field(
        None,
        ge=0,
        description="The value of spec.scaling.target.type in force: the spec's value, else "
        "derived from the SLO and peakPerReplica, else 4.",
    )
    scale_down_window_seconds: int | None = pydantic.Field(
        None, ge=0, description="The scale-down stabilization window in force."
    )
    idle_seconds: int | None = pydantic.Field(
        None, ge=0, description="The idle period in force before scaling to zero (floor 0)."
    )
    basis: str | None = pydantic.Field(
        None,
        max_length=64,
        description="Digest of spec.model, spec.runtime, spec.resources and the accelerator in "
        "use when capacity and cold starts were measured. When it changes (a new model "
        "version, other hardware) they are learned again; idle gaps are kept.",
    )


class SloAttainment(base.Model):
    """SLO attainment achieved over the last hour (the objective, if any, is in the spec)."""

    attainment: float | None = pydantic.Field(
        None,
        ge=0,
        le=1,
        description="goodRequests / totalRequests over windowSeconds, floored to 4 decimals "
        "(absent without requests). Good: answered within every target spec.slo states; "
        "held by the activator past a target, failed or refused: not good.",
    )
    good_requests: int = pydantic.Field(0, ge=0, description="Requests within the SLO.")
    total_requests: int = pydantic.Field(0, ge=0, description="Requests counted.")
    window_seconds: int = pydantic.Field(
        0,
        ge=0,
        description="Seconds the figures cover: the last hour, less since the operator "
        "(leader) started counting.",
    )


class MeasuredProfile(base.Model):
    """One candidate measured by automatic profiling (a shadow replica and a load probe)."""

    option: str = pydantic.Field(..., max_length=128, description="Catalog option, e.g. cpu-4.")
    max_requests_per_second: float = pydantic.Field(
        ..., ge=0, description="Most requests/s one replica served within the SLO (0: never)."
    )
    p99_latency_ms: float | None = pydantic.Field(
        None, ge=0, description="p99 latency at that throughput."
    )
    measured_at: datetime.datetime = pydantic.Field(..., description="When the probe ended.")


class InferenceServiceStatus(base.Model):
    observed_generation: int | None = pydantic.Field(
        None, ge=0, description="The metadata.generation this status describes."
    )
    conditions: list[Condition] = pydantic.Field(
        default_factory=list,
        description="Ready, Progressing, ScaledToZero, MetricsAvailable, ...",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = pydantic.Field(
        None, ge=0, description="Replicas that exist (scale subresource statusReplicasPath)."
    )
    ready_replicas: int | None = pydantic.Field(None, ge=0, description="Replicas ready to serve.")
    desired_replicas: int | None = pydantic.Field(
        None, ge=0, description="Replicas the autoscaler (or external scaler) wants."
    )
    selector: str | None = pydantic.Field(
        None, description="Label selector of the pods, for the scale subresource (HPA/KEDA)."
    )
    url: str | None = pydantic.Field(None, description="In-cluster URL of the endpoint.")
    accelerator: str | None = pydantic.Field(
        None, description="Hardware in use, e.g. cpu, gpu:NVIDIA-L4, mig:1g.10gb."
    )
    last_scaling: ScalingDecision | None = pydantic.Field(
        None, description="The last scaling decision and its reason."
    )
    active_schedule: str | None = pydantic.Field(
        None, description="Name of the schedule window in force, if any."
    )
    off_until: datetime.datetime | None = pydantic.Field(
        None,
        description="Set while a hard-off schedule window (maxReplicas: 0) is open: when it "
        "ends. The activator answers 503 with Retry-After until then.",
    )
    recommendation: Recommendation | None = pydantic.Field(
        None, description="Right-sizing recommendation."
    )
    cost: Cost | None = pydantic.Field(None, description="What this endpoint costs.")
    learned: Learned | None = pydantic.Field(
        None,
        description="What the builtin autoscaler learned of this endpoint (capacity per "
        "replica, cold starts, idle gaps) and the settings it derives from it.",
    )
    slo: SloAttainment | None = pydantic.Field(
        None,
        description="SLO attainment measured over the last hour, as spec.slo states the "
        "targets (absent when spec.slo states none).",
    )
    profiles: list[MeasuredProfile] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Candidates measured by automatic profiling, newest per option; a "
        "recommendation cites them (source measured).",
    )
