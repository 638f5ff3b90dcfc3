"""Settings of every process, read once from the environment at start-up (the chart sets
them): `Settings` for the operator (`tideserve run`), `ActivatorSettings` for the activator.
One loader for both; a bad value is refused with the variable named, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import pydantic

from tideserve.api import formats
from tideserve.api import scaling as scaling_api
from tideserve.render import storage

DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-py3"
DEFAULT_LEASE_NAME = "tideserve-operator"
# The activator's defaults for objects that leave these out: the API's own defaults.
_SCALE_TO_ZERO = scaling_api.ScaleToZeroSpec()
# A Lease name is a DNS subdomain; a namespace a DNS label.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class NetworkPeers(pydantic.BaseModel):
    """Who may reach an endpoint's Triton pods (NetworkPolicy peers, as the API has them):
    `serving` on the HTTP and gRPC ports, `metrics` on the metrics port. The chart fills
    them: the activator, the endpoint's own namespace, Prometheus, and what values add."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    serving: tuple[dict[str, Any], ...] = ()
    metrics: tuple[dict[str, Any], ...] = ()


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    tick_seconds: float = pydantic.Field(5.0, gt=0, le=300)
    # How often SLO attainment is accounted (good/total requests per interval).
    slo_interval_seconds: float = pydantic.Field(60.0, ge=1, le=3600)
    watch_namespaces: tuple[str, ...] = ()
    # Image references as spec.runtime.image takes them (the CRD's rule): a bad one would
    # reach every InferenceService's pods and fail there (InvalidImageName).
    triton_image: str = pydantic.Field(DEFAULT_TRITON_IMAGE, pattern=formats.IMAGE)
    # The model-fetch step's image per scheme (render.storage.FetchImages): a mirror's.
    fetch_image_s3: str = pydantic.Field(storage.AWS_CLI_IMAGE, pattern=formats.IMAGE)
    fetch_image_gs: str = pydantic.Field(storage.GCLOUD_IMAGE, pattern=formats.IMAGE)
    fetch_image_https: str = pydantic.Field(storage.CURL_IMAGE, pattern=formats.IMAGE)
    # "namespace/name" of the activator's Service; empty when the activator is off.
    activator_service: str = ""
    # Direct URL of the activator's control port (tests, or a single activator); wins
    # over discovering the activator's pods through activator_service.
    activator_url: str = ""
    catalog_file: str = ""
    metrics_port: int = pydantic.Field(8080, ge=0, le=65535)
    health_port: int = pydantic.Field(8081, ge=0, le=65535)
    # Leader election over a Lease: off for a local `tideserve run`, on in the chart.
    leader_election: bool = False
    lease_namespace: str = ""
    lease_name: str = DEFAULT_LEASE_NAME
    # The holder identity written into the Lease (the chart sets POD_NAME from the
    # downward API); empty: hostname and process id.
    pod_name: str = pydantic.Field("", max_length=253)
    # JSON of NetworkPeers: each endpoint gets a NetworkPolicy admitting only them; unset,
    # none is rendered (and one left from before is deleted).
    network_policy: NetworkPeers | None = None

    @pydantic.field_validator("network_policy", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"must be JSON {{serving: [...], metrics: [...]}}: {error}"
                ) from None
        return value

    @pydantic.field_validator("lease_name")
    @classmethod
    def _dns_subdomain(cls, value: str) -> str:
        if len(value) > 253 or not _SUBDOMAIN.match(value):
            raise ValueError(
                f"must be a DNS subdomain name (lowercase, digits, '-', '.'), got {value!r}"
            )
        return value

    @pydantic.field_validator("lease_namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if value and (len(value) > 63 or not _LABEL.match(value)):
            raise ValueError(f"must be a namespace name, got {value!r}")
        return value

    @pydantic.field_validator("activator_service")
    @classmethod
    def _namespace_slash_name(cls, value: str) -> str:
        namespace, slash, name = value.partition("/")
        if value and not (slash and namespace and name and "/" not in name):
            # An empty name would select every EndpointSlice in the namespace.
            raise ValueError(f"must be namespace/name, got {value!r}")
        return value

    @property
    def fetch_images(self) -> storage.FetchImages:
        return storage.FetchImages(self.fetch_image_s3, self.fetch_image_gs, self.fetch_image_https)

    @property
    def activator(self) -> tuple[str, str] | None:
        if not self.activator_service:
            return None
        namespace, _, name = self.activator_service.partition("/")
        return namespace, name


class ActivatorSettings(pydantic.BaseModel):
    """The activator's settings; its command-line flags override them."""

    model_config = pydantic.ConfigDict(frozen=True)

    # In a pod the clients come from outside; tests pass 127.0.0.1.
    host: str = "0.0.0.0"  # noqa: S104
    http_port: int = pydantic.Field(8080, ge=0, le=65535)
    grpc_port: int = pydantic.Field(8081, ge=0, le=65535)  # 0: no gRPC pass-through
    control_port: int = pydantic.Field(9090, ge=0, le=65535)
    kubeconfig: str = ""  # empty: in-cluster (the service account)
    watch_namespaces: tuple[str, ...] = ()
    # ns/name=url overrides of where an endpoint's replicas are reached.
    upstreams: tuple[str, ...] = ()
    grpc_upstreams: tuple[str, ...] = ()
    max_held_requests: int = pydantic.Field(_SCALE_TO_ZERO.max_held_requests, ge=1)
    wake_deadline_seconds: float = pydantic.Field(_SCALE_TO_ZERO.wake_deadline_seconds, gt=0)
    # SIGTERM: how long held requests may still wait for a replica (the chart's default is
    # the same, below its terminationGracePeriodSeconds).
    drain_seconds: float = pydantic.Field(30.0, ge=0)
    upstream_connections: int = pydantic.Field(512, ge=1)
    loop: Literal["auto", "asyncio", "uvloop"] = "asyncio"
    log_level: str = "INFO"
    # Limits on clients and on the upstream hop (tideserve.activator.limits says why each).
    max_body_bytes: int = pydantic.Field(64 * 1024 * 1024, gt=0)
    header_timeout_seconds: float = pydantic.Field(10.0, gt=0, allow_inf_nan=False)
    body_timeout_seconds: float = pydantic.Field(120.0, gt=0, allow_inf_nan=False)
    idle_timeout_seconds: float = pydantic.Field(75.0, gt=0, allow_inf_nan=False)
    upstream_head_timeout_seconds: float = pydantic.Field(300.0, gt=0, allow_inf_nan=False)

    @pydantic.field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"must be a logging level (DEBUG, INFO, WARNING, ...), got {value!r}")
        return value


_ENV = {
    "prometheus_url": "TIDESERVE_PROMETHEUS_URL",
    "tick_seconds": "TIDESERVE_TICK_SECONDS",
    "slo_interval_seconds": "TIDESERVE_SLO_INTERVAL_SECONDS",
    "watch_namespaces": "TIDESERVE_WATCH_NAMESPACES",
    "triton_image": "TIDESERVE_TRITON_IMAGE",
    "fetch_image_s3": "TIDESERVE_FETCH_IMAGE_S3",
    "fetch_image_gs": "TIDESERVE_FETCH_IMAGE_GS",
    "fetch_image_https": "TIDESERVE_FETCH_IMAGE_HTTPS",
    "activator_service": "TIDESERVE_ACTIVATOR_SERVICE",
    "activator_url": "TIDESERVE_ACTIVATOR_URL",
    "catalog_file": "TIDESERVE_CATALOG_FILE",
    "metrics_port": "TIDESERVE_METRICS_PORT",
    "health_port": "TIDESERVE_HEALTH_PORT",
    "leader_election": "TIDESERVE_LEADER_ELECTION",
    "lease_namespace": "TIDESERVE_LEASE_NAMESPACE",
    "lease_name": "TIDESERVE_LEASE_NAME",
    "pod_name": "POD_NAME",
    "network_policy": "TIDESERVE_NETWORK_POLICY",
}


ACTIVATOR_ENV = {
    "host": "TIDESERVE_ACTIVATOR_HOST",
    "http_port": "TIDESERVE_ACTIVATOR_HTTP_PORT",
    "grpc_port": "TIDESERVE_ACTIVATOR_GRPC_PORT",
    "control_port": "TIDESERVE_ACTIVATOR_CONTROL_PORT",
    "kubeconfig": "KUBECONFIG",
    "watch_namespaces": "TIDESERVE_WATCH_NAMESPACES",
    "upstreams": "TIDESERVE_ACTIVATOR_UPSTREAMS",
    "grpc_upstreams": "TIDESERVE_ACTIVATOR_GRPC_UPSTREAMS",
    "max_held_requests": "TIDESERVE_ACTIVATOR_MAX_HELD_REQUESTS",
    "wake_deadline_seconds": "TIDESERVE_ACTIVATOR_WAKE_DEADLINE_SECONDS",
    "drain_seconds": "TIDESERVE_ACTIVATOR_DRAIN_SECONDS",
    "upstream_connections": "TIDESERVE_ACTIVATOR_UPSTREAM_CONNECTIONS",
    "loop": "TIDESERVE_ACTIVATOR_LOOP",
    "log_level": "TIDESERVE_LOG_LEVEL",
    "max_body_bytes": "TIDESERVE_ACTIVATOR_MAX_BODY_BYTES",
    "header_timeout_seconds": "TIDESERVE_ACTIVATOR_HEADER_TIMEOUT_SECONDS",
    "body_timeout_seconds": "TIDESERVE_ACTIVATOR_BODY_TIMEOUT_SECONDS",
    "idle_timeout_seconds": "TIDESERVE_ACTIVATOR_IDLE_TIMEOUT_SECONDS",
    "upstream_head_timeout_seconds": "TIDESERVE_ACTIVATOR_UPSTREAM_HEAD_TIMEOUT_SECONDS",
}
# Variables holding a comma-separated list.
_LISTS = {"watch_namespaces", "upstreams", "grpc_upstreams"}


class SettingsError(ValueError):
    """A TIDESERVE_* variable has a value the process cannot run with."""


Model = TypeVar("Model", bound=pydantic.BaseModel)


def _load(model: type[Model], names: Mapping[str, str], env: Mapping[str, str] | None) -> Model:
    """`model` from the variables in `names` (field -> variable); unset ones keep their
    defaults. Raises SettingsError naming the variable, never a raw validation trace."""
    source = os.environ if env is None else env
    values: dict[str, object] = {}
    for field, var in names.items():
        raw = source.get(var)
        if raw is None or not raw.strip():
            continue  # blank is unset
        if field in _LISTS:
            values[field] = tuple(item.strip() for item in raw.split(",") if item.strip())
        else:
            values[field] = raw
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        problems = [
            f"{names.get(str(item['loc'][0]), item['loc'][0])}: "
            + str(item["msg"]).removeprefix("Value error, ")
            for item in error.errors()
        ]
        raise SettingsError("; ".join(problems)) from None


def activator_from_env(env: Mapping[str, str] | None = None) -> ActivatorSettings:
    """The activator's settings from its TIDESERVE_ACTIVATOR_* (and shared) variables."""
    return _load(ActivatorSettings, ACTIVATOR_ENV, env)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """The operator's settings from TIDESERVE_* variables; unset ones keep their defaults.

    Raises SettingsError naming the variable, never a raw validation trace."""
    loaded = _load(Settings, _ENV, env)
    if loaded.leader_election and not loaded.lease_namespace:
        # No guessing: two replicas that guessed different namespaces would both lead.
        raise SettingsError(
            "TIDESERVE_LEASE_NAMESPACE: required when TIDESERVE_LEADER_ELECTION is on"
        )
    return loaded
