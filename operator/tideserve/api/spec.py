"""The InferenceService spec: what the user asks for.

Field descriptions are user documentation: they become `kubectl explain` text.
Cross-field rules are `base.Rule`s, enforced both by the CRD (CEL) and by pydantic.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

import pydantic

from tideserve.api import base
from tideserve.api import schedule as schedule_api

# Kubernetes resource quantity, e.g. "500m", "2", "4Gi".
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
MIG_PROFILE_PATTERN = r"^[1-7]g\.[0-9]+gb$"
STORAGE_URI_PATTERN = r"^(s3|gs|https|pvc)://[^\s]+$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _quantity(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError("must be a quantity such as 2, 500m or 4Gi")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a quantity such as 2, 500m or 4Gi")
    if not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a quantity such as 2, 500m or 4Gi")
    return value


QuantityField = Annotated[
    str,
    pydantic.BeforeValidator(_quantity),
    pydantic.WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
        }
    ),
]


class ModelFormat(enum.StrEnum):
    ONNX = "onnx"
    TENSORRT = "tensorrt"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    PYTHON = "python"
    OPENVINO = "openvino"


class DynamicBatching(base.Model):
    enabled: bool = pydantic.Field(
        True, description="Let Triton combine queued requests into batches."
    )
    preferred_batch_sizes: list[Annotated[int, pydantic.Field(ge=1)]] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Batch sizes Triton should prefer to form, e.g. [4, 8].",
    )
    max_queue_delay_microseconds: int = pydantic.Field(
        100,
        ge=0,
        le=10_000_000,
        description="How long a request may wait in Triton's queue for a batch to fill.",
    )


class ModelSpec(base.Model):
    name: str = pydantic.Field(
        ...,
        pattern=MODEL_NAME_PATTERN,
        max_length=128,
        description="Model name as Triton knows it (the folder name in the model repository).",
    )
    storage_uri: str = pydantic.Field(
        ...,
        pattern=STORAGE_URI_PATTERN,
        max_length=2048,
        description=(
            "Where the Triton model repository lives: s3://bucket/path, gs://bucket/path, "
            "https://host/archive.tar.gz, or pvc://claim-name/sub/path (mounted directly)."
        ),
    )
    storage_secret_ref: str | None = pydantic.Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        max_length=253,
        description=(
            "Name of a Secret in this namespace with credentials for storageUri "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or GOOGLE_APPLICATION_CREDENTIALS "
            "JSON under key 'gcs.json'). Credentials are never read from anywhere else."
        ),
    )
    format: ModelFormat | None = pydantic.Field(
        None, description="Model format / Triton backend. Omit to let Triton detect it."
    )
    max_batch_size: int | None = pydantic.Field(
        None, ge=0, le=4096, description="Triton max_batch_size override (0 disables batching)."
    )
    dynamic_batching: DynamicBatching | None = pydantic.Field(
        None, description="Dynamic batching settings rendered into Triton's model config."
    )
    instance_count: int = pydantic.Field(
        1, ge=1, le=64, description="Model instances per replica (Triton instance_group count)."
    )
    response_cache: bool = pydantic.Field(
        False,
        description="Enable Triton's response cache: repeated identical inputs are answered "
        "from memory without running the model.",
    )


class EnvVar(base.Model):
    name: str = pydantic.Field(..., min_length=1, max_length=256)
    value: str = pydantic.Field("", max_length=32768)


class Protocol(enum.StrEnum):
    HTTP = "http"
    GRPC = "grpc"


class RuntimeSpec(base.Model):
    image: str | None = pydantic.Field(
        None,
        max_length=512,
        description="Triton image. Omit to use the operator's default (chart value triton.image).",
    )
    args: list[str] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Extra tritonserver arguments, appended after the ones tideserve sets.",
    )
    env: list[EnvVar] = pydantic.Field(
        default_factory=list, max_length=64, description="Extra environment variables."
    )
    protocol: Protocol = pydantic.Field(
        Protocol.HTTP, description="Protocol of the URL published in status (http or grpc)."
    )


class Accelerator(enum.StrEnum):
    AUTO = "auto"
    GPU = "gpu"
    CPU = "cpu"
    MIG = "mig"


class RightSizingMode(enum.StrEnum):
    OFF = "off"
    RECOMMEND = "recommend"
    AUTO = "auto"


class GpuSpec(base.Model):
    product: str | None = pydantic.Field(
        None,
        max_length=128,
        description="GPU product (node label nvidia.com/gpu.product), e.g. NVIDIA-L4. "
        "Omit to run on any GPU.",
    )
    count: int = pydantic.Field(1, ge=1, le=16, description="GPUs per replica.")


class DeclaredProfile(base.Model):
    """Throughput and latency of this model on one hardware option, measured elsewhere."""

    option: str = pydantic.Field(
        ...,
        max_length=128,
        description="Catalog option name, e.g. cpu-4, gpu:NVIDIA-L4, mig:1g.10gb.",
    )
    max_requests_per_second: float = pydantic.Field(
        ..., gt=0, description="Requests per second one replica sustains within the SLO."
    )
    p99_latency_ms: float = pydantic.Field(..., gt=0, description="p99 latency at that throughput.")


class RightSizingSpec(base.Model):
    mode: RightSizingMode = pydantic.Field(
        RightSizingMode.RECOMMEND,
        description="off: nothing; recommend: write status.recommendation and an Event; "
        "auto: also apply it at a safe moment (while scaled to zero, or a surge rollout).",
    )
    peak_requests_per_second: float | None = pydantic.Field(
        None, gt=0, description="Declared peak load, used until enough traffic is observed."
    )
    profiles: list[DeclaredProfile] = pydantic.Field(
        default_factory=list,
        max_length=32,
        description="Declared per-option throughput/latency; measured profiles win.",
    )


class ResourcesSpec(base.Model):
    rules = (
        base.Rule(
            cel="self.accelerator == 'mig' || !has(self.mig)",
            message="mig is only allowed with accelerator: mig",
            check=lambda s: s.accelerator == Accelerator.MIG or s.mig is None,
            field_path=".mig",
        ),
        base.Rule(
            cel="self.accelerator != 'mig' || has(self.mig)",
            message="accelerator: mig needs mig.profile (e.g. 1g.10gb)",
            check=lambda s: s.accelerator != Accelerator.MIG or s.mig is not None,
            field_path=".mig",
        ),
        base.Rule(
            cel="self.accelerator != 'cpu' || !has(self.gpu)",
            message="gpu settings are not allowed with accelerator: cpu",
            check=lambda s: s.accelerator != Accelerator.CPU or s.gpu is None,
            field_path=".gpu",
        ),
    )

    accelerator: Accelerator = pydantic.Field(
        Accelerator.GPU,
        description="gpu: whole GPUs; mig: a MIG slice; cpu: no GPU; auto: tideserve picks "
        "the cheapest option meeting the SLO (starts on gpu until it has measurements).",
    )
    gpu: GpuSpec | None = pydantic.Field(None, description="GPU product and count per replica.")
    mig: MigSpec | None = pydantic.Field(None, description="MIG slice per replica.")
    cpu: QuantityField | None = pydantic.Field(
        None, description="CPU request per replica, e.g. 2 or 500m."
    )
    memory: QuantityField | None = pydantic.Field(
        None, description="Memory request (and limit) per replica, e.g. 8Gi."
    )
    right_sizing: RightSizingSpec = pydantic.Field(
        default_factory=RightSizingSpec,
        description="Whether tideserve recommends or applies hardware and requests.",
    )


class MigSpec(base.Model):
    profile: str = pydantic.Field(
        ...,
        pattern=MIG_PROFILE_PATTERN,
        description="MIG profile, e.g. 1g.10gb or 3g.40gb (resource nvidia.com/mig-<profile>).",
    )


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
        "usually end soon, drop to zero at once after longer ones); 900 until a few gaps "
        "are seen.",
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


class SloSpec(base.Model):
    latency_ms: float | None = pydantic.Field(
        None, gt=0, description="End-to-end p99 latency target per request, in milliseconds."
    )
    queue_time_ms: float | None = pydantic.Field(
        None, gt=0, description="Queue wait target per request, in milliseconds."
    )


class InferenceServiceSpec(base.Model):
    model: ModelSpec = pydantic.Field(..., description="The model to serve and where it lives.")
    runtime: RuntimeSpec = pydantic.Field(
        default_factory=RuntimeSpec, description="Triton image, args and environment."
    )
    resources: ResourcesSpec = pydantic.Field(
        default_factory=ResourcesSpec,
        description="Hardware per replica and right-sizing.",
    )
    scaling: ScalingSpec = pydantic.Field(
        default_factory=ScalingSpec, description="Autoscaling bounds, target, schedules."
    )
    slo: SloSpec = pydantic.Field(
        default_factory=SloSpec,
        description="Service level objective, used by right-sizing and reported in benchmarks.",
    )
    replicas: int = pydantic.Field(
        1,
        ge=0,
        description="Replica count written through the scale subresource (kubectl scale, HPA, "
        "KEDA). Honoured only with scaling.mode: external; the builtin autoscaler ignores it. "
        "Defaulted so that the scale subresource can always be read.",
    )


ResourcesSpec.model_rebuild()
