"""The fit check: can any node run one replica, and if not, why not."""

from __future__ import annotations

import pytest

from tideserve.api import spec as spec_api
from tideserve.rightsizing import fit

pytestmark = pytest.mark.unit


def node(name: str, labels=None, taints=(), **allocatable: str) -> fit.Node:
    return fit.node_from_api(
        {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": list(taints)},
            "status": {
                "allocatable": {
                    k.replace("_", "/").replace("MIG", "mig-"): v for k, v in allocatable.items()
                }
            },
        }
    )


CPU = node("cpu-0", cpu="8", memory="32Gi")
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
L4 = fit.node_from_api(
    {
        "metadata": {"name": "gpu-l4", "labels": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
        "spec": {"taints": [GPU_TAINT]},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "1"}},
    }
)
MIG = fit.node_from_api(
    {
        "metadata": {"name": "mig-a100", "labels": {}},
        "spec": {"taints": [GPU_TAINT]},
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "nvidia.com/mig-1g.10gb": "7"}},
    }
)
NODES = [CPU, L4, MIG]


def resources(**kw) -> spec_api.ResourcesSpec:
    return spec_api.ResourcesSpec.model_validate(kw)


def test_cpu_replica_fits_the_cpu_node_only_untainted() -> None:
    result = fit.check(fit.requirements(resources(accelerator="cpu", cpu="2", memory="4Gi")), NODES)
    assert result.fits
    assert result.nodes == ("cpu-0",)


def test_gpu_replica_tolerates_the_gpu_taint_and_selects_the_product() -> None:
    needs = fit.requirements(resources(accelerator="gpu", gpu={"product": "NVIDIA-L4"}))
    result = fit.check(needs, NODES)
    assert result.nodes == ("gpu-l4",)


def test_mig_replica_lands_on_the_mig_node() -> None:
    needs = fit.requirements(resources(accelerator="mig", mig={"profile": "1g.10gb"}))
    assert fit.check(needs, NODES).nodes == ("mig-a100",)


def test_no_node_fits_gives_reason_and_message() -> None:
    needs = fit.requirements(resources(accelerator="gpu", gpu={"product": "NVIDIA-H100"}))
    result = fit.check(needs, NODES)
    assert not result.fits
    assert result.reason == "NoNodeFits"
    assert "nvidia.com/gpu.product=NVIDIA-H100" in result.message
    assert "label nvidia.com/gpu.product=NVIDIA-H100 missing" in result.message

    huge = fit.check(fit.requirements(resources(accelerator="cpu", cpu="64")), NODES)
    assert not huge.fits
    assert "cpu 8 < 64" in huge.message


def test_no_nodes_at_all() -> None:
    result = fit.check(fit.requirements(resources(accelerator="cpu")), [])
    assert (result.fits, result.reason) == (False, "NoNodes")


def test_largest_allocatable() -> None:
    assert fit.largest(NODES, "cpu") == 32
    assert fit.largest(NODES, "nvidia.com/gpu") == 1
