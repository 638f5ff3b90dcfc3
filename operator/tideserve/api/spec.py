"""The InferenceService spec: what the user asks for (the scaling part is in scaling.py).

Field descriptions are user documentation: they become `kubectl explain` text.
Cross-field rules are `base.Rule`s, enforced both by the CRD (CEL) and by pydantic.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Annotated, Any

import pydantic

from tideserve.api import base, formats
from tideserve.api import scaling as scaling_api

QUANTITY_PATTERN = formats.QUANTITY
MIG_PROFILE_PATTERN = formats.MIG_PROFILE
STORAGE_URI_PATTERN = formats.STORAGE_URI
DNS_LABEL_PATTERN = formats.DNS1123_LABEL
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _quantity(problem: Callable[[int | str], str | None], value: object) -> str:
    # The CRD types a quantity as integer-or-string: a YAML float (cpu: 0.5) is refused
    # by the API server, so it is refused here too.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a string quantity such as 2, 500m or 4Gi")
    if found := problem(value):
        raise ValueError(found)
    return str(value)


def _quantity_schema(low: str, high: str, rule: str, message: str) -> dict[str, Any]:
    """A request quantity in the CRD: integer-or-string, bounded both ways; the bounds of a
    string are checked with Kubernetes' own quantity parser (CEL's quantity library)."""
    within = (
        f"quantity(self).compareTo(quantity('{low}')) >= 0"
        f" && quantity(self).compareTo(quantity('{high}')) <= 0"
    )
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "minimum": max(1, int(formats.quantity_value(low) or 0)),
        "maximum": int(formats.quantity_value(high) or 0),
        "maxLength": 64,
        "x-kubernetes-validations": [
            {
                # A CEL rule rather than a schema pattern: its refusal says what a quantity
                # is, not the regular expression.
                "rule": "type(self) != string"
                f" || self.matches({base.cel_string(QUANTITY_PATTERN)})",
                "message": formats.QUANTITY_MESSAGE,
            },
            {
                # Not a string, or not a quantity: the type and pattern say so.
                "rule": f"type(self) != string || !isQuantity(self) || ({within}{rule})",
                "message": message,
            },
        ],
    }


CpuQuantity = Annotated[
    str,
    pydantic.BeforeValidator(functools.partial(_quantity, formats.cpu_problem)),
    pydantic.WithJsonSchema(
        _quantity_schema("1m", str(formats.CPU_MAX), " && !self.endsWith('i')", formats.CPU_MESSAGE)
    ),
]
MemoryQuantity = Annotated[
    str,
    pydantic.BeforeValidator(functools.partial(_quantity, formats.memory_problem)),
    pydantic.WithJsonSchema(_quantity_schema("64Mi", "16Ti", "", formats.MEMORY_MESSAGE)),
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
    preferred_batch_sizes: list[Annotated[int, pydantic.Field(ge=1, le=4096)]] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Batch sizes Triton should prefer to form, e.g. [4, 8]; each at most "
        "model.maxBatchSize, which must then be given.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    max_queue_delay_microseconds: int = pydantic.Field(
        100,
        ge=0,
        le=10_000_000,
        description="How long a request may wait in Triton's queue for a batch to fill.",
    )

    @pydantic.field_validator("preferred_batch_sizes")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("preferredBatchSizes must not repeat a size")
        return value


def _storage_rule(scheme: str, pattern: str, message: str) -> base.FieldRule:
    """A rule on storageUri that applies to one scheme's URIs."""
    return base.FieldRule(
        cel=f"!self.startsWith('{scheme}') || self.matches({base.cel_string(pattern)})",
        message=message,
        check=lambda uri: not uri.startswith(scheme) or formats.matches(pattern, uri),
    )


StorageUri = Annotated[
    str,
    pydantic.Field(max_length=2048),
    base.pattern_rule(
        STORAGE_URI_PATTERN,
        "storageUri must start with s3://, gs://, https:// or pvc:// and hold no "
        "whitespace, control or invisible characters",
    ),
    base.pattern_rule(
        formats.STORAGE_URI_NO_USERINFO,
        "storageUri must not carry credentials (user:password@host): name a Secret in "
        "storageSecretRef",
    ),
    _storage_rule(
        "pvc://",
        formats.PVC_URI,
        "pvc:// needs a PersistentVolumeClaim name (lowercase DNS-1123) and a path without "
        ". or .. segments: pvc://claim/sub/path",
    ),
    _storage_rule(
        "pvc://",
        r"^pvc://[^/]{1,253}(/.*)?$",
        "the PersistentVolumeClaim name in pvc:// is at most 253 characters",
    ),
    base.no_match_rule(formats.BUCKET_ARCHIVE, formats.BUCKET_ARCHIVE_MESSAGE),
    _storage_rule("s3://", formats.BUCKET_URI, "s3:// needs a bucket name: s3://bucket/path"),
    _storage_rule("gs://", formats.BUCKET_URI, "gs:// needs a bucket name: gs://bucket/path"),
    _storage_rule(
        "https://",
        formats.HTTPS_URI,
        "https:// needs a host name or IPv4 address: https://host[:port]/path",
    ),
]


class ModelSpec(base.Model):
    rules = (
        base.Rule(
            cel="!has(self.dynamicBatching) || !has(self.dynamicBatching.preferredBatchSizes)"
            " || size(self.dynamicBatching.preferredBatchSizes) == 0"
            " || (has(self.maxBatchSize)"
            " && self.dynamicBatching.preferredBatchSizes.all(b, b <= self.maxBatchSize))",
            message="dynamicBatching.preferredBatchSizes needs maxBatchSize, and each "
            "preferred size must be at most maxBatchSize (Triton refuses the model otherwise)",
            check=lambda m: (
                m.dynamic_batching is None
                or not m.dynamic_batching.preferred_batch_sizes
                or (
                    m.max_batch_size is not None
                    and all(b <= m.max_batch_size for b in m.dynamic_batching.preferred_batch_sizes)
                )
            ),
            field_path=".dynamicBatching.preferredBatchSizes",
        ),
    )

    name: Annotated[
        str,
        base.pattern_rule(
            MODEL_NAME_PATTERN,
            "model name must be a folder name: letters, digits, '_', '.' and '-', starting "
            "with a letter or digit",
        ),
    ] = pydantic.Field(
        ...,
        max_length=128,
        description="Model name as Triton knows it (the folder name in the model repository).",
    )
    storage_uri: StorageUri = pydantic.Field(
        ...,
        description=(
            "Where the Triton model repository lives: s3://bucket/path, gs://bucket/path, "
            "https://host/archive.tar.gz, or pvc://claim-name/sub/path (mounted directly). "
            "Never credentials: those come from storageSecretRef."
        ),
    )
    storage_secret_ref: (
        Annotated[
            str,
            base.pattern_rule(
                formats.DNS1123_SUBDOMAIN,
                "storageSecretRef must be a Secret's name: lowercase letters, digits, '-' "
                "and '.' (a DNS-1123 subdomain)",
            ),
        ]
        | None
    ) = pydantic.Field(
        None,
        max_length=253,
        description=(
            "Name of a Secret in this namespace with credentials for storageUri "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or GOOGLE_APPLICATION_CREDENTIALS "
            "JSON under key 'gcs.json'). Credentials are never read from anywhere else."
        ),
    )
    format: ModelFormat | None = pydantic.Field(
        None,
        description="Model format: sets the Triton backend in the model's config "
        "(onnx: onnxruntime, tensorrt, pytorch, tensorflow, python, openvino). Omit to "
        "keep the config's own or let Triton detect it from the model file.",
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


# Bounds on the whole environment and command line, in characters: they reach the
# Deployment and the process (Linux takes at most 128 KiB per variable), and with the
# other lists at their longest they keep the object within what `kubectl apply` can
# store (its last-applied annotation holds at most 256 KiB).
ENV_TOTAL_MAX = 16384
ARGS_TOTAL_MAX = 8192


class EnvVar(base.Model):
    name: Annotated[
        str,
        pydantic.Field(min_length=1, max_length=256),
        base.pattern_rule(
            formats.ENV_NAME,
            "env names must be C identifiers: letters, digits and '_', not starting with a digit",
        ),
        base.FieldRule(
            cel=f"!self.startsWith('{formats.RESERVED_ENV_PREFIX}')",
            message=f"names starting with {formats.RESERVED_ENV_PREFIX} are tideserve's own",
            check=lambda name: not name.startswith(formats.RESERVED_ENV_PREFIX),
        ),
        base.FieldRule(
            cel=f"!(self in {list(formats.GPU_SELECTING_ENV)})",
            message=formats.GPU_SELECTING_ENV_MESSAGE,
            check=lambda name: name not in formats.GPU_SELECTING_ENV,
        ),
    ] = pydantic.Field(
        ..., description="Variable name: a C identifier (letters, digits, _; not a digit first)."
    )
    # No NUL: a process's environment cannot hold one (the container would not start).
    value: str = pydantic.Field(
        "",
        max_length=ENV_TOTAL_MAX,
        pattern=r"^[^\x00]*$",
        description="Value, passed as written: $(NAME) is not expanded, $$ stays $$.",
    )


TritonArg = Annotated[
    str,
    # The bound keeps the CEL rule's estimated cost within the API server's budget.
    pydantic.Field(max_length=512),
    base.pattern_rule(formats.TRITON_ARG, formats.TRITON_ARG_MESSAGE),
    base.no_match_rule(formats.METRICS_OVERRIDE, formats.METRICS_OVERRIDE_MESSAGE),
]


class Protocol(enum.StrEnum):
    HTTP = "http"
    GRPC = "grpc"


class RuntimeSpec(base.Model):
    rules = (
        base.Rule(
            cel="!has(self.env) || self.env.map(e, size(e.name)"
            f" + (has(e.value) ? size(e.value) : 0)).sum() <= {ENV_TOTAL_MAX}",
            message=f"env names and values must come to at most {ENV_TOTAL_MAX} characters "
            "in all (mount larger settings from a ConfigMap or Secret into the model instead)",
            check=lambda r: sum(len(e.name) + len(e.value) for e in r.env) <= ENV_TOTAL_MAX,
            field_path=".env",
        ),
        base.Rule(
            cel=f"!has(self.args) || self.args.map(a, size(a)).sum() <= {ARGS_TOTAL_MAX}",
            message=f"args must come to at most {ARGS_TOTAL_MAX} characters in all",
            check=lambda r: sum(len(a) for a in r.args) <= ARGS_TOTAL_MAX,
            field_path=".args",
        ),
    )

    image: (
        Annotated[
            str,
            base.pattern_rule(
                formats.IMAGE,
                "image must be an image reference [registry[:port]/]repository[:tag]"
                "[@sha256:digest], the repository in lower case, e.g. "
                "nvcr.io/nvidia/tritonserver:25.10-py3",
            ),
        ]
        | None
    ) = pydantic.Field(
        None,
        max_length=512,
        description="Triton image. Omit to use the operator's default (chart value triton.image).",
    )
    args: list[TritonArg] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Extra tritonserver arguments, appended after the ones tideserve sets; "
        "each one whole --option=value (e.g. --log-verbose=1), passed as written "
        "($(NAME) is not expanded). Options tideserve manages "
        "(repository, control mode, ports, addresses, readiness, metrics, cache) are refused.",
    )
    env: list[EnvVar] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Extra environment variables for Triton (names unique; names and values "
        f"at most {ENV_TOTAL_MAX} characters in all).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @pydantic.field_validator("env")
    @classmethod
    def _unique_env(cls, value: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"env names must be unique; repeated: {', '.join(dupes)}")
        return value

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
    product: (
        Annotated[
            str,
            base.pattern_rule(
                formats.LABEL_VALUE,
                "gpu.product must be a node label value such as NVIDIA-L4: letters, digits, "
                "'-', '_' and '.', starting and ending with a letter or digit",
            ),
        ]
        | None
    ) = pydantic.Field(
        None,
        max_length=63,
        description="GPU product (node label nvidia.com/gpu.product, so a label value), "
        "e.g. NVIDIA-L4. "
        "Omit to run on any GPU.",
    )
    count: int = pydantic.Field(1, ge=1, le=16, description="GPUs per replica.")


class DeclaredProfile(base.Model):
    """Throughput and latency of this model on one hardware option, measured elsewhere."""

    option: Annotated[
        str, base.pattern_rule(formats.PROFILE_OPTION, formats.PROFILE_OPTION_MESSAGE)
    ] = pydantic.Field(
        ...,
        max_length=128,
        description="Catalog option name: cpu-<cores> (e.g. cpu-4), gpu:<product> "
        "(e.g. gpu:NVIDIA-L4) or mig:<profile> (e.g. mig:1g.10gb).",
    )
    max_requests_per_second: float = pydantic.Field(
        ..., gt=0, le=1e9, description="Requests per second one replica sustains within the SLO."
    )
    p99_latency_ms: float = pydantic.Field(
        ..., gt=0, le=1e7, description="p99 latency at that throughput."
    )


class ProfilingSpec(base.Model):
    """Automatic profiling: measure a cheaper candidate by one shadow replica and a load probe."""

    enabled: bool | None = pydantic.Field(
        None,
        description="Measure candidates automatically: one shadow replica on the candidate, "
        "not behind the Service, probed over Triton's HTTP protocol, then deleted; results go "
        "to status.profiles. Unset: on in mode auto with accelerator auto (measure before "
        "moving hardware), off otherwise (mode recommend: no shadow pods unless asked; a "
        "pinned accelerator is never moved); true or false wins. Never on in mode off.",
    )
    max_candidates: int = pydantic.Field(
        3, ge=1, le=8, description="At most this many candidates measured per week."
    )
    probe_seconds: int = pydantic.Field(
        10, ge=2, le=120, description="Seconds per concurrency level of the load probe."
    )
    cpu_cores: int = pydantic.Field(
        4,
        ge=1,
        le=256,
        description="Cores of the CPU candidate a shadow replica measures when CPU has no "
        "profile yet (the option cpu-<cores>); pick a size your CPU nodes can hold.",
    )


class RightSizingSpec(base.Model):
    mode: RightSizingMode = pydantic.Field(
        RightSizingMode.RECOMMEND,
        description="off: nothing; recommend: write status.recommendation and an Event; "
        "auto: also apply it at a safe moment (while scaled to zero, or a surge rollout).",
    )
    peak_requests_per_second: float | None = pydantic.Field(
        None, gt=0, le=1e9, description="Declared peak load, used until enough traffic is observed."
    )
    profiles: list[DeclaredProfile] = pydantic.Field(
        default_factory=list,
        max_length=32,
        description="Declared per-option throughput/latency, one per option; measured "
        "profiles win.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["option"],
        },
    )

    @pydantic.field_validator("profiles")
    @classmethod
    def _unique_options(cls, value: list[DeclaredProfile]) -> list[DeclaredProfile]:
        options = [p.option for p in value]
        dupes = sorted({o for o in options if options.count(o) > 1})
        if dupes:
            raise ValueError(f"one profile per option; repeated: {', '.join(dupes)}")
        return value

    profiling: ProfilingSpec = pydantic.Field(
        default_factory=ProfilingSpec, description="Automatic profiling of candidates."
    )

    def profiling_enabled(self, accelerator: Accelerator) -> bool:
        """profiling.enabled as set, else on only where tideserve moves the hardware itself
        (mode auto and `accelerator` auto); never in mode off."""
        if self.mode is RightSizingMode.OFF:
            return False
        if self.profiling.enabled is not None:
            return self.profiling.enabled
        return self.mode is RightSizingMode.AUTO and accelerator is Accelerator.AUTO


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
            cel="self.accelerator in ['gpu', 'auto'] || !has(self.gpu)",
            message="gpu settings are only allowed with accelerator: gpu or auto",
            check=lambda s: s.accelerator in (Accelerator.GPU, Accelerator.AUTO) or s.gpu is None,
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
    cpu: CpuQuantity | None = pydantic.Field(
        None, description="CPU request per replica, e.g. 2 or 500m (1m to 512 cores)."
    )
    memory: MemoryQuantity | None = pydantic.Field(
        None, description="Memory request (and limit) per replica, e.g. 8Gi (64Mi to 16Ti)."
    )
    right_sizing: RightSizingSpec = pydantic.Field(
        default_factory=RightSizingSpec,
        description="Whether tideserve recommends or applies hardware and requests.",
    )


class MigSpec(base.Model):
    profile: Annotated[
        str,
        base.pattern_rule(
            MIG_PROFILE_PATTERN,
            "mig.profile must be a MIG profile <n>g.<memory>gb such as 1g.10gb or 3g.40gb",
        ),
    ] = pydantic.Field(
        ...,
        max_length=16,
        description="MIG profile, e.g. 1g.10gb or 3g.40gb (resource nvidia.com/mig-<profile>).",
    )


# The scaling models live in scaling.py; their names stay importable from here.
TargetType = scaling_api.TargetType
TargetSpec = scaling_api.TargetSpec
ScaleToZeroSpec = scaling_api.ScaleToZeroSpec
ScalingRules = scaling_api.ScalingRules
BehaviorSpec = scaling_api.BehaviorSpec
ScalingMode = scaling_api.ScalingMode
ScalingSpec = scaling_api.ScalingSpec


class SloSpec(base.Model):
    rules = (
        base.Rule(
            cel="!has(self.queueTimeMs) || !has(self.latencyMs)"
            " || self.queueTimeMs <= self.latencyMs",
            message="queueTimeMs must be at most latencyMs: the queue wait is part of the "
            "end-to-end latency",
            check=lambda s: (
                s.queue_time_ms is None or s.latency_ms is None or s.queue_time_ms <= s.latency_ms
            ),
            field_path=".queueTimeMs",
        ),
    )

    latency_ms: float | None = pydantic.Field(
        None,
        gt=0,
        le=1e7,
        description="End-to-end p99 latency target per request, in milliseconds.",
    )
    queue_time_ms: float | None = pydantic.Field(
        None, gt=0, le=1e7, description="Queue wait target per request, in milliseconds."
    )
    attainment: float = pydantic.Field(
        0.99,
        ge=0.5,
        lt=1.0,
        description="Share of requests that should meet the queue-wait and latency targets "
        "(0.99: 99 %). The autoscaler spends GPU time only where it buys this: an idle "
        "endpoint stays warm only while a wake would miss more requests than this allows.",
    )


class InferenceServiceSpec(base.Model):
    rules = (
        base.Rule(
            cel="self.scaling.mode != 'external' || self.replicas <= self.scaling.maxReplicas",
            message="with scaling.mode: external, replicas (written by an HPA or KEDA through "
            "the scale subresource) cannot exceed scaling.maxReplicas",
            check=lambda s: (
                s.scaling.mode != ScalingMode.EXTERNAL or s.replicas <= s.scaling.max_replicas
            ),
            field_path=".replicas",
        ),
    )

    model: ModelSpec = pydantic.Field(..., description="The model to serve and where it lives.")
    runtime: RuntimeSpec = pydantic.Field(
        default_factory=RuntimeSpec, description="Triton image, args and environment."
    )
    resources: ResourcesSpec = pydantic.Field(
        default_factory=ResourcesSpec,
        description="Hardware per replica and right-sizing.",
    )
    scaling: scaling_api.ScalingSpec = pydantic.Field(
        default_factory=scaling_api.ScalingSpec,
        description="Autoscaling bounds, target, schedules.",
    )
    slo: SloSpec = pydantic.Field(
        default_factory=SloSpec,
        description="Service level objective, used by right-sizing and reported in benchmarks.",
    )
    replicas: int = pydantic.Field(
        1,
        ge=0,
        le=2**31 - 1,
        description="Replica count written through the scale subresource (kubectl scale, HPA, "
        "KEDA). Honoured only with scaling.mode: external, up to scaling.maxReplicas; the "
        "builtin autoscaler ignores it. "
        "Defaulted so that the scale subresource can always be read.",
    )


ResourcesSpec.model_rebuild()
