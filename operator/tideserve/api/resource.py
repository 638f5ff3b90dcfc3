"""The InferenceService resource: identity constants and the whole-object model."""

from __future__ import annotations

from typing import Any

import pydantic

from tideserve.api import base
from tideserve.api import spec as spec_api
from tideserve.api import status as status_api

GROUP = "serving.tideserve.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
PLURAL = "inferenceservices"
SINGULAR = "inferenceservice"
SHORT_NAMES = ("tisvc",)
CATEGORIES = ("tideserve",)
# Prefix for tideserve's own labels and annotations on children.
LABEL_PREFIX = "serving.tideserve.io"
FIELD_MANAGER = "tideserve"
AUTOSCALER_FIELD_MANAGER = "tideserve-autoscaler"


class InferenceService(base.Model):
    """A whole object as read from the API server (metadata kept as a plain mapping)."""

    model_config = pydantic.ConfigDict(extra="ignore")

    api_version: str = pydantic.Field(API_VERSION)
    kind: str = pydantic.Field(KIND)
    metadata: dict[str, Any] = pydantic.Field(default_factory=dict)
    spec: spec_api.InferenceServiceSpec
    status: status_api.InferenceServiceStatus | None = None


def parse_spec(body: dict[str, Any]) -> spec_api.InferenceServiceSpec:
    """Validate a raw spec mapping; raises pydantic.ValidationError on bad input."""
    return spec_api.InferenceServiceSpec.model_validate(body)


def describe_error(error: pydantic.ValidationError) -> str:
    """One line per problem, naming the field the way a user wrote it (spec.a.b[0].c)."""
    lines = []
    for item in error.errors():
        path = "spec"
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = str(item["msg"]).removeprefix("Value error, ")
        path += base.FIELD_PATHS.get(message, "")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)
