"""Hardware per replica: what the spec asks for, or what right-sizing decided instead.

`Hardware` is the one input the Deployment builder reads for resources, node selection
and tolerations. By default it comes from the spec; right-sizing (mode auto) passes its
own `Hardware` to the builder without rewriting the user's spec.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tideserve.api import spec as spec_api

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
# Requests used when the spec names none: enough for a small model, small enough to fit.
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"


@dataclasses.dataclass(frozen=True)
class Hardware:
    kind: str  # "gpu", "mig" or "cpu" (never "auto": auto is resolved before this point)
    gpu_product: str | None = None
    gpu_count: int = 1
    mig_profile: str | None = None
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY

    @property
    def label(self) -> str:
        """Short name for status.accelerator and the printer column."""
        if self.kind == "gpu":
            return f"gpu:{self.gpu_product}" if self.gpu_product else "gpu"
        if self.kind == "mig":
            return f"mig:{self.mig_profile}"
        return "cpu"

    @property
    def uses_gpu(self) -> bool:
        return self.kind in {"gpu", "mig"}


def to_annotation(hw: Hardware) -> str:
    """The hardware a Deployment runs, stamped on it so the next reconcile knows."""
    return json.dumps(dataclasses.asdict(hw), sort_keys=True, separators=(",", ":"))


def from_annotation(text: str | None) -> Hardware | None:
    if not text:
        return None
    try:
        return Hardware(**json.loads(text))
    except (ValueError, TypeError):
        return None


def to_resources(hw: Hardware, base: spec_api.ResourcesSpec) -> spec_api.ResourcesSpec:
    """`base` with this hardware (what right-sizing's `current` argument expects)."""
    gpu = spec_api.GpuSpec(product=hw.gpu_product, count=hw.gpu_count) if hw.kind == "gpu" else None
    mig = spec_api.MigSpec(profile=hw.mig_profile) if hw.kind == "mig" and hw.mig_profile else None
    return base.model_copy(
        update={
            "accelerator": spec_api.Accelerator(hw.kind),
            "gpu": gpu,
            "mig": mig,
            "cpu": hw.cpu,
            "memory": hw.memory,
        }
    )


def from_spec(resources: spec_api.ResourcesSpec) -> Hardware:
    """The hardware the spec asks for; `auto` starts on a GPU until right-sizing decides."""
    cpu = resources.cpu or DEFAULT_CPU
    memory = resources.memory or DEFAULT_MEMORY
    accelerator = resources.accelerator
    if accelerator == spec_api.Accelerator.CPU:
        return Hardware(kind="cpu", cpu=cpu, memory=memory)
    if accelerator == spec_api.Accelerator.MIG:
        profile = resources.mig.profile if resources.mig else None
        return Hardware(kind="mig", mig_profile=profile, cpu=cpu, memory=memory)
    gpu = resources.gpu or spec_api.GpuSpec()
    return Hardware(
        kind="gpu", gpu_product=gpu.product, gpu_count=gpu.count, cpu=cpu, memory=memory
    )


def container_resources(hw: Hardware) -> dict[str, Any]:
    # Memory limit = request: an OOM kill is clearer than a node-pressure eviction of
    # whichever pod happens to be over its request. No CPU limit: throttling a model
    # server only adds latency.
    requests: dict[str, Any] = {"cpu": hw.cpu, "memory": hw.memory}
    limits: dict[str, Any] = {"memory": hw.memory}
    if hw.kind == "gpu":
        limits[GPU_RESOURCE] = str(hw.gpu_count)
    elif hw.kind == "mig":
        limits[f"{MIG_RESOURCE_PREFIX}{hw.mig_profile}"] = "1"
    return {"requests": requests, "limits": limits}


def node_selector(hw: Hardware) -> dict[str, str]:
    if hw.kind == "gpu" and hw.gpu_product:
        return {GPU_PRODUCT_LABEL: hw.gpu_product}
    return {}


def tolerations(hw: Hardware) -> list[dict[str, Any]]:
    # GPU nodes are conventionally tainted nvidia.com/gpu:NoSchedule so that CPU work
    # does not land on them; GPU (and MIG) replicas must tolerate it, CPU replicas not.
    if not hw.uses_gpu:
        return []
    return [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
