"""The one module that talks to the Kubernetes API, and the one place its errors are translated.

Everything is synchronous (the official client); async callers run these functions in
threads. Writes are server-side apply under tideserve's field manager with force: the
reconciler is the declared owner of every field it sends, and SSA leaves fields it does
not send (the Deployment's replicas) to their owners.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import kopf
import kubernetes
import urllib3

from tideserve.api import resource
from tideserve.kubeconfig import no_cluster


@dataclasses.dataclass(frozen=True)
class Kind:
    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool = True


KINDS: dict[str, Kind] = {
    "ConfigMap": Kind("/api/v1", "configmaps"),
    "Service": Kind("/api/v1", "services"),
    "Pod": Kind("/api/v1", "pods"),
    "Secret": Kind("/api/v1", "secrets"),
    "Event": Kind("/api/v1", "events"),
    "Node": Kind("/api/v1", "nodes", namespaced=False),
    "Deployment": Kind("/apis/apps/v1", "deployments"),
    "EndpointSlice": Kind("/apis/discovery.k8s.io/v1", "endpointslices"),
    "PodDisruptionBudget": Kind("/apis/policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": Kind("/apis/networking.k8s.io/v1", "networkpolicies"),
    "ServiceMonitor": Kind("/apis/monitoring.coreos.com/v1", "servicemonitors"),
    "Lease": Kind("/apis/coordination.k8s.io/v1", "leases"),
    "CustomResourceDefinition": Kind(
        "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False
    ),
    resource.KIND: Kind(f"/apis/{resource.API_VERSION}", resource.PLURAL),
}

# Delays for retryable failures: conflicts clear quickly, overload and outages less so.
CONFLICT_DELAY = 2.0
THROTTLE_DELAY = 10.0
SERVER_ERROR_DELAY = 15.0
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read


class NotFoundError(Exception):
    """The object (or its kind) does not exist."""


class InvalidError(Exception):
    """The API server refused the object as invalid (400/422): retrying will not help."""


_client: kubernetes.client.ApiClient | None = None
_lock = threading.Lock()


def configure(kubeconfig: str | None = None) -> None:
    """Load credentials once: in-cluster when running in a pod, else the kubeconfig."""
    global _client  # noqa: PLW0603 - one client (and connection pool) per process
    with _lock:
        if _client is not None:
            return
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            try:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, client_configuration=config
                )
            except Exception as error:  # any failure to read it: none usable
                raise no_cluster(kubeconfig, error) from None
        # Handlers run in a thread pool; let each have a connection.
        config.connection_pool_maxsize = 64
        _client = kubernetes.client.ApiClient(configuration=config)


def _api() -> kubernetes.client.ApiClient:
    if _client is None:
        configure()
    assert _client is not None
    return _client


def path(kind: str, namespace: str | None = None, name: str | None = None) -> str:
    k = KINDS[kind]
    out = k.prefix
    if k.namespaced and namespace:
        out += f"/namespaces/{urllib.parse.quote(namespace)}"
    out += f"/{k.plural}"
    if name:
        out += f"/{urllib.parse.quote(name)}"
    return out


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Map API failures to what kopf should do about them: the single translation point."""
    try:
        yield
    except kubernetes.client.ApiException as exc:
        status = int(exc.status or 0)
        message = _message(exc)
        if status == 404:
            raise NotFoundError(message) from exc
        if status == 409:
            raise kopf.TemporaryError(f"conflict: {message}", delay=CONFLICT_DELAY) from exc
        if status == 429:
            raise kopf.TemporaryError(f"throttled: {message}", delay=THROTTLE_DELAY) from exc
        if status >= 500 or status == 0:
            raise kopf.TemporaryError(
                f"API server error {status}: {message}", delay=SERVER_ERROR_DELAY
            ) from exc
        if status in {400, 422}:
            raise InvalidError(message) from exc
        if status in {401, 403}:
            # RBAC is fixed by an admin, not by retrying every second.
            raise kopf.TemporaryError(f"forbidden: {message}", delay=60.0) from exc
        raise kopf.TemporaryError(
            f"API error {status}: {message}", delay=SERVER_ERROR_DELAY
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise kopf.TemporaryError(f"API unreachable: {exc}", delay=SERVER_ERROR_DELAY) from exc


def _message(exc: kubernetes.client.ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.reason)
    return str(body.get("message") or exc.reason)


def _request(
    method: str,
    url: str,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    accept: str = "application/json",
    timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
) -> Any:
    api = _api()
    headers = {"Accept": accept, "Content-Type": content_type}
    _, full_url, headers, _, _ = api.param_serialize(
        method=method,
        resource_path=url,
        query_params=query or [],
        header_params=headers,
        auth_settings=["BearerToken"],
    )
    with translated():
        response = api.call_api(
            method, full_url, header_params=headers, body=body, _request_timeout=timeout
        )
        response.read()  # type: ignore[no-untyped-call]
        if response.status >= 400:
            raise kubernetes.client.ApiException(http_resp=response)
    data = response.data
    return json.loads(data) if data else None


def apply(manifest: dict[str, Any], manager: str = resource.FIELD_MANAGER) -> dict[str, Any]:
    """Server-side apply of a whole manifest (create or update)."""
    meta = manifest["metadata"]
    url = path(manifest["kind"], meta.get("namespace"), meta["name"])
    query = [("fieldManager", manager), ("force", "true")]
    result: dict[str, Any] = _request(
        "PATCH", url, manifest, query, content_type="application/apply-patch+yaml"
    )
    return result


def apply_status(
    namespace: str, name: str, status: dict[str, Any], manager: str = resource.FIELD_MANAGER
) -> dict[str, Any]:
    """Server-side apply of the fields this manager owns in an InferenceService's status."""
    body = {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    }
    url = path(resource.KIND, namespace, name) + "/status"
    query = [("fieldManager", manager), ("force", "true")]
    result: dict[str, Any] = _request(
        "PATCH", url, body, query, content_type="application/apply-patch+yaml"
    )
    return result


def get(
    kind: str,
    namespace: str | None,
    name: str,
    timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = _request("GET", path(kind, namespace, name), timeout=timeout)
    except NotFoundError:
        return None
    return result


def list_objects(
    kind: str, namespace: str | None = None, labels: str | None = None
) -> list[dict[str, Any]]:
    query = [("labelSelector", labels)] if labels else []
    try:
        result = _request("GET", path(kind, namespace), query=query)
    except NotFoundError:
        return []
    items: list[dict[str, Any]] = result.get("items") or []
    return items


def list_in(
    kind: str, namespaces: Sequence[str], labels: str | None = None
) -> list[dict[str, Any]]:
    """Objects of a kind in the watched namespaces: one cluster-wide list call when
    none are named (a cluster-wide install), else one call per namespace."""
    if not namespaces:
        return list_objects(kind, None, labels)
    return [item for ns in namespaces for item in list_objects(kind, ns, labels)]


def delete(kind: str, namespace: str | None, name: str) -> bool:
    """Delete if present; True when something was deleted."""
    try:
        _request("DELETE", path(kind, namespace, name), {"propagationPolicy": "Background"})
    except NotFoundError:
        return False
    return True


@dataclasses.dataclass
class _Cached:
    value: Any
    until: float


_cache: dict[str, _Cached] = {}
_loading: dict[str, threading.Lock] = {}
CACHE_SECONDS = 10.0


def _cached(key: str, load: Any) -> Any:
    # Cluster-wide facts (GPU products on offer, installed CRDs) change rarely and are
    # asked for by every reconcile: read them at most every CACHE_SECONDS, and by one
    # thread at a time (after a restart many reconciles ask at once).
    with _lock:
        loading = _loading.setdefault(key, threading.Lock())
    with loading:
        now = time.monotonic()
        hit = _cache.get(key)
        if hit is not None and hit.until > now:
            return hit.value
        value = load()
        _cache[key] = _Cached(value, time.monotonic() + CACHE_SECONDS)
        return value


METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def names_cached(kind: str, namespace: str | None, labels: str) -> frozenset[str]:
    """Names of the objects of a kind, read at most every CACHE_SECONDS (metadata only)."""

    def load() -> frozenset[str]:
        try:
            result = _request(
                "GET",
                path(kind, namespace),
                query=[("labelSelector", labels)],
                accept=METADATA_ONLY,
            )
        except NotFoundError:
            return frozenset()
        return frozenset(str(i["metadata"]["name"]) for i in result.get("items") or [])

    names: frozenset[str] = _cached(f"names:{kind}:{namespace}:{labels}", load)
    return names


def list_objects_cached(
    kind: str, namespace: str | None = None, labels: str | None = None
) -> list[dict[str, Any]]:
    """`list_objects`, read at most every CACHE_SECONDS (for facts nobody watches)."""
    result: list[dict[str, Any]] = _cached(
        f"list:{kind}:{namespace}:{labels}", lambda: list_objects(kind, namespace, labels)
    )
    return result


def crd_exists(name: str) -> bool:
    return bool(_cached(f"crd:{name}", lambda: get("CustomResourceDefinition", None, name)))


def node_labels() -> list[dict[str, str]]:
    """Labels of every node (for checking that a GPU product is on offer)."""

    def load() -> list[dict[str, str]]:
        return [n["metadata"].get("labels") or {} for n in list_objects("Node")]

    result: list[dict[str, str]] = _cached("nodes", load)
    return result


def post_event(involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
    """A core/v1 Event on an InferenceService (what `kubectl describe` shows)."""
    meta = involved["metadata"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": event_type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "tideserve"},
        "reportingComponent": "tideserve",
        "reportingInstance": "tideserve",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    _request("POST", path("Event", meta["namespace"]), event)


def patch_scale(kind: str, namespace: str, name: str, replicas: int, manager: str) -> None:
    """Set replicas through the scale subresource (the autoscaler's only Deployment write)."""
    url = path(kind, namespace, name) + "/scale"
    body = {"spec": {"replicas": replicas}}
    query = [("fieldManager", manager)]
    _request("PATCH", url, body, query, content_type="application/merge-patch+json")


def create_lease(namespace: str, name: str, spec: dict[str, Any], timeout: float) -> None:
    """Create the Lease; fails (409) when another process created it first."""
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    _request("POST", path("Lease", namespace), body, timeout=timeout)


def replace_lease(
    namespace: str, name: str, resource_version: str, spec: dict[str, Any], timeout: float
) -> None:
    """Replace the Lease's spec only if nobody wrote it since we read `resource_version`
    (optimistic concurrency: of two standbys taking over, one gets a 409)."""
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
        "spec": spec,
    }
    _request("PUT", path("Lease", namespace, name), body, timeout=timeout)
