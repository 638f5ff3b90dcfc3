"""Deep checks: what the CRD schema cannot know, as pure functions of cluster facts.

A spec can pass the CRD's CEL rules and still be unable to run: the GPU product may be
on offer nowhere, the credentials Secret may not exist. These become conditions with a
reason and a human message instead of crash-looping pods or a hot retry loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tideserve.api import spec as spec_api
from tideserve.controller import status
from tideserve.render import hardware as hardware_mod


def gpu_products(nodes: Sequence[Mapping[str, str]]) -> list[str]:
    return sorted(
        {n[hardware_mod.GPU_PRODUCT_LABEL] for n in nodes if hardware_mod.GPU_PRODUCT_LABEL in n}
    )


def hardware_problems(
    hw: hardware_mod.Hardware, nodes: Sequence[Mapping[str, str]]
) -> list[status.Problem]:
    """The requested GPU product is offered by no node: Schedulable=False, not blocking.

    Not blocking because a cluster autoscaler may still add such a node; the Deployment
    is applied and its pods wait, and the condition says why.
    """
    if hw.kind != "gpu" or not hw.gpu_product:
        return []
    offered = gpu_products(nodes)
    if hw.gpu_product in offered:
        return []
    on_offer = ", ".join(offered) if offered else "none"
    return [
        status.Problem(
            condition=status.SCHEDULABLE,
            reason="NoNodeOffersGpuProduct",
            message=(
                f"no node offers {hardware_mod.GPU_PRODUCT_LABEL}={hw.gpu_product} "
                f"(GPU products on offer: {on_offer})"
            ),
            blocking=False,
        )
    ]


def secret_problems(model: spec_api.ModelSpec, secret_exists: bool) -> list[status.Problem]:
    """A missing credentials Secret blocks: the pods could not start without it."""
    if not model.storage_secret_ref or secret_exists:
        return []
    return [
        status.Problem(
            condition=status.SPEC_VALID,
            reason="StorageSecretNotFound",
            message=(
                f"Secret {model.storage_secret_ref!r} named in spec.model.storageSecretRef "
                "does not exist in this namespace; create it and tideserve will continue"
            ),
            blocking=True,
        )
    ]


def invalid_spec(message: str) -> status.Problem:
    return status.Problem(
        condition=status.SPEC_VALID, reason="InvalidSpec", message=message, blocking=True
    )


NAME_TAKEN = "ChildNameTaken"


def names_taken(taken: Mapping[tuple[str, str], str]) -> list[status.Problem]:
    """Children whose names other objects hold: blocking, since applying would take those
    objects over (and garbage collection would delete them with this InferenceService)."""
    if not taken:
        return []
    held = "; ".join(f"{kind} {name} is {who}" for (kind, name), who in sorted(taken.items()))
    return [
        status.Problem(
            condition=status.SPEC_VALID,
            reason=NAME_TAKEN,
            message=(
                f"tideserve names this InferenceService's children after it, and {held}: "
                "rename the InferenceService, or remove that object and tideserve will "
                "continue"
            ),
            blocking=True,
        )
    ]
