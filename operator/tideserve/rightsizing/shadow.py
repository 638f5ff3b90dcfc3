"""The shadow replica automatic profiling measures a candidate on (pure builder).

The endpoint's own predictor Deployment, rendered for the candidate's hardware, renamed
`<name>-probe`, one replica, with labels no Service, autoscaler or scrape selects: it
serves no user traffic and adds nothing to the endpoint's metrics. When the candidate
needs a model config override (CPU does: its instance kind), the shadow has its own
ConfigMap, `<name>-config-probe`, rendered for the candidate: the endpoint's own is for
its current hardware, or absent. Owned by the InferenceService, so deleting the endpoint
deletes both.
"""

from __future__ import annotations

import datetime
from typing import Any

from tideserve.api import resource
from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.render import deployment as deployment_mod
from tideserve.render import hardware as hardware_mod
from tideserve.render import names, storage, triton_config
from tideserve.rightsizing import effective

PROBE_APP = "tideserve-probe"
OPTION_ANNOTATION = f"{resource.LABEL_PREFIX}/probe-option"
STARTED_ANNOTATION = f"{resource.LABEL_PREFIX}/probe-started"
PROBE_OF_LABEL = f"{resource.LABEL_PREFIX}/probe-of"
LABEL_SELECTOR = f"app.kubernetes.io/name={PROBE_APP}"


def name_of(endpoint: str) -> str:
    return f"{endpoint}-probe"


def config_name_of(endpoint: str) -> str:
    # Not names.config(name_of(...)): "<name>-probe-config" is the ConfigMap of an
    # endpoint called "<name>-probe". No ConfigMap tideserve renders ends in "-probe".
    return f"{names.config(endpoint)}-probe"


def labels(endpoint: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": PROBE_APP,
        "app.kubernetes.io/instance": endpoint,
        names.MANAGED_BY_LABEL: names.MANAGED_BY,
        names.COMPONENT_LABEL: "probe",
        # Not ISVC_LABEL: the predictor's selector and the OOM scan key on it.
        PROBE_OF_LABEL: endpoint,
    }


def build(
    owner: names.Owner,
    spec: spec_api.InferenceServiceSpec,
    option: str,
    cpu: str | None,
    memory: str | None,
    image: str,
    now: datetime.datetime,
    fetch_images: storage.FetchImages = storage.DEFAULT_FETCH_IMAGES,
) -> dict[str, Any]:
    """The shadow Deployment for `option` ("cpu-4", "gpu:<product>", "mig:<profile>")."""
    hw = _hardware(spec, option, cpu, memory)
    manifest = deployment_mod.deployment(owner, spec, image, hw, fetch_images)
    for volume in manifest["spec"]["template"]["spec"]["volumes"]:
        if volume["name"] == triton_config.CONFIG_VOLUME:
            volume["configMap"]["name"] = config_name_of(owner.name)
    own = labels(owner.name)
    meta = manifest["metadata"]
    meta["name"] = name_of(owner.name)
    meta["labels"] = own
    meta["annotations"] = {
        **meta.get("annotations", {}),
        OPTION_ANNOTATION: option,
        STARTED_ANNOTATION: now.isoformat(),
    }
    pod_meta = manifest["spec"]["template"]["metadata"]
    pod_meta["labels"] = own
    # Not scraped: its requests and latency are the probe's, not the endpoint's.
    pod_meta["annotations"] = {
        k: v
        for k, v in pod_meta.get("annotations", {}).items()
        if not k.startswith("prometheus.io/") and k != names.ISVC_LABEL
    } | {"prometheus.io/scrape": "false"}
    manifest["spec"]["replicas"] = 1
    manifest["spec"]["selector"] = {"matchLabels": own}
    return manifest


def config_map(
    owner: names.Owner,
    spec: spec_api.InferenceServiceSpec,
    option: str,
    cpu: str | None,
    memory: str | None,
) -> dict[str, Any] | None:
    """The shadow's model config override for `option`; None when it needs none."""
    hw = _hardware(spec, option, cpu, memory)
    if not triton_config.needed(spec.model, hw):
        return None
    manifest = triton_config.config_map(owner, spec.model, hw)
    manifest["metadata"]["name"] = config_name_of(owner.name)
    manifest["metadata"]["labels"] = labels(owner.name)
    return manifest


def _hardware(
    spec: spec_api.InferenceServiceSpec, option: str, cpu: str | None, memory: str | None
) -> hardware_mod.Hardware:
    cores = option.removeprefix("cpu-") if option.startswith("cpu-") else None
    trial = status_api.Recommendation(
        accelerator="cpu" if cores else option, cpu=cores or cpu, memory=memory
    )
    resources = effective.apply(
        spec.resources.model_copy(update={"accelerator": spec_api.Accelerator.AUTO}), trial
    )
    return hardware_mod.from_spec(resources)


def started(manifest: dict[str, Any]) -> tuple[str, datetime.datetime] | None:
    """The option and start time a shadow Deployment was made for (None: not ours)."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    option = annotations.get(OPTION_ANNOTATION)
    when = annotations.get(STARTED_ANNOTATION)
    if not option or not when:
        return None
    try:
        return str(option), datetime.datetime.fromisoformat(str(when))
    except ValueError:
        return None
