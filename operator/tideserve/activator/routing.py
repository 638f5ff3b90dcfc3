"""Pure routing helpers: which endpoint a request is for, where its upstream is, and the
activator's view of an InferenceService object."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from tideserve.activator import queueing

ENDPOINT_HEADER = "X-Tideserve-Endpoint"
# Triton's ports on the predictor Service (the reconciler's contract).
PREDICTOR_HTTP_PORT = 8000
PREDICTOR_GRPC_PORT = 8001
DEFAULT_MAX_HELD = 1000
DEFAULT_WAKE_DEADLINE_SECONDS = 900.0


def endpoint_from_host(host: str | None) -> queueing.EndpointKey | None:
    """`<name>.<namespace>[.svc[.cluster.local]][:port]` -> key; None for anything else
    (a bare `<name>` names no namespace, an IP names no endpoint)."""
    if not host:
        return None
    hostname = host.strip().lower()
    if hostname.startswith("["):  # IPv6 literal
        return None
    hostname = hostname.rsplit(":", 1)[0] if ":" in hostname else hostname
    labels = hostname.rstrip(".").split(".")
    if len(labels) < 2 or all(label.isdigit() for label in labels):
        return None
    rest = labels[2:]
    # Accept the in-cluster forms only; anything after the namespace must be the service
    # suffix, else `a.b.example.com` would be read as endpoint b/a.
    if rest not in ([], ["svc"]) and rest[:1] != ["svc"]:
        return None
    if not labels[0] or not labels[1]:
        return None
    return queueing.EndpointKey(namespace=labels[1], name=labels[0])


def endpoint_for(headers: Mapping[str, str]) -> queueing.EndpointKey | None:
    """The explicit header wins over the Host header."""
    explicit = headers.get(ENDPOINT_HEADER)
    if explicit:
        try:
            return queueing.EndpointKey.parse(explicit)
        except ValueError:
            return None
    return endpoint_from_host(headers.get("Host"))


def parse_overrides(items: Iterable[str]) -> dict[queueing.EndpointKey, str]:
    """`ns/name=URL` items (flags, or comma-separated from the environment) -> map."""
    result: dict[queueing.EndpointKey, str] = {}
    for raw in items:
        for item in raw.split(","):
            if not item.strip():
                continue
            key, sep, value = item.strip().partition("=")
            if not sep or not value:
                raise ValueError(f"expected namespace/name=URL, got {item!r}")
            result[queueing.EndpointKey.parse(key)] = value.rstrip("/")
    return result


def http_upstream(key: queueing.EndpointKey, overrides: Mapping[queueing.EndpointKey, str]) -> str:
    """Base URL of the endpoint's Triton HTTP port: the predictor Service in a cluster, or
    an override (tests point it at a local Triton)."""
    return overrides.get(key) or (
        f"http://{key.name}-predictor.{key.namespace}.svc:{PREDICTOR_HTTP_PORT}"
    )


def grpc_upstream(key: queueing.EndpointKey, overrides: Mapping[queueing.EndpointKey, str]) -> str:
    """host:port of the endpoint's Triton gRPC port."""
    return overrides.get(key) or f"{key.name}-predictor.{key.namespace}.svc:{PREDICTOR_GRPC_PORT}"


def _parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _reason(conditions: list[dict[str, Any]]) -> str:
    """The most telling message for "why is it not ready": the reconciler's Progressing
    message (waiting for a node, pulling, loading the model), else Ready's, else
    Schedulable's."""
    by_type = {c.get("type"): c for c in conditions if isinstance(c, dict)}
    for kind in ("Progressing", "Schedulable", "Ready", "ScaledToZero"):
        condition = by_type.get(kind)
        if condition and condition.get("message"):
            reason = condition.get("reason", "")
            return f"{kind} {reason}: {condition['message']}" if reason else condition["message"]
    return ""


def state_from_object(
    obj: Mapping[str, Any],
    *,
    default_max_held: int = DEFAULT_MAX_HELD,
    default_wake_deadline: float = DEFAULT_WAKE_DEADLINE_SECONDS,
) -> queueing.EndpointState:
    """An InferenceService as read from the API server -> the activator's view of it.

    Read leniently on purpose: the activator must keep answering even when an object
    fails the operator's stricter validation, so it takes only the fields it needs and
    falls back to the defaults (the API's, or the chart's activator settings) for limits
    the object does not spell out.
    """
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    limits = (spec.get("scaling") or {}).get("scaleToZero") or {}
    key = queueing.EndpointKey(metadata.get("namespace", "default"), metadata.get("name", ""))
    return queueing.EndpointState(
        key=key,
        model=str((spec.get("model") or {}).get("name") or key.name),
        ready_replicas=int(status.get("readyReplicas") or 0),
        off_until=_parse_time(status.get("offUntil")),
        max_held_requests=int(limits.get("maxHeldRequests") or default_max_held),
        wake_deadline_seconds=float(limits.get("wakeDeadlineSeconds") or default_wake_deadline),
        message=_reason(list(status.get("conditions") or [])),
    )


def model_from_grpc_request(raw: bytes) -> str | None:
    """The model name in a serialized Triton gRPC request, without the protobufs.

    ModelInferRequest, ModelReadyRequest, ModelMetadataRequest and ModelConfigRequest all
    carry the model name as field 1 (a string), which serializers write first. Python's
    gRPC server does not expose the :authority a client dialled, so when a call has no
    x-tideserve-endpoint metadata, the model name is the only routing hint left.
    """
    if len(raw) < 2 or raw[0] != 0x0A:  # field 1, wire type 2 (length-delimited)
        return None
    length, shift, index = 0, 0, 1
    while index < len(raw) and shift < 35:
        byte = raw[index]
        length |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            break
        shift += 7
    else:
        return None
    if length == 0 or index + length > len(raw):
        return None
    try:
        return raw[index : index + length].decode()
    except UnicodeDecodeError:
        return None


def endpoint_for_model(
    model: str, states: Iterable[queueing.EndpointState]
) -> queueing.EndpointKey | None:
    """The one endpoint serving `model`; None when none or several do (ambiguous)."""
    keys = [s.key for s in states if s.model == model]
    return keys[0] if len(keys) == 1 else None
