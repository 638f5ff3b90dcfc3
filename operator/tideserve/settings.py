"""Operator settings, read once from the environment at start-up (the chart sets them)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pydantic

DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-py3"


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    tick_seconds: float = pydantic.Field(5.0, gt=0, le=300)
    watch_namespaces: tuple[str, ...] = ()
    triton_image: str = DEFAULT_TRITON_IMAGE
    # "namespace/name" of the activator's Service; empty when the activator is off.
    activator_service: str = ""
    # Direct URL of the activator's control port (tests, or a single activator); wins
    # over discovering the activator's pods through activator_service.
    activator_url: str = ""
    catalog_file: str = ""
    metrics_port: int = pydantic.Field(8080, ge=0, le=65535)
    health_port: int = pydantic.Field(8081, ge=0, le=65535)

    @pydantic.field_validator("activator_service")
    @classmethod
    def _namespace_slash_name(cls, value: str) -> str:
        namespace, slash, name = value.partition("/")
        if value and not (slash and namespace and name and "/" not in name):
            # An empty name would select every EndpointSlice in the namespace.
            raise ValueError(f"must be namespace/name, got {value!r}")
        return value

    @property
    def activator(self) -> tuple[str, str] | None:
        if not self.activator_service:
            return None
        namespace, _, name = self.activator_service.partition("/")
        return namespace, name


_ENV = {
    "prometheus_url": "TIDESERVE_PROMETHEUS_URL",
    "tick_seconds": "TIDESERVE_TICK_SECONDS",
    "watch_namespaces": "TIDESERVE_WATCH_NAMESPACES",
    "triton_image": "TIDESERVE_TRITON_IMAGE",
    "activator_service": "TIDESERVE_ACTIVATOR_SERVICE",
    "activator_url": "TIDESERVE_ACTIVATOR_URL",
    "catalog_file": "TIDESERVE_CATALOG_FILE",
    "metrics_port": "TIDESERVE_METRICS_PORT",
    "health_port": "TIDESERVE_HEALTH_PORT",
}


class SettingsError(ValueError):
    """A TIDESERVE_* variable has a value the operator cannot run with."""


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from TIDESERVE_* variables; unset ones keep their defaults.

    Raises SettingsError naming the variable, never a raw validation trace."""
    source = os.environ if env is None else env
    values: dict[str, object] = {}
    for field, var in _ENV.items():
        raw = source.get(var)
        if raw is None or raw == "":
            continue
        if field == "watch_namespaces":
            values[field] = tuple(ns.strip() for ns in raw.split(",") if ns.strip())
        else:
            values[field] = raw
    try:
        return Settings.model_validate(values)
    except pydantic.ValidationError as error:
        problems = [
            f"{_ENV.get(str(item['loc'][0]), item['loc'][0])}: "
            + str(item["msg"]).removeprefix("Value error, ")
            for item in error.errors()
        ]
        raise SettingsError("; ".join(problems)) from None
