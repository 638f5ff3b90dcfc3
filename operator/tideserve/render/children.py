"""Everything the reconciler applies for one InferenceService, in apply order."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.render import deployment, names, network, policies, storage, triton_config
from tideserve.render import hardware as hardware_mod


@dataclasses.dataclass(frozen=True)
class Options:
    """Facts from outside the spec that shape the children."""

    triton_image: str
    service_monitor: bool = False  # the monitoring.coreos.com CRD is installed
    hardware: hardware_mod.Hardware | None = None  # right-sizing's override, if any
    # (serving peers, metrics peers) of the endpoint's NetworkPolicy; None: no policy.
    network_peers: tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...]] | None = None
    fetch_images: storage.FetchImages = storage.DEFAULT_FETCH_IMAGES


@dataclasses.dataclass(frozen=True)
class Plan:
    """Manifests to apply, and (kind, name) of optional children to delete if present."""

    apply: tuple[dict[str, Any], ...]
    delete: tuple[tuple[str, str], ...]
    digest: str = ""  # of everything above; also stamped on the Deployment


def digest_of(apply: list[dict[str, Any]], delete: list[tuple[str, str]]) -> str:
    text = json.dumps([apply, delete], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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
    apply.append(deployment.deployment(owner, spec, options.triton_image, hw, options.fetch_images))
    apply.append(network.predictor_service(owner))
    apply.append(network.route_service(owner))
    if policies.wants_pdb(spec):
        apply.append(policies.pdb(owner))
    else:
        delete.append(("PodDisruptionBudget", names.predictor(owner.name)))
    if options.network_peers is not None:
        apply.append(policies.network_policy(owner, *options.network_peers))
    else:
        delete.append(("NetworkPolicy", names.predictor(owner.name)))
    if options.service_monitor:
        apply.append(policies.service_monitor(owner))
    digest = digest_of(apply, delete)
    # Stamped on the Deployment so that after a restart an unchanged plan need not be
    # applied again (the Deployment is the child every reconcile applies).
    stamped = [
        _annotate(m, names.PLAN_DIGEST_ANNOTATION, digest) if m["kind"] == "Deployment" else m
        for m in apply
    ]
    return Plan(apply=tuple(stamped), delete=tuple(delete), digest=digest)


def _annotate(manifest: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    meta = manifest["metadata"]
    annotations = dict(meta.get("annotations") or {}) | {key: value}
    return manifest | {"metadata": meta | {"annotations": annotations}}


def applied_digest(deployment: dict[str, Any] | None) -> str | None:
    """The plan digest a live Deployment was applied with, if any."""
    annotations = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(names.PLAN_DIGEST_ANNOTATION)
    return str(value) if value else None
