"""What the reconciler renders: the spec's resources, or the recommendation in auto mode (pure).

`effective_resources(spec, status, current)` is the one function the reconciler calls.
In rightSizing.mode auto it applies status.recommendation's CPU and memory, and its
accelerator when spec.resources.accelerator is auto, but only at a safe moment:
- while scaled to zero (nothing to disturb), or
- when the endpoint is settled (not mid-rollout) and the change is material, as a rolling
  update; the reconciler renders maxSurge >= 1 and maxUnavailable 0 so capacity never dips.
Mid-rollout, or for a change within the hysteresis band, `current` (what the Deployment
runs now) is kept, so a recommendation never stacks rollouts or flaps. One exception: memory
raised after an OOM kill (recommendation.oomRaised) is applied at once, mid-rollout too,
since the killed replica keeps the rollout from ever settling; only the memory, the rest
(accelerator, CPU) waits for a settled, material change.
"""

from __future__ import annotations

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.rightsizing import catalog as catalog_mod
from tideserve.rightsizing import fit, quantities

HYSTERESIS = 0.10


def option_name(resources: spec_api.ResourcesSpec, in_use: str | None = None) -> str:
    """The catalog option name of `resources` ("cpu", "gpu:<product>", "mig:<profile>")."""
    accelerator = resources.accelerator
    if accelerator is spec_api.Accelerator.AUTO and in_use:
        return in_use
    if accelerator is spec_api.Accelerator.CPU:
        return "cpu"
    if accelerator is spec_api.Accelerator.MIG and resources.mig is not None:
        return f"mig:{resources.mig.profile}"
    product = resources.gpu.product if resources.gpu else None
    return f"gpu:{product}" if product else "gpu"


def apply(
    resources: spec_api.ResourcesSpec, recommendation: status_api.Recommendation
) -> spec_api.ResourcesSpec:
    """`resources` with the recommendation's hardware and requests (a new object)."""
    update: dict[str, object] = {}
    if recommendation.cpu:
        update["cpu"] = recommendation.cpu
    if recommendation.memory:
        update["memory"] = recommendation.memory
    if resources.accelerator is spec_api.Accelerator.AUTO:
        kind, _, detail = recommendation.accelerator.partition(":")
        if kind == "cpu":
            update |= {"accelerator": spec_api.Accelerator.CPU, "gpu": None, "mig": None}
        elif kind == "mig" and detail:
            update |= {
                "accelerator": spec_api.Accelerator.MIG,
                "gpu": None,
                "mig": spec_api.MigSpec(profile=detail),
            }
        elif kind == "gpu":
            count = resources.gpu.count if resources.gpu else 1
            update |= {
                "accelerator": spec_api.Accelerator.GPU,
                "mig": None,
                "gpu": spec_api.GpuSpec(product=detail or None, count=count),
            }
    # Validate again: the result must satisfy the same rules as a user's spec.
    return spec_api.ResourcesSpec.model_validate(resources.model_copy(update=update).dump())


def material(old: spec_api.ResourcesSpec, new: spec_api.ResourcesSpec) -> bool:
    """Whether going from `old` to `new` is worth a rollout."""
    if option_name(old) != option_name(new):
        return True
    pairs = (
        (old.cpu or fit.DEFAULT_CPU, new.cpu or fit.DEFAULT_CPU),
        (old.memory or fit.DEFAULT_MEMORY, new.memory or fit.DEFAULT_MEMORY),
    )
    for before, after in pairs:
        was, now = quantities.parse(before), quantities.parse(after)
        if was <= 0 or abs(now - was) > HYSTERESIS * was:
            return True
    return False


def _raises_memory(old: spec_api.ResourcesSpec, new: spec_api.ResourcesSpec) -> bool:
    was = quantities.parse(old.memory or fit.DEFAULT_MEMORY)
    return quantities.parse(new.memory or fit.DEFAULT_MEMORY) > was


def _settling(status: status_api.InferenceServiceStatus) -> bool:
    progressing = any(
        c.type == status_api.ConditionType.PROGRESSING
        and c.status == status_api.ConditionStatus.TRUE
        for c in status.conditions
    )
    replicas = status.replicas or 0
    return progressing or (status.ready_replicas or 0) < replicas


def effective_resources(
    spec: spec_api.InferenceServiceSpec,
    status: status_api.InferenceServiceStatus | None,
    current: spec_api.ResourcesSpec | None = None,
) -> spec_api.ResourcesSpec:
    """The resources to render now. `current`: what the Deployment runs (None: not created)."""
    resources = spec.resources
    recommendation = status.recommendation if status else None
    if resources.right_sizing.mode is not spec_api.RightSizingMode.AUTO or recommendation is None:
        return resources
    target = apply(resources, recommendation)
    if current is None or status is None or current == target:
        return target
    if (status.replicas or 0) == 0:
        return target
    if _settling(status) or not material(current, target):
        if recommendation.oom_raised and _raises_memory(current, target):
            # A replica was OOM-killed: waiting for a settled rollout waits forever. Only
            # the memory: the rest of the recommendation waits for its safe moment.
            return current.model_copy(update={"memory": target.memory})
        return current
    return target


def option_of(
    catalog: catalog_mod.Catalog, resources: spec_api.ResourcesSpec, in_use: str | None
) -> catalog_mod.Option:
    """The catalog option `resources` runs on; a GPU with no product is the cheapest GPU."""
    name = option_name(resources, in_use)
    found = catalog_mod.find(catalog, name)
    if found is not None:
        return found
    gpus = [o for o in catalog_mod.options(catalog) if o.kind is catalog_mod.Kind.GPU]
    if name.startswith("gpu") and gpus:
        return min(gpus, key=lambda o: o.price_per_hour)
    # Unknown hardware: priced as CPU alone, so savings are never overstated.
    return catalog_mod.options(catalog)[0]
