"""Handles that the pytest fixtures in tests/conftest.py give to tests.

Several pytest sessions (several engineers, or a CI run beside a developer) may
share one test bed: each session registers itself in <state>/users/, and the last
one to leave tears down what a pytest session started (never what a human
started with `hack/cluster up`). TIDESERVE_KEEP_CLUSTER=1 keeps everything up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

# Only tests import this module (from the project venv); the CLI stays stdlib-only.
# The one place tests use the Kubernetes Python client (STYLE rule 7, checked by
# tests/unit/test_layering.py); elsewhere they use kubectl through Kube.
import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
import numpy as np
import tritonclient.http as httpclient

from tideserve import settings as settings_mod
from tideserve.api import crd, resource
from tideserve_testbed import cli, controlplane, procs, prometheus, triton

T = TypeVar("T")
ROOT = pathlib.Path(__file__).resolve().parents[3]
CRD_NAME = f"{resource.PLURAL}.{resource.GROUP}"
# A model that is never fetched (no kubelet runs the pods): any valid storageUri will do.
PLACEHOLDER_MODEL = {"name": "m", "storageUri": "https://models.invalid/m.tar.gz"}

# spec.scaling.behavior that reacts in seconds, for e2e tests that watch the
# autoscaler scale up and down within a test's time.
FAST_BEHAVIOR = {
    "stableWindowSeconds": 4,
    "panicWindowSeconds": 2,
    "scaleUp": {"stabilizationSeconds": 0, "maxPercent": 100, "maxReplicasChange": 4,
                "periodSeconds": 2},
    "scaleDown": {"stabilizationSeconds": 2, "maxPercent": 100, "maxReplicasChange": 4,
                  "periodSeconds": 2},
}  # fmt: skip


def eventually(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll check() until it returns something truthy (returned); fail after timeout.

    Exceptions from check count as "not yet"; the last one is shown on timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as e:  # the condition may not be checkable yet
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


def consistently(check: Callable[[], object], duration: float, what: str) -> None:
    """check() holds (truthy) every time it is asked for `duration` seconds: the way to
    show that something does NOT happen over a window (a wait would end at once)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding"
        time.sleep(0.5)


@dataclasses.dataclass(frozen=True)
class Kube:
    kubeconfig: pathlib.Path
    state_dir: pathlib.Path
    kubectl_bin: pathlib.Path = procs.BIN_DIR / "kubectl"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl_bin), f"--kubeconfig={self.kubeconfig}", *args]
        res = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{res.stderr}")
        return res

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]], *args: str) -> None:
        if isinstance(manifest, list):
            manifest = {"apiVersion": "v1", "kind": "List", "items": manifest}
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", "-f", "-", *args, input=text)

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient for this cluster (the official Python client)."""
        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into an InferenceService's status, as the reconciler writes it,
        through the Python client: no kubectl start-up in the way of what a benchmark
        times after it."""
        api = kubernetes.client.CustomObjectsApi(_api_client(str(self.kubeconfig)))
        api.patch_namespaced_custom_object_status(
            resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name,
            {"status": status},
        )  # fmt: skip

    def dry_run_create(
        self, manifest: dict[str, Any], namespace: str
    ) -> tuple[dict[str, Any] | None, str]:
        """Create `manifest` in `namespace` as a server-side dry run with strict field
        validation: (the object as the API server would store it, "") or (None, why the
        API server refused it)."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        try:
            if api_version == resource.API_VERSION:
                stored = kubernetes.client.CustomObjectsApi(
                    _api_client(str(self.kubeconfig))
                ).create_namespaced_custom_object(
                    resource.GROUP, resource.VERSION, namespace, resource.PLURAL, manifest,
                    dry_run="All", field_validation="Strict",
                )  # fmt: skip
                return dict(stored), ""
            client = kubernetes.dynamic.DynamicClient(_api_client(str(self.kubeconfig)))
            kinds = client.resources.get(api_version=api_version, kind=kind)
            created = kinds.create(body=manifest, namespace=namespace, dry_run="All")
            return dict(created.to_dict()), ""
        except kubernetes.client.ApiException as error:
            if error.status not in (400, 403, 422):
                raise
            return None, str(error.body)

    def allowed(self, user: str, groups: list[str], checks: list[dict[str, str]]) -> list[bool]:
        """The API server's authorizer on each check, for that user and groups: one
        SubjectAccessReview each (what `kubectl auth can-i --as` asks, without a kubectl
        per question). A check is resourceAttributes: verb, resource, group, subresource,
        namespace (omit namespace for cluster scope)."""
        api = kubernetes.client.AuthorizationV1Api(self.api_client())
        out = []
        for attributes in checks:
            review = api.create_subject_access_review({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
            })  # fmt: skip
            out.append(bool(review.status.allowed))
        return out

    def events(self, namespace: str, involved: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get_json("events", "-n", namespace)["items"]
        if involved:
            items = [e for e in items if e["involvedObject"]["name"] == involved]
        return items


@functools.cache
def _api_client(kubeconfig: str) -> Any:
    """One client per cluster for the calls that are timed (patch_status)."""
    return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig
    )

    """One client per cluster for the many dry runs of the property tests."""
    return kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


# A loopback port free right now (for a process a test starts); tests import fixtures only.
free_port = procs.free_port


def install_crds(kube: Kube) -> None:
    """Apply the generated CRD as it is in crds/ (server-side, so this checkout's schema
    wins over another session's) and wait until the API server serves it."""
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd.targets(ROOT)[0]))

    def established() -> bool:
        # Read, not `kubectl wait`: that fails at once while a new CRD has no conditions.
        conditions = kube.get_json("crd", CRD_NAME).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    eventually(established, 60, f"CRD {CRD_NAME} Established")


@contextlib.contextmanager
def crd_namespace(kube: Kube, prefix: str, name: str | None = None) -> Iterator[str]:
    """A fresh namespace `<prefix>-<random>` (the test bed is shared: names must not
    collide), or `name` if given, with the CRDs installed; deleted afterwards without
    waiting."""
    install_crds(kube)
    name = name or f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def isvc(
    name: str, namespace: str | None = None, *, model: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """An InferenceService manifest: `spec` fields as given (camelCase), the placeholder
    model unless one is given; in `namespace` if given (else kubectl's -n decides)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": metadata,
        "spec": {"model": model or dict(PLACEHOLDER_MODEL), **spec},
    }


@dataclasses.dataclass(frozen=True)
class Prometheus:
    url: str
    targets_dir: pathlib.Path

    def register(
        self, target_id: str, address: str, *, namespace: str, name: str, pod: str
    ) -> None:
        prometheus.register(
            target_id, address, namespace=namespace, name=name, pod=pod,
            d=self.targets_dir.parent.parent,
        )  # fmt: skip

    def register_component(self, target_id: str, address: str, component: str) -> None:
        """Scrape the operator's or the activator's /metrics as an in-cluster
        ServiceMonitor with honorLabels does: their own namespace/name labels (the
        InferenceService's) stay; the target adds only `component`."""
        prometheus.register_labels(
            target_id, address, {"component": component}, self.targets_dir.parent.parent
        )

    def unregister(self, target_id: str) -> None:
        prometheus.unregister(target_id, self.targets_dir.parent.parent)

    def query(self, promql: str) -> list[dict[str, Any]]:
        return prometheus.query(self.url, promql)

    def active_targets(self) -> list[dict[str, Any]]:
        return prometheus.active_targets(self.url)


@dataclasses.dataclass(frozen=True)
class Triton:
    name: str
    http_url: str  # http://127.0.0.1:PORT
    grpc_url: str  # 127.0.0.1:PORT (tritonclient.grpc form)
    metrics_url: str  # http://127.0.0.1:PORT/metrics
    metrics_address: str  # 127.0.0.1:PORT (a Prometheus target)
    model: str
    labels: dict[str, str]
    pid: int

    @property
    def http_address(self) -> str:  # tritonclient.http wants host:port
        return self.http_url.removeprefix("http://")


def start_triton(
    name: str,
    labels: dict[str, str] | None = None,
    *,
    delay_ms: int | None = None,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
) -> Triton:
    rec = triton.start(
        name, labels=labels, delay_ms=delay_ms, http_port=http_port, grpc_port=grpc_port,
        metrics_port=metrics_port,
    )  # fmt: skip
    return Triton(
        name=rec["name"], http_url=rec["http_url"], grpc_url=rec["grpc_url"],
        metrics_url=rec["metrics_url"], metrics_address=rec["metrics_address"],
        model=rec["model"], labels=rec["labels"], pid=rec["proc"]["pid"],
    )  # fmt: skip


def stop_triton(name: str) -> None:
    triton.stop(name)


class Session:
    """One pytest session's use of the shared test bed."""

    def __init__(self) -> None:
        self.d = procs.state_dir()
        self.me = f"pytest:{os.getpid()}"
        self.started: list[str] = []

    def __enter__(self) -> Session:
        # Up and registering as a user happen under one lock, so a session that is
        # leaving cannot tear the test bed down between the two.
        with procs.locked():
            try:
                res = cli.up(owner=self.me)
            except BaseException:
                # Nothing would tear down what this session did start (no __exit__).
                if cli.state().get("owners", {}).get("controlplane") == self.me:
                    cli.down()
                raise
            self.started = res["started"]
            users = self.d / "users"
            users.mkdir(parents=True, exist_ok=True)
            (users / str(os.getpid())).write_text(self.me)
        return self

    def kube(self) -> Kube:
        return Kube(kubeconfig=controlplane.kubeconfig_path(self.d), state_dir=self.d)

    def prometheus(self) -> Prometheus:
        return Prometheus(
            url=prometheus.url(cli.state()), targets_dir=prometheus.targets_dir(self.d)
        )

    def __exit__(self, *exc: object) -> None:
        with procs.locked():
            with contextlib.suppress(FileNotFoundError):
                (self.d / "users" / str(os.getpid())).unlink()
            if os.environ.get("TIDESERVE_KEEP_CLUSTER") == "1":
                return
            others = [p for p in (self.d / "users").glob("*") if _pid_alive(p.name)]
            if others:
                return  # the last session to leave cleans up
            owners = cli.state().get("owners", {})
            if str(owners.get("controlplane", "")).startswith("pytest:"):
                cli.down()
            elif str(owners.get("prometheus", "")).startswith("pytest:"):
                st = cli.state()
                prometheus.down(st)
                st.get("components", {}).pop("prometheus", None)
                st.get("owners", {}).pop("prometheus", None)
                procs.write_json(self.d / "state.json", st)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def load(server: Triton, concurrency: int, width: int = 16) -> Iterator[list[int]]:
    """Closed-loop tritonclient clients: `concurrency` requests in flight against
    server's model until the block ends; yields [requests done so far]."""

    stop = threading.Event()
    done = [0]

    def worker() -> None:
        client = httpclient.InferenceServerClient(server.http_address, network_timeout=60)
        data = np.ones((1, width), dtype=np.float32)
        inp = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
        inp.set_data_from_numpy(data)
        while not stop.is_set():
            client.infer(server.model, [inp])
            done[0] += 1
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        yield done
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


@contextlib.contextmanager
def autoscaler(settings: settings_mod.Settings) -> Iterator[None]:
    """tideserve.autoscaler.loop.run in its own event loop and thread, as the operator runs
    it; stopped (its stop event set, the thread joined) on leaving."""
    from tideserve.autoscaler import loop  # noqa: PLC0415  (only the e2e tests need it)

    event_loop = asyncio.new_event_loop()
    stop: list[asyncio.Event] = []
    started = threading.Event()

    async def main() -> None:
        stop.append(asyncio.Event())
        started.set()
        await loop.run(settings, stop[0])

    thread = threading.Thread(target=event_loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the autoscaler loop did not start within 10 s")
    try:
        yield
    finally:
        event_loop.call_soon_threadsafe(stop[0].set)
        thread.join(timeout=30)
        event_loop.close()


def deployment_replicas(kube: Kube, namespace: str, selector: str) -> dict[str, tuple[int, int]]:
    """Deployment name -> (spec.replicas, status.readyReplicas), with the Python client: a
    list in milliseconds where kubectl takes a few hundred (chaos tests time kills by it)."""
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    items = apps.list_namespaced_deployment(namespace, label_selector=selector).items
    return {d.metadata.name: (d.spec.replicas, d.status.ready_replicas or 0) for d in items}


def watch_deployment_replicas(
    kube: Kube, namespace: str, selector: str, timeout: float
) -> Iterator[tuple[str, int]]:
    """(name, spec.replicas) of each Deployment event as it happens, for up to `timeout`."""
    import kubernetes.watch  # noqa: PLC0415 (only the chaos tests watch)

    apps = kubernetes.client.AppsV1Api(kube.api_client())
    watch = kubernetes.watch.Watch()
    stream = watch.stream(
        apps.list_namespaced_deployment,
        namespace,
        label_selector=selector,
        timeout_seconds=int(timeout),
    )
    try:
        for event in stream:
            obj = event["object"]
            yield obj.metadata.name, obj.spec.replicas
    finally:
        watch.stop()
