"""The accelerator catalog: hardware options per replica and what they cost per hour.

The chart puts it under `catalog:` in values.yaml and mounts that mapping as a YAML file
at TIDESERVE_CATALOG_FILE; without one the built-in DEFAULT below is used. Prices say where
they come from (`source`, `pricedAt`); DEFAULT's are public on-demand list prices, not a
quote.

A GPU is rented as a VM whose price includes some vCPU and memory (`includedCpu`,
`includedMemoryGiB` per GPU): a replica on it pays only for requests above that share.
A MIG slice costs the GPU's price divided by how many such slices fit on the card (two
3g.40gb fit on an A100, not 7/3), unless the catalog prices it itself.

Option names are the vocabulary of status.accelerator, status.recommendation.accelerator
and spec.resources.rightSizing.profiles[].option: "cpu" (or "cpu-<cores>" in a profile),
"gpu:<product>", "mig:<profile>".
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import pathlib

import pydantic
import yaml

from tideserve.api import base, formats
from tideserve.rightsizing import quantities

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


class CpuPricing(base.Model):
    cost_per_core_hour: float = pydantic.Field(0.0316, ge=0, description="Per vCPU-hour.")
    cost_per_gib_hour: float = pydantic.Field(
        0.0042, ge=0, alias="costPerGiBHour", description="Per GiB-hour of RAM."
    )
    # At most what spec.resources admits: a recommendation is checked as a spec is
    # (rightsizing/effective.py), and one beyond that would never be applied.
    max_cores_per_replica: float = pydantic.Field(
        32,
        gt=0,
        le=formats.CPU_MAX,
        description="Largest CPU request right-sizing will recommend.",
    )
    max_memory_gib_per_replica: float = pydantic.Field(
        128,
        gt=0,
        le=formats.MEMORY_MAX / 2**30,
        alias="maxMemoryGiBPerReplica",
        description="Largest memory request right-sizing will recommend.",
    )


# How many slices of a compute size fit on one GPU (NVIDIA's MIG user guide, A100/H100).
SLICES_PER_GPU = {1: 7, 2: 3, 3: 2, 4: 1, 7: 1}


class MigProfile(base.Model):
    profile: str = pydantic.Field(..., pattern=r"^[1-7]g\.[0-9]+gb$", description="e.g. 1g.10gb")
    memory_gib: float = pydantic.Field(..., gt=0, alias="memoryGiB")
    cost_per_hour: float | None = pydantic.Field(
        None,
        ge=0,
        description="Per slice-hour. Omit: the GPU's price divided by the slices that fit.",
    )
    per_gpu: int | None = pydantic.Field(
        None,
        ge=1,
        le=7,
        alias="perGpu",
        description="How many of these slices fit on one GPU. Omit for NVIDIA's figure "
        "(1g: 7, 2g: 3, 3g: 2, 4g and 7g: 1).",
    )

    def slices(self) -> int:
        return self.per_gpu or SLICES_PER_GPU.get(int(self.profile[0]), 1)


class GpuOption(base.Model):
    product: str = pydantic.Field(..., min_length=1, description="nvidia.com/gpu.product label.")
    memory_gib: float = pydantic.Field(..., gt=0, alias="memoryGiB")
    cost_per_hour: float = pydantic.Field(
        ..., ge=0, description="Per GPU-hour: the GPU VM's price per GPU, bundle included."
    )
    included_cpu: float = pydantic.Field(
        0.0, ge=0, description="vCPU per GPU included in cost_per_hour (a GPU VM's share)."
    )
    included_memory_gib: float = pydantic.Field(
        0.0,
        ge=0,
        alias="includedMemoryGiB",
        description="Memory per GPU included in cost_per_hour, GiB.",
    )
    source: str = pydantic.Field("", max_length=512, description="Where the price comes from.")
    relative_speed: float | None = pydantic.Field(
        None,
        gt=0,
        description="Throughput relative to an A100, used only to estimate capacity on an "
        "option nobody profiled. Omit for the built-in figure of known products.",
    )
    mig_profiles: list[MigProfile] = pydantic.Field(default_factory=list)


class Catalog(base.Model):
    currency: str = pydantic.Field("USD", max_length=8)
    source: str = pydantic.Field("", max_length=512, description="Where the prices come from.")
    priced_at: datetime.date | None = pydantic.Field(
        None, description="When the prices were read from their source."
    )
    cpu: CpuPricing = pydantic.Field(default_factory=CpuPricing)
    gpus: list[GpuOption] = pydantic.Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _unique(self) -> Catalog:
        products = [g.product for g in self.gpus]
        dupes = sorted({n for n in products if products.count(n) > 1})
        if dupes:
            raise ValueError(f"GPU products must be unique; repeated: {', '.join(dupes)}")
        return self


# Rough inference throughput relative to an A100 (FP16 tensor throughput, rounded).
KNOWN_SPEEDS = {
    "A100": 1.0,
    "H100": 2.0,
    "H200": 2.2,
    "L40S": 1.1,
    "A10G": 0.45,
    "A10": 0.45,
    "L4": 0.4,
    "T4": 0.2,
    "V100": 0.4,
}


def speed(gpu: GpuOption) -> float:
    if gpu.relative_speed is not None:
        return gpu.relative_speed
    for family, value in KNOWN_SPEEDS.items():
        if family in gpu.product.upper().replace("TESLA-", ""):
            return value
    return 1.0


class Kind(enum.StrEnum):
    CPU = "cpu"
    GPU = "gpu"
    MIG = "mig"


@dataclasses.dataclass(frozen=True)
class Option:
    """One accelerator option, flattened for the deciding code."""

    name: str
    kind: Kind
    price_per_hour: float  # the accelerator, with the vCPU/memory its VM bundles
    memory_bytes: float = 0.0  # accelerator memory (0 for CPU)
    relative_speed: float = 0.0
    product: str = ""
    profile: str = ""
    included_cores: float = 0.0  # vCPU bundled in price_per_hour
    included_memory_bytes: float = 0.0  # host memory bundled in price_per_hour

    @property
    def resource(self) -> str | None:
        if self.kind is Kind.GPU:
            return GPU_RESOURCE
        if self.kind is Kind.MIG:
            return MIG_RESOURCE_PREFIX + self.profile
        return None


def options(catalog: Catalog) -> tuple[Option, ...]:
    """Every option in the catalog, CPU first.

    A MIG profile offered by several GPU products (1g.10gb on A100-80GB and H100) is one
    option, as `nvidia.com/mig-<profile>` is one resource: the cheapest entry prices it.
    """
    found = [Option(name="cpu", kind=Kind.CPU, price_per_hour=0.0)]
    slices: dict[str, Option] = {}
    for gpu in catalog.gpus:
        found.append(
            Option(
                name=f"gpu:{gpu.product}",
                kind=Kind.GPU,
                price_per_hour=gpu.cost_per_hour,
                memory_bytes=gpu.memory_gib * quantities.GIB,
                relative_speed=speed(gpu),
                product=gpu.product,
                included_cores=gpu.included_cpu,
                included_memory_bytes=gpu.included_memory_gib * quantities.GIB,
            )
        )
        for mig in gpu.mig_profiles:
            # A slice takes its share of the card, and of the VM's bundle with it.
            share = mig.slices()
            option = Option(
                name=f"mig:{mig.profile}",
                kind=Kind.MIG,
                price_per_hour=(
                    mig.cost_per_hour
                    if mig.cost_per_hour is not None
                    else round(gpu.cost_per_hour / share, 4)
                ),
                memory_bytes=mig.memory_gib * quantities.GIB,
                # Compute slices out of seven: 3g.40gb runs at 3/7 of its GPU.
                relative_speed=speed(gpu) * int(mig.profile[0]) / 7,
                product=gpu.product,
                profile=mig.profile,
                included_cores=gpu.included_cpu / share,
                included_memory_bytes=gpu.included_memory_gib * quantities.GIB / share,
            )
            seen = slices.get(option.name)
            if seen is None or option.price_per_hour < seen.price_per_hour:
                slices[option.name] = option
    return (*found, *slices.values())


def find(catalog: Catalog, name: str) -> Option | None:
    """The option called `name`; "cpu-4" (a profile's CPU size) is the "cpu" option."""
    wanted = "cpu" if name == "cpu" or name.startswith("cpu-") else name
    return next((o for o in options(catalog) if o.name == wanted), None)


def replica_price(
    catalog: Catalog, option: Option, cores: float, memory_bytes: float, count: int = 1
) -> float:
    """Price per replica-hour: the accelerator(s), plus the CPU and memory requests beyond
    what the accelerators' VM already includes."""
    extra_cores = max(0.0, cores - option.included_cores * count)
    extra_memory = max(0.0, memory_bytes - option.included_memory_bytes * count)
    return (
        option.price_per_hour * count
        + extra_cores * catalog.cpu.cost_per_core_hour
        + extra_memory / quantities.GIB * catalog.cpu.cost_per_gib_hour
    )


# Google Cloud Compute Engine on-demand list prices, us-central1, USD per hour, as listed
# on cloud.google.com/compute/vm-instance-pricing and /compute/gpus-pricing (read 2025-10;
# not re-checked against the live pages since). A GPU is priced as its one-GPU VM, bundle
# included; a T4 attaches to an N1 VM whose vCPU/memory are billed as the CPU rates.
_SOURCE = (
    "Google Cloud Compute Engine on-demand, us-central1: VM prices per GPU "
    "(a2-ultragpu-1g, a3-highgpu-1g, g2-standard-4; T4 attached to N1), N2 vCPU/GB rates"
)
DEFAULT = Catalog(
    source=_SOURCE,
    priced_at=datetime.date(2025, 10, 1),
    cpu=CpuPricing(cost_per_core_hour=0.031611, cost_per_gib_hour=0.004237),
    gpus=[
        GpuOption(
            product="NVIDIA-A100-SXM4-80GB",
            memory_gib=80,
            cost_per_hour=5.0688,
            included_cpu=12,
            included_memory_gib=170,
            source="a2-ultragpu-1g (1 x A100 80GB, 12 vCPU, 170 GB)",
            # Priced by how many fit: the GPU's price / 7, 3, 2, 1.
            mig_profiles=[
                MigProfile(profile=f"{g}g.{mem}gb", memory_gib=mem)
                for g, mem in ((1, 10), (2, 20), (3, 40), (7, 80))
            ],
        ),
        GpuOption(
            product="NVIDIA-H100-80GB-HBM3",
            memory_gib=80,
            cost_per_hour=11.0612,
            included_cpu=26,
            included_memory_gib=234,
            source="a3-highgpu-1g (1 x H100 80GB, 26 vCPU, 234 GB)",
        ),
        GpuOption(
            product="NVIDIA-L4",
            memory_gib=24,
            cost_per_hour=0.7068,
            included_cpu=4,
            included_memory_gib=16,
            source="g2-standard-4 (1 x L4, 4 vCPU, 16 GB)",
        ),
        GpuOption(
            product="Tesla-T4",
            memory_gib=16,
            cost_per_hour=0.35,
            source="NVIDIA T4 attached to an N1 VM (GPU alone)",
        ),
    ],
)


def parse(text: str) -> Catalog:
    """A catalog from YAML: the chart's `catalog:` mapping (or a file with that one key)."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"the catalog is not YAML: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"catalog"}:
        data = data["catalog"] or {}
    return Catalog.model_validate(data)


def load(path: str) -> Catalog:
    """The catalog at `path` (TIDESERVE_CATALOG_FILE), or DEFAULT when path is empty."""
    if not path:
        return DEFAULT
    return parse(pathlib.Path(path).read_text())
