"""Right-sizing's say in what is rendered (rightSizing.mode: auto).

The decision itself is right-sizing's pure `effective_resources(spec, status, current)`
(a layer below the controller); this module only feeds it what the reconciler knows (the
status, and the hardware the Deployment runs now, from its annotation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pydantic

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.render import hardware, names
from tideserve.rightsizing import effective as effective_mod

log = logging.getLogger("tideserve.controller")


def wants_auto(body: Mapping[str, Any]) -> bool:
    """Cheap check on the raw body, before any parsing."""
    sizing = (body.get("spec") or {}).get("resources", {}).get("rightSizing") or {}
    return sizing.get("mode") == spec_api.RightSizingMode.AUTO.value


def running(deployment: Mapping[str, Any] | None) -> hardware.Hardware | None:
    annotations = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    return hardware.from_annotation(annotations.get(names.HARDWARE_ANNOTATION))


def effective(
    spec: spec_api.InferenceServiceSpec,
    status: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    applied: hardware.Hardware | None = None,
) -> hardware.Hardware | None:
    """The hardware to render instead of the spec's, or None to render the spec's.

    `applied`: what this process last applied; it wins over the Deployment's annotation,
    which the watch cache may not have caught up with yet.
    """
    if spec.resources.right_sizing.mode is not spec_api.RightSizingMode.AUTO:
        return None
    try:
        parsed = status_api.InferenceServiceStatus.model_validate(dict(status or {}))
    except pydantic.ValidationError:
        parsed = None
    now = applied or running(deployment)
    current = hardware.to_resources(now, spec.resources) if now else None
    resources = effective_mod.effective_resources(spec, parsed, current)
    return hardware.from_spec(resources)
