"""Everything the reconciler applies for one InferenceService, in apply order."""

from __future__ import annotations

import dataclasses
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.render import deployment, names, network, policies, triton_config
from tideserve.render import hardware as hardware_mod


@dataclasses.dataclass(frozen=True)
class Options:
    """Facts from outside the spec that shape the children."""

    triton_image: str
    service_monitor: bool = False  # the monitoring.coreos.com CRD is installed
    hardware: hardware_mod.Hardware | None = None  # right-sizing's override, if any


@dataclasses.dataclass(frozen=True)
class Plan:
    """Manifests to apply, and (kind, name) of optional children to delete if present."""

    apply: tuple[dict[str, Any], ...]
    delete: tuple[tuple[str, str], ...]


def hardware(spec: spec_api.InferenceServiceSpec, options: Options) -> hardware_mod.Hardware:
    return options.hardware or hardware_mod.from_spec(spec.resources)


def plan(owner: names.Owner, spec: spec_api.InferenceServiceSpec, options: Options) -> Plan:
    hw = hardware(spec, options)
    apply: list[dict[str, Any]] = []
    delete: list[tuple[str, str]] = []
    # The ConfigMap goes first: the Deployment's pods mount it.
    if triton_config.needed(spec.model, hw):
        apply.append(triton_config.config_map(owner, spec.model, hw))
    else:
        delete.append(("ConfigMap", names.config(owner.name)))
    apply.append(deployment.deployment(owner, spec, options.triton_image, hw))
    apply.append(network.predictor_service(owner))
    apply.append(network.route_service(owner))
    if policies.wants_pdb(spec):
        apply.append(policies.pdb(owner))
    else:
        delete.append(("PodDisruptionBudget", names.predictor(owner.name)))
    if options.service_monitor:
        apply.append(policies.service_monitor(owner))
    return Plan(apply=tuple(apply), delete=tuple(delete))
